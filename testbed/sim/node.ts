// A simulated volunteer node: the real daemon's claim logic (daemon/claim-book.ts
// ClaimBook and answerClaim, with fair sharing's shouldMove inside), the real node state
// table (daemon/node-state.ts next), and the glue daemon/daemon.ts wraps around them,
// re-enacted with no I/O: the claim handler, lease expiry, retiring for a fairer share
// (no new job, the running ones finish, then the coordinator lets go or the node
// releases itself after selfReleaseAfterMs), and a worker session that pulls jobs and
// "runs" each for its recorded runtime in virtual time. Dedicated machines: always
// available, no owner. Contract: made with its name and slots; answers the claim
// protocol through the world's transport; `illegal` counts state changes the table
// refused (0 expected). Imports protocol/, daemon/ (pure parts) and the sim's leaves.
import { createHash } from 'node:crypto'
import { ClaimBook, answerClaim, selfReleaseAfterMs, type Claim } from '../../daemon/claim-book.ts'
import { next, type NodeEvent } from '../../daemon/node-state.ts'
import type { NodeState } from '../../protocol/node-states.ts'
import { DEFAULT_TENURE_MS } from '../../protocol/fair-share.ts'
import { PROTOCOL_VERSION, DEFAULT_MIDDLEWARE, type ClaimReply, type ClaimRequest, type HeldAttempt, type WorkerOffer } from '../../protocol/claim.ts'
import { BgridError } from '../../protocol/errors.ts'
import { TXT_VERSION, type NodeAd } from '../../protocol/txt.ts'
import { unranResult, PULL_RETRY_FIRST_MS, nextPullRetryMs, type Assignment, type AttemptResult } from '../../protocol/jobs.ts'
import { DEFAULT_MAX_RETIREMENT_SEC } from '../../daemon/daemon.ts'
import type { SimPullReply, SimWorld } from './types.ts'

interface Running { job: string, startedAt: number, outputs: string[] }

interface Session {
  claim: Claim
  running: Map<string, Running>
  /** results sent or to send, not yet acknowledged by a pull's reply */
  unacked: Map<string, { result: AttemptResult, endedAt: number }>
  usedSlots: number
  inflight: number
  /** the wait before the next pull after one was refused (worker-session.ts's backoff) */
  backoffMs: number
  retryPending: boolean
  retiring: boolean
  over: boolean
}

/** a content address for a simulated output (only its name and uniqueness matter) */
function fakeHash (s: string): string { return createHash('sha256').update(s).digest('hex') }

export class SimNode {
  readonly name: string
  readonly slots: number
  state: NodeState
  readonly book = new ClaimBook()
  /** state changes the node state table refused: a bug if ever > 0 */
  illegal = 0
  private session?: Session
  private readonly world: SimWorld
  private leaseCheckAt = 0

  constructor (name: string, slots: number, world: SimWorld) {
    this.name = name
    this.slots = slots
    this.world = world
    // a dedicated machine (--always-available): offered as soon as the daemon starts
    this.state = next('idle', 'restart-always-available') ?? 'owner'
    world.transport.serve(name, (req, peer) => this.onClaim(req, peer))
    this.advertise()
  }

  private get now (): number { return this.world.clock.now() }

  ad (): NodeAd {
    const ad: NodeAd = { v: TXT_VERSION, state: this.state, peer: this.name, port: 4001, cores: this.slots, mhz: 2000, ram: 8192, disk: 100_000, load: 0, cost: 0, arch: 'x64', os: 'linux' }
    const claim = this.book.current
    if (claim !== undefined) { ad.coord = claim.coordinator; ad.run = claim.run; if (claim.priority !== undefined) ad.prio = claim.priority }
    const promised = this.book.promisedTo(this.now)
    if (promised !== undefined) ad.next = promised
    return ad
  }

  private offer (): WorkerOffer {
    return { cores: this.slots, mhz: 2000, ram: 8192, disk: 100_000, load: 0, cost: 0, arch: 'x64', os: 'linux' }
  }

  private advertise (): void {
    this.world.lan.advertise({ name: this.name, ad: this.ad(), addresses: [`10.${this.name.length}.0.1`] }, this.now)
  }

  /** the daemon's apply(): every change through the table; one it does not declare is refused */
  private apply (event: NodeEvent): boolean {
    const to = next(this.state, event)
    if (to === undefined) { this.illegal++; return false }
    this.state = to
    this.advertise()
    return true
  }

  private onClaim (req: ClaimRequest, peer: string): Omit<ClaimReply, 'ok'> {
    const now = this.now
    if (req.op === 'claim') {
      const middleware = req.middleware ?? DEFAULT_MIDDLEWARE
      if (middleware !== DEFAULT_MIDDLEWARE) throw new BgridError('VERSION', `this node has no driver for middleware "${middleware}" (it has: native)`)
      const d = answerClaim(this.book, peer, req, {
        now, state: this.state, allow: [], version: req.v, supportedVersion: PROTOCOL_VERSION, middleware, priority: req.priority
      }, run => this.world.lan.census.count(run, now, this.name), { prefer: [], tenureMs: DEFAULT_TENURE_MS })
      if (!d.ok) {
        if (d.retire !== undefined) this.retireFor(d.retire)
        throw new BgridError(d.code, d.message)
      }
      if (d.fresh) this.startSession(d.claim)
      this.watchLease()
      return { leaseMs: d.claim.leaseMs, state: this.state, offer: this.offer() }
    }
    if (req.op === 'renew') {
      const d = this.book.renew(peer, req.run, now)
      if (!d.ok) throw new BgridError(d.code, d.message)
      const s = this.session
      const held = s !== undefined && s.claim.run === req.run ? this.held(s) : undefined
      return { leaseMs: d.claim.leaseMs, state: this.state, ...(held !== undefined ? { attempts: held } : {}), ...(d.claim.retiringFor !== undefined ? { retiring: true } : {}) }
    }
    const released = this.book.release(peer, req.run, now)
    if (released === undefined) throw new BgridError('NOT_CLAIMED', `no claim for run ${req.run} by this coordinator`)
    this.endSession('released')
    return { leaseMs: 0, state: this.state }
  }

  /** the daemon's lease check (every 200 ms there): here at the moment the lease would run out */
  private watchLease (): void {
    const cur = this.book.current
    if (cur === undefined || this.leaseCheckAt === cur.expiresAt) return
    this.leaseCheckAt = cur.expiresAt
    this.world.clock.at(cur.expiresAt, () => {
      this.leaseCheckAt = 0
      const expired = this.book.expire(this.now)
      if (expired !== undefined) this.endSession('lease-expired')
      else this.watchLease()
    })
  }

  /** what a renewal's reply names: the attempts held, with their phase */
  private held (s: Session): HeldAttempt[] {
    const now = this.now
    const out: HeldAttempt[] = []
    for (const [attempt, r] of s.running) out.push({ attempt, phase: 'running', forMs: Math.max(0, Math.round(now - r.startedAt)) })
    for (const [attempt, u] of s.unacked) out.push({ attempt, phase: 'reporting', forMs: Math.max(0, Math.round(now - u.endedAt)) })
    return out
  }

  private startSession (claim: Claim): void {
    this.apply('claimed')
    const s: Session = { claim, running: new Map(), unacked: new Map(), usedSlots: 0, inflight: 0, backoffMs: PULL_RETRY_FIRST_MS, retryPending: false, retiring: false, over: false }
    this.session = s
    this.advertise()
    this.pull(s)
  }

  private endSession (event: 'released' | 'lease-expired'): void {
    const s = this.session
    this.session = undefined
    if (s !== undefined) s.over = true
    if (this.state === 'worker') this.apply(event)
    else this.advertise()
    // kept for an asker a while: its `next` goes when the reservation does (the daemon's next advert)
    const kept = this.book.reservation
    if (kept !== undefined) this.world.clock.at(kept.until, () => { this.advertise() })
  }

  /**
   * Leave the claim's run for the one it promised itself to (daemon.ts retireFor): no new
   * job, the running ones finish (preempted past the retirement time); then its
   * coordinator lets go, or the node releases itself a moment later.
   */
  private retireFor (claim: Claim): void {
    const s = this.session
    if (s === undefined || s.claim !== claim) return
    s.retiring = true
    // the LAN counts it for the run it goes to from now (TXT `next`), as daemon.ts readvertises
    this.advertise()
    this.world.clock.after(DEFAULT_MAX_RETIREMENT_SEC * 1000, () => {
      if (this.session !== s || s.running.size === 0) return
      for (const attempt of [...s.running.keys()]) this.end(s, attempt, 'preempted')
    })
    this.whenDrained(s)
  }

  private whenDrained (s: Session): void {
    if (!s.retiring || s.running.size > 0 || s.unacked.size > 0 || s.over) return
    const claim = s.claim
    this.world.clock.after(selfReleaseAfterMs(claim.leaseMs), () => {
      if (this.book.current === claim) this.book.release(claim.coordinator, claim.run, this.now)
      if (this.session === s) this.endSession('released')
    })
  }

  // ---- the worker session: pull, run, report ------------------------------------

  private pull (s: Session): void {
    if (s.over || this.session !== s) return
    const want = s.retiring ? 0 : this.slots - s.usedSlots
    const results = [...s.unacked.values()].map(u => u.result)
    if (want <= 0 && results.length === 0) return
    const target = this.world.coordinator(s.claim.coordinator)
    if (target === undefined) return
    s.inflight++
    const w = this.world
    w.clock.after(w.latency(), () => {
      target.pull(this.name, { run: s.claim.run, want, running: [...s.running.keys()], results }, reply => {
        w.clock.after(w.latency(), () => { this.onPulled(s, results, reply) })
      })
    })
  }

  private onPulled (s: Session, sent: AttemptResult[], reply: SimPullReply | BgridError): void {
    s.inflight--
    if (this.session !== s || s.over) return
    if (reply instanceof BgridError) {
      // the real worker tries again, backing off (a coordinator that has not yet taken
      // in its claim's reply refuses); the claim's release or its lease ends the session
      if (s.retryPending) return
      s.retryPending = true
      const wait = s.backoffMs
      s.backoffMs = nextPullRetryMs(wait)
      this.world.clock.after(wait, () => { s.retryPending = false; if (s.inflight === 0) this.pull(s) })
      return
    }
    s.backoffMs = PULL_RETRY_FIRST_MS
    for (const r of sent) s.unacked.delete(r.attempt)
    for (const a of reply.jobs) this.start(s, a)
    // as worker-session.ts: the run is over for this worker once nothing it holds is left to report
    if (reply.done && s.running.size === 0 && s.unacked.size === 0) s.over = true
    if (s.inflight === 0 && (s.unacked.size > 0 || (!s.retiring && s.usedSlots < this.slots))) this.pull(s)
    this.whenDrained(s)
  }

  private start (s: Session, a: Assignment): void {
    // leaving the run: what still arrives (a long poll sent before) goes back at once (worker-session.ts launch)
    if (s.retiring) {
      s.unacked.set(a.attempt, { result: unranResult(a.attempt, 'preempted', 'preempted before it started: the node leaves the run for a fairer share', this.now), endedAt: this.now })
      this.pull(s)
      return
    }
    const seconds = this.world.coordinator(s.claim.coordinator)?.runtimeOf(a.job) ?? 0
    s.running.set(a.attempt, { job: a.job, startedAt: this.now, outputs: a.outputs })
    s.usedSlots += Math.max(1, a.cores)
    this.world.clock.after(seconds * 1000, () => { this.end(s, a.attempt, 'ok') })
  }

  private end (s: Session, attempt: string, status: 'ok' | 'preempted'): void {
    const r = s.running.get(attempt)
    if (r === undefined || this.session !== s) return
    s.running.delete(attempt)
    s.usedSlots = Math.max(0, s.usedSlots - 1)
    const now = this.now
    const result: AttemptResult = {
      attempt, status, exitCode: status === 'ok' ? 0 : null, signal: null,
      outputs: status === 'ok' ? r.outputs.map(name => ({ name, hash: fakeHash(`${s.claim.run}/${r.job}/${name}`), size: 0 })) : [],
      ...(status === 'preempted' ? { error: 'the node left the run for a fairer share: its retirement time is up' } : {}),
      startedAt: r.startedAt, endedAt: now, inputWaitMs: 0, bytesFetched: 0, cacheHits: 0
    }
    s.unacked.set(attempt, { result, endedAt: now })
    // at once, even with a pull held by the coordinator (its long poll): that one is answered then
    this.pull(s)
  }
}
