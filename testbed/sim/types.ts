// What the parts of the simulation see of each other (a leaf: types only). A node's
// worker session pulls its jobs from its coordinator (the jobs protocol, XtremWeb style)
// by a direct call the world delays; the claim protocol goes through the transport.
// Imports protocol/ types and the simulation's own leaf-level classes.
import type { Assignment, AttemptResult } from '../../protocol/jobs.ts'
import type { BgridError } from '../../protocol/errors.ts'
import type { VirtualClock } from './clock.ts'
import type { SimClaimTransport } from './transport.ts'
import type { Lan } from './lan.ts'
import type { GrantLog } from './grants.ts'

/** a worker's pull: its results, the attempts it runs (the heartbeat), and how many jobs it wants */
export interface SimPull { run: string, want: number, running: string[], results: AttemptResult[] }
export interface SimPullReply { jobs: Assignment[], done: boolean }

/** the coordinator as its workers pull from it */
export interface PullTarget {
  pull: (worker: string, req: SimPull, reply: (r: SimPullReply | BgridError) => void) => void
  /** how long a job's command runs, s (what the trace recorded, scaled) */
  runtimeOf: (job: string) => number
}

export interface SimWorld {
  clock: VirtualClock
  transport: SimClaimTransport
  lan: Lan
  grants: GrantLog
  /** one network hop, ms (seeded) */
  latency: () => number
  coordinator: (id: string) => PullTarget | undefined
}
