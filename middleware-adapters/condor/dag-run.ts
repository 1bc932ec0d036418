// One run of a DAG by DAGMan: the options it is started with, what it ends with, and what
// its node lifecycle and its PRE/POST scripts share while it goes (the DAG, its engine,
// its logs, the nodes running now).
import type { DagmanDag } from './dag-file.ts'
import type { NodeJob, SubmitFileCache } from './to-dag-json.ts'
import type { DagmanEngine, DagResult } from './engine.ts'
import type { DagmanOut, JobstateLog } from './dagman-logs.ts'

/** Where vanilla jobs run: bgrid workers (grid-pool.ts). */
export interface JobRunner {
  run: (job: NodeJob, signal: AbortSignal) => Promise<{ code: number, why?: string }>
  /** whether this file was written from what a worker sent, in this DAG run */
  broughtBack: (file: string) => boolean
}

export interface DagmanRunOptions {
  dagFile: string
  /** condor_submit_dag's options as given (kept in FILE.dag.condor.sub, passed to SUBDAGs) */
  csdArgs: string[]
  /** -autorescue 0 / --no-rescue: false; undefined: DAGMAN_AUTO_RESCUE (default true) */
  autoRescue?: boolean
  /** -dorescuefrom N */
  doRescueFrom?: number
  maxJobs?: number
  maxPre?: number
  maxPost?: number
  /** -outfile_dir: where dagman.out goes */
  outfileDir?: string
  /** -dumprescue: write the DAG as a full rescue DAG and run nothing */
  dumpRescue?: boolean
  /** -config FILE: DAGMan configuration read before the DAG's own CONFIG files */
  configFile?: string
  /** vanilla jobs: made on the first one (a DAG of scheduler-universe nodes needs no worker) */
  grid: () => Promise<JobRunner>
  /** a second interrupt: kill everything still running at once, FINAL included */
  kill?: AbortSignal
  /** each dagman.out line, as it is written (the terminal) */
  echo?: (line: string) => void
  signal: AbortSignal
  /** nesting (SUBDAG EXTERNAL): the DAG files running above this one */
  depth?: number
  ancestors?: string[]
  env?: Record<string, string | undefined>
}

export interface DagmanRunResult extends DagResult {
  dagFile: string
  rescue: string | null
  /** why the DAG could not be run at all (a parse error, REJECT): said in dagman.out too */
  error?: string
  nodes: number
  done: number
}

/** What the node lifecycle and the scripts of one DAG's run share. */
export interface DagRun {
  o: DagmanRunOptions
  env: Record<string, string | undefined>
  /** nesting: 0 for the DAG submitted, 1 for its SUBDAG EXTERNALs... */
  depth: number
  dag: DagmanDag
  engine: DagmanEngine
  /** dagman.out */
  out: DagmanOut
  /** jobstate.log: each node's job events */
  jobstate: JobstateLog
  /** each node's HTCondor job id (cluster.proc), once submitted */
  clusterOf: Map<number, string>
  /** each submit file read once for the DAG (again when it changes), not once per node */
  submitFiles: SubmitFileCache
  /** a node starts something: what stops it */
  nodeAbort: (i: number) => AbortController
  /** a node's script or job ended: tell the engine (`fn`) and look at the DAG again */
  finish: (i: number, fn: () => void) => void
  /** was this file brought back from a worker in this run? (never run or read as instructions) */
  fromWorker: (file: string) => boolean
  refuseWorkerFile: (what: string, file: string) => string
  /** where vanilla jobs run (made on the first one) */
  grid: () => Promise<JobRunner>
  /** a SUBDAG EXTERNAL: this same run on its DAG file */
  runSubDag: (o: DagmanRunOptions) => Promise<DagmanRunResult>
}
