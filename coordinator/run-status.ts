// What a run says about itself: status.json (every second), run.json and report.html
// (at the end), and the answers `bgrid status RUN --analyze [JOB]` and `bgrid logs` get
// over the run's control socket.
import { writeFile, rename } from 'node:fs/promises'
import path from 'node:path'
import { BgridError, errorMessage } from '../protocol/errors.ts'
import { ControlServer } from '../protocol/control.ts'
import { attrsOf, type Candidate } from './core/select.ts'
import { makespanLowerBound } from './core/plan.ts'
import { analyzeJob, analyzeRun } from './analyze.ts'
import { writeRunReport } from './report/write.ts'
import type { RunJson } from './report/run-json.ts'
import { type JobRec, TERMINAL, type JobState } from './core/model.ts'
import type { RunContext, RunOutcome, RunSummary } from './run-context.ts'
import type { Recruiter } from './recruit.ts'
import type { Collector } from './collect.ts'
import { printable } from '../protocol/printable.ts'
import { bestEffort } from '../protocol/best-effort.ts'

/** A replicated job's validation, for run.json: the quorum, the canonical result, who agreed and who did not. */
function validationOf (j: JobRec, nameOf: (peer: string) => string): Record<string, unknown> {
  const v = j.spec.verify
  const round = j.roundStart === undefined ? j.attempts : j.attempts.slice(j.roundStart)
  const canonical = round.find(a => a.validation === 'valid' && a.key === j.canonicalKey)
  return {
    quorum: j.quorumNow ?? v?.quorum, replicas: round.length,
    outcome: j.state === 'done' ? 'canonical' : j.state === 'failed' ? 'failed' : 'pending',
    ...(canonical !== undefined ? { canonical: canonical.id } : {}),
    valid: round.filter(a => a.validation === 'valid').map(a => nameOf(a.worker)),
    invalid: round.filter(a => a.validation === 'invalid').map(a => nameOf(a.worker)),
    errors: round.filter(a => a.status !== undefined && a.status !== 'ok' && a.void !== true && a.status !== 'cancelled').map(a => nameOf(a.worker))
  }
}

function iso (ms: number | undefined): string | undefined {
  // a time no Date holds is left out rather than break the report
  return ms === undefined || !(Math.abs(ms) <= 8.64e15) ? undefined : new Date(ms).toISOString()
}

export class RunStatus {
  /** bytes of staged inputs planned for the workers (checked against their free disk) */
  inputBytesStaged = 0
  /** bytes the submitter's node sent (staged inputs; job outputs never pass through it) */
  servedBytes = 0
  private readonly servedByBlob = new Map<string, number>()
  private readonly ctx: RunContext
  private readonly recruiter: Recruiter
  private readonly collector: Collector
  private readonly outcome: RunOutcome
  private control?: ControlServer

  constructor (ctx: RunContext, recruiter: Recruiter, collector: Collector, outcome: RunOutcome) {
    this.ctx = ctx
    this.recruiter = recruiter
    this.collector = collector
    this.outcome = outcome
  }

  /** Answer on the run's control socket: status, --analyze, logs, and `bgrid cancel`. */
  async serve (cancel: () => void): Promise<void> {
    this.control = new ControlServer(path.join(this.ctx.runDir, 'control.sock'), {
      status: () => this.report(false),
      enterCoordinator: () => ({ ok: false, message: 'this is a run, not a daemon' }),
      leaveCoordinator: () => {},
      cancel,
      analyze: (job) => this.analyze(job),
      logs: async (job, attempt) => await this.attemptLogs(job, attempt)
    }, this.ctx.log.child('control'))
    await this.control.start()
  }

  async stop (): Promise<void> {
    await this.control?.stop()
  }

  /**
   * A job's change, said (failures and retries with the last lines of their stderr). The
   * journal keeps what a resume needs: outcomes (a job that was only ready or running
   * starts again anyway), and a done job that must be made again; an outcome is
   * announced once it is on disk (what was said done stays done).
   */
  announce (job: JobRec, from: JobState, to: JobState, reason: string): void {
    const { journal, core, emit } = this.ctx
    let say: () => void
    if (to === 'failed' || (to === 'ready' && from === 'running')) {
      // the job's last words and the worker's reason, as escaped lines of their own: a job
      // cannot retitle the terminal, clear it, or write a line that looks like ours
      const tail = job.attempts.at(-1)?.stderr?.tail?.trim().split('\n').slice(-3).map(l => printable(l)).join('\n    ')
      const human = `job ${printable(job.spec.id)}: ${to === 'failed' ? 'FAILED' : 'retrying'}: ` +
        `${printable(reason, { max: 1000 })}${tail !== undefined && tail !== '' ? `\n    ${tail}` : ''}`
      say = () => { emit({ event: 'job', job: job.spec.id, from, to, reason }, human) }
    } else say = () => { emit({ event: 'job', job: job.spec.id, from, to, reason }) }
    if (TERMINAL.has(to) || from === 'done') {
      journal.record(job, core)
      journal.afterFlush(say)
    } else say()
  }

  /** The submitter's node sent part of a blob. */
  served (hash: string, bytes: number): void {
    this.servedBytes += bytes
    this.servedByBlob.set(hash, (this.servedByBlob.get(hash) ?? 0) + bytes)
  }

  analyze (job?: string): unknown {
    const { core, runId } = this.ctx
    const accounts = this.recruiter.nodeAccounts()
    if (job === undefined) return analyzeRun(core, accounts)
    const a = analyzeJob(core, job, accounts, this.recruiter.nodeShapes())
    if (a === undefined) throw new BgridError('NOT_FOUND', `no job ${job} in run ${runId}`)
    return a
  }

  /** A job attempt's stdout and stderr, brought into this run's store: their paths (attempt: 1-based; default the last). */
  async attemptLogs (id: string, attempt?: number): Promise<unknown> {
    const { core, runId, store } = this.ctx
    const job = core.jobs.get(id)
    if (job === undefined) throw new Error(`no job ${id} in run ${runId}`)
    if (job.attempts.length === 0) return { job: id, state: job.state, attempts: 0, waiting: core.whyWaiting(id) }
    const n = attempt ?? job.attempts.length
    const a = job.attempts[n - 1]
    if (a === undefined) throw new Error(`job ${id} has ${job.attempts.length} attempt(s), not ${n}`)
    const out: Record<string, unknown> = { job: id, attempt: n, attempts: job.attempts.length, id: a.id, node: this.recruiter.nameOf(a.worker), status: a.status ?? 'running', startedAt: a.startedAt ?? a.assignedAt }
    for (const which of ['stdout', 'stderr'] as const) {
      const log = a[which]
      if (log === undefined) continue
      try {
        await this.collector.fetchToStore(log.hash, log.size)
        out[which] = store.blobPath(log.hash)
      } catch (err) {
        out[`${which}Tail`] = log.tail
        out[`${which}Error`] = errorMessage(err)
      }
    }
    return out
  }

  /** the status.json write under way: one at a time (they share a temp file, and the last one written wins) */
  private writing?: Promise<void>

  /** status.json for `bgrid status` when the coordinator is gone: at most one write at a time, the final one last. */
  async writeStatus (final = false, report?: Record<string, unknown>): Promise<void> {
    if (this.writing !== undefined) {
      if (!final) return // the one under way says nearly as much; the next tick writes again
      await this.writing
    }
    this.writing = (async () => {
      const tmp = path.join(this.ctx.runDir, `status.json.${process.pid}.tmp`)
      await writeFile(tmp, JSON.stringify(report ?? this.report(final)))
      await rename(tmp, path.join(this.ctx.runDir, 'status.json'))
    })().finally(() => { this.writing = undefined })
    await this.writing
  }

  /** The end: run.json, report.html and trace.tsv in --out, the final status.json. */
  /** The run's summary, as `submit` prints it and the 'finished' event says it. */
  summary (ok: boolean, cancelled: boolean, counts: Record<JobState, number>): RunSummary {
    const { core, runId, outDir } = this.ctx
    const s = core.stats
    return {
      runId, outDir, ok, cancelled, counts, makespanMs: Date.now() - this.ctx.startedAt(),
      workers: core.workers.size, bytesFetched: s.bytesFetched, prefetchedBytes: s.prefetchedBytes, cacheHits: s.cacheHits,
      inputWaitMs: s.inputWaitMs, inputBytesStaged: this.inputBytesStaged, servedBytes: this.servedBytes
    }
  }

  async writeFinal (): Promise<void> {
    const { outDir, log } = this.ctx
    const report = this.report(true)
    await writeFile(path.join(outDir, 'run.json'), JSON.stringify(report, null, 2))
    // report.html and trace.tsv beside it; a report that cannot be drawn costs the run nothing
    await writeRunReport(outDir, report as unknown as RunJson).catch(err => { log.warn('run report not written', { err: errorMessage(err) }) })
    await this.writeStatus(true, report).catch(err => { bestEffort('this.writeStatus()', err) })
  }

  report (final: boolean): Record<string, unknown> {
    const { core, dag, opts } = this.ctx
    const { collectErrors } = this.collector
    const { failure } = this.outcome
    const nameOf = (peer: string): string => this.recruiter.nameOf(peer)
    const jobs: Record<string, unknown> = {}
    const now = Date.now()
    for (const j of core.jobs.values()) {
      const last = j.attempts.at(-1)
      const waiting = final ? undefined : core.whyWaiting(j.spec.id, now)
      jobs[j.spec.id] = {
        state: j.state,
        ...(waiting !== undefined ? { waiting } : {}),
        ...(j.spec.verify !== null ? { validation: validationOf(j, nameOf) } : {}),
        worker: last?.worker,
        node: last !== undefined ? nameOf(last.worker) : undefined,
        attempts: j.attempts.map(a => ({
          id: a.id, worker: a.worker, node: nameOf(a.worker), status: a.status ?? 'running', exitCode: a.exitCode, signal: a.signal, error: a.error,
          assignedAt: a.assignedAt, startedAt: a.startedAt, endedAt: a.endedAt, reportedAt: a.reportedAt,
          assignedAtIso: iso(a.assignedAt), startedAtIso: iso(a.startedAt), endedAtIso: iso(a.endedAt),
          inputWaitMs: a.inputWaitMs, bytesFetched: a.bytesFetched,
          ...(a.cpuMs !== undefined ? { cpuMs: a.cpuMs } : {}),
          // BOINC-style replicas: each one's outputs and what validation made of it
          ...(a.outputs !== undefined ? { outputs: Object.fromEntries(a.outputs.map(o => [o.name, { sha256: o.hash, size: o.size }])) } : {}),
          ...(a.validation !== undefined ? { validation: a.validation } : {}),
          ...(a.credit !== undefined ? { credit: a.credit } : {}),
          ...(a.timedOut === true ? { timedOut: true } : {}),
          ...(a.void === true ? { void: true } : {}),
          ...(a.stdout !== undefined ? { stdout: { sha256: a.stdout.hash, size: a.stdout.size } } : {}),
          ...(a.stderr !== undefined ? { stderr: { sha256: a.stderr.hash, size: a.stderr.size } } : {})
        })),
        startedAt: last?.startedAt,
        endedAt: last?.endedAt,
        exitCode: last?.exitCode,
        reason: j.reason,
        outputs: j.outputs === null ? null : Object.fromEntries([...j.outputs].map(([n, o]) => [n, { sha256: o.hash, size: o.size }])),
        stdoutTail: last?.stdout?.tail,
        stderrTail: last?.stderr?.tail,
        ...(collectErrors.has(j.spec.id) ? { collectError: collectErrors.get(j.spec.id) } : {})
      }
    }
    const s = core.stats
    const startedAt = this.ctx.startedAt()
    const seenEver = this.recruiter.seenEver
    return {
      run: this.ctx.runId,
      dag: dag.name,
      state: final ? (this.outcome.final ?? 'failed') : 'running',
      ...(failure !== undefined ? { error: { code: failure instanceof BgridError ? failure.code : 'INTERNAL', message: errorMessage(failure) } } : {}),
      pid: process.pid,
      outDir: this.ctx.outDir,
      startedAt,
      updatedAt: now,
      startedAtIso: iso(startedAt),
      updatedAtIso: iso(now),
      waitSec: opts.waitSec,
      workersWanted: { min: dag.workers.min, max: dag.workers.max },
      counts: core.counts(),
      workers: [...core.workers.values()].map(w => ({ peer: w.id, alive: w.alive, slots: w.slots, jobsDone: w.done, name: nameOf(w.id), attrs: w.attrs })),
      // every node seen, and why it is or is not a worker of this run (`bgrid status RUN --analyze`)
      nodes: this.recruiter.browsing ? this.recruiter.nodeAccounts().map(a => ({ ...a, attrs: seenEver.has(a.peer) ? attrsOf((seenEver.get(a.peer) as Candidate).ad) : undefined })) : [],
      data: { bytesFetched: s.bytesFetched, prefetchedBytes: s.prefetchedBytes, cacheHits: s.cacheHits, inputWaitMs: s.inputWaitMs, prefetchHints: s.prefetchHints, inputBytesStaged: this.inputBytesStaged, servedBytes: this.servedBytes, servedByBlob: Object.fromEntries(this.servedByBlob), prefetch: opts.prefetch },
      lowerBoundSec: makespanLowerBound(dag, [...core.workers.values()].reduce((a, w) => a + w.slots, 0)),
      waiting: core.waitingReasons(),
      jobs
    }
  }
}
