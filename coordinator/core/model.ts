// The run core's model: what one run is made of, as data (the parts of the run core hold
// the logic). The DAG as parsed, the job state machine and its transition table, the
// records of jobs, attempts, workers and blobs, what planning decided and what the run
// moved. A leaf: it imports nothing of ours but protocol/.
import type { AttemptPhase } from '../../protocol/claim.ts'
import type { Attrs, Expr } from '../../protocol/expr.ts'
import type { NodeStart } from '../../protocol/start.ts'
import type { AttemptResult, LogResult } from '../../protocol/jobs.ts'

// ---- the DAG (dag.json, parsed and normalised) ---------------------------------------

export type InputSource = { kind: 'file', path: string, rel: string } | { kind: 'job', job: string, file: string }
export interface InputSpec { name: string, source: InputSource }

export interface JobSpec {
  id: string
  cmd: string[]
  after: string[]
  inputs: InputSpec[]
  outputs: string[]
  env: Record<string, string>
  retries: number
  timeoutMs: number
  requirements: Expr | null
  cores: number
  ram: number
  /** MiB the job may write (0: the worker's own limit) */
  disk: number
  /** false: an empty network namespace */
  network: boolean
  runtime: number
  /** expected output sizes (bytes) declared in dag.json, for planning */
  sizeHints: Record<string, number>
  /** BOINC-style verified execution (middleware boinc); null: native, first good result wins */
  verify: VerifySpec | null
}

/** BOINC's names in comments: the job's replication and validation. */
export interface VerifySpec {
  /** min_quorum: agreeing results that make one canonical */
  quorum: number
  /** target_nresults: replicas issued at first (>= quorum) */
  replicas: number
  /** max_error_results */
  maxErrors: number
  /** max_total_results */
  maxTotal: number
  /** delay_bound (ms; 0: none): a replica out longer counts as no reply */
  deadlineMs: number
  /** a validator command run with two result directories appended; null: bitwise */
  compare: string[] | null
  /** adaptive replication: trusted workers get unreplicated work now and then */
  adaptive: boolean
}

export type Middleware = 'native' | 'boinc'

export interface Dag {
  name: string
  dir: string
  workers: { min: number, max: number }
  requirements: Expr | null
  rank: Expr
  middleware: Middleware
  /** the run's priority among concurrent runs (fair sharing); absent: 0 */
  priority?: number
  collect: 'sinks' | 'all'
  jobs: JobSpec[]
  byId: Map<string, JobSpec>
  children: Map<string, string[]>
  /** jobs in a topological order */
  order: string[]
}

// ---- the job state table (as in Dask's scheduler): one place says which changes are legal

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

// ---- the records of one run ---------------------------------------------------------

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

/** A placement of jobs on workers (planning's answer). */
export interface Plan {
  worker: Map<string, string>
  /** expected start time (s) of each job in the plan: the order in which a worker will run them */
  start: Map<string, number>
  makespan: number
}
