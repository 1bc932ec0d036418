// Prefetch: which blobs a worker should fetch before it runs the jobs that read them.
// The plan gives each worker an order of jobs; a worker is told the inputs of the next
// few, each once, so that its links work while its slots do. Inputs still only on the
// submitter are sent into the grid once: one worker takes each from the submitter, the
// others from that worker (the submitter's uplink is shared by every worker).
import type { JobRec, RunStats, Schedule, WorkerRec } from './model.ts'
import type { Clock, HolderBook, JobTableView, PrefetchPort } from './contracts.ts'
import type { PrefetchHint } from '../../protocol/jobs.ts'

/** prefetch hints cover the next HINT_WINDOW x slots (+2) planned jobs of a worker */
export const HINT_WINDOW = 8
/** ... but inputs only the submitter holds, those of the next STAGING_WINDOW x slots (+2):
 * its uplink is shared by every worker, and what it sends far ahead delays what is needed now */
export const STAGING_WINDOW = 2
/** how long other workers wait for a staged input's first copy before taking it from the submitter */
export const STAGING_WAIT_MS = 3000

export interface PrefetchOptions {
  coordinatorId: string
  /** --no-prefetch: no hints (workers fetch inputs when a job starts) */
  prefetch: boolean
  /** what staging reads the time from (default Date.now) */
  now?: Clock
}

/** Who holds which blob, as prefetch asks. */
type PrefetchHolders = Pick<HolderBook, 'holds' | 'liveHolders'>

export class Prefetch implements PrefetchPort {
  private readonly table: JobTableView
  private readonly holders: PrefetchHolders
  private readonly workers: ReadonlyMap<string, WorkerRec>
  private readonly schedule: Schedule
  private readonly opts: PrefetchOptions
  private readonly stats: RunStats
  private readonly now: Clock
  /** each worker's planned jobs in plan order, and how far it has got through them */
  private readonly plannedOrder = new Map<string, string[]>()
  private readonly cursor = new Map<string, number>()
  /** staged inputs on their way to their first worker (and since when): the others wait and fetch from it */
  private readonly staging = new Map<string, { worker: string, at: number }>()

  constructor (
    table: JobTableView, holders: PrefetchHolders, workers: ReadonlyMap<string, WorkerRec>, schedule: Schedule,
    opts: PrefetchOptions, stats: RunStats
  ) {
    this.table = table
    this.holders = holders
    this.workers = workers
    this.schedule = schedule
    this.opts = opts
    this.stats = stats
    this.now = opts.now ?? Date.now
  }

  /**
   * Blobs a worker should fetch now: the inputs of the next jobs the plan gives it
   * (a window of HINT_WINDOW x slots + 2 jobs not started yet), as soon as they exist
   * somewhere, each with its job's place in the plan so the worker fetches in that order.
   * A window, not every planned job: fetching far ahead spends the links on data for
   * jobs that may end up elsewhere. It must still reach past the jobs whose inputs are
   * already in place: when links are the bottleneck, data for a later stage has to
   * start moving while the current stage still runs. Inputs still only on the submitter
   * get a narrower window (STAGING_WINDOW).
   */
  hintsFor (workerId: string): PrefetchHint[] {
    if (!this.opts.prefetch || this.schedule.plan === undefined || this.schedule.held) return []
    const w = this.workers.get(workerId)
    const list = this.plannedOrder.get(workerId)
    if (w === undefined || !w.alive || list === undefined) return []
    let cursor = this.cursor.get(workerId) ?? 0
    while (cursor < list.length && !this.waiting(list[cursor])) cursor++
    this.cursor.set(workerId, cursor)
    const window = HINT_WINDOW * w.slots + 2
    const out: PrefetchHint[] = []
    let seen = 0
    for (let i = cursor; i < list.length && seen < window; i++) {
      const id = list[i]
      if (!this.waiting(id)) continue
      seen++
      const job = this.table.jobs.get(id) as JobRec
      for (const inp of job.spec.inputs) {
        const b = this.table.inputBlob(job.spec, inp)
        if (b === undefined || w.hinted.has(b.hash) || this.holders.holds(b.hash, workerId)) continue
        const holders = this.holders.liveHolders(b.hash)
        if (holders.length === 0) continue
        if (holders.length === 1 && holders[0] === this.opts.coordinatorId) {
          if (seen > STAGING_WINDOW * w.slots + 2) continue
          // the remote cache sends each input into the grid once: one worker takes it from the
          // submitter, the others from that worker once it has it
          const now = this.now()
          if (this.stagedElsewhere(b.hash, workerId, now)) continue
          this.staging.set(b.hash, { worker: workerId, at: now })
        }
        w.hinted.add(b.hash)
        out.push({ hash: b.hash, size: b.size, holders: holders.slice(0, 16), order: i })
      }
    }
    this.stats.prefetchHints += out.length
    return out
  }

  /** a job not started yet (its inputs are worth fetching) */
  private waiting (id: string): boolean {
    const st = this.table.jobs.get(id)?.state
    return st === 'pending' || st === 'ready'
  }

  /** The plan changed: each worker's planned jobs in plan order, from the start. */
  rehintAll (): void {
    this.plannedOrder.clear()
    this.cursor.clear()
    const plan = this.schedule.plan
    if (plan === undefined) return
    for (const [job, worker] of plan.worker) {
      let l = this.plannedOrder.get(worker)
      if (l === undefined) { l = []; this.plannedOrder.set(worker, l) }
      l.push(job)
    }
    for (const l of this.plannedOrder.values()) l.sort((a, b) => (plan.start.get(a) ?? 0) - (plan.start.get(b) ?? 0))
  }

  /**
   * A staged input on its way from the submitter to another live worker, hinted less than
   * STAGING_WAIT_MS ago: this worker should take it from that copy, not from the submitter.
   */
  stagedElsewhere (hash: string, workerId: string, now: number): boolean {
    const first = this.staging.get(hash)
    if (first === undefined || first.worker === workerId || this.workers.get(first.worker)?.alive !== true) return false
    if (this.holders.holds(hash, first.worker)) return false
    return now - first.at < STAGING_WAIT_MS
  }

  /** Staged inputs of some jobs that a worker does not hold yet, each blob once. */
  missingStaged (jobs: Iterable<string>, workerId: string): Map<string, number> {
    const out = new Map<string, number>()
    for (const job of jobs) {
      for (const i of this.table.jobs.get(job)?.spec.inputs ?? []) {
        if (i.source.kind !== 'file') continue
        const b = this.table.inputs.get(i.source.path)
        if (b !== undefined && !this.holders.holds(b.hash, workerId)) out.set(b.hash, b.size)
      }
    }
    return out
  }

  /** Bytes of staged inputs planned for a worker that it does not hold (disk check before staging). */
  stagingBytes (workerId: string): number {
    let bytes = 0
    for (const size of this.missingStaged(this.plannedOrder.get(workerId) ?? [], workerId).values()) bytes += size
    return bytes
  }
}
