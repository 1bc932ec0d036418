// daemon/: one volunteer node, the process a machine's owner runs (`bgrid daemon`): its
// resources and idle policy, the node state table, the claim book, the worker drivers (the
// native worker session), the executor, and containment (cgroups, job users, sandboxes,
// the C job starter).
// Contract of the folder: a node that advertises itself over DNS-SD while it is offered,
// takes one coordinator's claim at a time (the claim protocol, under a lease), runs that
// run's jobs contained through the driver its claim names, serves that run's blobs to the
// run's peers only, and answers the local control socket (status, cache, the node held
// while its owner coordinates a run). Imports protocol/, cache/ and its own files; never
// coordinator/ nor middleware-adapters/: the daemon runs without the coordinator's code.
//
// One volunteer node: measures itself, follows the owner's idle policy, advertises
// over DNS-SD, and serves one coordinator at a time over libp2p.
import path from 'node:path'
import { mkdir, chmod } from 'node:fs/promises'
import { renameSync, readdirSync, mkdirSync } from 'node:fs'
import { spawnSync } from 'node:child_process'
import { removeInBackground } from './sandbox.ts'
import type { PeerId } from '@libp2p/interface'
import { createBgridNode, tcpPort, listenAddrs, type BgridNode } from '../protocol/node.ts'
import { serve } from '../protocol/rpc.ts'
import { claimSpec, legacyClaimSpecs, verifyClaim, PROTOCOL_VERSION, DEFAULT_MIDDLEWARE, ASSIGNMENT_GRACE_MS, type ClaimReply, type ClaimRequest, type WorkerOffer } from '../protocol/claim.ts'
import { BgridError } from '../protocol/errors.ts'
import { tryBestEffort } from '../protocol/best-effort.ts'
import { advertise, hasMulticastRoute, MULTICAST_ROUTE_HINT, type Advertiser } from '../protocol/dnssd.ts'
import { TXT_VERSION, type NodeAd } from '../protocol/txt.ts'
import { openDb, sub, type Db } from '../protocol/db.ts'
import { loadOrCreateIdentity } from '../protocol/identity.ts'
import { readGridKey, gridKeyId } from '../protocol/grid-key.ts'
import { measureStatic, measureDynamic, type Resources } from './resources.ts'
import { next, type NodeEvent } from './node-state.ts'
import { isNodeState, type NodeState } from '../protocol/node-states.ts'
import { DEFAULT_IDLE_POLICY, initialPolicyState, stepIdlePolicy, type IdlePolicyConfig, type PolicyState } from './idle-policy.ts'
import { OwnerLoadMeter, userIdleSeconds, activitySource } from './activity.ts'
import { ClaimBook, answerClaim, selfReleaseAfterMs, type Claim } from './claim-book.ts'
import { announcement } from './advert-policy.ts'
import { RunCensus } from '../protocol/census.ts'
import { sleep } from '../protocol/sleep.ts'
import { DEFAULT_TENURE_MS, MAX_PREFERENCE_TAGS, preferenceTag } from '../protocol/fair-share.ts'
import type { DriverRegistry, WorkerDriver } from './drivers/driver.ts'
import { DEFAULT_DRIVERS, driverFor } from './drivers/registry.ts'
import { measureGflops } from './benchmark.ts'
import { Containment, type IsolationMode } from './containment.ts'
import { BlobStore } from '../cache/store.ts'
import { serveBlobs } from '../cache/blob-protocol.ts'
import { ControlServer } from '../protocol/control.ts'
import type { Logger } from '../protocol/log.ts'
import type { Assignment } from '../protocol/jobs.ts'
import type { AttrValue, Expr } from '../protocol/expr.ts'
import { checkStart, nodeAttrs, parseStart, refusalMessage } from '../protocol/start.ts'

export interface DaemonConfig {
  dataDir: string
  port: number
  host?: string
  cost: number
  gridKeyFile?: string
  allowCoordinators: string[]
  alwaysAvailable: boolean
  policy: IdlePolicyConfig
  activityFile?: string
  mdnsInterface?: string
  slots?: number
  /** every run's jobs as this user (root daemon); default: a uid of its own per run */
  runAs?: string
  /** 'none': jobs run unconfined (on purpose); 'auto': contained when root */
  isolation: IsolationMode
  /** memory limit of a job that declares no ram, MiB (default: 90 % of RAM over the slots) */
  maxJobRamMiB?: number
  /** the most any job may write, MiB (default: a quarter of the data dir's free disk) */
  maxJobDiskMiB?: number
  /** processes and threads per attempt */
  maxJobPids: number
  /** hours between background scrubs of the blob store (0: never) */
  scrubHours: number
  /** blob store quota, MiB */
  cacheQuotaMiB?: number
  /** how often resources and the idle policy are sampled, ms */
  sampleMs: number
  log: Logger
  /**
   * the drivers this node has, by middleware name (a claim names one): DEFAULT_DRIVERS
   * unless given. Programmatic only, never a flag: tests give misbehaving ones
   */
  drivers?: DriverRegistry
  /** custom attributes advertised (`--attr`, checked by protocol/start.ts parseAttrs) */
  attrs?: Record<string, AttrValue>
  /** the START policy's source (`--start`): parsed when the daemon is made */
  start?: string
  /** submitters (or coordinators) whose runs take this node from strangers' (`--prefer-coordinator`) */
  prefer?: string[]
  /**
   * leaving a run for a fairer share, how long its running jobs may take to finish, s
   * (HTCondor's MaxJobRetirementTime); then they are preempted and re-queued
   */
  maxRetirementSec?: number
}

/** a running job's time to finish when its node leaves the run for a fairer share, by default */
export const DEFAULT_MAX_RETIREMENT_SEC = 600

/** the background scrub reads at most this fast */
const SCRUB_BYTES_PER_SEC = 32 * 1048576

export const DEFAULT_DAEMON_CONFIG = {
  port: 0,
  cost: 0,
  allowCoordinators: [] as string[],
  alwaysAvailable: false,
  policy: DEFAULT_IDLE_POLICY,
  isolation: 'auto' as IsolationMode,
  maxJobPids: 1024,
  scrubHours: 24,
  sampleMs: 2000
}

export class Daemon {
  readonly cfg: DaemonConfig
  node!: BgridNode
  db!: Db
  store!: BlobStore
  state: NodeState = 'idle'
  private readonly log: Logger
  private meta!: Db
  private statics!: Awaited<ReturnType<typeof measureStatic>>
  private dynamic: Pick<Resources, 'ram' | 'disk' | 'load'> = { ram: 0, disk: 0, load: 0 }
  private advertiser?: Advertiser
  private readonly book = new ClaimBook()
  /** which run each node of the LAN works for, from their advertisements: fair sharing is judged on it */
  private readonly census = new RunCensus()
  /** the grid key's public fingerprint, advertised (see gridKeyId) */
  private gridId?: string
  private session?: WorkerDriver
  /** one core's floating-point speed, GFLOPS (benchmark.ts), measured at start */
  private gflops = 0
  private policy: PolicyState = initialPolicyState(Date.now())
  /** why the node is (not) offered, in words: `bgrid status` shows it to the owner */
  private policyReason = 'owner activity not sampled yet'
  private policySampled = false
  private vacated = false
  private readonly meter = new OwnerLoadMeter()
  private taskPids: number[] = []
  private timers: NodeJS.Timeout[] = []
  containment!: Containment
  /** why this machine is never offered (no way to contain jobs, or to see its owner), unless --always-available */
  private notOffered?: string
  private control?: ControlServer
  /** what the LAN was last told, and when */
  private lastAd?: NodeAd
  private lastAdAt = 0
  private stopping = false

  /** the START policy (`--start`), parsed */
  private readonly startExpr?: Expr

  constructor (cfg: DaemonConfig) {
    this.cfg = cfg
    this.log = cfg.log
    // a START that does not parse stops the daemon before it starts (INVALID_CONFIG)
    if (cfg.start !== undefined) this.startExpr = parseStart(cfg.start)
  }

  get peerId (): PeerId { return this.node.peerId }

  async start (): Promise<void> {
    const { cfg } = this
    // private to the daemon: identity, database, blob store (jobs see none of it)
    await mkdir(cfg.dataDir, { recursive: true, mode: 0o700 })
    await chmod(cfg.dataDir, 0o700)
    this.db = await openDb(cfg.dataDir)
    this.meta = sub(this.db, 'node')
    this.store = new BlobStore(cfg.dataDir, this.db, {
      quotaBytes: cfg.cacheQuotaMiB !== undefined ? cfg.cacheQuotaMiB * 1048576 : undefined,
      onCorrupt: (hash, why) => {
        this.log.warn('corrupt blob quarantined', { hash, why })
        this.session?.reportCorrupt(hash)
      }
    })
    await this.store.load()
    const privateKey = await loadOrCreateIdentity(cfg.dataDir)
    const gridKey = cfg.gridKeyFile !== undefined ? readGridKey(cfg.gridKeyFile) : undefined
    if (gridKey !== undefined) this.gridId = gridKeyId(gridKey)
    this.statics = await measureStatic()
    // before the node is offered: nothing of ours runs yet to slow it down
    this.gflops = measureGflops()
    this.dynamic = await measureDynamic(cfg.dataDir, { quick: true })
    await this.recoverAfterRestart()
    this.containment = await Containment.start({
      dataDir: cfg.dataDir,
      mode: cfg.isolation,
      runAs: cfg.runAs,
      maxJobRamMiB: cfg.maxJobRamMiB,
      maxJobDiskMiB: cfg.maxJobDiskMiB ?? Math.max(1024, Math.floor(this.dynamic.disk / 4)),
      maxJobPids: cfg.maxJobPids,
      slots: cfg.slots ?? this.statics.cores,
      ramTotalMiB: this.statics.ramTotal
    }, this.meta, this.log.child('containment'))
    if (!cfg.alwaysAvailable) {
      if (this.containment.level === 'none' && cfg.isolation !== 'none') this.notOffered = 'jobs could not be contained here (see the containment line): not offered to the grid; give --always-available (a machine you lend knowingly) or --isolation none'
      else if (activitySource(cfg.activityFile) === undefined) this.notOffered = 'no way to tell when the owner is using this machine (no readable /dev/input, no --activity-file): not offered; give --activity-file, or --always-available for a dedicated machine'
      if (this.notOffered !== undefined) this.log.warn(this.notOffered)
    }
    // unconfined jobs running as another user walk the real path to their directory
    if (this.containment.level === 'none' && process.getuid?.() === 0) await chmod(cfg.dataDir, 0o711)

    this.node = await createBgridNode({ privateKey, port: cfg.port, host: cfg.host, gridKey })
    await serve(this.node, claimSpec, this.log.child('claim'), async (req, ctx) => this.onClaim(req, ctx.peer))
    for (const legacy of legacyClaimSpecs) {
      await serve(this.node, legacy, this.log.child('claim'), async () => {
        throw new BgridError('VERSION', `this node speaks ${claimSpec.id} (a newer bgrid than the submitter's): upgrade the submitter`)
      })
    }
    // only the peers of the run this node serves, and only that run's blobs (a grid key
    // is no licence to read another submitter's data)
    await serveBlobs(this.node, this.store, {
      log: this.log.child('blob'),
      canRead: async (peer) => await this.session?.isRunPeer(peer) === true,
      canReadBlob: (_peer, hash) => this.session !== undefined && this.store.allows(hash, this.session.run)
    })

    if (!cfg.alwaysAvailable) {
      this.meter.sample([], this.containment.jobsCpuMs())
      this.sampleOwner()
    }
    if (!hasMulticastRoute()) this.log.warn(MULTICAST_ROUTE_HINT)
    this.advertiser = advertise(this.ad(), {
      interface: cfg.mdnsInterface,
      onAdvert: (instance, run, gone) => { this.census.observe(instance, run, Date.now(), gone) }
    })
    this.lastAd = this.ad()
    this.lastAdAt = Date.now()
    this.control = new ControlServer(path.join(cfg.dataDir, 'control.sock'), this, this.log.child('control'))
    await this.control.start()

    this.timers.push(setInterval(() => { this.checkLease() }, 200))
    // the damage a seal cannot see (a bit flipped under an unchanged mtime): re-hash
    // everything now and then, slowly (the scrub stays in the background)
    if (cfg.scrubHours > 0) this.timers.push(setInterval(() => { this.scrub(SCRUB_BYTES_PER_SEC).catch(() => {}) }, cfg.scrubHours * 3_600_000))
    this.timers.push(setInterval(() => { this.refresh().catch(err => { this.log.warn('refresh failed', { err: String(err) }) }) }, cfg.sampleMs))
    for (const t of this.timers) t.unref()
    this.log.info('daemon started', {
      peer: this.node.peerId.toString(), port: tcpPort(this.node), state: this.state, name: this.advertiser.name,
      cores: this.statics.cores, mhz: this.statics.mhz, gflops: this.gflops, ram: this.dynamic.ram, private: gridKey !== undefined,
      middlewares: [...(cfg.drivers ?? DEFAULT_DRIVERS).keys()]
    })
  }

  /** A claim persisted before a crash or restart: its tasks are gone or orphaned; clean up. */
  private async recoverAfterRestart (): Promise<void> {
    const old: (Claim & { pids?: number[] }) | undefined = await this.meta.get('claim')
    const oldState: NodeState | undefined = await this.meta.get('state')
    if (old !== undefined) {
      for (const pid of old.pids ?? []) {
        tryBestEffort('killing the tasks of a claim before restart', () => { process.kill(-pid, 'SIGKILL') })
      }
      await this.meta.del('claim')
      this.log.warn('was claimed before restart: killed its tasks and cleaned up', { coordinator: old.coordinator, run: old.run })
    }
    // sandboxes of a previous life are garbage, claimed or not: out of the way now, deleted in the background
    const runs = path.join(this.cfg.dataDir, 'runs')
    const gone = `${runs}.gone-${Date.now()}`
    tryBestEffort('moving the sandboxes of a previous life away', () => { renameSync(runs, gone) })
    for (const f of readdirSync(this.cfg.dataDir)) if (f.startsWith('runs.gone-')) removeInBackground(path.join(this.cfg.dataDir, f))
    mkdirSync(runs, { mode: 0o700 })
    // ext4 puts a directory's children in the parent's block group, and every new inode
    // in a group where many were freed recently takes a long search (a finished run's
    // sandboxes are deleted in bulk): marked the top of directory hierarchies, each run's
    // directory is spread to a quiet group (measured: 40 % less daemon CPU per short job).
    // Best effort: other file systems ignore or refuse it.
    spawnSync('chattr', ['+T', runs], { stdio: 'ignore', timeout: 5000 })
    if (oldState !== undefined && oldState !== 'idle') this.log.info('previous state', { state: oldState })
    this.state = next(isNodeState(oldState) ? oldState : 'idle', this.cfg.alwaysAvailable ? 'restart-always-available' : 'restart') ?? 'owner'
    await this.meta.put('state', this.state)
  }

  ad (): NodeAd {
    const ad: NodeAd = {
      v: TXT_VERSION,
      state: this.state,
      peer: this.node.peerId.toString(),
      port: tcpPort(this.node),
      cores: this.statics.cores,
      mhz: this.statics.mhz,
      ram: this.dynamic.ram,
      disk: this.dynamic.disk,
      load: this.dynamic.load,
      cost: this.cfg.cost,
      arch: this.statics.arch,
      os: this.statics.os,
      gflops: this.gflops,
      ...this.matching()
    }
    const claim = this.book.current
    if (claim !== undefined) { ad.coord = claim.coordinator; ad.run = claim.run; if (claim.priority !== undefined) ad.prio = claim.priority }
    const next = this.book.promisedTo(Date.now())
    if (next !== undefined) ad.next = next
    if (this.gridId !== undefined) ad.grid = this.gridId
    const prefer = this.cfg.prefer ?? []
    if (prefer.length > 0) ad.pref = prefer.slice(0, MAX_PREFERENCE_TAGS).map(preferenceTag)
    return ad
  }

  /** Every state change goes through here: the table says where `event` leads (see next()); logged, persisted, re-advertised. */
  apply (event: NodeEvent, reason: string): boolean {
    const from = this.state
    const to = next(from, event)
    if (to === undefined) {
      this.log.error('illegal state transition refused', { from, event, reason })
      return false
    }
    if (from === to) return true
    this.state = to
    this.log.info('state', { from, to, event, reason })
    const at = Date.now()
    this.meta.batch([
      { type: 'put', key: 'state', value: to },
      { type: 'put', key: `transition:${String(at).padStart(15, '0')}:${Math.random().toString(36).slice(2, 6)}`, value: { from, to, event, reason, at } }
    ]).catch(() => {})
    this.readvertise(true)
    return true
  }

  private readvertise (force: boolean): void {
    if (this.advertiser === undefined || this.stopping) return
    const ad = this.ad()
    const now = Date.now()
    // every node of the LAN decodes every announcement: none for resource noise
    const worth = force ? 'change' : announcement(this.lastAd, ad, this.lastAdAt, now)
    if (worth === 'none') return
    this.lastAd = ad
    this.lastAdAt = now
    try {
      this.advertiser.update(ad, { repeat: worth === 'change' })
    } catch (err) { this.log.warn('advertise failed', { err: String(err) }) }
  }

  private async onClaim (req: ClaimRequest, peer: string): Promise<Omit<ClaimReply, 'ok'>> {
    const now = Date.now()
    if (req.op === 'claim') {
      // a middleware this node cannot run is refused before anything is taken
      const middleware = req.middleware ?? DEFAULT_MIDDLEWARE
      driverFor(this.cfg.drivers ?? DEFAULT_DRIVERS, middleware)
      let submitter: string | undefined
      if (req.submitter !== undefined) {
        submitter = await verifyClaim(req.submitter, req.run, peer, this.node.peerId.toString())
        if (submitter === undefined) throw new BgridError('UNAUTHORISED', 'the submitter\'s signature does not hold for this run, coordinator and node')
      }
      // a node working for another run weighs a run short of workers on the LAN's counts
      // (each node's own advertisement, this one excepted: it counts itself)
      const self = this.advertiser?.name
      const d = answerClaim(this.book, peer, req, {
        now: Date.now(), state: this.state, allow: this.cfg.allowCoordinators, version: req.v, supportedVersion: PROTOCOL_VERSION, submitter, middleware, priority: req.priority
      }, run => this.census.count(run, Date.now(), self), { prefer: this.cfg.prefer ?? [], tenureMs: DEFAULT_TENURE_MS })
      if (!d.ok) {
        if (d.retire !== undefined) this.retireFor(d.retire)
        throw new BgridError(d.code, d.message)
      }
      if (d.fresh) this.startSession(d.claim)
      return { leaseMs: d.claim.leaseMs, state: this.state, offer: this.offer() }
    }
    if (req.op === 'renew') {
      const d = this.book.renew(peer, req.run, now)
      if (!d.ok) throw new BgridError(d.code, d.message)
      // the lease proves this node alive; the attempts it holds prove it busy with what it was given
      const held = this.session?.run === req.run ? this.session.reconcile?.(req.attempts, ASSIGNMENT_GRACE_MS) : undefined
      return {
        leaseMs: d.claim.leaseMs, state: this.state,
        ...(held !== undefined ? { attempts: held } : {}),
        ...(d.claim.retiringFor !== undefined ? { retiring: true } : {})
      }
    }
    const released = this.book.release(peer, req.run)
    if (released === undefined) throw new BgridError('NOT_CLAIMED', `no claim for run ${req.run} by this coordinator`)
    await this.endSession('released by coordinator')
    return { leaseMs: 0, state: this.state }
  }

  /**
   * Leave the claim's run at a job boundary for the run it retires for: no new job, the
   * queued ones handed back, the running ones finish (preempted past the retirement
   * time); then the claim ends and the node is kept for the asker a while.
   */
  private retireFor (claim: Claim): void {
    const to = claim.retiringFor
    const s = this.session
    if (to === undefined || s === undefined) return
    this.log.info('leaving the run for a fairer share', { run: claim.run, to: to.run, why: to.why })
    const why = `the node leaves run ${claim.run} for run ${to.run} (fair share: ${to.why})`
    s.retire(why)
    // the LAN counts it for the run it goes to from now (TXT `next`): one ask moves one node
    this.readvertise(true)
    const retirementMs = (this.cfg.maxRetirementSec ?? DEFAULT_MAX_RETIREMENT_SEC) * 1000
    const leave = async (): Promise<void> => {
      await s.drained(retirementMs)
      if (this.session === s && s.running.size > 0) { s.vacate(`${why}: its retirement time is up`); await s.drained(10_000) }
      // its coordinator hears `retiring` at its next renewal and lets go itself (then it knows
      // when its hold ended); one that does not is let go of a moment later
      const lettingGo = Date.now() + selfReleaseAfterMs(claim.leaseMs)
      while (this.book.current === claim && Date.now() < lettingGo) await sleep(50)
      // released or expired meanwhile, the node was kept for the asker all the same (ClaimBook)
      if (this.book.current === claim) this.book.release(claim.coordinator, claim.run)
      if (this.session === s) await this.endSession(why)
    }
    leave().catch(err => { this.log.warn('leaving the run failed', { err: String(err) }) })
  }

  /** what a claim's reply tells the coordinator about this node, fresh */
  private offer (): WorkerOffer {
    const { statics: s, dynamic: d } = this
    return { cores: s.cores, mhz: s.mhz, ram: d.ram, disk: d.disk, load: d.load, cost: this.cfg.cost, arch: s.arch, os: s.os, gflops: this.gflops, ...this.matching() }
  }

  /** custom attributes and START, advertised and offered only when given (older coordinators refuse offers with them) */
  private matching (): { attrs?: Record<string, AttrValue>, start?: string } {
    return {
      ...(this.cfg.attrs !== undefined && Object.keys(this.cfg.attrs).length > 0 ? { attrs: this.cfg.attrs } : {}),
      ...(this.cfg.start !== undefined ? { start: this.cfg.start } : {})
    }
  }

  /** the START policy's verdict on a job of this claim: undefined to run it, else why not */
  private admit (claim: Claim, job: Assignment): string | undefined {
    if (this.startExpr === undefined) return undefined
    const v = checkStart(this.startExpr, nodeAttrs(this.offer()), { ram: job.ram, cores: job.cores, disk: job.disk, ...(claim.submitter !== undefined ? { owner: claim.submitter } : {}) })
    return v.ok ? undefined : refusalMessage(this.startExpr, v.why)
  }

  private startSession (claim: Claim): void {
    this.apply('claimed', `claimed by ${claim.coordinator.slice(-8)} for run ${claim.run}${claim.submitter !== undefined ? ` of submitter ${claim.submitter.slice(-8)}` : ''}`)
    this.vacated = false
    const driver = driverFor(this.cfg.drivers ?? DEFAULT_DRIVERS, claim.middleware ?? DEFAULT_MIDDLEWARE)
    this.session = driver({
      node: this.node,
      claim,
      store: this.store,
      containment: this.containment,
      slots: this.cfg.slots ?? this.statics.cores,
      log: this.log.child('worker'),
      onDone: () => { this.log.info('coordinator reports the run is over', { run: claim.run }) },
      ...(this.startExpr !== undefined ? { admit: (job: Assignment) => this.admit(claim, job) } : {}),
      onPids: (pids) => {
        this.taskPids = pids
        this.meta.put('claim', { ...claim, pids }).catch(() => {})
      }
    })
    this.meta.put('claim', claim).catch(() => {})
    // what this run makes or fetches here stays until it ends, quota or not
    this.store.protect(claim.run)
    this.session.start()
  }

  private async endSession (why: string, event: 'released' | 'lease-expired' = 'released'): Promise<void> {
    const s = this.session
    this.session = undefined
    this.taskPids = []
    await this.meta.del('claim').catch(() => {})
    if (s !== undefined) {
      await s.stop(why)
      this.store.unprotect(s.run)
      this.log.info('left the run', { run: s.run, coordinator: s.claim.coordinator, reason: why })
    }
    // unless a new claim started a session meanwhile (the node works for it)
    if (this.state === 'worker' && this.session === undefined) this.apply(event, why)
    else this.readvertise(true)
  }

  /** Whether the owner lets the node be offered (where it goes when it stops coordinating). */
  private offered (): boolean {
    return this.policy.available || this.cfg.alwaysAvailable
  }

  private checkLease (): void {
    const expired = this.book.expire(Date.now())
    if (expired !== undefined) {
      this.log.warn('lease expired: coordinator silent', { coordinator: expired.coordinator, run: expired.run })
      this.endSession('lease expired', 'lease-expired').catch(() => {})
    }
  }

  private sampleOwner (): void {
    const now = Date.now()
    const sample = { now, ownerLoad: this.meter.sample(this.taskPids, this.containment.jobsCpuMs()), userIdleSec: userIdleSeconds(now, this.cfg.activityFile) }
    const d = stepIdlePolicy(this.policy, sample, this.cfg.policy)
    const was = this.policy.available
    this.policy = this.notOffered === undefined ? d.state : { ...d.state, available: false }
    this.policyReason = d.reason
    // the owner reads in the log why the node is (not) offered: at the first sample and at every change
    if (this.notOffered === undefined && (!this.policySampled || was !== d.state.available)) this.log.info('idle policy', { available: d.state.available, reason: d.reason })
    this.policySampled = true
    this.applyPolicy(d.reason, d.vacate)
  }

  private applyPolicy (reason: string, vacate: boolean): void {
    const available = this.policy.available
    if (!available) {
      if (this.state === 'idle') this.apply('owner-back', reason)
      else if (this.state === 'worker') { this.apply('owner-back', reason); this.session?.suspend() }
      if (vacate && this.session !== undefined && !this.vacated) {
        this.vacated = true
        this.log.warn('suspended too long: giving tasks back to the coordinator')
        const s = this.session
        s.vacate()
        // then the node leaves the run, so that the coordinator recruits another instead
        // of keeping a slot that does nothing until the owner leaves
        s.drained(10_000).then(async () => {
          // unless the owner left meanwhile (the session resumed: it stays)
          if (this.session === s && this.vacated && this.state === 'owner') {
            // the claim goes too: the coordinator's next renewal is refused, and it recruits another
            this.book.release(s.claim.coordinator, s.claim.run)
            await this.endSession('the owner is using this machine: handed back to the coordinator')
          }
        }).catch(() => {})
      }
    } else if (this.state === 'owner') {
      // the owner left: resume, and a later return of the owner may vacate again
      if (this.session !== undefined) { this.apply('owner-away-claimed', reason); this.vacated = false; this.session.resume() } else this.apply('owner-away', reason)
    }
  }

  private lastMeasure = 0

  /** Idle policy every sample; resources (systeminformation, costlier) at most every 5 s. */
  private async refresh (): Promise<void> {
    if (!this.cfg.alwaysAvailable) this.sampleOwner()
    if (Date.now() - this.lastMeasure < Math.max(5000, this.cfg.sampleMs)) return
    this.lastMeasure = Date.now()
    this.dynamic = await measureDynamic(this.cfg.dataDir)
    this.readvertise(false)
  }

  /** A local `bgrid submit` asks this node to be its coordinator: nobody may claim it meanwhile. */
  enterCoordinator (run: string): { ok: boolean, message: string } {
    if (this.state === 'worker') return { ok: false, message: 'node is a worker for another coordinator' }
    const ok = this.apply('coordinate', `local submit of run ${run}`)
    return { ok, message: ok ? 'coordinator' : `cannot go from ${this.state} to coordinator` }
  }

  leaveCoordinator (): void {
    if (this.state !== 'coordinator') return
    this.apply(this.offered() ? 'coordinate-end' : 'coordinate-end-owner-here', 'local run finished')
  }

  private scrubbing?: Promise<unknown>

  /** Re-hash every blob (`bgrid cache verify`, or the background scrub); corrupt ones are quarantined and reported. */
  async verify (): Promise<unknown> { return await this.scrub() }

  private async scrub (bytesPerSec?: number): Promise<unknown> {
    this.scrubbing ??= (async () => {
      const t0 = Date.now()
      const r = await this.store.verifyAll({ bytesPerSec })
      this.log.info('blob store verified', { checked: r.checked, bytes: r.bytes, corrupt: r.corrupt.length, ms: Date.now() - t0 })
      return { ...r, ms: Date.now() - t0 }
    })().finally(() => { this.scrubbing = undefined })
    return await this.scrubbing
  }

  status (): Record<string, unknown> {
    return {
      peer: this.node.peerId.toString(), state: this.state, addrs: listenAddrs(this.node), ad: this.ad(),
      claim: this.book.current, running: this.session?.running.size ?? 0,
      policy: {
        available: this.policy.available || this.cfg.alwaysAvailable,
        reason: this.notOffered ?? (this.cfg.alwaysAvailable ? 'always available (--always-available)' : this.policyReason),
        ...(this.notOffered !== undefined ? { notOffered: this.notOffered } : {})
      },
      cache: { blobs: this.store.list().length, bytes: this.store.used }
    }
  }

  /** `bgrid cache ls/du` while the daemon holds the database: its blob index, from memory. */
  cacheList (): { blobs: Array<{ hash: string, size: number, lastUse: number, pins: number }>, bytes: number, quotaBytes: number | null } {
    const blobs = this.store.list().map(([hash, m]) => ({ hash, size: m.size, lastUse: m.lastUse, pins: m.pins }))
    return { blobs, bytes: this.store.used, quotaBytes: this.cfg.cacheQuotaMiB !== undefined ? this.cfg.cacheQuotaMiB * 1048576 : null }
  }

  async stop (): Promise<void> {
    if (this.stopping) return
    this.stopping = true
    for (const t of this.timers) clearInterval(t)
    await this.advertiser?.stop() // goodbye first: browsers drop us at once
    if (this.session !== undefined) await this.endSession('daemon stopping')
    await this.control?.stop()
    this.containment?.teardown()
    await this.node?.stop()
    await this.db?.close()
    this.log.info('daemon stopped')
  }
}
