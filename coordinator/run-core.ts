// The state of one run, with no I/O: jobs and their state machine, attempts, blobs
// and their holders, workers and their slots. The native adapter and the submit
// shell drive it; the journal and the progress display listen to its events.
import type { Dag, JobSpec } from './dag.ts'
import { canJobTransition, TERMINAL, type JobState } from './job-state.ts'
import { edgeBytes, upwardRank, planPlacement, type Plan } from './plan.ts'
import type { Attrs } from './expr.ts'
import { jobFits, describeNeeds, summariseMisfits, type NodeShape } from './feasibility.ts'
import type { ReplicationPolicy, Replica } from './attempt-policy.ts'
import { unranResult, MAX_QUEUE_FACTOR, type Assignment, type AttemptResult, type BlobRef, type PrefetchHint, type InputRef, type PeerInfo, type LogResult, type InputProblem, type CorruptReport } from '../protocol/jobs.ts'

export const MAX_LOST_ATTEMPTS = 5
/**
 * An attempt that could not get its inputs is not the job's failure: the job waits
 * (1 s, 2 s, 4 s... at most 30 s) for another holder or for the producer to run again,
 * this many times at most before it fails with the reason.
 */
export const MAX_INPUT_WAITS = 20
const INPUT_BACKOFF_MS = 1000
const MAX_INPUT_BACKOFF_MS = 30_000
/** prefetch hints cover the next HINT_WINDOW x slots (+2) planned jobs of a worker */
export const HINT_WINDOW = 8
/** ... but inputs only the submitter holds, those of the next STAGING_WINDOW x slots (+2):
 * its uplink is shared by every worker, and what it sends far ahead delays what is needed now */
export const STAGING_WINDOW = 2
/** how long other workers wait for a staged input's first copy before taking it from the submitter */
export const STAGING_WAIT_MS = 3000

export interface WorkerInfo {
  id: string, slots: number, attrs: Attrs, addrs: string[]
  /** which machine it runs on (its addresses): replicas of a job go to distinct hosts */
  host?: string
}

export interface WorkerRec extends WorkerInfo {
  alive: boolean
  speed: number
  running: Map<string, string> // attempt -> job
  usedCores: number
  hinted: Set<string>
  assignedAt: Map<string, number>
  done: number
  /** blobs this worker must re-hash (see dropHolders) */
  verify: Set<string>
}

export interface AttemptRec {
  id: string
  job: string
  worker: string
  assignedAt: number
  startedAt?: number
  endedAt?: number
  /** when its result reached the coordinator (its clock): the end of "sending outputs" */
  reportedAt?: number
  /** cancelled: the run was cancelled while it ran */
  status?: AttemptResult['status'] | 'cancelled'
  exitCode?: number | null
  signal?: string | null
  error?: string
  stdout?: LogResult
  stderr?: LogResult
  inputWaitMs?: number
  bytesFetched?: number
  cacheHits?: number
  /** the job's CPU time as its worker measured it */
  cpuMs?: number
  /** replicated jobs: this replica's outputs, its agreement key, and what validation made of it */
  outputs?: Array<{ name: string, hash: string, size: number }>
  key?: string
  validation?: 'valid' | 'invalid'
  /** cobblestones granted to a valid result */
  credit?: number
  /** it did not report before the job's deadline (a late result still counts if the job is undecided) */
  timedOut?: boolean
  /** it could not run for reasons not its worker's (inputs gone): it counts neither for nor against */
  void?: boolean
}

export interface OutputRec { hash: string, size: number }

export interface JobRec {
  spec: JobSpec
  state: JobState
  attempts: AttemptRec[]
  failures: number
  lost: number
  /** attempts that could not get their inputs (see MAX_INPUT_WAITS) */
  inputWaits: number
  /** not to be assigned before this time (ms): backing off after missing inputs */
  notBefore?: number
  /** workers that had no room for its inputs (their quota): once every one has said so, it fails */
  noRoom?: Set<string>
  outputs: Map<string, OutputRec> | null
  avoid: Set<string>
  reason?: string
  collected: boolean
  /** replicated jobs: replicas still to hand out, the quorum for this job (1: unreplicated spot check) and the canonical key */
  replicasWanted?: number
  quorumNow?: number
  canonicalKey?: string
  /** the first attempt of the current round of replicas */
  roundStart?: number
}

export interface BlobRec { size: number, holders: Set<string> }

export interface CoreHooks {
  onTransition?: (job: JobRec, from: JobState, to: JobState, reason: string) => void
  onAttempt?: (job: JobRec, attempt: AttemptRec) => void
  onIllegal?: (job: string, from: JobState, to: JobState, reason: string) => void
}

export interface CoreOptions {
  coordinatorId: string
  prefetch: boolean
  /** unique per coordinator session: attempt ids never repeat across a resume */
  nonce: string
  hooks?: CoreHooks
  /** how replicated (BOINC-style) jobs are replicated and validated; native jobs need none */
  replication?: ReplicationPolicy
}

export class RunCore {
  readonly dag: Dag
  readonly jobs = new Map<string, JobRec>()
  readonly blobs = new Map<string, BlobRec>()
  readonly workers = new Map<string, WorkerRec>()
  readonly attempts = new Map<string, AttemptRec>()
  /** file inputs: absolute path -> content address */
  readonly inputs = new Map<string, OutputRec>()
  readonly ready = new Set<string>()
  private readonly readyAt = new Map<string, number>()
  /** running replicated jobs that want more replicas handed out */
  readonly replicaQueue = new Set<string>()
  /** replicas out with a deadline: attempt -> its job */
  private readonly deadlines = new Map<string, string>()
  /** a job left this long to its planned worker may be taken by any worker */
  stealAfterMs = 2000
  /**
   * No job is handed out (nor any input moved) while held: a run waits until it has
   * its workers.min before anything starts, so that a run short of workers leaves
   * nothing half done.
   */
  held = false
  priority = new Map<string, number>()
  plan: Plan | undefined
  readonly opts: CoreOptions
  private seq = 0
  /** each worker's planned jobs in plan order, and how far it has got through them */
  private readonly plannedOrder = new Map<string, string[]>()
  private readonly cursor = new Map<string, number>()
  /** staged inputs on their way to their first worker (and since when): the others wait and fetch from it */
  private readonly staging = new Map<string, { worker: string, at: number }>()
  private rotation = 0
  /** jobs per state, kept as they move (progress and `finished` are asked for on every pull) */
  private readonly tally: Record<JobState, number> = { pending: 0, ready: 0, running: 0, done: 0, failed: 0, skipped: 0, cancelled: 0 }
  stats = { bytesFetched: 0, prefetchedBytes: 0, cacheHits: 0, inputWaitMs: 0, prefetchHints: 0, holdersDropped: 0, inputWaits: 0 }

  constructor (dag: Dag, opts: CoreOptions) {
    this.dag = dag
    this.opts = opts
    for (const spec of dag.jobs) {
      this.jobs.set(spec.id, { spec, state: 'pending', attempts: [], failures: 0, lost: 0, inputWaits: 0, outputs: null, avoid: new Set(), collected: false })
    }
    this.tally.pending = this.jobs.size
    this.priority = upwardRank(dag, new Map())
  }

  // ---- transitions --------------------------------------------------------------

  private move (job: JobRec, to: JobState, reason: string): boolean {
    const from = job.state
    if (from === to) return true
    if (!canJobTransition(from, to)) {
      this.opts.hooks?.onIllegal?.(job.spec.id, from, to, reason)
      return false
    }
    this.tally[from]--
    this.tally[to]++
    job.state = to
    if (to === 'ready') { this.ready.add(job.spec.id); this.readyAt.set(job.spec.id, Date.now()) } else { this.ready.delete(job.spec.id); this.readyAt.delete(job.spec.id) }
    if (to !== 'running') { this.replicaQueue.delete(job.spec.id); job.replicasWanted = 0 }
    if (to === 'failed' || to === 'skipped' || to === 'cancelled') job.reason = reason
    this.opts.hooks?.onTransition?.(job, from, to, reason)
    return true
  }

  // ---- blobs --------------------------------------------------------------------

  addHolder (hash: string, size: number, holder: string): void {
    let b = this.blobs.get(hash)
    if (b === undefined) { b = { size, holders: new Set() }; this.blobs.set(hash, b) }
    b.holders.add(holder)
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
      if (!b.holders.delete(h)) continue
      dropped = true
      this.stats.holdersDropped++
      const w = this.workers.get(h)
      if (opts.verify === true && h !== opts.reporter && w?.alive === true) w.verify.add(hash)
    }
    if (dropped) this.reconcile(`${hash.slice(0, 12)}: ${why}`)
  }

  /** Blobs a worker must re-hash (a peer said it sent bad bytes): handed out once. */
  takeVerify (workerId: string): string[] {
    const w = this.workers.get(workerId)
    if (w === undefined || w.verify.size === 0) return []
    const out = [...w.verify]
    w.verify.clear()
    return out
  }

  /** A worker announces blobs it holds now (fetched ahead, or a copy re-verified). */
  announce (workerId: string, hashes: string[]): void {
    for (const h of hashes) this.blobs.get(h)?.holders.add(workerId)
  }

  /** A worker says these holders (itself, or peers that sent it bad bytes) have bad or no copies. */
  reportCorrupt (reporter: string, reports: CorruptReport[]): void {
    for (const r of reports) this.dropHolders(r.hash, [r.holder], r.holder === reporter ? 'the holder\'s own copy is bad or gone' : `bad bytes from ${r.holder.slice(-8)}`, { verify: true, reporter })
  }

  /** Holders that can serve a blob now: workers first (in a rotating order, to spread load), the submitter last. */
  liveHolders (hash: string): string[] {
    const b = this.blobs.get(hash)
    if (b === undefined) return []
    const workers: string[] = []
    let coordinator = false
    for (const h of b.holders) {
      if (h === this.opts.coordinatorId) coordinator = true
      else if (this.workers.get(h)?.alive === true) workers.push(h)
    }
    if (workers.length > 1) {
      const k = this.rotation++ % workers.length
      workers.push(...workers.splice(0, k))
    }
    if (coordinator) workers.push(this.opts.coordinatorId)
    return workers
  }

  /** Can some live node serve this blob? (a check: no rotation, no array) */
  hasLiveHolder (hash: string): boolean {
    for (const h of this.blobs.get(hash)?.holders ?? []) {
      if (h === this.opts.coordinatorId || this.workers.get(h)?.alive === true) return true
    }
    return false
  }

  /** The content address of one input of a job, if known yet. */
  inputBlob (spec: JobSpec, i: JobSpec['inputs'][number]): OutputRec | undefined {
    if (i.source.kind === 'file') return this.inputs.get(i.source.path)
    return this.jobs.get(i.source.job)?.outputs?.get(i.source.file)
  }

  inputsAvailable (job: JobRec): boolean {
    for (const i of job.spec.inputs) {
      const b = this.inputBlob(job.spec, i)
      if (b === undefined || !this.hasLiveHolder(b.hash)) return false
    }
    return true
  }

  setFileInput (absPath: string, hash: string, size: number): void {
    this.inputs.set(absPath, { hash, size })
    this.addHolder(hash, size, this.opts.coordinatorId)
  }

  // ---- lifecycle ----------------------------------------------------------------

  /** A resume restores a job's journaled outcome through a declared restore transition (job-state.ts), or refuses it. */
  private restore (job: JobRec, to: 'done' | 'failed' | 'skipped', reason: string): boolean {
    const from = job.state
    if (!canJobTransition(from, to, 'restore')) {
      this.opts.hooks?.onIllegal?.(job.spec.id, from, to, reason)
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
    for (const o of outputs) for (const h of o.holders) this.addHolder(o.hash, o.size, h)
    job.attempts = attempts
    job.collected = collected
  }

  restoreFinal (id: string, state: 'failed' | 'skipped', reason: string, attempts: AttemptRec[]): void {
    const job = this.jobs.get(id)
    if (job === undefined || !this.restore(job, state, reason)) return
    job.reason = reason
    job.attempts = attempts
  }

  /** A pending job becomes ready once its parents are done and its inputs reachable. */
  private tryPromote (id: string, reason: string): void {
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
    for (const id of this.dag.order) {
      const job = this.jobs.get(id)
      if (job === undefined) continue
      if (job.state === 'done' && job.outputs !== null && this.needed(job)) {
        const lost = [...job.outputs.values()].some(o => !this.hasLiveHolder(o.hash))
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

  /** bumped whenever the set of live workers changes (workers are sent the peer list again) */
  workersVersion = 0

  aliveWorkers (): WorkerRec[] { return [...this.workers.values()].filter(w => w.alive) }

  /** A worker died, left or lost its lease: its attempts are lost, its blobs unreachable. */
  removeWorker (id: string, why: string): string[] {
    const w = this.workers.get(id)
    if (w === undefined || !w.alive) return []
    w.alive = false
    this.workersVersion++
    const lostJobs: string[] = []
    for (const [attempt, jobId] of [...w.running]) {
      this.finishAttempt(w, attempt)
      const job = this.jobs.get(jobId)
      const rec = this.attempts.get(attempt)
      if (rec !== undefined && rec.status === undefined) { rec.status = 'lost'; rec.error = why; rec.endedAt = Date.now() }
      if (job !== undefined && rec !== undefined && job.spec.verify !== null && this.opts.replication !== undefined) {
        // a replica that will not reply: no reply, as BOINC counts it; the job is judged again
        this.deadlines.delete(attempt)
        if (job.state === 'running' && this.round(job).includes(rec)) {
          lostJobs.push(jobId)
          this.opts.replication.onError?.(job, rec, 'timeout')
          this.judge(job)
        }
        continue
      }
      if (job?.state === 'running' && job.attempts.at(-1)?.id === attempt) {
        lostJobs.push(jobId)
        this.retryLost(job, `worker lost: ${why}`)
      }
    }
    this.reconcile(`worker ${id.slice(-8)} lost`)
    return lostJobs
  }

  private dropInputHolders (reporter: string, p: InputProblem): void {
    // no room on that worker (its quota): the holders are fine (the job avoids that worker)
    if (p.code === 'DISK_FULL') return
    // HASH_MISMATCH and NOT_FOUND from a live holder: it is asked to re-hash its copy
    this.dropHolders(p.hash, p.holders, `${p.code}: ${p.message.slice(0, 200)}`, { verify: p.code === 'HASH_MISMATCH' || p.code === 'NOT_FOUND', reporter })
  }

  /** The attempt could not get its inputs: not the job's failure; back off, then try again (elsewhere or after the producer ran again). */
  private waitForInputs (job: JobRec, why: string, now: number, backOff = true): void {
    job.inputWaits++
    this.stats.inputWaits++
    if (job.inputWaits > MAX_INPUT_WAITS) { this.fail(job, `inputs unavailable after ${job.inputWaits} tries: ${why}`); return }
    // (no room on one worker: another may take it at once)
    if (backOff) job.notBefore = now + Math.min(MAX_INPUT_BACKOFF_MS, INPUT_BACKOFF_MS * 2 ** (job.inputWaits - 1))
    this.move(job, this.inputsAvailable(job) ? 'ready' : 'pending', `waiting for inputs: ${why}`)
  }

  private retryLost (job: JobRec, why: string): void {
    job.lost++
    if (job.lost > MAX_LOST_ATTEMPTS) { this.fail(job, `${why} (${job.lost} attempts lost)`); return }
    this.move(job, this.inputsAvailable(job) ? 'ready' : 'pending', why)
  }

  private fail (job: JobRec, why: string): void {
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

  private finishAttempt (w: WorkerRec, attempt: string): void {
    const jobId = w.running.get(attempt)
    if (jobId === undefined) return
    w.running.delete(attempt)
    w.assignedAt.delete(attempt)
    w.usedCores -= Math.max(1, this.jobs.get(jobId)?.spec.cores ?? 1)
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
    this.priority = upwardRank(this.dag, edges)
    const stagedOn = (job: string, worker: string): number => {
      let bytes = 0
      for (const size of this.missingStaged([job], worker).values()) bytes += size
      return bytes
    }
    const minSlots = Math.min(...workers.map(w => w.slots))
    const minRam = Math.min(...workers.map(w => Number(w.attrs.ram)))
    this.plan = planPlacement(this.dag, workers.map(w => ({ id: w.id, slots: w.slots, speed: w.speed })), edges, this.priority, {
      inputBytes: stagedOn,
      feasible: (job) => {
        const spec = this.jobs.get(job)?.spec
        if (spec === undefined) return () => false
        if (spec.requirements === null && spec.cores <= minSlots && spec.ram <= minRam) return undefined
        return (wi) => this.feasible(spec, workers[wi])
      }
    })
    this.rehintAll()
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
      this.fail(job, `unplaceable: no node seen on the network can run it (it needs ${describeNeeds(job.spec)}): ${why}`)
      failed.push(job.spec.id)
    }
    return failed
  }

  // ---- dispatch -----------------------------------------------------------------

  private inputRefs (job: JobRec): InputRef[] | null {
    const refs: InputRef[] = []
    for (const i of job.spec.inputs) {
      const b = this.inputBlob(job.spec, i)
      if (b === undefined) return null
      const holders = this.liveHolders(b.hash)
      if (holders.length === 0) return null
      refs.push({ name: i.name, hash: b.hash, size: b.size, holders: holders.slice(0, 16) })
    }
    return refs
  }

  /**
   * Cores' worth of jobs a worker may hold (running + queued). With prefetching, a short
   * queue it asked for (its `want` bounds it), whose inputs move while the slots are busy;
   * without, only its slots.
   */
  private holdLimit (w: WorkerRec): number {
    return (this.opts.prefetch ? MAX_QUEUE_FACTOR : 1) * w.slots
  }

  /**
   * A staged input on its way from the submitter to another live worker, hinted less than
   * STAGING_WAIT_MS ago: this worker should take it from that copy, not from the submitter.
   */
  private stagedElsewhere (hash: string, workerId: string, now: number): boolean {
    const first = this.staging.get(hash)
    if (first === undefined || first.worker === workerId || this.workers.get(first.worker)?.alive !== true) return false
    if (this.blobs.get(hash)?.holders.has(first.worker) === true) return false
    return now - first.at < STAGING_WAIT_MS
  }

  /** Choose up to `want` ready jobs for a pulling worker: its planned jobs first, then steal. */
  assign (workerId: string, want: number, now: number): Assignment[] {
    const w = this.workers.get(workerId)
    if (w === undefined || !w.alive || want <= 0 || this.held) return []
    const free = this.holdLimit(w) - w.usedCores
    if (free <= 0) return []
    const others = this.aliveWorkers().filter(x => x.id !== workerId)
    // bytes of a job's inputs that this worker does not hold yet (Dask: start where the
    // data is), or null when one of them is a staged input now travelling to another
    // worker: the remote cache sends each input into the grid once, so the job waits for
    // that copy (a few seconds at most)
    const missingBytes = (job: JobRec): number | null => {
      let n = 0
      for (const i of job.spec.inputs) {
        const b = this.inputBlob(job.spec, i)
        if (b === undefined || this.blobs.get(b.hash)?.holders.has(workerId) === true) continue
        if (this.opts.prefetch && this.stagedElsewhere(b.hash, workerId, now)) return null
        n += b.size
      }
      return n
    }
    const candidates: Array<{ id: string, missing: number, mine: boolean, prio: number }> = []
    let scanned = 0
    for (const id of this.ready) {
      // the ready set is in topological order, close to priority order: a window of it is enough
      if (scanned++ >= 64 && (candidates.length >= want || scanned > 4096)) break
      const job = this.jobs.get(id) as JobRec
      if (job.notBefore !== undefined && job.notBefore > now) continue
      if (!this.feasible(job.spec, w)) continue
      if (job.avoid.has(workerId) && others.some(o => !job.avoid.has(o.id) && this.feasible(job.spec, o))) continue
      const missing = missingBytes(job)
      if (missing === null) continue
      const planned = this.plan?.worker.get(id)
      const mine = planned === undefined || planned === workerId || !this.opts.prefetch
      if (!mine && missing > 0) {
        const pw = this.workers.get(planned)
        // leave a job to its planned worker (its inputs are moving there) unless that worker is
        // saturated, gone, avoided by the job, or has not taken it for a while; a job whose
        // inputs are all here already may go anywhere
        if (!(pw === undefined || !pw.alive || pw.usedCores >= this.holdLimit(pw) || job.avoid.has(planned) ||
          now - (this.readyAt.get(id) ?? now) >= this.stealAfterMs)) continue
      }
      candidates.push({ id, missing, mine, prio: this.priority.get(id) ?? 0 })
    }
    // data already here first, then the worker's own planned jobs, then priority
    candidates.sort((a, b) => a.missing - b.missing || Number(b.mine) - Number(a.mine) || b.prio - a.prio)
    const out: Assignment[] = []
    let cores = free
    // more replicas of replicated jobs already running first: their siblings are under way
    for (const id of this.replicaQueue) {
      if (out.length >= want) break
      const job = this.jobs.get(id) as JobRec
      const need = Math.max(1, job.spec.cores)
      if (need > cores || !this.feasible(job.spec, w) || !this.replicaFits(job, w)) continue
      const inputs = this.inputRefs(job)
      if (inputs === null) continue // its inputs come back (a producer runs again): the replica waits
      out.push(this.handOut(job, w, inputs, now))
      cores -= need
      job.replicasWanted = (job.replicasWanted ?? 1) - 1
      if (job.replicasWanted <= 0) this.replicaQueue.delete(id)
    }
    for (const { id } of candidates) {
      if (out.length >= want) break
      const job = this.jobs.get(id) as JobRec
      const need = Math.max(1, job.spec.cores)
      if (need > cores) continue
      const inputs = this.inputRefs(job)
      if (inputs === null) { this.move(job, 'pending', 'inputs unavailable'); continue }
      const policy = this.opts.replication
      // a replicated job's first replica opens a round (a job made again starts a new
      // one): the other replicas follow, on other hosts
      if (job.spec.verify !== null) job.roundStart = job.attempts.length
      out.push(this.handOut(job, w, inputs, now))
      cores -= need
      if (job.spec.verify !== null && policy !== undefined) {
        job.quorumNow = undefined
        job.replicasWanted = Math.max(0, policy.initialReplicas(job, workerId) - 1)
        if (job.replicasWanted > 0) this.replicaQueue.add(id)
      }
    }
    return out
  }

  /** One attempt of a job to a worker: recorded, the job running, the assignment for the wire. */
  private handOut (job: JobRec, w: WorkerRec, inputs: InputRef[], now: number): Assignment {
    const id = job.spec.id
    const attempt = `a${this.opts.nonce}-${++this.seq}`
    const rec: AttemptRec = { id: attempt, job: id, worker: w.id, assignedAt: now }
    job.attempts.push(rec)
    this.attempts.set(attempt, rec)
    w.running.set(attempt, id)
    w.assignedAt.set(attempt, now)
    w.usedCores += Math.max(1, job.spec.cores)
    if (job.spec.verify !== null && job.spec.verify.deadlineMs > 0) this.deadlines.set(attempt, id)
    this.move(job, 'running', `attempt ${attempt} on ${w.id.slice(-8)}`)
    this.opts.hooks?.onAttempt?.(job, rec)
    return {
      attempt, job: id, cmd: job.spec.cmd,
      // BGRID_RETRY: how many attempts of this job failed before (DAGMan's $(RETRY))
      env: { ...job.spec.env, BGRID_RETRY: String(job.failures) },
      timeoutMs: job.spec.timeoutMs, cores: job.spec.cores, ram: job.spec.ram, disk: job.spec.disk, network: job.spec.network,
      inputs, outputs: job.spec.outputs
    }
  }

  /**
   * May this worker take another replica of the job? Not on a host that has one out or
   * a result in (BOINC: one result per host per workunit: three daemons on one PC must
   * not make a quorum), nor on a worker whose replica failed.
   */
  private replicaFits (job: JobRec, w: WorkerRec): boolean {
    const host = w.host ?? w.id
    for (const a of job.attempts) {
      if (a.void === true) continue
      const other = this.workers.get(a.worker)
      if (a.worker === w.id) return false
      if ((other?.host ?? a.worker) === host && (a.status === undefined || a.status === 'ok' || a.timedOut === true)) return false
    }
    return true
  }

  /** Apply a result reported by a worker. Duplicates and unknown attempts are ignored. */
  complete (workerId: string, r: AttemptResult): 'ignored' | JobState {
    const rec = this.attempts.get(r.attempt)
    if (rec === undefined || rec.worker !== workerId) return 'ignored'
    const w = this.workers.get(workerId)
    if (w !== undefined) this.finishAttempt(w, r.attempt)
    if (rec.status !== undefined && rec.status !== 'lost') return 'ignored'
    const job = this.jobs.get(rec.job) as JobRec
    Object.assign(rec, {
      status: r.status, exitCode: r.exitCode, signal: r.signal, startedAt: r.startedAt, endedAt: r.endedAt, reportedAt: Date.now(),
      inputWaitMs: r.inputWaitMs, bytesFetched: r.bytesFetched, cacheHits: r.cacheHits
    })
    if (r.error !== undefined) rec.error = r.error
    if (r.stdout !== undefined) { rec.stdout = r.stdout; this.addHolder(r.stdout.hash, r.stdout.size, workerId) }
    if (r.stderr !== undefined) { rec.stderr = r.stderr; this.addHolder(r.stderr.hash, r.stderr.size, workerId) }
    this.stats.bytesFetched += r.bytesFetched
    this.stats.cacheHits += r.cacheHits
    this.stats.inputWaitMs += r.inputWaitMs
    if (r.cpuMs !== undefined) rec.cpuMs = r.cpuMs
    if (job.spec.verify !== null && this.opts.replication !== undefined) return this.completeReplica(job, workerId, rec, r)
    this.opts.hooks?.onAttempt?.(job, rec)
    const current = job.state === 'running' && job.attempts.at(-1)?.id === r.attempt
    const acceptLate = job.state === 'ready' || job.state === 'running'
    if (r.status === 'ok') {
      for (const o of r.outputs) this.addHolder(o.hash, o.size, workerId)
      if (job.state === 'done') return 'ignored' // another attempt won; its holder set grew
      if (!current && !acceptLate) return 'ignored'
      const declared = new Set(job.spec.outputs)
      if (r.outputs.length !== declared.size || r.outputs.some(o => !declared.has(o.name))) {
        rec.status = 'failed'
        rec.error = 'worker reported outputs other than those declared'
      } else {
        job.outputs = new Map(r.outputs.map(o => [o.name, { hash: o.hash, size: o.size }]))
        if (w !== undefined) w.done++
        this.move(job, 'done', `attempt ${r.attempt} ok`)
        for (const c of this.dag.children.get(job.spec.id) ?? []) this.tryPromote(c, `parent ${job.spec.id} done`)
        return 'done'
      }
    }
    // bad or missing inputs: their holders leave the lists, whoever the attempt was
    for (const p of r.inputProblems ?? []) this.dropInputHolders(workerId, p)
    if (!current) return 'ignored'
    const status = rec.status as AttemptResult['status']
    if (status === 'lost' && (r.inputProblems?.length ?? 0) > 0) {
      const full = r.inputProblems?.find(p => p.code === 'DISK_FULL')
      if (full !== undefined) {
        // another worker may have room; when none has, the job fails saying why
        job.avoid.add(workerId)
        job.noRoom = new Set([...(job.noRoom ?? []), workerId])
        if (this.aliveWorkers().filter(w => this.feasible(job.spec, w)).every(w => job.noRoom?.has(w.id) === true)) {
          this.fail(job, `no worker has room for its inputs: ${full.message}`)
          return job.state
        }
      }
      this.waitForInputs(job, rec.error ?? 'inputs unavailable', r.endedAt, full === undefined)
      return job.state
    }
    if (status === 'lost' || status === 'preempted') {
      this.retryLost(job, rec.error ?? status)
      return job.state
    }
    job.failures++
    job.avoid.add(workerId)
    const why = rec.error ?? (r.signal !== null ? `killed by ${r.signal}` : `exit code ${String(r.exitCode)}`)
    if (job.failures > job.spec.retries) this.fail(job, `${why} (after ${job.failures} attempt(s))`)
    else this.move(job, this.inputsAvailable(job) ? 'ready' : 'pending', `retry ${job.failures}/${job.spec.retries}: ${why}`)
    return job.state
  }

  // ---- replicated jobs (BOINC-style) ----------------------------------------------

  /** A replica's result: recorded, keyed, and the job judged again. */
  private completeReplica (job: JobRec, workerId: string, rec: AttemptRec, r: AttemptResult): 'ignored' | JobState {
    const policy = this.opts.replication as ReplicationPolicy
    this.deadlines.delete(rec.id)
    for (const p of r.inputProblems ?? []) this.dropInputHolders(workerId, p)
    if (r.status === 'ok') {
      const declared = new Set(job.spec.outputs)
      if (r.outputs.length !== declared.size || r.outputs.some(o => !declared.has(o.name))) {
        rec.status = 'failed'
        rec.error = 'worker reported outputs other than those declared'
      } else {
        rec.outputs = r.outputs.map(o => ({ name: o.name, hash: o.hash, size: o.size }))
        // its worker holds these bytes (whatever they are): only the canonical result's hashes are ever handed to children
        for (const o of r.outputs) this.addHolder(o.hash, o.size, workerId)
        rec.key = policy.keyOf(job, rec, this.round(job).filter(a => a !== rec))
      }
    }
    // not its worker's doing: inputs gone, the owner came back
    if ((r.status === 'lost' && (r.inputProblems?.length ?? 0) > 0) || r.status === 'preempted') rec.void = true
    this.opts.hooks?.onAttempt?.(job, rec)
    if (job.state === 'done') {
      // a late replica of a decided job is still judged, for its worker's record
      if (rec.status === 'ok' && rec.key !== undefined && this.round(job).includes(rec)) {
        rec.validation = rec.key === job.canonicalKey ? 'valid' : 'invalid'
        const canonical = job.attempts.find(a => a.key === job.canonicalKey && a.validation === 'valid')
        if (canonical !== undefined) policy.onDecided?.(job, canonical, rec.validation === 'valid' ? [rec] : [], rec.validation === 'invalid' ? [rec] : [])
      }
      return 'ignored'
    }
    if (job.state !== 'running' || !this.round(job).includes(rec)) return 'ignored'
    if (rec.status !== 'ok' && rec.void !== true) policy.onError?.(job, rec, 'error')
    if (rec.void === true && ++job.lost > MAX_LOST_ATTEMPTS) { this.fail(job, `${rec.error ?? 'lost'} (${job.lost} replicas lost)`); return job.state }
    return this.judge(job)
  }

  /** The attempts of the job's current round of replicas. */
  private round (job: JobRec): AttemptRec[] {
    return job.roundStart === undefined ? job.attempts : job.attempts.slice(job.roundStart)
  }

  /** An ok replica was compared with the others (the job's compare command): its key. */
  classified (attemptId: string, key: string): void {
    const rec = this.attempts.get(attemptId)
    if (rec === undefined || rec.status !== 'ok' || rec.key !== undefined) return
    rec.key = key
    const job = this.jobs.get(rec.job)
    if (job?.state === 'running') this.judge(job)
    else if (job?.state === 'done' && this.round(job).includes(rec)) {
      rec.validation = key === job.canonicalKey ? 'valid' : 'invalid'
    }
  }

  /** Apply the policy's decision on a replicated job's replicas so far. */
  private judge (job: JobRec): JobState {
    const policy = this.opts.replication as ReplicationPolicy
    const round = this.round(job)
    const view: Replica[] = []
    for (const a of round) {
      if (a.void === true) continue
      const outcome = a.status === 'ok' ? (a.key !== undefined ? 'ok' : 'pending') : a.status === undefined ? 'pending' : a.status === 'cancelled' ? undefined : 'error'
      if (outcome !== undefined) view.push({ attempt: a.id, worker: a.worker, outcome, ...(a.key !== undefined ? { key: a.key } : {}) })
    }
    // replicas wanted but not handed out yet are out, for the decision
    for (let i = 0; i < (job.replicasWanted ?? 0); i++) view.push({ attempt: `(queued ${i + 1})`, worker: '', outcome: 'pending' })
    const d = policy.judge(job, view)
    if (d.kind === 'issue') {
      job.replicasWanted = (job.replicasWanted ?? 0) + d.n
      this.replicaQueue.add(job.spec.id)
    } else if (d.kind === 'fail') {
      this.fail(job, d.reason)
    } else if (d.kind === 'canonical') {
      const canonical = this.attempts.get(d.attempt) as AttemptRec
      const valid = new Set(d.valid)
      for (const a of round) if (a.status === 'ok' && a.key !== undefined) a.validation = valid.has(a.id) ? 'valid' : 'invalid'
      job.canonicalKey = d.key
      job.outputs = new Map((canonical.outputs ?? []).map(o => [o.name, { hash: o.hash, size: o.size }]))
      // only the canonical bytes' holders serve them: an invalid result's blobs are other hashes
      const w = this.workers.get(canonical.worker)
      if (w !== undefined) w.done++
      this.move(job, 'done', `canonical result: attempt ${d.attempt}, ${d.valid.length} agreeing of ${d.valid.length + d.invalid.length}`)
      for (const c of this.dag.children.get(job.spec.id) ?? []) this.tryPromote(c, `parent ${job.spec.id} done`)
      policy.onDecided?.(job, canonical, round.filter(a => a.validation === 'valid'), round.filter(a => a.validation === 'invalid'))
    }
    return job.state
  }

  /** Replicas out past their job's deadline count as no reply: another is issued (a late result still counts while the job is undecided). */
  tick (now: number): void {
    for (const [attempt, jobId] of this.deadlines) {
      const rec = this.attempts.get(attempt)
      const job = this.jobs.get(jobId)
      if (rec === undefined || job === undefined || rec.status !== undefined || job.state !== 'running') { this.deadlines.delete(attempt); continue }
      const deadline = job.spec.verify?.deadlineMs ?? 0
      if (deadline <= 0 || now - rec.assignedAt < deadline) continue
      this.deadlines.delete(attempt)
      rec.status = 'lost'
      rec.timedOut = true
      rec.error = `no reply within the deadline (${deadline / 1000} s)`
      this.opts.replication?.onError?.(job, rec, 'timeout')
      this.judge(job)
    }
  }

  /** Attempts the coordinator thinks run on a worker that the worker does not know: lost. */
  reconcileRunning (workerId: string, running: string[], reported: Set<string>, now: number, graceMs = 5000): void {
    const w = this.workers.get(workerId)
    if (w === undefined) return
    const listed = new Set(running)
    for (const [attempt] of [...w.running]) {
      if (listed.has(attempt) || reported.has(attempt)) continue
      if (now - (w.assignedAt.get(attempt) ?? now) < graceMs) continue
      this.complete(workerId, unranResult(attempt, 'lost', 'the worker no longer runs this attempt', now))
    }
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
    if (!this.opts.prefetch || this.plan === undefined || this.held) return []
    const w = this.workers.get(workerId)
    const list = this.plannedOrder.get(workerId)
    if (w === undefined || !w.alive || list === undefined) return []
    const waiting = (id: string): boolean => { const st = this.jobs.get(id)?.state; return st === 'pending' || st === 'ready' }
    let cursor = this.cursor.get(workerId) ?? 0
    while (cursor < list.length && !waiting(list[cursor])) cursor++
    this.cursor.set(workerId, cursor)
    const window = HINT_WINDOW * w.slots + 2
    const out: PrefetchHint[] = []
    let seen = 0
    for (let i = cursor; i < list.length && seen < window; i++) {
      const id = list[i]
      if (!waiting(id)) continue
      seen++
      const job = this.jobs.get(id) as JobRec
      for (const inp of job.spec.inputs) {
        const b = this.inputBlob(job.spec, inp)
        if (b === undefined || w.hinted.has(b.hash) || this.blobs.get(b.hash)?.holders.has(workerId) === true) continue
        const holders = this.liveHolders(b.hash)
        if (holders.length === 0) continue
        if (holders.length === 1 && holders[0] === this.opts.coordinatorId) {
          if (seen > STAGING_WINDOW * w.slots + 2) continue
          // the remote cache sends each input into the grid once: one worker takes it from the
          // submitter, the others from that worker once it has it
          if (this.stagedElsewhere(b.hash, workerId, Date.now())) continue
          this.staging.set(b.hash, { worker: workerId, at: Date.now() })
        }
        w.hinted.add(b.hash)
        out.push({ hash: b.hash, size: b.size, holders: holders.slice(0, 16), order: i })
      }
    }
    this.stats.prefetchHints += out.length
    return out
  }

  private rehintAll (): void {
    this.plannedOrder.clear()
    this.cursor.clear()
    if (this.plan === undefined) return
    for (const [job, worker] of this.plan.worker) {
      let l = this.plannedOrder.get(worker)
      if (l === undefined) { l = []; this.plannedOrder.set(worker, l) }
      l.push(job)
    }
    for (const l of this.plannedOrder.values()) l.sort((a, b) => (this.plan?.start.get(a) ?? 0) - (this.plan?.start.get(b) ?? 0))
  }

  /** Staged inputs of some jobs that a worker does not hold yet, each blob once. */
  private missingStaged (jobs: Iterable<string>, workerId: string): Map<string, number> {
    const out = new Map<string, number>()
    for (const job of jobs) {
      for (const i of this.jobs.get(job)?.spec.inputs ?? []) {
        if (i.source.kind !== 'file') continue
        const b = this.inputs.get(i.source.path)
        if (b !== undefined && this.blobs.get(b.hash)?.holders.has(workerId) !== true) out.set(b.hash, b.size)
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

  peers (): PeerInfo[] {
    return this.aliveWorkers().map(w => ({ id: w.id, addrs: w.addrs.slice(0, 16) }))
  }

  counts (): Record<JobState, number> { return { ...this.tally } }

  finished (): boolean {
    let n = 0
    for (const st of TERMINAL) n += this.tally[st]
    return n === this.jobs.size
  }

  cancelAll (why: string): void {
    const now = Date.now()
    for (const j of this.jobs.values()) {
      if (TERMINAL.has(j.state)) continue
      // its attempts under way end with it (their workers kill them when released)
      for (const a of j.attempts) if (a.status === undefined) { a.status = 'cancelled'; a.endedAt = now; a.error = why }
      this.move(j, 'cancelled', why)
    }
  }

  /** Why this job is not running (condor_q -analyze's first line), or undefined when it runs or is over. */
  whyWaiting (id: string, now = Date.now()): string | undefined {
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
    if (fit.every(w => w.usedCores + Math.max(1, job.spec.cores) > this.holdLimit(w))) return `waits for a free slot on ${fit.length} worker(s) that can run it`
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
