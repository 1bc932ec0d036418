// The worker side of the middleware seam: what the daemon needs from whatever runs a
// claimed node's work for one coordinator. A claim names the middleware (protocol
// claim.ts `middleware`); the daemon looks its driver up by that name and builds one
// per claim. The native driver is WorkerSession (XtremWeb-style pull).
import type { BgridNode } from '../../protocol/node.ts'
import type { Logger } from '../../protocol/log.ts'
import type { BlobStore } from '../../cache/store.ts'
import type { Containment } from '../containment.ts'
import type { Claim } from '../claim-book.ts'
import type { Assignment } from '../../protocol/jobs.ts'
import type { HeldAttempt } from '../../protocol/claim.ts'

/** What a driver gets from the daemon for one claim. */
export interface DriverContext {
  node: BgridNode
  claim: Claim
  store: BlobStore
  containment: Containment
  /** cores this node lends (jobs at once) */
  slots: number
  log: Logger
  /** the coordinator said the run is over */
  onDone: () => void
  /** pids of running tasks changed (for the owner-load meter, and crash clean-up) */
  onPids?: (pids: number[]) => void
  /**
   * the node's START policy on a job it is handed: undefined to run it, else the error
   * to report it with (a lost attempt; protocol/start.ts START_REFUSED tells the
   * coordinator it is no failure of the job's)
   */
  admit?: (job: Assignment) => string | undefined
}

/** One claim's work on this node, from claim to release. */
export interface WorkerDriver {
  readonly claim: Claim
  readonly run: string
  /** attempts held here, running or queued (`bgrid status` shows how many) */
  readonly running: { readonly size: number }
  /** begin working for the claim's coordinator (called once, right after it is built) */
  start: () => void
  /** end: everything of the run on this node dies, its directories go; `why` is logged and told */
  stop: (why: string) => Promise<void>
  /** the owner is back: freeze the tasks, take no new ones */
  suspend: () => void
  /** the owner left: continue */
  resume: () => void
  /** suspended (or retiring) too long: hand the attempts back to the coordinator (preempted), saying why */
  vacate: (why?: string) => void
  /**
   * leaving the run for a fairer share: take no new job, hand the queued ones back
   * (preempted, not counted against them); those running finish and are reported
   */
  retire: (why: string) => void
  /** everything handed back and reported, or the time is up */
  drained: (timeoutMs: number) => Promise<void>
  /** may this peer read the run's blobs here (the coordinator, a fellow worker)? */
  isRunPeer: (peer: string) => Promise<boolean>
  /** the store quarantined a blob: the coordinator must hear of it */
  reportCorrupt: (hash: string) => void
  /**
   * A lease renewal: the attempts the coordinator counts on here (undefined: it did not
   * say). Attempts held longer than `graceMs` that it does not count on are dropped
   * (killed, never reported); the answer is what is held now, each with its phase.
   */
  reconcile?: (owned: readonly string[] | undefined, graceMs: number) => HeldAttempt[]
}

export type DriverFactory = (ctx: DriverContext) => WorkerDriver

/** the drivers a node has, by middleware name (protocol claim.ts MIDDLEWARE_NAME) */
export type DriverRegistry = ReadonlyMap<string, DriverFactory>
