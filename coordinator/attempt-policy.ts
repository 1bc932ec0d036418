// How many attempts of a job may be out at once, and when the job is done: the hook
// through which a middleware's execution semantics enter the run core.
// - native (XtremWeb-style): one live attempt; the first successful result wins (the
//   run core's own path, with retries on failure);
// - replicated (BOINC-style, middleware-adapters/boinc/): several replicas on distinct
//   hosts; a result counts once a quorum of them agree.
import type { JobRec, AttemptRec } from './run-core.ts'

/** One replica as a decision sees it (see middleware-adapters/boinc/quorum.ts). */
export interface Replica {
  attempt: string
  worker: string
  /** ok: a result to validate; error: failed or no reply (deadline, worker lost); pending: still out or being compared */
  outcome: 'ok' | 'error' | 'pending'
  /** ok results that agree share a key (outputs' hashes, or a class found by the job's compare command) */
  key?: string
}

export type Decision =
  | { kind: 'wait', why: string }
  | { kind: 'issue', n: number, why: string }
  | { kind: 'canonical', key: string, attempt: string, valid: string[], invalid: string[] }
  | { kind: 'fail', reason: string }

export interface ReplicationPolicy {
  /** replicas a job starts with, given the worker that takes its first one (adaptive replication: 1 for a trusted worker, now and then) */
  initialReplicas: (job: JobRec, workerId: string) => number
  /** the agreement key of an ok result now, or undefined: it is being compared (classified() comes later) */
  keyOf: (job: JobRec, rec: AttemptRec, others: AttemptRec[]) => string | undefined
  /** what to do, given every replica so far */
  judge: (job: JobRec, replicas: Replica[]) => Decision
  /** a canonical result was chosen: valid and invalid results (trust, credit) */
  onDecided?: (job: JobRec, canonical: AttemptRec, valid: AttemptRec[], invalid: AttemptRec[]) => void
  /** a replica errored or gave no reply in time */
  onError?: (job: JobRec, rec: AttemptRec, kind: 'error' | 'timeout') => void
}
