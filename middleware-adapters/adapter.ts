// A middleware adapter runs a DAG's jobs on claimed workers. BonjourGrid wrapped
// XtremWeb, Condor and BOINC this way: the coordinator starts the middleware's
// server side, the workers its client side pointed at the coordinator.
import type { BgridNode } from '../protocol/node.ts'
import type { JobState } from '../coordinator/job-state.ts'
import type { Assignment, AttemptResult, CorruptReport, PeerInfo, PrefetchHint } from '../protocol/jobs.ts'
import type { Logger } from '../protocol/log.ts'

/**
 * What an adapter may do to a run (RunCore implements it): hand work out, bring results
 * and what workers say back in. Nothing else of the run is an adapter's to touch.
 */
export interface RunPort {
  /** up to `want` attempts for a pulling worker */
  assign: (worker: string, want: number, now: number) => Assignment[]
  /** a worker's result: what it did to its job ('ignored' for a duplicate or an unknown attempt) */
  complete: (worker: string, result: AttemptResult) => 'ignored' | JobState
  /** blobs a worker holds now (fetched ahead, or re-verified) */
  announce: (worker: string, hashes: string[]) => void
  /** holders a worker found with bad or no copies */
  reportCorrupt: (worker: string, reports: CorruptReport[]) => void
  /** bytes a worker fetched ahead of its jobs */
  addPrefetchedBytes: (bytes: number) => void
  /** heartbeat: the attempts a worker runs; those it no longer knows (and did not just report) are lost */
  reconcileRunning: (worker: string, running: string[], reported: Set<string>, now: number) => void
  /** blobs a worker should fetch now */
  hintsFor: (worker: string) => PrefetchHint[]
  /** bumped whenever the set of live workers changes: peers() is worth sending again */
  readonly workersVersion: number
  peers: () => PeerInfo[]
  /** blobs a worker must re-hash, handed out once */
  takeVerify: (worker: string) => string[]
  finished: () => boolean
}

export interface AdapterContext {
  node: BgridNode
  core: RunPort
  runId: string
  log: Logger
  /** is this peer one of this run's claimed workers? */
  isWorker: (peer: string) => boolean
  /** a result was applied (for the journal, progress and output streaming) */
  onResult: (peer: string, result: AttemptResult, outcome: string) => void
  /** make every state change so far durable (write-ahead: before any new assignment) */
  persist: () => Promise<void>
  /** the run was cancelled or is closing: workers should stop pulling */
  isClosing: () => boolean
  /** every job is finished and the final outputs are collected: workers may stop pulling */
  isOver: () => boolean
}

export interface MiddlewareAdapter {
  readonly name: string
  /** Start the server side for this run. */
  start: (ctx: AdapterContext) => Promise<void>
  /** Jobs became ready or workers changed: wake workers waiting for work. */
  notify: () => void
  /** Stop serving (after workers were told the run is over). */
  stop: () => Promise<void>
}
