// The job table: every job of the run and its state, changed only through the
// declared transitions (the model's transition table). It keeps the indexes the hot paths read (the
// ready set, jobs per state) in step with each change, and decides what follows
// from one: a job whose parents are done and whose inputs are reachable becomes
// ready, a failed job's descendants are skipped, a done job whose outputs are lost
// while someone still needs them is made again.
import { type Dag, type JobSpec, canJobTransition, TERMINAL, type JobState, type AttemptRec, type JobRec, type OutputRec } from './model.ts'
import type { Clock, CoreHooks, HolderBook, JobTablePort, JobTableView } from './contracts.ts'

/** Who holds which blob, as the job table asks (can an input still be had?). */
type TableHolders = Pick<HolderBook, 'hasLiveHolder' | 'addHolder'>

export class JobTable implements JobTableView, JobTablePort {
  readonly dag: Dag
  readonly jobs = new Map<string, JobRec>()
  readonly ready = new Set<string>()
  /** when each ready job became ready (a job left to its planned worker this long may be stolen) */
  readonly readyAt = new Map<string, number>()
  /** running replicated jobs that want more replicas handed out */
  readonly replicaQueue = new Set<string>()
  /** file inputs: absolute path -> content address */
  readonly inputs = new Map<string, OutputRec>()
  private readonly holders: TableHolders
  private readonly hooks: CoreHooks | undefined
  private readonly now: Clock
  /** jobs per state, kept as they move (progress and `finished` are asked for on every pull) */
  private readonly tally: Record<JobState, number> = { pending: 0, ready: 0, running: 0, done: 0, failed: 0, skipped: 0, cancelled: 0 }

  constructor (dag: Dag, holders: TableHolders, hooks?: CoreHooks, now: Clock = Date.now) {
    this.dag = dag
    this.holders = holders
    this.hooks = hooks
    this.now = now
    for (const spec of dag.jobs) {
      this.jobs.set(spec.id, { spec, state: 'pending', attempts: [], failures: 0, lost: 0, inputWaits: 0, outputs: null, avoid: new Set(), collected: false })
    }
    this.tally.pending = this.jobs.size
  }

  /** A job submitted while the run goes (a DAGMan node's job): pending, ready once its inputs can be had. */
  add (spec: JobSpec): JobRec {
    const rec: JobRec = { spec, state: 'pending', attempts: [], failures: 0, lost: 0, inputWaits: 0, outputs: null, avoid: new Set(), collected: false }
    this.jobs.set(spec.id, rec)
    this.tally.pending++
    this.tryPromote(spec.id, 'submitted')
    return rec
  }

  // ---- transitions --------------------------------------------------------------

  /** The one way a live run changes a job's state; an undeclared change is refused (and said). */
  move (job: JobRec, to: JobState, reason: string): boolean {
    const from = job.state
    if (from === to) return true
    if (!canJobTransition(from, to)) {
      this.hooks?.onIllegal?.(job.spec.id, from, to, reason)
      return false
    }
    this.tally[from]--
    this.tally[to]++
    job.state = to
    if (to === 'ready') { this.ready.add(job.spec.id); this.readyAt.set(job.spec.id, this.now()) } else { this.ready.delete(job.spec.id); this.readyAt.delete(job.spec.id) }
    if (to !== 'running') { this.replicaQueue.delete(job.spec.id); job.replicasWanted = 0 }
    if (to === 'failed' || to === 'skipped' || to === 'cancelled') job.reason = reason
    this.hooks?.onTransition?.(job, from, to, reason)
    return true
  }

  /** A job has its result: done, and its children may start. */
  succeed (job: JobRec, reason: string): void {
    this.move(job, 'done', reason)
    for (const c of this.dag.children.get(job.spec.id) ?? []) this.tryPromote(c, `parent ${job.spec.id} done`)
  }

  /** A job to run again: ready when its inputs can be had, else pending until they can. */
  requeue (job: JobRec, reason: string): void {
    // not reconcile here: a holder not live yet (a resume, before its workers are claimed
    // again) is not a lost one; a holder that is lost goes through reconcile (removeWorker,
    // dropped holders), which sends the producers back
    this.move(job, this.inputsAvailable(job) ? 'ready' : 'pending', reason)
  }

  fail (job: JobRec, why: string): void {
    this.move(job, 'failed', why)
    // descendants cannot run; the rest of the DAG goes on
    const stack = [...(this.dag.children.get(job.spec.id) ?? [])]
    while (stack.length > 0) {
      const c = this.jobs.get(stack.pop() as string)
      if (c === undefined || (c.state !== 'pending' && c.state !== 'ready')) continue
      this.move(c, 'skipped', `ancestor ${job.spec.id} failed`)
      stack.push(...(this.dag.children.get(c.spec.id) ?? []))
    }
  }

  cancelAll (why: string): void {
    const now = this.now()
    for (const j of this.jobs.values()) {
      if (TERMINAL.has(j.state)) continue
      // its attempts under way end with it (their workers kill them when released)
      for (const a of j.attempts) if (a.status === undefined) { a.status = 'cancelled'; a.endedAt = now; a.error = why }
      this.move(j, 'cancelled', why)
    }
  }

  // ---- resume -------------------------------------------------------------------

  /** A resume restores a job's journaled outcome through a declared restore transition (job-state.ts), or refuses it. */
  private restore (job: JobRec, to: 'done' | 'failed' | 'skipped', reason: string): boolean {
    const from = job.state
    if (!canJobTransition(from, to, 'restore')) {
      this.hooks?.onIllegal?.(job.spec.id, from, to, reason)
      return false
    }
    this.tally[from]--
    this.tally[to]++
    job.state = to
    return true
  }

  /** Restore a job's journaled outcome (resume). */
  restoreDone (id: string, outputs: Array<{ name: string, hash: string, size: number, holders: string[] }>, attempts: AttemptRec[], collected: boolean): void {
    const job = this.jobs.get(id)
    if (job === undefined || !this.restore(job, 'done', 'restored from the journal')) return
    job.outputs = new Map(outputs.map(o => [o.name, { hash: o.hash, size: o.size }]))
    for (const o of outputs) for (const h of o.holders) this.holders.addHolder(o.hash, o.size, h)
    job.attempts = attempts
    job.collected = collected
  }

  restoreFinal (id: string, state: 'failed' | 'skipped', reason: string, attempts: AttemptRec[]): void {
    const job = this.jobs.get(id)
    if (job === undefined || !this.restore(job, state, reason)) return
    job.reason = reason
    job.attempts = attempts
  }

  // ---- inputs and promotion -----------------------------------------------------

  /** The content address of one input of a job, if known yet. */
  inputBlob (spec: JobSpec, i: JobSpec['inputs'][number]): OutputRec | undefined {
    if (i.source.kind === 'file') return this.inputs.get(i.source.path)
    return this.jobs.get(i.source.job)?.outputs?.get(i.source.file)
  }

  inputsAvailable (job: JobRec): boolean {
    for (const i of job.spec.inputs) {
      const b = this.inputBlob(job.spec, i)
      if (b === undefined || !this.holders.hasLiveHolder(b.hash)) return false
    }
    return true
  }

  /** A pending job becomes ready once its parents are done and its inputs reachable. */
  tryPromote (id: string, reason: string): void {
    const job = this.jobs.get(id)
    if (job?.state !== 'pending') return
    if (job.spec.after.every(p => this.jobs.get(p)?.state === 'done') && this.inputsAvailable(job)) this.move(job, 'ready', reason)
  }

  /** Promote every pending job that can start. */
  promote (): void {
    for (const id of this.dag.order) this.tryPromote(id, 'inputs available')
  }

  private needed (job: JobRec): boolean {
    for (const c of this.dag.children.get(job.spec.id) ?? []) {
      const s = this.jobs.get(c)?.state
      if (s === 'pending' || s === 'ready' || s === 'running') return true
    }
    return this.isCollected(job.spec.id) && !job.collected
  }

  isCollected (id: string): boolean {
    return this.dag.collect === 'all' || (this.dag.children.get(id)?.length ?? 0) === 0
  }

  /**
   * After holders vanished: re-run finished jobs whose needed outputs no live holder has,
   * and put back to pending the jobs that can no longer get their inputs.
   */
  reconcile (reason: string): void {
    // children first: a child sent back to pending makes its parent's lost output needed again
    for (let k = this.dag.order.length - 1; k >= 0; k--) {
      const id = this.dag.order[k]
      const job = this.jobs.get(id)
      if (job === undefined) continue
      if (job.state === 'done' && job.outputs !== null && this.needed(job)) {
        const lost = [...job.outputs.values()].some(o => !this.holders.hasLiveHolder(o.hash))
        if (lost) {
          job.outputs = null
          this.move(job, 'pending', `outputs lost: ${reason}`)
        }
      }
      if (job.state === 'ready' && !this.inputsAvailable(job)) this.move(job, 'pending', `inputs lost: ${reason}`)
    }
    // parents that must run again are pending with done parents: promote them
    this.promote()
  }

  // ---- counts -------------------------------------------------------------------

  counts (): Record<JobState, number> { return { ...this.tally } }

  finished (): boolean {
    let n = 0
    for (const st of TERMINAL) n += this.tally[st]
    return n === this.jobs.size
  }
}
