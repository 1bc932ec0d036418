// A simulated coordinator: one run of a DAG on the real run core (coordinator/core
// RunCore and its parts, on the virtual clock through CoreOptions.now), recruiting as
// coordinator/recruit.ts does and serving pulls as the XtremWeb adapter does, with their
// I/O replaced by the world's transport and clock. Every decision is the real code's:
// which idle nodes to take (selectWorkers), how many workers the run could use
// (workersWanted), whom to ask for a fair share (pickAsks), when to let a retiring worker
// go (letGoNow), what to hand a pulling worker and what its results do (RunCore). The
// glue keeps the recruiter's timings (a recruit tick a second, renewals every quarter
// lease, 5 s for an ask's answer, 30 s for
// a promise) and the run's: nothing starts before workers.min (--wait, then NO_WORKERS).
// Not simulated: staging and transfers (inputs and outputs move in no time), collection
// of the final outputs, the journal, the stall watch (no job stalls here).
// Contract: `start()` at its arrival; `finishedAt` and `outcome` once over; its holds go
// to the world's GrantLog. Imports the coordinator's pure parts, protocol/ and the sim's leaves.
import { RunCore } from '../../coordinator/core/run-core.ts'
import type { Dag } from '../../coordinator/core/model.ts'
import { selectWorkers, attrsOf, type Candidate } from '../../coordinator/core/select.ts'
import { pickAsks, notToAsk, idleToTake, MAX_CLAIMS_IN_FLIGHT } from '../../coordinator/share-asks.ts'
import { workersWanted, letGoNow, retryAfterMs, rootJobCount } from '../../coordinator/recruit.ts'
import { PROTOCOL_VERSION, ASSIGNMENT_GRACE_MS, MAX_HELD_ATTEMPTS, type ClaimRequest } from '../../protocol/claim.ts'
import { BgridError } from '../../protocol/errors.ts'
import { PULL_WAIT_MS } from '../../protocol/jobs.ts'
import type { PullTarget, SimPull, SimPullReply, SimWorld } from './types.ts'

/** recruit.ts: the recruit tick */
const RECRUIT_TICK_MS = 1000
/** recruit.ts: how long an ask waits for its answer, and a node's promise (YIELDING) for its claim */
const ASK_WAIT_MS = 5000
const PROMISE_WAIT_MS = 30_000
/** the XtremWeb adapter: a held pull looks for work again at least this often */
const RECHECK_MS = 1000

interface Held { lastRenewed: number, slots: number, renewing: boolean }
interface Waiter { want: number, reply: (r: SimPullReply) => void, gen: number }

export interface CoordinatorSpec {
  id: string
  runId: string
  dag: Dag
  arrival: number
  leaseSec: number
  waitSec: number
  priority: number
}

export class SimCoordinator implements PullTarget {
  readonly spec: CoordinatorSpec
  readonly core: RunCore
  finishedAt?: number
  /** why it ended short (NO_WORKERS...), if it did */
  failure?: string
  /** the most workers it held at once, and claims it made */
  peakWorkers = 0
  claims = 0
  private readonly world: SimWorld
  private readonly claimed = new Map<string, Held>()
  private readonly claiming = new Set<string>()
  private readonly asked = new Map<string, number>()
  private readonly refusedUntil = new Map<string, number>()
  private readonly dialFailures = new Map<string, number>()
  private lastTaken = -Infinity
  private readonly waiters = new Map<string, Waiter>()
  private waiterGen = 0
  private startedAt = 0
  private closing = false
  private running = false
  private rootCount?: number

  constructor (spec: CoordinatorSpec, world: SimWorld) {
    this.spec = spec
    this.world = world
    this.core = new RunCore(spec.dag, { coordinatorId: spec.id, prefetch: false, nonce: spec.id.slice(-6), now: world.clock.now })
    // nothing starts before the run has its workers.min
    this.core.held = true
    // staged inputs: the submitter holds them (their bytes are not simulated)
    for (const job of spec.dag.jobs) {
      for (const i of job.inputs) if (i.source.kind === 'file') this.core.setFileInput(i.source.path, fakeHash(i.source.path), 0)
    }
  }

  private get now (): number { return this.world.clock.now() }

  get over (): boolean { return this.finishedAt !== undefined }

  start (): void {
    this.startedAt = this.now
    this.world.lan.onIdle(() => { if (!this.over) this.recruit() })
    const tick = (): void => {
      if (this.over) return
      this.recruit()
      this.world.clock.after(RECRUIT_TICK_MS, tick)
    }
    tick()
    // Recruiter.waitForWorkers: workers.min within --wait, else the run fails (NO_WORKERS)
    this.world.clock.after(this.spec.waitSec * 1000, () => {
      if (!this.running && !this.over) this.end(`NO_WORKERS: only ${this.claimed.size} of ${this.spec.dag.workers.min} worker(s) claimed after ${this.spec.waitSec}s`)
    })
  }

  runtimeOf (job: string): number { return this.spec.dag.byId.get(job)?.runtime ?? 0 }

  // ---- recruiting (recruit.ts) ----------------------------------------------------

  private recruit (): void {
    if (this.closing) return
    const { dag } = this.spec
    const room = dag.workers.max - this.claimed.size - this.claiming.size
    // these DAGs have no requirements: every node covers every job, so `uncovered` is empty
    if (room <= 0) return
    const now = this.now
    const idle = this.world.lan.idleList().filter(c => !this.claimed.has(c.ad.peer) && !this.claiming.has(c.ad.peer) && (this.refusedUntil.get(c.ad.peer) ?? 0) < now)
    const me = { run: this.spec.runId, coordinator: this.spec.id, submitter: this.spec.id, priority: this.spec.priority, held: this.claimed.size, pending: 0, want: dag.workers.max, claiming: this.claiming.size }
    const taking = selectWorkers(idle, dag.requirements, dag.rank, { self: this.spec.id }).ranked.slice(0, idleToTake(this.world.lan.list(), me, room, this.lastTaken, now))
    if (taking.length > 0) this.lastTaken = now
    for (const c of taking) this.claim(c)
    if (taking.length === 0) this.askForShare()
  }

  private roots (): number { return (this.rootCount ??= rootJobCount(this.spec.dag)) }

  private askForShare (): void {
    const now = this.now
    for (const [peer, until] of this.asked) if (until < now || this.claimed.has(peer)) this.asked.delete(peer)
    let slots = 0
    for (const w of this.claimed.values()) slots += w.slots
    const want = workersWanted({ claimed: this.claimed.size, slots, counts: this.core.counts(), workers: this.spec.dag.workers, roots: () => this.roots() })
    if (want <= this.claimed.size && this.asked.size === 0) return
    const nodes = this.world.lan.list()
    // the promised ones first: a node kept for this run waits for our claim
    for (const peer of this.asked.keys()) {
      if (this.claiming.has(peer) || this.claimed.has(peer)) continue
      const c = nodes.find(n => n.ad.peer === peer)
      if (c !== undefined) this.claim(c, true)
    }
    const asks = pickAsks(nodes, {
      run: this.spec.runId, coordinator: this.spec.id, submitter: this.spec.id, priority: this.spec.priority,
      held: this.claimed.size, pending: this.asked.size + this.claiming.size, want
    }, notToAsk(this.asked.keys(), this.claiming, this.refusedUntil, now))
    for (const c of asks.slice(0, Math.max(0, MAX_CLAIMS_IN_FLIGHT - this.claiming.size))) {
      this.asked.set(c.ad.peer, now + ASK_WAIT_MS)
      this.claim(c, true)
    }
  }

  private claim (c: Candidate, ask = false): void {
    const peer = c.ad.peer
    if (this.claiming.has(peer)) return
    this.claiming.add(peer)
    this.claims++
    const req: ClaimRequest = {
      op: 'claim', v: PROTOCOL_VERSION, run: this.spec.runId, leaseMs: this.spec.leaseSec * 1000, middleware: 'native',
      ...(this.spec.priority !== 0 ? { priority: this.spec.priority } : {}),
      ...(ask ? { held: this.claimed.size } : {})
    }
    this.world.transport.call(this.spec.id, peer, req, o => {
      const windowWasFull = this.claiming.size >= MAX_CLAIMS_IN_FLIGHT
      this.claiming.delete(peer)
      const now = this.now
      // the next claim goes out as soon as one of those in flight is answered
      if (windowWasFull) this.world.clock.after(0, () => { if (!this.over) this.recruit() })
      if (o.ok) {
        this.dialFailures.delete(peer)
        this.asked.delete(peer)
        this.world.grants.granted(peer, this.spec.id, now)
        if (this.closing) { this.release(peer); return }
        const offer = o.reply.offer ?? { ...c.ad }
        this.claimed.set(peer, { lastRenewed: now, slots: Math.max(1, offer.cores), renewing: false })
        this.peakWorkers = Math.max(this.peakWorkers, this.claimed.size)
        this.core.addWorker({ id: peer, slots: Math.max(1, offer.cores), attrs: attrsOf(offer), addrs: [] })
        this.scheduleRenewal(peer)
        this.workersChanged(true)
        return
      }
      const code = o.error.code
      if (code === 'YIELDING') { this.asked.set(peer, now + PROMISE_WAIT_MS); return }
      this.asked.delete(peer)
      const failures = (this.dialFailures.get(peer) ?? 0) + 1
      if (code === 'UNREACHABLE' || code === 'TIMEOUT') this.dialFailures.set(peer, failures)
      this.refusedUntil.set(peer, now + retryAfterMs(code, failures))
    })
  }

  private scheduleRenewal (peer: string): void {
    this.world.clock.after(Math.max(250, this.spec.leaseSec * 1000 / 4), () => {
      if (!this.claimed.has(peer)) return
      this.renew(peer)
      this.scheduleRenewal(peer)
    })
  }

  private renew (peer: string): void {
    const w = this.claimed.get(peer)
    if (w === undefined) return
    const leaseMs = this.spec.leaseSec * 1000
    if (this.now - w.lastRenewed >= leaseMs) { this.drop(peer, 'no renewal within a lease'); return }
    if (w.renewing) return
    w.renewing = true
    const sentAt = this.now
    const attempts = this.core.attemptsOn(peer).slice(0, MAX_HELD_ATTEMPTS)
    this.world.transport.call(this.spec.id, peer, { op: 'renew', run: this.spec.runId, attempts }, o => {
      w.renewing = false
      const now = this.now
      if (!o.ok) {
        if (o.error.code === 'NOT_CLAIMED' || now - w.lastRenewed >= leaseMs) this.drop(peer, `${o.error.code}: ${o.error.message}`)
        return
      }
      w.lastRenewed = now
      if (o.reply.attempts !== undefined && this.claimed.has(peer)) this.core.heldBy(peer, o.reply.attempts, sentAt, now, ASSIGNMENT_GRACE_MS)
      if (this.claimed.has(peer) && letGoNow(o.reply, this.core.attemptsOn(peer).length)) this.letGo(peer, 'it leaves this run for a fairer share')
    })
  }

  private letGo (peer: string, why: string): void {
    this.claimed.delete(peer)
    this.core.removeWorker(peer, why)
    this.release(peer)
    this.workersChanged(false)
  }

  private drop (peer: string, why: string): void {
    if (!this.claimed.delete(peer)) return
    this.refusedUntil.set(peer, this.now + 5000)
    this.world.grants.ended(peer, this.spec.id)
    this.core.removeWorker(peer, why)
    this.workersChanged(false)
  }

  /** the hold ends when the release is sent */
  private release (peer: string): void {
    this.world.grants.ended(peer, this.spec.id)
    this.world.transport.call(this.spec.id, peer, { op: 'release', run: this.spec.runId }, () => {})
  }

  /** Recruiter.onWorkersChanged, and the run's start once it has workers.min */
  private workersChanged (joined: boolean): void {
    const core = this.core
    if (!this.running && this.claimed.size >= this.spec.dag.workers.min) {
      this.running = true
      core.replan()
      core.held = false
      core.reconcile('run starts')
    } else if (core.aliveWorkers().length > 0) {
      core.replan()
      if (joined) core.reconcile('workers changed')
    }
    this.notify()
  }

  // ---- serving pulls (middleware-adapters/xtremweb) --------------------------------

  pull (worker: string, req: SimPull, reply: (r: SimPullReply | BgridError) => void): void {
    if (req.run !== this.spec.runId) { reply(new BgridError('NOT_FOUND', `this coordinator runs ${this.spec.runId}, not ${req.run}`)); return }
    if (!this.claimed.has(worker)) { reply(new BgridError('UNAUTHORISED', 'not a claimed worker of this run')); return }
    const core = this.core
    const now = this.now
    const reported = new Set<string>()
    for (const r of req.results) {
      reported.add(r.attempt)
      core.complete(worker, r)
    }
    core.reconcileRunning(worker, req.running, reported, now)
    // a newer pull answers the one held for this worker
    const old = this.waiters.get(worker)
    if (old !== undefined) { this.waiters.delete(worker); old.reply({ jobs: [], done: this.closing }) }
    const jobs = core.assign(worker, req.want, now)
    if (req.results.length > 0) this.afterResults()
    if (jobs.length > 0 || req.want <= 0 || req.results.length > 0 || this.closing || core.finished()) {
      reply({ jobs, done: this.closing || core.finished() })
      return
    }
    // long poll: held until work appears, or PULL_WAIT_MS
    const w: Waiter = { want: req.want, reply, gen: ++this.waiterGen }
    this.waiters.set(worker, w)
    this.recheck(worker, w, now + PULL_WAIT_MS)
  }

  private recheck (worker: string, w: Waiter, deadline: number): void {
    // time alone can make a job assignable only when one is ready (a back-off after missing inputs)
    const at = this.core.ready.size > 0 ? Math.min(deadline, this.now + RECHECK_MS) : deadline
    this.world.clock.at(at, () => {
      if (this.waiters.get(worker) !== w) return
      if (this.tryWaiter(worker, w)) return
      if (this.now >= deadline) { this.waiters.delete(worker); w.reply({ jobs: [], done: this.closing }); return }
      this.recheck(worker, w, deadline)
    })
  }

  private tryWaiter (worker: string, w: Waiter): boolean {
    const done = this.closing || this.core.finished()
    const jobs = done ? [] : this.core.assign(worker, w.want, this.now)
    if (jobs.length === 0 && !done) return false
    this.waiters.delete(worker)
    w.reply({ jobs, done })
    return true
  }

  /** jobs became ready or workers changed: held pulls look again */
  private notify (): void {
    for (const [worker, w] of [...this.waiters]) this.tryWaiter(worker, w)
  }

  private afterResults (): void {
    if (this.core.finished()) { this.end(); return }
    this.notify()
  }

  /** the run is over: every claim released (Recruiter.releaseAll) */
  private end (failure?: string): void {
    if (this.over) return
    this.finishedAt = this.now
    if (failure !== undefined) this.failure = failure
    this.closing = true
    this.notify()
    for (const peer of [...this.claimed.keys()]) {
      this.claimed.delete(peer)
      this.release(peer)
    }
  }

  /** every job done */
  get completed (): boolean { return this.core.counts().done === this.core.jobs.size }
}

function fakeHash (s: string): string {
  let h = 0
  for (let i = 0; i < s.length; i++) h = (Math.imul(h, 31) + s.charCodeAt(i)) | 0
  return (h >>> 0).toString(16).padStart(8, '0').repeat(8)
}
