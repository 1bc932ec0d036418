// What the parts of a run share (recruit.ts, collect.ts, run-status.ts): the options it
// was submitted with, who and where it is, its core and node, and how to say and wake.
// Made once the run is set up; the Coordinator keeps the story, the parts do the steps.
import type { Logger } from '../protocol/log.ts'
import type { BgridNode } from '../protocol/node.ts'
import type { BlobStore } from '../cache/store.ts'
import type { Dag, JobRec } from './core/model.ts'
import type { RunCore } from './core/run-core.ts'
import type { Journal } from './journal.ts'
import type { Mode } from './progress.ts'
import type { AdapterChoice } from './core/contracts.ts'

export interface SubmitOptions {
  dagFile?: string
  /** the DAG as JSON already (its inputs relative to `file`'s directory), instead of dagFile */
  dagJson?: { raw: unknown, file: string }
  /**
   * An open run (`bgrid submit FILE.dag`): jobs are added while it goes (Coordinator.addJobs),
   * it ends once closeJobs() is called and they are over; each job's end is said here
   * (after its outputs are collected, for a done one).
   */
  open?: { onJobEnd: (job: JobRec) => void }
  resume?: string
  runId?: string
  dataDir: string
  outDir?: string
  waitSec: number
  gridKeyFile?: string
  mdnsInterface?: string
  leaseSec: number
  /** this run's priority among concurrent runs (fair sharing; default: the DAG's, else 0) */
  priority?: number
  /** no job ended and no command ran for this long: the run says why and gives up stuck attempts (0: never) */
  stallSec?: number
  prefetch: boolean
  streamOutputs: boolean
  progress: Mode
  log: Logger
  /** the middleware adapter a DAG runs with (the CLI hands the registry's lookup) */
  adapter: AdapterChoice
}

export interface RunSummary {
  runId: string
  outDir: string
  ok: boolean
  /** stopped by `bgrid cancel` or a signal (exit code 5) */
  cancelled: boolean
  counts: Record<string, number>
  makespanMs: number
  workers: number
  bytesFetched: number
  prefetchedBytes: number
  cacheHits: number
  inputWaitMs: number
  inputBytesStaged: number
  servedBytes: number
}

/** How the run ended (or not yet): read by the reports. */
export interface RunOutcome {
  cancelled: boolean
  /** what ended the run early, if anything (NO_WORKERS...): in run.json too */
  failure: unknown
  /** decided once, when the run is over (finish): what run.json and the exit code say */
  final?: 'succeeded' | 'failed' | 'cancelled'
}

export interface RunContext {
  readonly opts: SubmitOptions
  readonly log: Logger
  readonly runId: string
  readonly runDir: string
  readonly outDir: string
  readonly dag: Dag
  readonly core: RunCore
  readonly node: BgridNode
  readonly journal: Journal
  /** the run's own blob store (collected outputs, logs, replicas compared) */
  readonly store: BlobStore
  /** a progress event (NDJSON with --json; `human`, when given, is the line people see) */
  emit: (ev: Record<string, unknown>, human?: string) => void
  /** something changed: the main loop looks again */
  wake: () => void
  /** jobs or workers changed: workers waiting for work look again */
  notify: () => void
  /** the run is closing: no new claims */
  isClosing: () => boolean
  /** when the run started looking for workers */
  startedAt: () => number
}
