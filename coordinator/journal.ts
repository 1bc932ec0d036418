// The run's journal in LevelDB: what a crashed coordinator needs to resume without
// re-running completed jobs. Job records are written as they change, in small batches.
import { Level } from 'level'
import type { JobRec, AttemptRec, RunCore } from './run-core.ts'
import type { JobState } from './job-state.ts'

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
  private readonly db: Level<string, any>
  private pending = new Map<string, unknown>()
  /** run once what is pending now is on disk */
  private waiting: Array<() => void> = []
  private timer?: NodeJS.Timeout
  private flushing: Promise<void> = Promise.resolve()

  constructor (dir: string) {
    this.db = new Level<string, any>(dir, { valueEncoding: 'json' })
  }

  async open (): Promise<void> { await this.db.open() }

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
    this.timer ??= setTimeout(() => { this.timer = undefined; this.flush().catch(() => {}) }, 5)
  }

  /** Call `fn` once every record made so far is on disk (an outcome is announced only once it would survive a crash). */
  afterFlush (fn: () => void): void {
    this.waiting.push(fn)
    this.timer ??= setTimeout(() => { this.timer = undefined; this.flush().catch(() => {}) }, 5)
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
