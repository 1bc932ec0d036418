// What condor_dagman leaves beside a DAG file for people and tools: FILE.dag.dagman.out
// (its log, appended run after run, ending with "EXITING WITH STATUS n"), the
// JOBSTATE_LOG (one line per node event, for workflow tools such as Pegasus), and
// FILE.dag.metrics (JSON).
import { appendFileSync, writeFileSync } from 'node:fs'
import type { DagResult } from './engine.ts'
import { twoDigits } from './quote.ts'
import { printableLines } from '../../protocol/printable.ts'
import { bestEffort } from '../../protocol/best-effort.ts'

const DAG_STATUS_NAMES = ['DAG_STATUS_OK', 'DAG_STATUS_ERROR', 'DAG_STATUS_NODE_FAILED', 'DAG_STATUS_ABORT', 'DAG_STATUS_RM', 'DAG_STATUS_CYCLE', 'DAG_STATUS_HALTED']

const two = twoDigits

/** DAGMan's log time stamp: MM/DD/YY HH:MM:SS */
export function dagmanTime (d: Date): string {
  return `${two(d.getMonth() + 1)}/${two(d.getDate())}/${two(d.getFullYear() % 100)} ${two(d.getHours())}:${two(d.getMinutes())}:${two(d.getSeconds())}`
}

export class DagmanOut {
  readonly file: string
  private readonly echo: ((line: string) => void) | undefined
  constructor (file: string, echo?: (line: string) => void) {
    this.file = file
    this.echo = echo
  }

  private failed = false
  line (msg: string): void {
    // a message of several lines: each with its time stamp
    for (const part of msg.split('\n')) {
      const l = `${dagmanTime(new Date())} ${part}`
      try { appendFileSync(this.file, l + '\n') } catch (err) {
        // said once, on the terminal: the log itself cannot say it
        if (!this.failed) {
          process.stderr.write(printableLines(`bgrid: cannot write ${this.file}: ${(err as Error).message}`) + '\n')
        }
        this.failed = true
      }
      this.echo?.(l)
    }
  }

  /** the summary table DAGMan prints as the DAG goes */
  counts (status: number, total: number, c: { done: number, pre: number, queued: number, post: number, ready: number, unready: number, failed: number, futile: number }): void {
    this.line(`DAG status: ${status} (${DAG_STATUS_NAMES[status] ?? 'DAG_STATUS_ERROR'})`)
    this.line(`Of ${total} nodes total:`)
    this.line(' Done     Pre   Queued    Post   Ready   Un-Ready   Failed   Futile')
    this.line('  ===     ===      ===     ===     ===        ===      ===      ===')
    const p = (n: number): string => String(n).padStart(5)
    this.line(`${p(c.done)}   ${p(c.pre)}    ${p(c.queued)}   ${p(c.post)}   ${p(c.ready)}      ${p(c.unready)}    ${p(c.failed)}    ${p(c.futile)}`)
    this.line('0 job proc(s) currently held')
  }

  exiting (code: number): void {
    this.line(`**** condor_scheduniv_exec.0.0 (condor_DAGMAN) pid ${process.pid} EXITING WITH STATUS ${code}`)
  }
}

/** JOBSTATE_LOG: `time node event condor-id tag - sequence` */
/**
 * JOBSTATE_LOG: `time node EVENT id tag - seq`, the id being the job's cluster.proc (or a
 * value: JOB_SUCCESS/JOB_FAILURE carry the node's return value, scripts `-`); the tag is `-`
 * (bgrid reads no +job_tag_name); seq numbers one attempt of one node.
 */
export class JobstateLog {
  private readonly file: string | null
  private seq = 0
  private readonly seqOf = new Map<string, number>()
  constructor (file: string | null) { this.file = file }

  private write (text: string): void {
    if (this.file === null) return
    try { appendFileSync(this.file, text + '\n') } catch (err) { bestEffort('appendFileSync()', err) }
  }

  internal (event: 'DAGMAN_STARTED' | 'DAGMAN_FINISHED', extra: string): void {
    this.write(`${Math.floor(Date.now() / 1000)} INTERNAL *** ${event} ${extra} ***`)
  }

  /** a line about one attempt (`retry`) of a node: its sequence number is given on its first line */
  event (node: string, retry: number, event: string, id: string): void {
    const key = `${node}\u0000${retry}`
    let seq = this.seqOf.get(key)
    if (seq === undefined) { seq = ++this.seq; this.seqOf.set(key, seq) }
    this.write(`${Math.floor(Date.now() / 1000)} ${node} ${event} ${id} - - ${seq}`)
  }
}

export interface Metrics {
  startTime: number
  endTime: number
  result: DagResult
  rescueNum: number
  dagmanId: string
  parentDagId: string
  jobs: number
  jobsFailed: number
  jobsSucceeded: number
  dagJobs: number
  dagJobsFailed: number
  dagJobsSucceeded: number
}

/** FILE.dag.metrics: DAGMan's fields, in its order */
export function writeMetrics (file: string, m: Metrics): void {
  const body = {
    client: 'condor_dagman',
    version: 'bgrid',
    type: 'metrics',
    start_time: Number((m.startTime / 1000).toFixed(3)),
    end_time: Number((m.endTime / 1000).toFixed(3)),
    duration: Number(((m.endTime - m.startTime) / 1000).toFixed(3)),
    exitcode: m.result.exitCode,
    dagman_id: m.dagmanId,
    parent_dagman_id: m.parentDagId,
    rescue_dag_number: m.rescueNum,
    jobs: m.jobs,
    jobs_failed: m.jobsFailed,
    jobs_succeeded: m.jobsSucceeded,
    dag_jobs: m.dagJobs,
    dag_jobs_failed: m.dagJobsFailed,
    dag_jobs_succeeded: m.dagJobsSucceeded,
    total_jobs: m.jobs + m.dagJobs,
    total_jobs_run: m.jobsFailed + m.jobsSucceeded + m.dagJobsFailed + m.dagJobsSucceeded,
    DagStatus: m.result.status
  }
  try { writeFileSync(file, JSON.stringify(body, null, 4) + '\n') } catch (err) { bestEffort('writeFileSync()', err) }
}
