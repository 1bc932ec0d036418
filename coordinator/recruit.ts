// Recruiting and leases: which idle nodes this run claims (select.ts ranks them; nodes
// that hold this run's blobs and nodes that can run a job no claimed worker can come
// first), the claims themselves, their renewal, and losing a worker. Every node seen is
// accounted for: why it is, or is not, a worker of this run.
import { peerIdFromString, peerIdFromPrivateKey } from '@libp2p/peer-id'
import { peerAddr, listenAddrs } from '../protocol/node.ts'
import { call } from '../protocol/rpc.ts'
import {
  claimSpec, signClaim, PROTOCOL_VERSION, CLAIM_PROTOCOL, ASSIGNMENT_GRACE_MS, MAX_HELD_ATTEMPTS, type WorkerOffer, type ClaimReply
} from '../protocol/claim.ts'
import { BgridError, errorMessage } from '../protocol/errors.ts'
import { NodeBrowser, type DiscoveredNode } from '../protocol/dnssd.ts'
import type { submitterKey } from '../protocol/identity.ts'
import type { Dag, JobSpec, JobState } from './core/model.ts'
import { selectWorkers, attrsOf, type Candidate, type Refusal } from './core/select.ts'
import { accountNodes, summariseAccounts, type NodeAccount } from './why.ts'
import { jobFits, type NodeShape } from './core/feasibility.ts'
import { evalBool, type Expr } from '../protocol/expr.ts'
import { parseStart, type NodeStart } from '../protocol/start.ts'
import type { RunContext } from './run-context.ts'
import { bestEffort } from '../protocol/best-effort.ts'
import { DEFAULT_TENURE_MS } from '../protocol/fair-share.ts'
import { pickAsks, notToAsk, idleToTake, MAX_CLAIMS_IN_FLIGHT } from './share-asks.ts'

export interface ClaimedWorker {
  id: string, candidate: Candidate, offer: WorkerOffer, renewTimer?: NodeJS.Timeout
  /** when its lease was last renewed (or granted): it is lost once a lease has passed since */
  lastRenewed: number
  renewing?: boolean
}

export interface RecruitOptions {
  /** the submitter's persistent identity: it signs every claim of this run */
  submitter: Awaited<ReturnType<typeof submitterKey>>
  /** this run's grid key fingerprint: a node in another grid is told apart from one unreachable */
  gridId?: string
}

/** START policies seen, parsed once each (null: it does not parse here; the node still checks it itself) */
const starts = new Map<string, Expr | null>()

/** A node's START (its source, advertised or offered), parsed and bound to the run's submitter. */
export function startOf (source: string | undefined, owner: string | undefined): NodeStart | undefined {
  if (source === undefined) return undefined
  let expr = starts.get(source)
  if (expr === undefined) {
    try { expr = parseStart(source) } catch { expr = null }
    if (starts.size >= 1000) starts.clear()
    starts.set(source, expr)
  }
  return expr === null ? undefined : { expr, ...(owner !== undefined ? { owner } : {}) }
}

export function shapeOf (c: Candidate, owner?: string): NodeShape {
  const start = startOf(c.ad.start, owner)
  return { name: c.name, slots: Math.max(1, c.ad.cores), attrs: attrsOf(c.ad), ...(start !== undefined ? { start } : {}) }
}

/** a claimed worker, as it offered itself */
function offerShape (name: string, offer: WorkerOffer, owner: string | undefined): NodeShape {
  const start = startOf(offer.start, owner)
  return { name, slots: Math.max(1, offer.cores), attrs: attrsOf(offer), ...(start !== undefined ? { start } : {}) }
}

/**
 * Workers a run could use now (pure): one more per job waiting for a slot, up to
 * workers.max. Before its first worker nothing is ready yet: its jobs without parents
 * (`roots`) are what it could start with.
 */
export function workersWanted (o: {
  claimed: number, slots: number, counts: Record<JobState, number>, workers: { min: number, max: number }, roots: () => number
}): number {
  const waiting = o.claimed === 0 ? Math.max(o.workers.min, o.roots()) : o.counts.ready + o.counts.running
  return Math.min(o.workers.max, o.claimed + Math.max(0, waiting - o.slots))
}

/** how many jobs no other job comes before: what a run can start with (pure) */
export function rootJobCount (dag: Pick<Dag, 'jobs' | 'children'>): number {
  const children = new Set([...dag.children.values()].flat())
  return dag.jobs.filter(j => !children.has(j.id)).length
}

/**
 * How long before a node that refused a claim is tried again (pure). BUSY: after a
 * tenure. An idle node refused because another run took it a moment before (several
 * users submitting at once) may be asked for a fair share once its tenure there is over;
 * an ask refused (the node stays with its run for its tenure, or leaves it for another
 * asker and is kept for that one) is repeated then too, the next node in line asked
 * meanwhile. Waiting longer left a run that lost the first races with one worker for
 * seconds while another held seven. OWNER: 3 s (sooner when it says it is idle); other
 * refusals later (10 s).
 */
export function retryAfterMs (code: string, failures = 1): number {
  if (code === 'BUSY') return BUSY_RETRY_MS
  // unreachable: after 1, 2, 4.. s in a row (a loaded LAN answers late), up to 10 s
  if (code === 'OWNER') return 3000
  if (code === 'UNREACHABLE' || code === 'TIMEOUT') return Math.min(10_000, 500 * 2 ** failures)
  return 10_000
}
/**
 * A node that refused BUSY is tried again after this: it joined a run less than a tenure
 * ago (or is leaving for one), and may be asked for a share once the tenure is over.
 */
export const BUSY_RETRY_MS = DEFAULT_TENURE_MS

/**
 * A renewal said the worker is retiring (fair sharing): its coordinator lets go once
 * nothing it ran there is unreported.
 */
export function letGoNow (reply: Pick<ClaimReply, 'retiring'>, attemptsOut: number): boolean {
  return reply.retiring === true && attemptsOut === 0
}

export class Recruiter {
  readonly claimed = new Map<string, ClaimedWorker>()
  /** every node seen during this run (its latest advertisement): what "can any node ever run it?" is judged on */
  readonly seenEver = new Map<string, Candidate>()
  private readonly ctx: RunContext
  private readonly o: RecruitOptions
  private readonly refusedUntil = new Map<string, number>()
  /** why each node not claimed refused us last (or could not be reached): part of every "why" */
  private readonly refusals = new Map<string, Refusal>()
  private readonly claiming = new Set<string>()
  /** claims that found a node unreachable in a row, per node (their backoff doubles) */
  private readonly dialFailures = new Map<string, number>()
  /**
   * nodes of other runs asked to come over (fair sharing), until when we wait for them:
   * one that said YIELDING finishes its job there, then is kept for this run
   */
  private readonly asked = new Map<string, number>()
  private browser?: NodeBrowser
  private recruitTimer?: NodeJS.Timeout
  private lastWaitNote = 0
  /** the nodes as they were accounted for when the run ended (discovery has stopped since) */
  private finalAccounts?: NodeAccount[]

  /** the submitter's `bgrid id`: what nodes' START policies see as the job's Owner */
  private readonly owner: string

  constructor (ctx: RunContext, o: RecruitOptions) {
    this.ctx = ctx
    this.o = o
    this.owner = peerIdFromPrivateKey(o.submitter).toString()
  }

  /** Browse for idle nodes and claim as they come (and every second); resuming, wait a while for previous holders. */
  start (resume: boolean): void {
    const { node, opts } = this.ctx
    node.addEventListener('peer:disconnect', (ev) => {
      const w = this.claimed.get(ev.detail.toString())
      if (w !== undefined) this.renew(w).catch(err => { bestEffort('this.renew()', err) })
    })
    this.browser = new NodeBrowser({ interface: opts.mdnsInterface, requeryMs: 2000 })
    const onNode = (n: DiscoveredNode): void => {
      this.seenEver.set(n.ad.peer, n)
      if (n.ad.state !== 'idle') return
      // a node that was busy or its owner's is worth asking again the moment it says it is idle
      const refused = this.refusals.get(n.ad.peer)?.code
      if (refused === 'BUSY' || refused === 'OWNER') this.refusedUntil.delete(n.ad.peer)
      this.recruitSafely()
    }
    this.browser.on('up', onNode)
    this.browser.on('update', onNode)
    this.browser.start()
    this.recruitTimer = setInterval(() => { this.recruitSafely() }, 1000)
    if (resume) this.startGrace()
    this.lastWaitNote = Date.now() // say we wait only once discovery has had a moment
  }

  /** No more claims. */
  /**
   * Until the run has its workers.min, for --wait at most (NO_WORKERS says why), or `done()`.
   * A patient wait (an open run that had workers and lost them all) waits on (its jobs stay
   * queued, as HTCondor's idle jobs do until machines come back), saying why every --wait.
   */
  async waitForWorkers (done: () => boolean, patient: boolean, sleep: (ms: number) => Promise<void>): Promise<void> {
    let deadline = Date.now() + this.ctx.opts.waitSec * 1000
    while (this.claimed.size < this.ctx.dag.workers.min) {
      if (done()) return
      if (Date.now() >= deadline) {
        const why = this.noWorkers()
        if (!patient) throw why
        this.ctx.emit({ event: 'warning', message: errorMessage(why) }, `waiting for workers: ${errorMessage(why)}`)
        deadline = Date.now() + this.ctx.opts.waitSec * 1000
      }
      await sleep(Math.min(500, deadline - Date.now()))
    }
  }

  /**
   * Fail the jobs no node seen can ever run, once the grid has been looked at for --wait;
   * again only when the workers or the nodes seen changed (nothing else changes the
   * answer). `seen`: what they were at the last look; returns what they are now.
   */
  failNeverPlaceable (seen: string): string {
    const { core, opts } = this.ctx
    const now = `${core.workersVersion}/${this.seenEver.size}`
    if (now !== seen && Date.now() - this.ctx.startedAt() >= opts.waitSec * 1000) {
      core.failNeverPlaceable(this.possibleNodes())
      return now
    }
    return seen
  }

  /** Plan; refuse early, before any transfer, if a worker cannot hold the inputs planned for it. */
  checkDisk (staged: (bytes: number) => void): void {
    const { core } = this.ctx
    core.replan()
    for (const w of this.claimed.values()) {
      const need = core.stagingBytes(w.id)
      const freeMiB = w.offer.disk
      if (need / 1048576 > freeMiB) {
        throw new BgridError('DISK_FULL', `worker ${w.candidate.name} has ${freeMiB} MiB free but the inputs planned for it need ${Math.ceil(need / 1048576)} MiB: nothing was transferred`)
      }
      staged(need)
    }
  }

  stop (): void {
    clearTimeout(this.graceTimer)
    clearInterval(this.recruitTimer)
  }

  /** The end of the run: discovery stops (the nodes accounted for as they were), every claim is released. */
  async releaseAll (): Promise<void> {
    if (this.browser !== undefined) this.finalAccounts = this.nodeAccounts()
    await this.browser?.stop()
    // give pulling workers a moment to hear `done`, then release every claim
    const releases = [...this.claimed.values()].map(async w => {
      clearInterval(w.renewTimer)
      // the daemon frees the node before it answers, and may grant it to another coordinator
      // before that answer arrives here: the hold ends when the release was sent
      const requestedAt = Date.now()
      await this.releaseOne(w.id)
      this.ctx.emit({ event: 'worker', worker: w.id, name: w.candidate.name, state: 'released', requestedAt })
    })
    await Promise.all(releases)
    this.claimed.clear()
  }

  /** discovery has started (nodes are being accounted for) */
  get browsing (): boolean { return this.browser !== undefined }

  private candidates (): Candidate[] {
    const now = Date.now()
    return (this.browser?.list() ?? []).filter(n => !this.claimed.has(n.ad.peer) && !this.claiming.has(n.ad.peer) && (this.refusedUntil.get(n.ad.peer) ?? 0) < now)
  }

  /** Nodes holding some of this run's blobs (after a resume: caches with our outputs). */
  private blobHolders (): Set<string> {
    const holders = new Set<string>()
    for (const b of this.ctx.core.blobs.values()) for (const h of b.holders) holders.add(h)
    return holders
  }

  /** recruit() from a timer or a discovery event: a bug there is logged, never the end of the run */
  private recruitSafely (): void {
    try { this.recruit() } catch (err) { this.ctx.log.warn('recruiting failed', { err: errorMessage(err) }) }
  }

  recruit (): void {
    if (this.ctx.isClosing()) return
    const { dag, node } = this.ctx
    const room = dag.workers.max - this.claimed.size - this.claiming.size
    const uncovered = this.uncoveredJobs()
    // at workers.max, only a node that can run a job no claimed worker can is taken (one
    // at a time): workers.max bounds the workers taken for any job, not the one a job needs
    if (room <= 0 && (uncovered.length === 0 || this.claiming.size > 0 || this.claimed.size === 0)) return
    const sel = selectWorkers(this.candidates(), dag.requirements, dag.rank, { self: node.peerId.toString() })
    // holders of this run's blobs first; resuming, for a moment, only them (their caches
    // spare re-running finished jobs), so that others seen first do not take their places
    const holders = this.blobHolders()
    const holding = sel.ranked.filter(c => holders.has(c.ad.peer))
    const onlyHolders = this.awaitedHolders !== undefined && Date.now() - this.ctx.startedAt() < 3000
    // nodes that can run a waiting job no claimed worker can run come first: a job
    // only some nodes can run waits for one of them rather than for luck
    const covers = (c: Candidate): boolean => uncovered.some(spec => jobFits(spec, shapeOf(c, this.owner)))
    const rest = sel.ranked.filter(c => !holders.has(c.ad.peer))
    const chosen = room <= 0 ? (onlyHolders ? [] : rest.filter(covers).slice(0, 1))
      : onlyHolders ? holding : [...holding, ...rest.filter(covers), ...rest.filter(c => !covers(c))]
    const me = node.peerId.toString()
    const grid = (this.browser?.list() ?? []).filter(n => n.ad.grid === this.o.gridId && n.ad.peer !== me)
    const asker = {
      run: this.ctx.runId, coordinator: me, submitter: this.owner, priority: this.priority,
      held: this.claimed.size, pending: 0, want: dag.workers.max, claiming: this.claiming.size
    }
    const taking = chosen.slice(0, idleToTake(grid, asker, room, this.lastTaken, Date.now()))
    if (taking.length > 0) this.lastTaken = Date.now()
    for (const c of taking) this.claim(c).catch(err => { bestEffort('this.claim()', err) })
    if (taking.length === 0 && !onlyHolders) this.askForShare()
    if (this.claimed.size < dag.workers.min && Date.now() - this.lastWaitNote > 3000) {
      this.lastWaitNote = Date.now()
      const why = summariseAccounts(this.nodeAccounts())
      this.ctx.emit({ event: 'waiting-for-workers', claimed: this.claimed.size, min: dag.workers.min, seen: this.browser?.list().length ?? 0, why, nodes: this.nodeAccounts() },
        `waiting for workers: ${this.claimed.size}/${dag.workers.min} claimed, ${this.browser?.list().length ?? 0} node(s) seen${why.length > 0 ? '\n  ' + why.join('\n  ') : ''}`)
    }
  }

  private lastTaken = 0
  /** this run's priority among concurrent runs (fair sharing) */
  get priority (): number { return this.ctx.opts.priority ?? this.ctx.dag.priority ?? 0 }

  /**
   * Workers this run could use now: one more per job waiting for a slot, up to
   * workers.max. Before its first worker nothing is ready yet: its jobs without parents
   * are what it could start with.
   */
  private want (): number {
    const { core, dag } = this.ctx
    let slots = 0
    for (const w of this.claimed.values()) slots += Math.max(1, w.offer.cores)
    const roots = (): number => this.roots()
    return workersWanted({ claimed: this.claimed.size, slots, counts: core.counts(), workers: dag.workers, roots })
  }

  private rootCount?: number
  private roots (): number { return (this.rootCount ??= rootJobCount(this.ctx.dag)) }

  /**
   * No idle node to take and jobs waiting for a slot: ask nodes of other runs to come over,
   * as many as the fair share allows (share-asks.ts). Nodes that said YIELDING are asked
   * again until they are ours or the wait ends.
   */
  private askForShare (): void {
    const now = Date.now()
    for (const [peer, until] of this.asked) if (until < now || this.claimed.has(peer)) this.asked.delete(peer)
    const want = this.want()
    if (want <= this.claimed.size && this.asked.size === 0) return
    const nodes = (this.browser?.list() ?? []).filter(n => n.ad.grid === this.o.gridId && n.ad.peer !== this.ctx.node.peerId.toString() &&
      (this.ctx.dag.requirements === null || evalBool(this.ctx.dag.requirements, attrsOf(n.ad))))
    // the promised ones first: a node kept for this run waits for our claim
    for (const n of nodes) if (this.asked.has(n.ad.peer) && !this.claiming.has(n.ad.peer) && !this.claimed.has(n.ad.peer)) this.claim(n, true).catch(err => { bestEffort('this.claim()', err) })
    const asks = pickAsks(nodes, {
      run: this.ctx.runId, coordinator: this.ctx.node.peerId.toString(), submitter: this.owner, priority: this.priority,
      held: this.claimed.size, pending: this.asked.size + this.claiming.size, want
    }, notToAsk(this.asked.keys(), this.claiming, this.refusedUntil, now))
    for (const c of asks.slice(0, Math.max(0, MAX_CLAIMS_IN_FLIGHT - this.claiming.size))) {
      this.asked.set(c.ad.peer, now + 5000)
      this.ctx.emit({ event: 'share-ask', worker: c.ad.peer, name: c.name, from: c.ad.run ?? '', held: this.claimed.size, want })
      this.claim(c, true).catch(err => { bestEffort('this.claim()', err) })
    }
  }

  /** Specs of the jobs still to run that no claimed worker can run. */
  private uncoveredJobs (): JobSpec[] {
    const { core } = this.ctx
    return core.unplaceable().map(u => core.jobs.get(u.job)?.spec).filter(s => s !== undefined)
  }

  /** Every node seen now, each with the one reason it is or is not a worker of this run. */
  nodeAccounts (): NodeAccount[] {
    if (this.finalAccounts !== undefined) return this.finalAccounts
    return accountNodes({
      nodes: this.browser?.list() ?? [], claimed: new Set(this.claimed.keys()), refusals: this.refusals,
      requirements: this.ctx.dag.requirements, gridId: this.o.gridId, self: this.ctx.node.peerId.toString()
    })
  }

  /**
   * Nodes that could ever be workers of this run: seen at some point, in our grid, and
   * meeting the run's requirements (busy or in their owner's hands for now: they may come back).
   */
  possibleNodes (): NodeShape[] {
    const self = this.ctx.node.peerId.toString()
    const requirements = this.ctx.dag.requirements
    const out: NodeShape[] = []
    for (const c of this.seenEver.values()) {
      if (c.ad.peer === self || c.ad.grid !== this.o.gridId) continue
      const w = this.claimed.get(c.ad.peer)
      const shape = w !== undefined ? offerShape(c.name, w.offer, this.owner) : shapeOf(c, this.owner)
      if (requirements !== null && !evalBool(requirements, shape.attrs)) continue
      out.push(shape)
    }
    return out
  }

  /** Every node seen, as a job's fit is judged on it: claimed workers as they offered themselves. */
  nodeShapes (): Map<string, NodeShape> {
    const shapes = new Map<string, NodeShape>()
    for (const c of this.seenEver.values()) shapes.set(c.ad.peer, shapeOf(c, this.owner))
    for (const w of this.claimed.values()) shapes.set(w.id, offerShape(w.candidate.name, w.offer, this.owner))
    return shapes
  }

  nameOf (peer: string): string {
    return this.claimed.get(peer)?.candidate.name ?? this.seenEver.get(peer)?.name ?? `…${peer.slice(-8)}`
  }

  /** Claim a node; `ask`: it may work for another run, which it may leave for ours (fair sharing). */
  private async claim (c: Candidate, ask = false): Promise<void> {
    const { node, runId, dag, opts, core } = this.ctx
    const peer = c.ad.peer
    if (this.claiming.has(peer)) return
    this.claiming.add(peer)
    try {
      const addrs = c.addresses.map(a => peerAddr(a, c.ad.port, peer))
      const reply = await call(node, addrs, claimSpec, {
        op: 'claim', v: PROTOCOL_VERSION, run: runId, leaseMs: opts.leaseSec * 1000, addrs: listenAddrs(node).slice(0, 16),
        // the worker-side driver: BOINC-style jobs pull as native ones do, the name says what the run expects
        middleware: dag.jobs.some(j => j.verify !== null) ? 'boinc' : 'native',
        submitter: await signClaim(this.o.submitter, runId, node.peerId.toString(), peer),
        ...(this.priority !== 0 ? { priority: this.priority } : {}),
        ...(ask ? { held: this.claimed.size } : {})
      }, { timeoutMs: 5000 })
      this.asked.delete(peer)
      if (this.ctx.isClosing()) { await this.releaseOne(peer); return }
      const offer = reply.offer ?? { ...c.ad }
      // never trust an advertisement alone: check the fresh offer against the requirements
      if (dag.requirements !== null && !evalBool(dag.requirements, attrsOf(offer))) {
        this.ctx.log.info('node no longer meets the requirements', { node: c.name })
        await this.releaseOne(peer)
        this.refusedUntil.set(peer, Date.now() + 30_000)
        return
      }
      this.dialFailures.delete(peer)
      const w: ClaimedWorker = { id: peer, candidate: c, offer, lastRenewed: Date.now() }
      this.claimed.set(peer, w)
      this.refusals.delete(peer)
      // its host: the addresses it is advertised at (daemons sharing a machine share them)
      const host = [...new Set(c.addresses)].sort().join(',')
      const start = startOf(offer.start, this.owner)
      core.addWorker({ id: peer, slots: Math.max(1, offer.cores), attrs: attrsOf(offer), addrs: addrs.map(String), ...(host !== '' ? { host } : {}), ...(start !== undefined ? { start } : {}) })
      // a tick a quarter lease: a silent worker is found lost at most a quarter lease late
      w.renewTimer = setInterval(() => { this.renew(w).catch(err => { bestEffort('this.renew()', err) }) }, Math.max(250, opts.leaseSec * 1000 / 4))
      this.ctx.emit({ event: 'worker', worker: peer, name: c.name, state: 'claimed', cores: offer.cores, ram: offer.ram, mhz: offer.mhz },
        opts.progress === 'lines' ? `claimed ${c.name} (${offer.cores} cores, ${offer.ram} MiB)` : undefined)
      this.onWorkersChanged(true)
    } catch (err) {
      let code = err instanceof BgridError ? err.code : 'ERROR'
      let message = err instanceof Error ? err.message : String(err)
      // it finishes its job for another run, then is kept for this one: asked again until then
      if (code === 'YIELDING') {
        const first = (this.asked.get(peer) ?? 0) < Date.now() + 5000
        this.asked.set(peer, Date.now() + 30_000)
        if (first) this.ctx.emit({ event: 'share-promised', worker: peer, name: c.name, message })
        return
      }
      this.asked.delete(peer)
      const failures = (this.dialFailures.get(peer) ?? 0) + 1
      if (code === 'UNREACHABLE' || code === 'TIMEOUT') this.dialFailures.set(peer, failures)
      // a node of another bgrid version does not speak this claim protocol at all
      if (/Protocol selection failed/i.test(message)) { code = 'VERSION'; message = `it runs another version of bgrid (it does not speak ${CLAIM_PROTOCOL})` }
      this.refusedUntil.set(peer, Date.now() + retryAfterMs(code, failures))
      const before = this.refusals.get(peer)
      this.refusals.set(peer, { name: c.name, code, message })
      if (before?.code !== code) this.ctx.emit({ event: 'refused', worker: peer, name: c.name, code, message })
      this.ctx.log.debug('claim refused', { node: c.name, code, message: errorMessage(err) })
    } finally {
      const windowWasFull = this.claiming.size >= MAX_CLAIMS_IN_FLIGHT
      this.claiming.delete(peer)
      // the next claim goes out as soon as one of those in flight is answered
      if (windowWasFull && !this.ctx.isClosing()) this.recruitSafely()
    }
  }

  /**
   * Renew a worker's lease (every lease/3). A worker is lost once a whole lease has
   * passed since its last good renewal, as its daemon also judges us: checked on every
   * tick, whether the renewals fail fast or hang.
   */
  private async renew (w: ClaimedWorker): Promise<void> {
    if (!this.claimed.has(w.id)) return
    const { opts } = this.ctx
    const leaseMs = opts.leaseSec * 1000
    if (Date.now() - w.lastRenewed >= leaseMs) { this.dropWorker(w.id, `no renewal for ${Math.round((Date.now() - w.lastRenewed) / 100) / 10} s (lease ${opts.leaseSec} s)`); return }
    if (w.renewing === true) return
    w.renewing = true
    try {
      const sentAt = Date.now()
      const attempts = this.ctx.core.attemptsOn(w.id).slice(0, MAX_HELD_ATTEMPTS)
      const reply = await call(this.ctx.node, peerIdFromString(w.id), claimSpec, { op: 'renew', run: this.ctx.runId, attempts }, { timeoutMs: Math.max(300, leaseMs - (Date.now() - w.lastRenewed)) })
      w.lastRenewed = Date.now()
      // alive is not enough: an attempt the worker should hold and does not is re-queued now
      if (reply.attempts !== undefined && this.claimed.has(w.id)) this.ctx.core.heldBy(w.id, reply.attempts, sentAt, Date.now(), ASSIGNMENT_GRACE_MS)
      // it leaves for a fairer share: let go once everything it ran is reported
      const out = this.ctx.core.attemptsOn(w.id).length
      if (this.claimed.has(w.id) && letGoNow(reply, out)) await this.letGo(w, 'it leaves this run for a fairer share')
    } catch (err) {
      const code = err instanceof BgridError ? err.code : 'ERROR'
      // NOT_CLAIMED: the worker dropped us (lease ran out, restart, owner vacate): lost at once
      if (code === 'NOT_CLAIMED' || Date.now() - w.lastRenewed >= leaseMs) this.dropWorker(w.id, `${code}: ${errorMessage(err)}`)
    } finally {
      w.renewing = false
    }
  }

  /** Release one worker before the run ends (nothing of ours on it): the hold ends when the release is sent. */
  private async letGo (w: ClaimedWorker, why: string): Promise<void> {
    clearInterval(w.renewTimer)
    this.claimed.delete(w.id)
    this.ctx.core.removeWorker(w.id, why)
    const requestedAt = Date.now()
    await this.releaseOne(w.id)
    this.ctx.emit({ event: 'worker', worker: w.id, name: w.candidate.name, state: 'released', requestedAt, reason: why })
    this.onWorkersChanged(false)
  }

  private dropWorker (id: string, why: string): void {
    const w = this.claimed.get(id)
    if (w === undefined) return
    clearInterval(w.renewTimer)
    this.claimed.delete(id)
    this.refusedUntil.set(id, Date.now() + 5000)
    const lost = this.ctx.core.removeWorker(id, why)
    this.ctx.emit({ event: 'worker', worker: id, name: w.candidate.name, state: 'lost', reason: why, jobsRescheduled: lost },
      `worker ${w.candidate.name} lost (${why}); ${lost.length} job(s) rescheduled`)
    this.onWorkersChanged(false)
  }

  /**
   * Re-plan for the new set of workers. A worker that left was reconciled by the core
   * already; one that joined may hold outputs a resumed run needs, so reconcile then:
   * done jobs whose needed outputs no live node holds are made again.
   */
  private onWorkersChanged (joined: boolean): void {
    const { core } = this.ctx
    if (core.aliveWorkers().length > 0) {
      core.replan()
      if (joined && this.settled()) core.reconcile('workers changed')
      // resuming: jobs whose inputs a returning holder brings may start; nothing is judged lost yet
      else if (joined) core.promote()
    }
    this.ctx.notify()
    this.ctx.wake()
  }

  /**
   * Resuming, the journal says which workers hold the outputs of finished jobs. Until
   * each of them has been claimed again (or a lease and 5 s have passed: enough for a
   * holder whose claim died with the old coordinator to be offered again), nothing is
   * declared lost: a finished job whose outputs are still held anywhere is never re-run.
   */
  private awaitedHolders?: Set<string>
  private graceTimer?: NodeJS.Timeout

  settled (): boolean {
    if (this.awaitedHolders === undefined) return true
    if (![...this.awaitedHolders].every(h => this.claimed.has(h))) return false
    this.endGrace('every previous holder is back')
    return true
  }

  private startGrace (): void {
    const holders = this.blobHolders()
    holders.delete(this.ctx.node.peerId.toString())
    if (holders.size === 0) return
    this.awaitedHolders = holders
    this.graceTimer = setTimeout(() => {
      this.endGrace('previous holders not back in time')
      this.ctx.core.reconcile('resume: previous holders not back in time')
      this.ctx.notify()
      this.ctx.wake()
    }, this.ctx.opts.leaseSec * 1000 + 5000)
  }

  private endGrace (why: string): void {
    if (this.awaitedHolders === undefined) return
    const missing = [...this.awaitedHolders].filter(h => !this.claimed.has(h))
    this.awaitedHolders = undefined
    clearTimeout(this.graceTimer)
    this.ctx.emit({ event: 'resume-settled', reason: why, missingHolders: missing }, missing.length > 0 ? `resume: ${missing.length} previous holder(s) not back; what only they held is made again` : undefined)
  }

  private async releaseOne (peer: string): Promise<void> {
    try { await call(this.ctx.node, peerIdFromString(peer), claimSpec, { op: 'release', run: this.ctx.runId }, { timeoutMs: 3000 }) } catch (err) { bestEffort('call()', err) }
  }

  /** Out of patience for workers.min: every node seen accounted for, and what to change. */
  noWorkers (): BgridError {
    const { dag, opts } = this.ctx
    const accounts = this.nodeAccounts()
    const why = summariseAccounts(accounts)
    const seen = accounts.length
    const fixes: string[] = []
    const have = this.claimed.size
    if (have > 0) fixes.push(`lower workers.min in the DAG to ${have} (the run then starts on the workers it has)`)
    if (accounts.some(a => a.cause === 'busy' || a.cause === 'owner' || a.cause === 'untried')) fixes.push(`wait longer for busy nodes: --wait ${Math.max(60, opts.waitSec * 4)}`)
    if (accounts.some(a => a.cause === 'grid-key')) fixes.push('give the grid\'s key with --grid-key')
    if (accounts.some(a => a.cause === 'requirements')) fixes.push('loosen the DAG\'s requirements')
    if (accounts.some(a => a.cause === 'refused' && /^(POLICY|UNAUTHORISED)/.test(a.detail))) fixes.push('ask the owners of the nodes that refused to allow your submitter id (`bgrid id` prints it; daemons take --allow-coordinator)')
    if (seen === 0) fixes.push('start `bgrid daemon` on the machines to use (`bgrid peers` lists the nodes seen on this network)')
    return new BgridError('NO_WORKERS', `only ${have} of ${dag.workers.min} worker(s) claimed after ${opts.waitSec}s; ${seen} node(s) seen${why.length > 0 ? ':\n  ' + why.join('\n  ') : ''}\nTo run: ${fixes.join('; or ')}.`, { nodes: accounts })
  }
}
