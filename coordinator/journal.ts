// The run's journal in LevelDB: what a crashed coordinator needs to resume without
// re-running completed jobs. Job records are written as they change, in small batches.
import { Level } from 'level'
import path from 'node:path'
import { existsSync } from 'node:fs'
import type { JobRec, AttemptRec, JobState } from './core/model.ts'
import type { RunCore } from './core/run-core.ts'
import { isLocked, lockHolder, describeHolder } from '../protocol/db.ts'
import { BgridError } from '../protocol/errors.ts'
import { bestEffort } from '../protocol/best-effort.ts'

export interface RunMeta {
  runId: string
  dagFile: string
  dag: unknown
  outDir: string
  createdAt: number
  options: { prefetch: boolean, leaseSec: number, streamOutputs: boolean }
  state: 'running' | 'finished' | 'cancelled' | 'failed'
  finishedAt?: number
  pid?: number
}

export interface JobEntry {
  state: JobState
  failures: number
  lost: number
  reason?: string
  collected: boolean
  outputs: Array<{ name: string, hash: string, size: number, holders: string[] }> | null
  attempts: AttemptRec[]
}

export class Journal {
  private readonly dir: string
  private readonly db: Level<string, any>
  private pending = new Map<string, unknown>()
  /** run once what is pending now is on disk */
  private waiting: Array<() => void> = []
  private timer?: NodeJS.Timeout
  private flushing: Promise<void> = Promise.resolve()

  constructor (dir: string) {
    this.dir = dir
    this.db = new Level<string, any>(dir, { valueEncoding: 'json' })
  }

  async open (): Promise<void> {
    try { await this.db.open() } catch (err) {
      // a second `submit --resume` of a run still going
      if (isLocked(err)) throw new BgridError('IN_USE', `run ${path.basename(path.dirname(this.dir))} is in use by ${describeHolder(lockHolder(this.dir))}`)
      throw err
    }
  }

  async meta (): Promise<RunMeta | undefined> { return await this.db.get('meta') }
  async setMeta (m: RunMeta): Promise<void> { await this.db.put('meta', m) }

  entryOf (job: JobRec, core: RunCore): JobEntry {
    return {
      state: job.state,
      failures: job.failures,
      lost: job.lost,
      reason: job.reason,
      collected: job.collected,
      outputs: job.outputs === null
        ? null
        : [...job.outputs].map(([name, o]) => ({ name, hash: o.hash, size: o.size, holders: [...(core.blobs.get(o.hash)?.holders ?? [])] })),
      attempts: job.attempts.slice(-20)
    }
  }

  record (job: JobRec, core: RunCore): void {
    this.pending.set(`job:${job.spec.id}`, this.entryOf(job, core))
    // batch what changes within a few ms into one write
    this.timer ??= setTimeout(() => { this.timer = undefined; this.flush().catch(err => { bestEffort('this.flush()', err) }) }, 5)
  }

  /** Call `fn` once every record made so far is on disk (an outcome is announced only once it would survive a crash). */
  afterFlush (fn: () => void): void {
    this.waiting.push(fn)
    this.timer ??= setTimeout(() => { this.timer = undefined; this.flush().catch(err => { bestEffort('this.flush()', err) }) }, 5)
  }

  async flush (): Promise<void> {
    const batch = [...this.pending].map(([key, value]) => ({ type: 'put' as const, key, value }))
    this.pending.clear()
    const waiting = this.waiting
    this.waiting = []
    if (batch.length > 0) this.flushing = this.flushing.then(async () => { await this.db.batch(batch) })
    await this.flushing
    for (const fn of waiting) fn()
  }

  async jobs (): Promise<Map<string, JobEntry>> {
    const out = new Map<string, JobEntry>()
    for await (const [k, v] of this.db.iterator({ gt: 'job:', lt: 'job;' })) out.set(k.slice(4), v)
    return out
  }

  async close (): Promise<void> {
    clearTimeout(this.timer)
    this.timer = undefined
    await this.flush()
    await this.db.close()
  }
}

/**
 * A run's journal as `bgrid status` reads it when its coordinator does not answer: the
 * metadata and each job's state. undefined when there is no journal; 'locked' while a
 * coordinator holds it (then ask that coordinator).
 */
export async function readJournal (dir: string): Promise<{ meta: RunMeta | undefined, states: Map<string, JobState> } | 'locked' | undefined> {
  // level makes the directory even when told not to create the database
  if (!existsSync(dir)) return undefined
  const db = new Level<string, any>(dir, { valueEncoding: 'json', createIfMissing: false })
  try { await db.open() } catch (err) { return isLocked(err) ? 'locked' : undefined }
  try {
    const meta: RunMeta | undefined = await db.get('meta')
    const states = new Map<string, JobState>()
    for await (const [k, v] of db.iterator({ gt: 'job:', lt: 'job;' })) states.set(k.slice(4), v.state)
    return { meta, states }
  } finally { await db.close() }
}
