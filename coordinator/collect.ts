// Output collection: the final outputs (and the last attempt's logs) brought from the
// workers that hold them into --out, through the run's own store (every blob is checked
// against its hash on the way). Job outputs never pass through the submitter otherwise.
import { mkdir, writeFile, rm, link, copyFile } from 'node:fs/promises'
import path from 'node:path'
import { Queue } from '@libp2p/utils'
import { fetchBlobVerified, failedHolders } from '../cache/blob-protocol.ts'
import { errorMessage } from '../protocol/errors.ts'
import { TERMINAL, type AttemptRec, type JobRec, type JobState } from './core/model.ts'
import type { RunContext } from './run-context.ts'
import { bestEffort } from '../protocol/best-effort.ts'

/** collection rounds at most: after each failed one, the jobs whose outputs could not be had run again */
const MAX_ROUNDS = 3

export class Collector {
  /** jobs whose outputs could not be brought back (every holder tried) */
  readonly collectErrors = new Map<string, string>()
  /** the final outputs are in (or could not be, for good) */
  collected = false
  private readonly ctx: RunContext
  private readonly collecting = new Map<string, Promise<void>>()
  /** at most 4 output collections at once (a holder serves a bounded number of streams) */
  private readonly collectQueue = new Queue<void>({ concurrency: 4 })

  constructor (ctx: RunContext) {
    this.ctx = ctx
  }
  /**
   * A job changed state: an open run says each job's end once its outputs are here;
   * --stream-outputs brings a done job's outputs as soon as it ends.
   */
  jobChanged (job: JobRec, to: JobState): void {
    const { opts, log, core } = this.ctx
    const open = opts.open
    if (open !== undefined && TERMINAL.has(to)) {
      if (to === 'done') this.collect(job).catch(err => { log.warn('outputs not collected', { job: job.spec.id, err: errorMessage(err) }) }).finally(() => { open.onJobEnd(job) })
      else open.onJobEnd(job)
    } else if (to === 'done' && opts.streamOutputs && core.isCollected(job.spec.id)) this.collect(job).catch(err => { log.warn('output not collected yet', { job: job.spec.id, err: errorMessage(err) }) })
  }


  /** A blob into the run's store, from a live holder (a copy here is used only if it still holds its bytes). */
  async fetchToStore (hash: string, size: number): Promise<void> {
    const { store, core, node } = this.ctx
    // a copy here already is used only if it still holds its bytes (else it was quarantined: fetch again)
    if (store.has(hash) && await store.intact(hash)) return
    const holders = core.liveHolders(hash).filter(h => h !== node.peerId.toString())
    await fetchBlobVerified(node, store, hash, size, holders)
  }

  /** A stored blob at `dest`: a hard link where it can be, else a copy. */
  async placeFile (hash: string, dest: string): Promise<void> {
    await mkdir(path.dirname(dest), { recursive: true })
    await rm(dest, { force: true })
    try { await link(this.ctx.store.blobPath(hash), dest) } catch { await copyFile(this.ctx.store.blobPath(hash), dest) }
  }

  /** A done job's outputs into --out (once at a time per job). */
  collect (job: JobRec): Promise<void> {
    const id = job.spec.id
    let p = this.collecting.get(id)
    if (p !== undefined) return p
    p = this.collectQueue.add(async () => { await this.collectNow(job) }).finally(() => { this.collecting.delete(id) })
    this.collecting.set(id, p)
    return p
  }

  private async collectNow (job: JobRec): Promise<void> {
    const { core, node, outDir, journal } = this.ctx
    for (const [name, o] of job.outputs ?? []) {
      await this.fetchToStore(o.hash, o.size)
      core.addHolder(o.hash, o.size, node.peerId.toString())
      await this.placeFile(o.hash, path.join(outDir, job.spec.id, name))
    }
    job.collected = true
    journal.record(job, core)
  }

  /**
   * Once the jobs are over, bring the final outputs back. An output no holder can give
   * any more (gone, or its bytes bad) sends its holders off the list and its job back to
   * run: false, then (run the jobs, and collect again). True once every output is in, or
   * after the last round (the jobs whose outputs could not be had then say why).
   */
  async round (round: number): Promise<boolean> {
    const { core, node, store } = this.ctx
    const toCollect = [...core.jobs.values()].filter(j => j.state === 'done' && core.isCollected(j.spec.id) && !j.collected)
    const failed: Array<[JobRec, unknown]> = []
    // one job's outputs out of reach does not cost the others theirs
    await Promise.all(toCollect.map(async j => { await this.collect(j).catch(err => { failed.push([j, err]) }) }))
    if (failed.length === 0 || round >= MAX_ROUNDS) {
      for (const [j, err] of failed) this.collectErrors.set(j.spec.id, errorMessage(err))
      this.collected = true
      return true
    }
    for (const [j, err] of failed) {
      const named = failedHolders(err)
      for (const o of j.outputs?.values() ?? []) {
        if (store.has(o.hash)) continue
        const holders = named.length > 0 ? named : [...(core.blobs.get(o.hash)?.holders ?? [])].filter(h => h !== node.peerId.toString())
        core.dropHolders(o.hash, holders, `could not be collected: ${errorMessage(err)}`, { verify: true })
      }
      this.ctx.emit({ event: 'collect-retry', job: j.spec.id, reason: errorMessage(err) }, `outputs of ${j.spec.id} could not be collected (${errorMessage(err)}): making them again`)
    }
    return false
  }

  /** Each job's last attempt's stdout and stderr into --out/logs (their tails, when the logs cannot be had). */
  async collectLogs (): Promise<void> {
    const { core, outDir, log } = this.ctx
    for (const job of core.jobs.values()) {
      const last = [...job.attempts].reverse().find(a => a.status !== undefined && a.status !== 'lost')
      for (const which of ['stdout', 'stderr'] as const) {
        const l = last?.[which]
        if (l === undefined) continue
        try {
          await this.fetchToStore(l.hash, l.size)
          await this.placeFile(l.hash, path.join(outDir, 'logs', `${job.spec.id}.${which}`))
        } catch (err) {
          await writeFile(path.join(outDir, 'logs', `${job.spec.id}.${which}.tail`), l.tail).catch(err => { bestEffort('writeFile()', err) })
          log.debug('log not fetched', { job: job.spec.id, err: errorMessage(err) })
        }
      }
    }
  }
}
/** A replica's outputs in a directory of their own under the run's, read-only (for the job's compare command). */
export async function resultDir (outputs: Pick<Collector, 'fetchToStore' | 'placeFile'>, runDir: string, a: AttemptRec): Promise<string> {
  const dir = path.join(runDir, 'results', a.id)
  for (const o of a.outputs ?? []) {
    await outputs.fetchToStore(o.hash, o.size)
    await outputs.placeFile(o.hash, path.join(dir, o.name))
  }
  return dir
}
