// The records of one run, shared by the parts of the run core (job-table.ts,
// dispatch.ts, prefetch.ts, holders.ts) and read by the journal, the reports and the
// replication policy. Data only: the parts hold the logic.
import type { AttemptPhase } from '../protocol/claim.ts'
import type { JobSpec } from './dag.ts'
import type { JobState } from './job-state.ts'
import type { Plan } from './plan.ts'
import type { Attrs } from '../protocol/expr.ts'
import type { NodeStart } from '../protocol/start.ts'
import type { ReplicationPolicy } from './attempt-policy.ts'
import type { AttemptResult, LogResult } from '../protocol/jobs.ts'

export interface WorkerInfo {
  id: string, slots: number, attrs: Attrs, addrs: string[]
  /** which machine it runs on (its addresses): replicas of a job go to distinct hosts */
  host?: string
  /** its START policy (`bgrid daemon --start`): only jobs it lets in go to it */
  start?: NodeStart
}

export interface WorkerRec extends WorkerInfo {
  alive: boolean
  speed: number
  running: Map<string, string> // attempt -> job
  usedCores: number
  hinted: Set<string>
  assignedAt: Map<string, number>
  done: number
  /** blobs this worker must re-hash (see dropHolders) */
  verify: Set<string>
}

export interface AttemptRec {
  id: string
  job: string
  worker: string
  assignedAt: number
  startedAt?: number
  endedAt?: number
  /** when its result reached the coordinator (its clock): the end of "sending outputs" */
  reportedAt?: number
  /** its worker's result was applied: any other report of it is ignored */
  reported?: boolean
  /** cancelled: the run was cancelled while it ran */
  status?: AttemptResult['status'] | 'cancelled'
  exitCode?: number | null
  signal?: string | null
  error?: string
  stdout?: LogResult
  stderr?: LogResult
  inputWaitMs?: number
  bytesFetched?: number
  cacheHits?: number
  /** the job's CPU time as its worker measured it */
  cpuMs?: number
  /** replicated jobs: this replica's outputs, its agreement key, and what validation made of it */
  outputs?: Array<{ name: string, hash: string, size: number }>
  key?: string
  validation?: 'valid' | 'invalid'
  /** cobblestones granted to a valid result */
  credit?: number
  /** it did not report before the job's deadline (a late result still counts if the job is undecided) */
  timedOut?: boolean
  /** where its worker said it was at the last lease renewal, since when (coordinator's clock) */
  phase?: { name: AttemptPhase, since: number }
  /** lease renewals in a row whose answer did not hold it (two: lost) */
  missedRenewals?: number
  /** it could not run for reasons not its worker's (inputs gone): it counts neither for nor against */
  void?: boolean
}

export interface OutputRec { hash: string, size: number }

export interface JobRec {
  spec: JobSpec
  state: JobState
  attempts: AttemptRec[]
  failures: number
  lost: number
  /** attempts that could not get their inputs (see MAX_INPUT_WAITS) */
  inputWaits: number
  /** not to be assigned before this time (ms): backing off after missing inputs */
  notBefore?: number
  /** workers that had no room for its inputs (their quota): once every one has said so, it fails */
  noRoom?: Set<string>
  outputs: Map<string, OutputRec> | null
  avoid: Set<string>
  /** workers whose START policy refused it: never handed to them again */
  refusedBy?: Set<string>
  reason?: string
  collected: boolean
  /** replicated jobs: replicas still to hand out, the quorum for this job (1: unreplicated spot check) and the canonical key */
  replicasWanted?: number
  quorumNow?: number
  canonicalKey?: string
  /** the first attempt of the current round of replicas */
  roundStart?: number
}

export interface BlobRec { size: number, holders: Set<string> }

export interface CoreHooks {
  onTransition?: (job: JobRec, from: JobState, to: JobState, reason: string) => void
  onAttempt?: (job: JobRec, attempt: AttemptRec) => void
  onIllegal?: (job: string, from: JobState, to: JobState, reason: string) => void
}

export interface CoreOptions {
  coordinatorId: string
  prefetch: boolean
  /** unique per coordinator session: attempt ids never repeat across a resume */
  nonce: string
  hooks?: CoreHooks
  /** how replicated (BOINC-style) jobs are replicated and validated; native jobs need none */
  replication?: ReplicationPolicy
}

/** what the run moved and waited for: run.json's `data` and the run summary */
export interface RunStats {
  bytesFetched: number
  prefetchedBytes: number
  cacheHits: number
  inputWaitMs: number
  prefetchHints: number
  holdersDropped: number
  inputWaits: number
}

/** What planning decided, read by dispatch and prefetch (one object, shared: replan swaps its plan). */
export interface Schedule {
  plan: Plan | undefined
  /** upward rank: the longer the path a job heads, the sooner it runs */
  priority: Map<string, number>
  /**
   * No job is handed out (nor any input moved) while held: a run waits until it has
   * its workers.min before anything starts, so that a run short of workers leaves
   * nothing half done.
   */
  held: boolean
}
