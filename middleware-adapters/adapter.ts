// A middleware adapter runs a DAG's jobs on claimed workers. BonjourGrid wrapped
// XtremWeb, Condor and BOINC this way: the coordinator starts the middleware's
// server side, the workers its client side pointed at the coordinator.
import type { BgridNode } from '../protocol/node.ts'
import type { RunCore } from '../coordinator/run-core.ts'
import type { AttemptResult } from '../protocol/jobs.ts'
import type { Logger } from '../protocol/log.ts'

export interface AdapterContext {
  node: BgridNode
  core: RunCore
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
