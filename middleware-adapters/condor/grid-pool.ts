// Where a DAGMan file's vanilla jobs run: bgrid workers, through one coordinator run kept
// open for the whole DAG (Coordinator with `open`). DAGMan submits a node's job once its
// PRE script is done and its parents' outputs are back in the submit directory; here the
// job is added to the run then, its inputs hashed from disk as they are now. Its outputs
// (output, error, transfer_output_files) come back to where the submit file says, as
// HTCondor brings them back, whatever the job's exit value (a job with files to bring
// back exits 0 to bgrid and leaves its value in a file; one with none is read from its
// attempt): DAGMan, not bgrid, decides what the value means. Files written from what a
// worker sent are remembered: run-dagman.ts never runs them or reads them as instructions.
import { chmod, copyFile, mkdir, open, rm } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { Coordinator } from '../../coordinator/coordinator.ts'
import type { JobRec } from '../../coordinator/core/model.ts'
import type { SubmitOptions } from '../../coordinator/run-context.ts'
import { errorMessage } from '../../protocol/errors.ts'
import { shq, type NodeJob } from './to-dag-json.ts'
import { hashFile } from '../../cache/hasher.ts'
import type { JobRunner } from './dag-run.ts'
import { printable } from '../../protocol/printable.ts'

/** the file the wrapper leaves the job's exit value in */
const EXIT_FILE = '.bgrid-dagman-exit'


/**
 * releaseAfterSec: a grid run with no job for this long ends, and its workers go back to
 * being offered (a DAG in a long local phase holds no machine); the next vanilla job
 * claims again
 */
type PoolOptions = Omit<SubmitOptions, 'dagFile' | 'dagJson' | 'open' | 'resume'> & { name: string, releaseAfterSec?: number }

/** how long a grid run with nothing to do keeps its workers, by default */
export const RELEASE_AFTER_SEC = 30

export class GridPool implements JobRunner {
  private readonly opts: PoolOptions
  private coordinator?: Coordinator
  private ended?: Promise<unknown>
  private broken: string | null = null
  private seq = 0
  private readonly waiting = new Map<string, (job: JobRec | null) => void>()
  /** jobs whose node no longer waits for them (removed) */
  private readonly abandoned = new Set<string>()
  /** every file written here from what a worker sent (run-dagman.ts never runs or reads them as instructions) */
  private readonly written = new Set<string>()
  private idleTimer?: NodeJS.Timeout
  /** the current grid run ending (released while the DAG goes on) */
  private closing?: Promise<void>

  broughtBack (file: string): boolean { return this.written.has(file) }

  constructor (opts: PoolOptions) { this.opts = opts }

  async run (job: NodeJob, signal: AbortSignal): Promise<{ code: number, why?: string }> {
    clearTimeout(this.idleTimer)
    if (this.closing !== undefined) await this.closing
    try { return await this.runNow(job, signal) } finally { this.releaseWhenIdle() }
  }

  /** No job for releaseAfterSec: the grid run ends and its workers are offered again. */
  private releaseWhenIdle (): void {
    clearTimeout(this.idleTimer)
    if (this.waiting.size > 0 || this.coordinator === undefined) return
    this.idleTimer = setTimeout(() => {
      if (this.waiting.size > 0 || this.coordinator === undefined || this.closing !== undefined) return
      this.closing = this.closeCurrent().finally(() => { this.closing = undefined })
    }, (this.opts.releaseAfterSec ?? RELEASE_AFTER_SEC) * 1000)
    this.idleTimer.unref()
  }

  private async runNow (job: NodeJob, signal: AbortSignal): Promise<{ code: number, why?: string }> {
    // the current grid run failed: its jobs fail at once (a later one, once released, tries again)
    if (this.broken !== null && this.coordinator !== undefined) return { code: 1, why: this.broken }
    const id = `${job.id.slice(0, 100)}-${++this.seq}`
    const inner = typeof job.record.cmd === 'string' ? job.record.cmd : (job.record.cmd as string[]).map(shq).join(' ')
    // a job with files to bring back exits 0 to bgrid, its exit value left in a file: its
    // output and error come back whatever the value (DAGMan decides what it means); a job
    // with none is run as it is and its value read from its attempt (no file to fetch)
    const wrapped = job.outputs.length > 0
    const raw = wrapped
      ? { ...job.record, id, cmd: `( ${inner} ); echo $? > ${EXIT_FILE}`, outputs: [...((job.record.outputs as string[] | undefined) ?? []), EXIT_FILE] }
      : { ...job.record, id }
    const ended = new Promise<JobRec | null>(resolve => { this.waiting.set(id, resolve) })
    let c: Coordinator
    try {
      if (this.coordinator === undefined) c = this.start(raw)
      else { c = this.coordinator; await this.add(raw) }
    } catch (err) {
      this.waiting.delete(id)
      return { code: 1, why: `Job submit failed: ${errorMessage(err)}` }
    }
    // the node is removed (ABORT-DAG-ON, interrupt): DAGMan condor_rm's the job; here the
    // run is cancelled when the DAG closes it, and the workers kill what still runs then
    const onAbort = (): void => { this.abandoned.add(id); this.waiting.get(id)?.(null) }
    signal.addEventListener('abort', onAbort, { once: true })
    const rec = await ended
    signal.removeEventListener('abort', onAbort)
    this.waiting.delete(id)
    if (rec === null) return { code: this.broken !== null ? 1 : -9, why: this.broken ?? 'removed' }
    if (!wrapped) {
      if (rec.state === 'done') return { code: 0 }
      const last = rec.attempts.at(-1)
      if (last?.status === 'failed' && last.exitCode !== null && last.exitCode !== undefined) return { code: last.exitCode }
      if (last?.status === 'failed' && typeof last.signal === 'string') return { code: -(os.constants.signals[last.signal as NodeJS.Signals] ?? 9) }
    }
    // what a worker said, fit for a dagman.out line: one line, no control character, bounded
    if (rec.state !== 'done') return { code: 1, why: printable(`${rec.state}: ${rec.reason ?? ''}`.trim()) }
    // outputs to where HTCondor would have put them (copies: the run's store keeps its own)
    const from = path.join(c.outDir, id)
    try {
      // bytes are checked against the hash the run recorded for them, at their last stop too
      const intact = async (file: string, name: string): Promise<boolean> => {
        const want = rec.outputs?.get(name)
        const got = await hashFile(file)
        return want !== undefined && got.hash === want.hash && got.size === want.size
      }
      for (const o of job.outputs) {
        await mkdir(path.dirname(o.abs), { recursive: true })
        // a new file, as one the user made: not the store's read-only blob mode, not through a link left there
        await rm(o.abs, { force: true })
        this.written.add(o.abs)
        await copyFile(path.join(from, o.name), o.abs)
        await chmod(o.abs, 0o666 & ~process.umask())
        if (!await intact(o.abs, o.name)) {
          await rm(o.abs, { force: true })
          return { code: 1, why: `output ${o.name}: its bytes do not match the hash the worker's result gave (not kept)` }
        }
      }
      if (!await intact(path.join(from, EXIT_FILE), EXIT_FILE)) return { code: 1, why: 'the job\'s exit value: its bytes do not match their hash' }
      // a few bytes from a worker: read as little, and only a whole number counts
      const fh = await open(path.join(from, EXIT_FILE), 'r')
      const buf = Buffer.alloc(16)
      const { bytesRead } = await fh.read(buf, 0, 16, 0).finally(() => { void fh.close() })
      const text = buf.subarray(0, bytesRead).toString('utf8').trim()
      const code = /^-?\d{1,6}$/.test(text) ? Number(text) : NaN
      await rm(from, { recursive: true, force: true })
      return Number.isInteger(code) ? { code } : { code: 1, why: 'the job\'s exit value did not come back' }
    } catch (err) {
      return { code: 1, why: `outputs not brought back: ${errorMessage(err)}` }
    }
  }

  private batch: { jobs: Array<Record<string, unknown>>, done: Promise<void> } | null = null

  /** Jobs submitted in the same turn join the run together (one check, one hashing pass). */
  private async add (raw: Record<string, unknown>): Promise<void> {
    if (this.batch === null) {
      const jobs: Array<Record<string, unknown>> = []
      const c = this.coordinator as Coordinator
      const done = (async () => {
        await c.started
        await new Promise(resolve => setImmediate(resolve))
        this.batch = null
        await c.addJobs(jobs)
      })()
      this.batch = { jobs, done }
    }
    this.batch.jobs.push(raw)
    await this.batch.done
  }

  private start (first: Record<string, unknown>): Coordinator {
    const { name, releaseAfterSec: _, ...o } = this.opts
    // a new grid run tries again whatever ended the last one
    this.broken = null
    const c = new Coordinator({
      ...o,
      dagJson: { raw: { name, collect: 'all', defaults: { retries: 0 }, jobs: [first] }, file: '/dagman-jobs.json' },
      open: { onJobEnd: (job) => { this.abandoned.delete(job.spec.id); this.waiting.get(job.spec.id)?.(job) } }
    })
    this.coordinator = c
    // jobs still waiting when the run ends will not get an answer from it: they fail, saying why
    this.ended = c.run().then(s => {
      if (this.waiting.size > 0) this.fail(s.cancelled ? 'the grid run was cancelled' : 'the grid run ended before its jobs')
    }, err => { this.fail(errorMessage(err)) })
    return c
  }

  private fail (why: string): void {
    this.broken = why
    for (const w of [...this.waiting.values()]) w(null)
  }

  cancel (why: string): void { this.coordinator?.cancel(why) }

  /** No more jobs: the run ends once its jobs are over, and its workers go idle again. */
  async close (): Promise<void> {
    clearTimeout(this.idleTimer)
    if (this.closing !== undefined) await this.closing
    await this.closeCurrent()
  }

  private async closeCurrent (): Promise<void> {
    const c = this.coordinator
    if (c === undefined) return
    if (await c.started.then(() => true, () => false)) {
      // jobs removed while they ran are not waited for: cancelling the run ends them on their workers
      if (this.abandoned.size > 0) c.cancel(`${this.abandoned.size} removed job(s) still running are stopped`)
      c.closeJobs()
    }
    await this.ended
    this.abandoned.clear()
    if (this.coordinator === c) { this.coordinator = undefined; this.ended = undefined }
  }
}
