// What a run report reads: run.json (written at the end of a run) and status.json or
// the control socket's status (while it runs) have this one shape. Everything a
// coordinator of another version may leave out is optional, so that old and live
// runs still render.

export type AttemptStatus = 'ok' | 'failed' | 'lost' | 'preempted' | 'cancelled' | 'running'

export interface RunAttempt {
  id: string
  /** the worker's peer id */
  worker: string
  /** the worker's node name, when the coordinator knew it */
  node?: string
  status?: AttemptStatus | string
  exitCode?: number | null
  signal?: string | null
  error?: string
  /** epoch ms, coordinator's clock: handed to the worker */
  assignedAt?: number
  /** epoch ms, worker's clock: the command started (after its inputs were in) */
  startedAt?: number
  /** epoch ms, worker's clock: the command ended */
  endedAt?: number
  /** epoch ms, coordinator's clock: the result arrived (outputs sent by then) */
  reportedAt?: number
  inputWaitMs?: number
  bytesFetched?: number
}

export interface RunJob {
  state: string
  worker?: string
  attempts?: RunAttempt[]
  startedAt?: number
  endedAt?: number
  exitCode?: number | null
  reason?: string
}

export interface RunWorker {
  peer: string
  name?: string
  alive?: boolean
  slots?: number
  jobsDone?: number
}

export interface RunData {
  bytesFetched?: number
  prefetchedBytes?: number
  cacheHits?: number
  inputWaitMs?: number
  inputBytesStaged?: number
  servedBytes?: number
  prefetch?: boolean
}

export interface RunJson {
  run: string
  dag?: string
  state: string
  error?: { code: string, message: string }
  outDir?: string
  /** epoch ms, coordinator's clock */
  startedAt?: number
  updatedAt?: number
  workers?: RunWorker[]
  data?: RunData
  lowerBoundSec?: number
  waiting?: string[]
  jobs: Record<string, RunJob>
}

/** A worker's name for people: its node name, else the end of its peer id (as the CLI prints it). */
export function nodeLabel (peer: string, name?: string): string {
  return name !== undefined && name !== '' ? name : peer.slice(-8)
}

/** Attempts that ended badly, marked on the timeline and kept when it is sampled. */
export function isMarked (status: string | undefined): boolean {
  return status === 'failed' || status === 'lost' || status === 'preempted' || status === 'cancelled'
}
