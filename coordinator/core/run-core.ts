// The run core: the state of one run, with no I/O, and the one facade over its parts.
// The job table keeps jobs and their state machine, dispatch hands out attempts and
// applies their results, prefetch tells workers what to fetch ahead, the holders say who
// holds which blob. Here: workers and their slots, planning, and the answers to "why does
// this job wait?". The coordinator drives it, a middleware adapter through the narrow run
// port; the journal and the progress display listen to its hooks.
// Contract of the folder: the model (the DAG, job states, records) and the contracts (run
// port, adapter interface, replication policy, options, what the parts see of each other)
// are leaves that import nothing of ours but protocol/ (and the contracts the model). The
// parts import only them and protocol/, never each other nor this facade: what a part
// needs of another is declared in the contracts, and this file, the only one that
// assembles them, hands it over. It re-exports nothing. Nothing here does I/O: dag.json,
// its schema and the files it names are read around the run core.
import { type Dag, type JobSpec, TERMINAL, type JobState, type Plan, type AttemptRec, type BlobRec, type JobRec, type OutputRec, type RunStats, type Schedule, type WorkerInfo, type WorkerRec } from './model.ts'
import { edgeBytes, upwardRank, planPlacement } from './plan.ts'
import { jobFits, describeNeeds, summariseMisfits, type NodeShape } from './feasibility.ts'
import { JobTable } from './job-table.ts'
import { Holders } from './holders.ts'
import { Prefetch } from './prefetch.ts'
import { Dispatch } from './dispatch.ts'
import type { Clock, CoreOptions, RunPort } from './contracts.ts'
import type { Assignment, AttemptResult, PrefetchHint, PeerInfo, CorruptReport } from '../../protocol/jobs.ts'
import type { HeldAttempt } from '../../protocol/claim.ts'


export class RunCore implements RunPort {
  readonly dag: Dag
  readonly opts: CoreOptions
  readonly jobs: Map<string, JobRec>
  readonly blobs: Map<string, BlobRec>
  readonly workers = new Map<string, WorkerRec>()
  readonly attempts: Map<string, AttemptRec>
  /** file inputs: absolute path -> content address */
  readonly inputs: Map<string, OutputRec>
  readonly ready: Set<string>
  /** running replicated jobs that want more replicas handed out */
  readonly replicaQueue: Set<string>
  readonly stats: RunStats = { bytesFetched: 0, prefetchedBytes: 0, cacheHits: 0, inputWaitMs: 0, prefetchHints: 0, holdersDropped: 0, inputWaits: 0 }
  /** bumped whenever the set of live workers changes (workers are sent the peer list again) */
  workersVersion = 0
  private readonly schedule: Schedule
  private readonly table: JobTable
  private readonly holders: Holders
  private readonly prefetch: Prefetch
  private readonly dispatch: Dispatch
  /** the run's clock (CoreOptions.now): real time, or a simulation's virtual time */
  readonly now: Clock

  constructor (dag: Dag, opts: CoreOptions) {
    this.dag = dag
    this.opts = opts
    this.now = opts.now ?? Date.now
    this.schedule = { plan: undefined, priority: upwardRank(dag, new Map()), held: false }
    this.holders = new Holders(opts.coordinatorId, this.workers)
    this.table = new JobTable(dag, this.holders, opts.hooks, this.now)
    this.prefetch = new Prefetch(this.table, this.holders, this.workers, this.schedule, opts, this.stats)
    this.dispatch = new Dispatch({
      table: this.table, holders: this.holders, prefetch: this.prefetch, fits: jobFits,
      workers: this.workers, schedule: this.schedule, stats: this.stats,
      host: { aliveWorkers: () => this.aliveWorkers(), dropHolders: (hash, holders, why, o) => { this.dropHolders(hash, holders, why, o) } }
    }, opts)
    this.jobs = this.table.jobs
    this.ready = this.table.ready
    this.replicaQueue = this.table.replicaQueue
    this.inputs = this.table.inputs
    this.blobs = this.holders.blobs
    this.attempts = this.dispatch.attempts
  }

  /**
   * No job is handed out (nor any input moved) while held: a run waits until it has
   * its workers.min before anything starts, so that a run short of workers leaves
   * nothing half done.
   */
  get held (): boolean { return this.schedule.held }
  set held (v: boolean) { this.schedule.held = v }
  get plan (): Plan | undefined { return this.schedule.plan }
  get priority (): Map<string, number> { return this.schedule.priority }
  /** a job left this long to its planned worker may be taken by any worker */
  get stealAfterMs (): number { return this.dispatch.stealAfterMs }
  set stealAfterMs (ms: number) { this.dispatch.stealAfterMs = ms }

  // ---- the job table ------------------------------------------------------------

  /**
   * A job submitted to a run that is under way (an open run: `bgrid submit FILE.dag`): it
   * joins the DAG with no parents (DAGMan orders the nodes itself) and waits for workers
   * like any other. Its id must be new.
   */
  addJob (spec: JobSpec): JobRec {
    const dag = this.dag
    if (dag.byId.has(spec.id)) throw new Error(`job ${spec.id} is already in the run`)
    if (spec.after.length > 0) throw new Error(`job ${spec.id}: a job added to a run has no parents`)
    dag.jobs.push(spec)
    dag.byId.set(spec.id, spec)
    dag.children.set(spec.id, [])
    dag.order.push(spec.id)
    return this.table.add(spec)
  }

  restoreDone (id: string, outputs: Array<{ name: string, hash: string, size: number, holders: string[] }>, attempts: AttemptRec[], collected: boolean): void { this.table.restoreDone(id, outputs, attempts, collected) }
  restoreFinal (id: string, state: 'failed' | 'skipped', reason: string, attempts: AttemptRec[]): void { this.table.restoreFinal(id, state, reason, attempts) }
  promote (): void { this.table.promote() }
  reconcile (reason: string): void { this.table.reconcile(reason) }
  isCollected (id: string): boolean { return this.table.isCollected(id) }
  inputBlob (spec: JobSpec, i: JobSpec['inputs'][number]): OutputRec | undefined { return this.table.inputBlob(spec, i) }
  inputsAvailable (job: JobRec): boolean { return this.table.inputsAvailable(job) }
  counts (): Record<JobState, number> { return this.table.counts() }
  finished (): boolean { return this.table.finished() }
  cancelAll (why: string): void { this.table.cancelAll(why) }

  // ---- dispatch -----------------------------------------------------------------

  assign (workerId: string, want: number, now: number): Assignment[] { return this.dispatch.assign(workerId, want, now) }
  complete (workerId: string, r: AttemptResult): 'ignored' | JobState { return this.dispatch.complete(workerId, r) }
  classified (attemptId: string, key: string): void { this.dispatch.classified(attemptId, key) }
  tick (now: number): void { this.dispatch.tick(now) }
  reconcileRunning (workerId: string, running: string[], reported: Set<string>, now: number, graceMs = 5000): void { this.dispatch.reconcileRunning(workerId, running, reported, now, graceMs) }
  attemptsOn (workerId: string): string[] { return this.dispatch.attemptsOn(workerId) }
  heldBy (workerId: string, held: readonly HeldAttempt[], sentAt: number, now: number, graceMs: number): void { this.dispatch.heldBy(workerId, held, sentAt, now, graceMs) }
  giveUp (attempt: string, why: string, now: number, as: 'lost' | 'failed' = 'lost'): void { this.dispatch.giveUp(attempt, why, now, as) }

  // ---- prefetch -----------------------------------------------------------------

  hintsFor (workerId: string): PrefetchHint[] { return this.prefetch.hintsFor(workerId) }
  stagingBytes (workerId: string): number { return this.prefetch.stagingBytes(workerId) }
  /** bytes workers fetched ahead of their jobs (they say so with each pull) */
  addPrefetchedBytes (bytes: number): void { this.stats.prefetchedBytes += bytes }

  // ---- blobs --------------------------------------------------------------------

  addHolder (hash: string, size: number, holder: string): void { this.holders.addHolder(hash, size, holder) }
  liveHolders (hash: string): string[] { return this.holders.liveHolders(hash) }
  hasLiveHolder (hash: string): boolean { return this.holders.hasLiveHolder(hash) }
  /** A worker announces blobs it holds now (fetched ahead, or a copy re-verified). */
  announce (workerId: string, hashes: string[]): void { this.holders.announce(workerId, hashes) }

  setFileInput (absPath: string, hash: string, size: number): void {
    this.inputs.set(absPath, { hash, size })
    this.holders.addHolder(hash, size, this.opts.coordinatorId)
  }

  /**
   * Holders found failing a blob (bad bytes, gone, unreachable, refusing): they leave
   * its holder list at once. A live worker said to hold bad bytes is asked to re-hash
   * its copy (its next pull reply says `verify`); a good copy comes back with its next
   * `have`. Jobs whose inputs have no holder left wait; finished producers whose
   * outputs a consumer still needs run again.
   */
  dropHolders (hash: string, holders: string[], why: string, opts: { verify?: boolean, reporter?: string } = {}): void {
    const b = this.blobs.get(hash)
    if (b === undefined) return
    let dropped = false
    for (const h of holders) {
      // a worker's word never takes the submitter's own copy off the list (the submitter
      // checks its bytes before it serves them): else one liar could strand every job
      if (opts.reporter !== undefined && h === this.opts.coordinatorId) continue
      if (!b.holders.delete(h)) continue
      dropped = true
      this.stats.holdersDropped++
      const w = this.workers.get(h)
      if (opts.verify === true && h !== opts.reporter && w?.alive === true) w.verify.add(hash)
    }
    if (dropped) this.table.reconcile(`${hash.slice(0, 12)}: ${why}`)
  }

  /** Blobs a worker must re-hash (a peer said it sent bad bytes): handed out once. */
  takeVerify (workerId: string): string[] {
    const w = this.workers.get(workerId)
    if (w === undefined || w.verify.size === 0) return []
    const out = [...w.verify]
    w.verify.clear()
    return out
  }

  /** A worker says these holders (itself, or peers that sent it bad bytes) have bad or no copies. */
  reportCorrupt (reporter: string, reports: CorruptReport[]): void {
    for (const r of reports) this.dropHolders(r.hash, [r.holder], r.holder === reporter ? 'the holder\'s own copy is bad or gone' : `bad bytes from ${r.holder.slice(-8)}`, { verify: true, reporter })
  }

  // ---- workers ------------------------------------------------------------------

  addWorker (info: WorkerInfo): void {
    const old = this.workers.get(info.id)
    const maxMhz = Math.max(1, Number(info.attrs.mhz), ...[...this.workers.values()].map(w => Number(w.attrs.mhz)))
    this.workers.set(info.id, {
      ...info,
      alive: true,
      speed: Math.max(0.1, Number(info.attrs.mhz) / maxMhz),
      running: old?.running ?? new Map(),
      usedCores: old?.usedCores ?? 0,
      hinted: new Set(),
      assignedAt: old?.assignedAt ?? new Map(),
      done: old?.done ?? 0,
      verify: old?.verify ?? new Set()
    })
    this.workersVersion++
  }

  aliveWorkers (): WorkerRec[] { return [...this.workers.values()].filter(w => w.alive) }

  /** A worker died, left or lost its lease: its attempts are lost, its blobs unreachable. */
  removeWorker (id: string, why: string): string[] {
    const w = this.workers.get(id)
    if (w === undefined || !w.alive) return []
    w.alive = false
    this.workersVersion++
    const lostJobs = this.dispatch.workerLost(w, why)
    this.table.reconcile(`worker ${id.slice(-8)} lost`)
    return lostJobs
  }

  peers (): PeerInfo[] {
    return this.aliveWorkers().map(w => ({ id: w.id, addrs: w.addrs.slice(0, 16) }))
  }

  // ---- planning -----------------------------------------------------------------

  /** an output's size: known once produced, else as declared in dag.json, else 0 */
  outputSize (job: string, file: string): number {
    const j = this.jobs.get(job)
    return j?.outputs?.get(file)?.size ?? j?.spec.sizeHints[file] ?? 0
  }

  feasible (spec: JobSpec, w: WorkerInfo): boolean { return jobFits(spec, w) }

  replan (sizeHint?: (job: string, file: string) => number): void {
    const workers = this.aliveWorkers()
    const edges = edgeBytes(this.dag, sizeHint ?? ((j, f) => this.outputSize(j, f)))
    this.schedule.priority = upwardRank(this.dag, edges)
    const stagedOn = (job: string, worker: string): number => {
      let bytes = 0
      for (const size of this.prefetch.missingStaged([job], worker).values()) bytes += size
      return bytes
    }
    const minSlots = Math.min(...workers.map(w => w.slots))
    const minRam = Math.min(...workers.map(w => Number(w.attrs.ram)))
    this.schedule.plan = planPlacement(this.dag, workers.map(w => ({ id: w.id, slots: w.slots, speed: w.speed })), edges, this.schedule.priority, {
      inputBytes: stagedOn,
      feasible: (job) => {
        const spec = this.jobs.get(job)?.spec
        if (spec === undefined) return () => false
        if (spec.requirements === null && spec.cores <= minSlots && spec.ram <= minRam) return undefined
        return (wi) => this.feasible(spec, workers[wi])
      }
    })
    this.prefetch.rehintAll()
  }

  /** Jobs waiting that no claimed worker can run: they wait for one that can (a queue, not a failure). */
  unplaceable (): Array<{ job: string, why: string }> {
    const workers = this.aliveWorkers()
    const out: Array<{ job: string, why: string }> = []
    for (const job of this.jobs.values()) {
      if (TERMINAL.has(job.state) || job.state === 'running') continue
      if (!workers.some(w => this.feasible(job.spec, w))) out.push({ job: job.spec.id, why: `waits for a worker with ${describeNeeds(job.spec)}: none claimed has it` })
    }
    return out
  }

  /**
   * Fail the waiting jobs that no node seen on the network could ever run (the grid
   * has been looked at long enough): the message names each unmet clause and the
   * nodes' values. The others wait for a node that can.
   */
  failNeverPlaceable (seen: NodeShape[]): string[] {
    const failed: string[] = []
    const workers = this.aliveWorkers()
    for (const job of this.jobs.values()) {
      if (job.state !== 'pending' && job.state !== 'ready') continue
      if (workers.some(w => jobFits(job.spec, w)) || seen.some(n => jobFits(job.spec, n))) continue
      const why = seen.length === 0 ? 'no node seen' : summariseMisfits(job.spec, seen).join('; ')
      this.table.fail(job, `unplaceable: no node seen on the network can run it (it needs ${describeNeeds(job.spec)}): ${why}`)
      failed.push(job.spec.id)
    }
    return failed
  }

  // ---- why jobs wait -------------------------------------------------------------

  /** Why this job is not running (condor_q -analyze's first line), or undefined when it runs or is over. */
  whyWaiting (id: string, now = this.now()): string | undefined {
    const job = this.jobs.get(id)
    if (job === undefined || TERMINAL.has(job.state)) return undefined
    if (job.state === 'running') {
      const n = job.replicasWanted ?? 0
      return n > 0 ? `${n} more replica(s) wait for a worker on a host that has none of this job's (${this.aliveWorkers().length} worker(s) claimed)` : undefined
    }
    const parents = job.spec.after.filter(p => this.jobs.get(p)?.state !== 'done')
    if (parents.length > 0) return `waits for ${parents.length} parent job(s): ${parents.slice(0, 5).join(', ')}${parents.length > 5 ? ', ...' : ''}`
    if (job.state === 'pending') return 'waits for its inputs: no live node holds them (their producer runs again)'
    if (this.held) return 'waits for the run to have its workers.min'
    if (job.notBefore !== undefined && job.notBefore > now) return `backing off after missing inputs: tried again in ${Math.ceil((job.notBefore - now) / 1000)} s`
    const workers = this.aliveWorkers()
    const fit = workers.filter(w => jobFits(job.spec, w))
    if (fit.length === 0) return `waits for a worker with ${describeNeeds(job.spec)}: none claimed has it`
    if (fit.every(w => w.usedCores + Math.max(1, job.spec.cores) > this.dispatch.holdLimit(w))) return `waits for a free slot on ${fit.length} worker(s) that can run it`
    return 'ready: handed out at the next pull'
  }

  /** Why jobs wait, grouped (the answer to "why didn't my job run?"). */
  waitingReasons (): string[] {
    const out: string[] = []
    if (this.held) out.push('no job starts before the run has its workers.min')
    else if (this.ready.size > 0 && this.aliveWorkers().every(w => w.usedCores >= w.slots)) out.push(`${this.ready.size} ready job(s) wait for a free slot`)
    for (const u of this.unplaceable().slice(0, 5)) out.push(`job ${u.job}: ${u.why}`)
    return out
  }
}
