// The run core's contracts: what the run core offers and what it is handed. A middleware
// adapter drives a run through RunPort and is started with an AdapterContext; a
// middleware's execution semantics (how many attempts of a job are out, when a job is
// done) enter through a ReplicationPolicy; the host that creates the run core hands it
// CoreOptions and listens through CoreHooks. The parts of the run core see each other
// only through the views declared here (the job table, the holder book, prefetch, the
// job-fit test), which the facade hands them. Imports nothing of ours but protocol/ and
// the run core's model.
import type { BgridNode } from '../../protocol/node.ts'
import type { Assignment, AttemptResult, CorruptReport, PeerInfo, PrefetchHint } from '../../protocol/jobs.ts'
import type { Logger } from '../../protocol/log.ts'
import type { AttemptRec, Dag, InputSpec, JobRec, JobSpec, JobState, OutputRec, WorkerInfo } from './model.ts'

// ---- middleware adapters --------------------------------------------------------------
// A middleware adapter runs a DAG's jobs on claimed workers. BonjourGrid wrapped
// XtremWeb, Condor and BOINC this way: the coordinator starts the middleware's
// server side, the workers its client side pointed at the coordinator.

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

/**
 * What a run offers its middleware adapter: the components a factory picks from (each
 * declares the few it uses, as js-libp2p's services do). Made before the run core exists:
 * `core` is read once the adapter starts.
 */
export interface AdapterComponents {
  node: BgridNode
  core: RunPort
  runId: string
  log: Logger
  dag: Dag
  /** the submitter's data directory: what a middleware keeps across runs lives there */
  dataDir: string
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
  /** a claimed worker's measured GFLOPS per core (undefined: not claimed, or it did not measure itself) */
  gflopsOf: (peer: string) => number | undefined
  nameOf: (peer: string) => string
  /** an ok attempt's outputs in a directory of their own (for a job's compare command) */
  resultDir: (a: AttemptRec) => Promise<string>
  /** a compared attempt's agreement key, to the run core (which judges its job again) */
  classified: (attempt: string, key: string) => void
  /** an event of the run (and its line for people) */
  emit: (ev: Record<string, unknown>, human?: string) => void
}

export interface MiddlewareAdapter {
  readonly name: string
  /**
   * Before the run core is made: the policy by which it replicates and validates this
   * middleware's jobs (BOINC-style). None: one live attempt a job, the first good result wins.
   */
  replication?: () => Promise<ReplicationPolicy | undefined>
  /** Start the server side for this run. */
  start: () => Promise<void>
  /** Jobs became ready or workers changed: wake workers waiting for work. */
  notify: () => void
  /** Stop serving (after workers were told the run is over). */
  stop: () => Promise<void>
  /** The run is over: keep what it learnt for the next runs (BOINC-style: the records of its workers). */
  save?: () => Promise<void>
}

/** A middleware adapter, made from the run's components (`xtremweb(init)` returns one). */
export type MiddlewareFactory = (components: AdapterComponents) => MiddlewareAdapter

/** How a run picks its middleware from its DAG (the CLI hands the registry's lookup to the coordinator). */
export type AdapterChoice = (dag: Dag) => MiddlewareFactory

// ---- replication --------------------------------------------------------------------
// How many attempts of a job may be out at once, and when the job is done: the hook
// through which a middleware's execution semantics enter the run core.
// - native (XtremWeb-style): one live attempt; the first successful result wins (the
//   run core's own path, with retries on failure);
// - replicated (BOINC-style middleware): several replicas on distinct hosts; a result
//   counts once a quorum of them agree.

/** One replica as a decision sees it (BOINC's transitioner and validator judge them). */
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

// ---- what the host hands the run core -------------------------------------------------

export interface CoreHooks {
  onTransition?: (job: JobRec, from: JobState, to: JobState, reason: string) => void
  onAttempt?: (job: JobRec, attempt: AttemptRec) => void
  onIllegal?: (job: string, from: JobState, to: JobState, reason: string) => void
}

/**
 * The run core's clock, ms since the epoch: Date.now for a real run; a simulation
 * (bench/sim.ts) hands a virtual one, so that the same code runs in virtual time.
 */
export type Clock = () => number

export interface CoreOptions {
  coordinatorId: string
  prefetch: boolean
  /** unique per coordinator session: attempt ids never repeat across a resume */
  nonce: string
  hooks?: CoreHooks
  /** how replicated (BOINC-style) jobs are replicated and validated; native jobs need none */
  replication?: ReplicationPolicy
  /** what the run core reads the time from (default Date.now) */
  now?: Clock
}

// ---- what the parts of the run core ask of each other ----------------------------------
// Each part declares the few members of another it uses; the facade hands it the part.

/** The job table as prefetch reads it: the jobs, and where their inputs are. */
export interface JobTableView {
  readonly jobs: ReadonlyMap<string, JobRec>
  /** file inputs: absolute path -> content address */
  readonly inputs: ReadonlyMap<string, OutputRec>
  /** the content address of one input of a job, if known yet */
  inputBlob: (spec: JobSpec, i: InputSpec) => OutputRec | undefined
}

/** The job table as dispatch works it: the ready jobs, and the transitions results make. */
export interface JobTablePort extends Pick<JobTableView, 'jobs' | 'inputBlob'> {
  readonly ready: ReadonlySet<string>
  /** when each ready job became ready */
  readonly readyAt: ReadonlyMap<string, number>
  /** running replicated jobs that want more replicas handed out */
  readonly replicaQueue: Set<string>
  /** the one way a live run changes a job's state (false: an undeclared change, refused) */
  move: (job: JobRec, to: JobState, reason: string) => boolean
  /** the job has its result: done, and its children may start */
  succeed: (job: JobRec, reason: string) => void
  /** the job runs again: ready when its inputs can be had, else pending */
  requeue: (job: JobRec, reason: string) => void
  /** the job failed for good: its descendants are skipped */
  fail: (job: JobRec, why: string) => void
}

/** Who holds which blob: each part takes the members it uses (`Pick<HolderBook, ...>`). */
export interface HolderBook {
  addHolder: (hash: string, size: number, holder: string) => void
  holds: (hash: string, holder: string) => boolean
  /** holders that can serve a blob now, the submitter last */
  liveHolders: (hash: string) => string[]
  /** can some live node serve this blob? */
  hasLiveHolder: (hash: string) => boolean
}

/** What dispatch asks of prefetch. */
export interface PrefetchPort {
  /** a staged input on its way to another live worker: this one should wait for that copy */
  stagedElsewhere: (hash: string, workerId: string, now: number) => boolean
}

/** Can this worker run this job? (both sides agree: the job's needs, the worker's START) */
export type JobFit = (spec: JobSpec, worker: WorkerInfo) => boolean
