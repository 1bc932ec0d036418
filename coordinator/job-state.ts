// The job state table (as in Dask's scheduler): one place says which changes are legal.
export type JobState = 'pending' | 'ready' | 'running' | 'done' | 'failed' | 'skipped' | 'cancelled'

export const JOB_TRANSITIONS: Readonly<Record<JobState, readonly JobState[]>> = {
  // waiting for parents (or for a parent's lost outputs to be made again)
  pending: ['ready', 'skipped', 'cancelled'],
  // pending: a parent's outputs were lost before this job started; done: a late result
  // of an attempt thought lost; skipped: an ancestor failed for good
  ready: ['running', 'pending', 'failed', 'cancelled', 'skipped', 'done'],
  // ready: retry, lost worker, preempted; pending: inputs lost while starting
  running: ['done', 'ready', 'pending', 'failed', 'cancelled'],
  // ready/pending: its outputs were lost with their only holder and a consumer still needs them
  done: ['ready', 'pending'],
  failed: [],
  skipped: [],
  cancelled: []
}

export const TERMINAL: ReadonlySet<JobState> = new Set(['done', 'failed', 'skipped', 'cancelled'])

/**
 * Resume (`submit --resume`): a fresh run core's jobs are all pending, and each takes the
 * outcome its journal recorded: done (with its outputs), failed, or skipped. Declared
 * apart because a live run never makes them: a pending job is not done or failed
 * without running. Any other journaled state (ready, running, cancelled) starts over.
 */
export const RESTORE_TRANSITIONS: Readonly<Record<JobState, readonly JobState[]>> = {
  pending: ['done', 'failed', 'skipped'],
  ready: [],
  running: [],
  done: [],
  failed: [],
  skipped: [],
  cancelled: []
}

/** what makes the change: the run as it goes, or a resume restoring the journal */
export type JobChange = 'live' | 'restore'

export function canJobTransition (from: JobState, to: JobState, change: JobChange = 'live'): boolean {
  return (change === 'restore' ? RESTORE_TRANSITIONS : JOB_TRANSITIONS)[from].includes(to)
}
