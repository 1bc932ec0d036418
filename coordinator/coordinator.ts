// One run, on the submitter's machine: the coordinator created on the fly.
// browse idle nodes -> feasible -> rank -> claim (leases) -> plan -> stage inputs
// -> workers pull jobs -> collect outputs -> release. I/O lives here; decisions
// live in select.ts, plan.ts and run-core.ts.
import { mkdir, writeFile, rename, rm, link, copyFile, readFile } from 'node:fs/promises'
import { existsSync } from 'node:fs'
import path from 'node:path'
import { randomBytes } from 'node:crypto'
import { peerIdFromString } from '@libp2p/peer-id'
import { generateKeyPair, privateKeyFromProtobuf, privateKeyToProtobuf } from '@libp2p/crypto/keys'
import { createBgridNode, peerAddr, listenAddrs, type BgridNode } from '../protocol/node.ts'
import { call } from '../protocol/rpc.ts'
import { claimSpec, signClaim, PROTOCOL_VERSION, CLAIM_PROTOCOL, type WorkerOffer } from '../protocol/claim.ts'
import { submitterKey } from '../daemon/identity.ts'
import { BgridError, errorMessage } from '../protocol/errors.ts'
import { NodeBrowser, hasMulticastRoute, MULTICAST_ROUTE_HINT, type DiscoveredNode } from '../protocol/dnssd.ts'
import { readGridKey, gridKeyId } from '../daemon/grid-key.ts'
import { controlRequest } from '../daemon/control.ts'
import type { Logger } from '../protocol/log.ts'
import { BlobStore } from '../cache/store.ts'
import { fetchBlobVerified, serveBlobs, failedHolders } from '../cache/blob-protocol.ts'
import { Queue } from '@libp2p/utils'
import { StagedFiles, StatCache, combineSources } from '../cache/staged-files.ts'
import { openDb } from '../protocol/db.ts'
import { parseDag, readDagJson, type Dag } from './dag.ts'
import { selectWorkers, attrsOf, type Candidate, type Refusal } from './select.ts'
import { accountNodes, summariseAccounts, type NodeAccount } from './why.ts'
import { jobFits, type NodeShape } from './feasibility.ts'
import { RunCore, type JobRec, type AttemptRec } from './run-core.ts'
import { TERMINAL } from './job-state.ts'
import { Journal, type RunMeta } from './journal.ts'
import { Progress, type Mode } from './progress.ts'
import { evalBool } from './expr.ts'
import { NativeAdapter } from '../middleware-adapters/native.ts'
import type { MiddlewareAdapter } from '../middleware-adapters/adapter.ts'
import { ControlServer } from '../daemon/control.ts'
import { makespanLowerBound } from './plan.ts'
import { analyzeJob, analyzeRun } from './analyze.ts'
import { writeRunReport } from './report/write.ts'
import { QuorumPolicy } from '../middleware-adapters/boinc/policy.ts'
import { TrustBook } from '../middleware-adapters/boinc/trust.ts'
import { resultsEquivalent } from '../middleware-adapters/boinc/compare.ts'
import type { RunJson } from './report/run-json.ts'

export interface SubmitOptions {
  dagFile?: string
  resume?: string
  runId?: string
  dataDir: string
  outDir?: string
  waitSec: number
  gridKeyFile?: string
  mdnsInterface?: string
  leaseSec: number
  prefetch: boolean
  streamOutputs: boolean
  progress: Mode
  log: Logger
}

export interface RunSummary {
  runId: string
  outDir: string
  ok: boolean
  /** stopped by `bgrid cancel` or a signal (exit code 5) */
  cancelled: boolean
  counts: Record<string, number>
  makespanMs: number
  workers: number
  bytesFetched: number
  prefetchedBytes: number
  cacheHits: number
  inputWaitMs: number
  inputBytesStaged: number
  servedBytes: number
}

function slug (s: string): string {
  return s.toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-|-$/g, '').slice(0, 32) || 'run'
}

export function newRunId (name: string): string {
  const t = new Date().toISOString().replace(/[-:T]/g, '').slice(0, 14)
  return `${slug(name)}-${t}-${randomBytes(2).toString('hex')}`
}

export function runDirOf (dataDir: string, runId: string): string {
  if (!/^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/.test(runId)) throw new BgridError('INVALID_CONFIG', `not a run id: ${runId}`)
  return path.join(dataDir, 'coordinator', 'runs', runId)
}

interface ClaimedWorker {
  id: string, candidate: Candidate, offer: WorkerOffer, renewTimer?: NodeJS.Timeout
  /** when its lease was last renewed (or granted): it is lost once a lease has passed since */
  lastRenewed: number
  renewing?: boolean
}

/** A replicated job's validation, for run.json: the quorum, the canonical result, who agreed and who did not. */
function validationOf (j: JobRec, nameOf: (peer: string) => string): Record<string, unknown> {
  const v = j.spec.verify
  const round = j.roundStart === undefined ? j.attempts : j.attempts.slice(j.roundStart)
  const canonical = round.find(a => a.validation === 'valid' && a.key === j.canonicalKey)
  return {
    quorum: j.quorumNow ?? v?.quorum, replicas: round.length,
    outcome: j.state === 'done' ? 'canonical' : j.state === 'failed' ? 'failed' : 'pending',
    ...(canonical !== undefined ? { canonical: canonical.id } : {}),
    valid: round.filter(a => a.validation === 'valid').map(a => nameOf(a.worker)),
    invalid: round.filter(a => a.validation === 'invalid').map(a => nameOf(a.worker)),
    errors: round.filter(a => a.status !== undefined && a.status !== 'ok' && a.void !== true && a.status !== 'cancelled').map(a => nameOf(a.worker))
  }
}

function iso (ms: number | undefined): string | undefined {
  return ms === undefined ? undefined : new Date(ms).toISOString()
}

function shapeOf (c: Candidate): NodeShape {
  return { name: c.name, slots: Math.max(1, c.ad.cores), attrs: attrsOf(c.ad) }
}

async function loadRunIdentity (dir: string): Promise<ReturnType<typeof privateKeyFromProtobuf>> {
  const file = path.join(dir, 'identity.key')
  try { return privateKeyFromProtobuf(await readFile(file)) } catch {}
  const key = await generateKeyPair('Ed25519')
  await writeFile(file, privateKeyToProtobuf(key), { mode: 0o600 })
  return key
}

export class Coordinator {
  readonly opts: SubmitOptions
  readonly log: Logger
  runId!: string
  runDir!: string
  outDir!: string
  dag!: Dag
  core!: RunCore
  node!: BgridNode
  private journal!: Journal
  private meta!: RunMeta
  private store!: BlobStore
  private storeDb!: Awaited<ReturnType<typeof openDb>>
  private readonly staged = new StagedFiles()
  private browser?: NodeBrowser
  private adapter!: MiddlewareAdapter
  readonly claimed = new Map<string, ClaimedWorker>()
  private readonly refusedUntil = new Map<string, number>()
  /** why each node not claimed refused us last (or could not be reached): part of every "why" */
  private readonly refusals = new Map<string, Refusal>()
  private readonly claiming = new Set<string>()
  /** every node seen during this run (its latest advertisement): what "can any node ever run it?" is judged on */
  private readonly seenEver = new Map<string, Candidate>()
  /** BOINC-style runs: the submitter's records of its workers, and the replication policy */
  private trust?: TrustBook
  replication?: QuorumPolicy
  /** the nodes as they were accounted for when the run ended (discovery has stopped since) */
  private finalAccounts?: NodeAccount[]
  /** this run's grid key fingerprint: a node in another grid is told apart from one unreachable */
  private gridId?: string
  private progress!: Progress
  private closing = false
  private cancelled = false
  private wakeMain: () => void = () => {}
  private localDaemon?: { end: () => void }
  private control?: ControlServer
  private readonly collecting = new Map<string, Promise<void>>()
  /** jobs whose outputs could not be brought back (every holder tried) */
  private readonly collectErrors = new Map<string, string>()
  /** the final outputs are in (or could not be, for good) */
  private collected = false
  /** what ended the run early, if anything (NO_WORKERS...): in run.json too */
  private failure: unknown
  /** at most 4 output collections at once (a holder serves a bounded number of streams) */
  private readonly collectQueue = new Queue<void>({ concurrency: 4 })
  private startedAt = Date.now()
  private inputBytesStaged = 0
  /** bytes the submitter's node sent (staged inputs; job outputs never pass through it) */
  private servedBytes = 0
  private readonly servedByBlob = new Map<string, number>()
  private recruitTimer?: NodeJS.Timeout
  private lastWaitNote = 0
  /** the submitter's persistent identity: it signs every claim of this run */
  private submitter!: Awaited<ReturnType<typeof submitterKey>>

  constructor (opts: SubmitOptions) {
    this.opts = opts
    this.log = opts.log
  }

  private emit (ev: Record<string, unknown>, human?: string): void { this.progress.event({ run: this.runId, ...ev }, human) }

  // ---- setup --------------------------------------------------------------------

  private async prepare (): Promise<void> {
    const o = this.opts
    if (o.resume !== undefined) {
      this.runId = o.resume
      this.runDir = runDirOf(o.dataDir, this.runId)
      if (!existsSync(path.join(this.runDir, 'journal'))) throw new BgridError('NOT_FOUND', `no journal for run ${this.runId} in ${path.dirname(this.runDir)}`)
      this.journal = new Journal(path.join(this.runDir, 'journal'))
      await this.journal.open()
      const meta = await this.journal.meta()
      if (meta === undefined) throw new BgridError('NOT_FOUND', `run ${this.runId} has no metadata`)
      if (meta.state === 'finished') throw new BgridError('INVALID_CONFIG', `run ${this.runId} already finished`)
      this.meta = { ...meta, state: 'running', pid: process.pid }
      this.dag = parseDag(meta.dag, meta.dagFile)
      this.outDir = meta.outDir
    } else {
      if (o.dagFile === undefined) throw new BgridError('INVALID_CONFIG', 'submit needs a DAG file (or --resume RUN_ID)')
      // read and validate once; the journal keeps the JSON as submitted
      const dagFile = path.resolve(o.dagFile)
      const raw = readDagJson(dagFile)
      this.dag = parseDag(raw, dagFile)
      this.runId = o.runId ?? newRunId(this.dag.name)
      this.runDir = runDirOf(o.dataDir, this.runId)
      await mkdir(this.runDir, { recursive: true, mode: 0o700 })
      this.outDir = path.resolve(o.outDir ?? path.join('bgrid-runs', this.runId))
      this.journal = new Journal(path.join(this.runDir, 'journal'))
      await this.journal.open()
      this.meta = {
        runId: this.runId, dagFile, dag: raw, outDir: this.outDir, createdAt: Date.now(),
        options: { prefetch: o.prefetch, leaseSec: o.leaseSec, streamOutputs: o.streamOutputs }, state: 'running', pid: process.pid
      }
    }
    await this.journal.setMeta(this.meta)
    await mkdir(this.outDir, { recursive: true })
    this.progress = new Progress(o.progress)
  }

  /**
   * BOINC-style jobs (middleware boinc): replicas, validation, adaptive replication
   * from this submitter's records of its workers, credit. None for a native DAG.
   */
  private async replicationPolicy (): Promise<QuorumPolicy | undefined> {
    if (!this.dag.jobs.some(j => j.verify !== null)) return undefined
    this.trust = new TrustBook(this.opts.dataDir)
    await this.trust.load()
    this.replication = new QuorumPolicy({
      trust: this.trust,
      // a node that did not measure itself counts as 1 GFLOPS a core (the cobblestone's reference)
      gflopsOf: (peer) => this.claimed.get(peer)?.offer.gflops ?? 1,
      nameOf: (peer) => this.nameOf(peer),
      compare: async (job, a, b) => {
        const [dirA, dirB] = await Promise.all([this.resultDir(a), this.resultDir(b)])
        return await resultsEquivalent(job.spec.verify?.compare as string[], this.dag.dir, dirA, dirB)
      },
      classified: (attempt, key) => {
        this.core.classified(attempt, key)
        this.adapter.notify()
        this.wakeMain()
      },
      onCompareError: (job, err) => { this.emit({ event: 'warning', job: job.spec.id, message: `compare: ${errorMessage(err)}` }, `job ${job.spec.id}: the compare command failed (${errorMessage(err)}): the results count as different`) }
    })
    return this.replication
  }

  /** A replica's outputs in a directory of their own here, read-only (for the job's compare command). */
  private async resultDir (a: AttemptRec): Promise<string> {
    const dir = path.join(this.runDir, 'results', a.id)
    for (const o of a.outputs ?? []) {
      await this.fetchToStore(o.hash, o.size)
      await this.placeFile(o.hash, path.join(dir, o.name))
    }
    return dir
  }

  private async hashInputs (): Promise<void> {
    const cache = new StatCache(path.join(this.opts.dataDir, 'coordinator', 'stat-cache.json'))
    await cache.load()
    const files = new Set<string>()
    for (const j of this.dag.jobs) for (const i of j.inputs) if (i.source.kind === 'file') files.add(i.source.path)
    for (const f of files) {
      let h
      try { h = await cache.hash(f) } catch (err: any) { throw new BgridError('INVALID_DAG', `input ${f}: ${err.message}`) }
      await this.staged.add(f, h.hash, h.size)
      this.core.setFileInput(f, h.hash, h.size)
    }
    await cache.save().catch(() => {})
    this.log.debug('inputs hashed', { files: files.size, rehashed: cache.misses, fromStatCache: cache.hits })
  }

  private async restoreJournal (): Promise<number> {
    const jobs = await this.journal.jobs()
    let restored = 0
    for (const [id, e] of jobs) {
      if (e.state === 'done' && e.outputs !== null) { this.core.restoreDone(id, e.outputs, e.attempts, e.collected); restored++ } else if (e.state === 'failed' || e.state === 'skipped') this.core.restoreFinal(id, e.state, e.reason ?? '', e.attempts)
    }
    return restored
  }

  // ---- workers ------------------------------------------------------------------

  private candidates (): Candidate[] {
    const now = Date.now()
    return (this.browser?.list() ?? []).filter(n => !this.claimed.has(n.ad.peer) && !this.claiming.has(n.ad.peer) && (this.refusedUntil.get(n.ad.peer) ?? 0) < now)
  }

  /** Nodes holding some of this run's blobs (after a resume: caches with our outputs). */
  private blobHolders (): Set<string> {
    const holders = new Set<string>()
    for (const b of this.core.blobs.values()) for (const h of b.holders) holders.add(h)
    return holders
  }

  private recruit (): void {
    if (this.closing) return
    const room = this.dag.workers.max - this.claimed.size - this.claiming.size
    const uncovered = this.uncoveredJobs()
    // at workers.max, only a node that can run a job no claimed worker can is taken (one
    // at a time): workers.max bounds the workers taken for any job, not the one a job needs
    if (room <= 0 && (uncovered.length === 0 || this.claiming.size > 0 || this.claimed.size === 0)) return
    const sel = selectWorkers(this.candidates(), this.dag.requirements, this.dag.rank, { self: this.node.peerId.toString() })
    // holders of this run's blobs first; resuming, for a moment, only them (their caches
    // spare re-running finished jobs), so that others seen first do not take their places
    const holders = this.blobHolders()
    const holding = sel.ranked.filter(c => holders.has(c.ad.peer))
    const onlyHolders = this.awaitedHolders !== undefined && Date.now() - this.startedAt < 3000
    // nodes that can run a waiting job no claimed worker can run come first: a job
    // only some nodes can run waits for one of them rather than for luck
    const covers = (c: Candidate): boolean => uncovered.some(spec => jobFits(spec, shapeOf(c)))
    const rest = sel.ranked.filter(c => !holders.has(c.ad.peer))
    const chosen = room <= 0 ? (onlyHolders ? [] : rest.filter(covers).slice(0, 1))
      : onlyHolders ? holding : [...holding, ...rest.filter(covers), ...rest.filter(c => !covers(c))]
    for (const c of chosen.slice(0, Math.max(1, room))) this.claim(c).catch(() => {})
    if (this.claimed.size < this.dag.workers.min && Date.now() - this.lastWaitNote > 3000) {
      this.lastWaitNote = Date.now()
      const why = summariseAccounts(this.nodeAccounts())
      this.emit({ event: 'waiting-for-workers', claimed: this.claimed.size, min: this.dag.workers.min, seen: this.browser?.list().length ?? 0, why, nodes: this.nodeAccounts() },
        `waiting for workers: ${this.claimed.size}/${this.dag.workers.min} claimed, ${this.browser?.list().length ?? 0} node(s) seen${why.length > 0 ? '\n  ' + why.join('\n  ') : ''}`)
    }
  }

  /** Specs of the jobs still to run that no claimed worker can run. */
  private uncoveredJobs (): Array<import('./dag.ts').JobSpec> {
    return this.core.unplaceable().map(u => this.core.jobs.get(u.job)?.spec).filter(s => s !== undefined)
  }

  /** Every node seen now, each with the one reason it is or is not a worker of this run. */
  nodeAccounts (): NodeAccount[] {
    if (this.finalAccounts !== undefined) return this.finalAccounts
    return accountNodes({
      nodes: this.browser?.list() ?? [], claimed: new Set(this.claimed.keys()), refusals: this.refusals,
      requirements: this.dag.requirements, gridId: this.gridId, self: this.node.peerId.toString()
    })
  }

  /**
   * Nodes that could ever be workers of this run: seen at some point, in our grid, and
   * meeting the run's requirements (busy or in their owner's hands for now: they may come back).
   */
  private possibleNodes (): NodeShape[] {
    const self = this.node.peerId.toString()
    const out: NodeShape[] = []
    for (const c of this.seenEver.values()) {
      if (c.ad.peer === self || c.ad.grid !== this.gridId) continue
      const w = this.claimed.get(c.ad.peer)
      const shape = w !== undefined ? { name: c.name, slots: Math.max(1, w.offer.cores), attrs: attrsOf(w.offer) } : shapeOf(c)
      if (this.dag.requirements !== null && !evalBool(this.dag.requirements, shape.attrs)) continue
      out.push(shape)
    }
    return out
  }

  private nameOf (peer: string): string {
    return this.claimed.get(peer)?.candidate.name ?? this.seenEver.get(peer)?.name ?? `…${peer.slice(-8)}`
  }

  private async claim (c: Candidate): Promise<void> {
    const peer = c.ad.peer
    this.claiming.add(peer)
    try {
      const addrs = c.addresses.map(a => peerAddr(a, c.ad.port, peer))
      const reply = await call(this.node, addrs, claimSpec, {
        op: 'claim', v: PROTOCOL_VERSION, run: this.runId, leaseMs: this.opts.leaseSec * 1000, addrs: listenAddrs(this.node).slice(0, 16),
        // the worker-side driver: BOINC-style jobs pull as native ones do, the name says what the run expects
        middleware: this.dag.jobs.some(j => j.verify !== null) ? 'boinc' : 'native',
        submitter: await signClaim(this.submitter, this.runId, this.node.peerId.toString(), peer)
      }, { timeoutMs: 5000 })
      if (this.closing) { await this.releaseOne(peer); return }
      const offer = reply.offer ?? { ...c.ad }
      // never trust an advertisement alone: check the fresh offer against the requirements
      if (this.dag.requirements !== null && !evalBool(this.dag.requirements, attrsOf(offer))) {
        this.log.info('node no longer meets the requirements', { node: c.name })
        await this.releaseOne(peer)
        this.refusedUntil.set(peer, Date.now() + 30_000)
        return
      }
      const w: ClaimedWorker = { id: peer, candidate: c, offer, lastRenewed: Date.now() }
      this.claimed.set(peer, w)
      this.refusals.delete(peer)
      // its host: the addresses it is advertised at (daemons sharing a machine share them)
      const host = [...new Set(c.addresses)].sort().join(',')
      this.core.addWorker({ id: peer, slots: Math.max(1, offer.cores), attrs: attrsOf(offer), addrs: addrs.map(String), ...(host !== '' ? { host } : {}) })
      // a tick a quarter lease: a silent worker is found lost at most a quarter lease late
      w.renewTimer = setInterval(() => { this.renew(w).catch(() => {}) }, Math.max(250, this.opts.leaseSec * 1000 / 4))
      this.emit({ event: 'worker', worker: peer, name: c.name, state: 'claimed', cores: offer.cores, ram: offer.ram, mhz: offer.mhz },
        this.opts.progress === 'lines' ? `claimed ${c.name} (${offer.cores} cores, ${offer.ram} MiB)` : undefined)
      this.onWorkersChanged(true)
    } catch (err) {
      let code = err instanceof BgridError ? err.code : 'ERROR'
      let message = err instanceof Error ? err.message : String(err)
      // a node of another bgrid version does not speak this claim protocol at all
      if (/Protocol selection failed/i.test(message)) { code = 'VERSION'; message = `it runs another version of bgrid (it does not speak ${CLAIM_PROTOCOL})` }
      this.refusedUntil.set(peer, Date.now() + (code === 'BUSY' || code === 'OWNER' ? 3000 : 10_000))
      const before = this.refusals.get(peer)
      this.refusals.set(peer, { name: c.name, code, message })
      if (before?.code !== code) this.emit({ event: 'refused', worker: peer, name: c.name, code, message })
      this.log.debug('claim refused', { node: c.name, code, message: errorMessage(err) })
    } finally {
      this.claiming.delete(peer)
    }
  }

  /**
   * Renew a worker's lease (every lease/3). A worker is lost once a whole lease has
   * passed since its last good renewal, as its daemon also judges us: checked on every
   * tick, whether the renewals fail fast or hang.
   */
  private async renew (w: ClaimedWorker): Promise<void> {
    if (!this.claimed.has(w.id)) return
    const leaseMs = this.opts.leaseSec * 1000
    if (Date.now() - w.lastRenewed >= leaseMs) { this.dropWorker(w.id, `no renewal for ${Math.round((Date.now() - w.lastRenewed) / 100) / 10} s (lease ${this.opts.leaseSec} s)`); return }
    if (w.renewing === true) return
    w.renewing = true
    try {
      await call(this.node, peerIdFromString(w.id), claimSpec, { op: 'renew', run: this.runId }, { timeoutMs: Math.max(300, leaseMs - (Date.now() - w.lastRenewed)) })
      w.lastRenewed = Date.now()
    } catch (err) {
      const code = err instanceof BgridError ? err.code : 'ERROR'
      // NOT_CLAIMED: the worker dropped us (lease ran out, restart, owner vacate): lost at once
      if (code === 'NOT_CLAIMED' || Date.now() - w.lastRenewed >= leaseMs) this.dropWorker(w.id, `${code}: ${errorMessage(err)}`)
    } finally {
      w.renewing = false
    }
  }

  private dropWorker (id: string, why: string): void {
    const w = this.claimed.get(id)
    if (w === undefined) return
    clearInterval(w.renewTimer)
    this.claimed.delete(id)
    this.refusedUntil.set(id, Date.now() + 5000)
    const lost = this.core.removeWorker(id, why)
    this.emit({ event: 'worker', worker: id, name: w.candidate.name, state: 'lost', reason: why, jobsRescheduled: lost },
      `worker ${w.candidate.name} lost (${why}); ${lost.length} job(s) rescheduled`)
    this.onWorkersChanged(false)
  }

  /**
   * Re-plan for the new set of workers. A worker that left was reconciled by the core
   * already; one that joined may hold outputs a resumed run needs, so reconcile then:
   * done jobs whose needed outputs no live node holds are made again.
   */
  private onWorkersChanged (joined: boolean): void {
    if (this.core.aliveWorkers().length > 0) {
      this.core.replan()
      if (joined && this.settled()) this.core.reconcile('workers changed')
      // resuming: jobs whose inputs a returning holder brings may start; nothing is judged lost yet
      else if (joined) this.core.promote()
    }
    this.adapter.notify()
    this.wakeMain()
  }

  /**
   * Resuming, the journal says which workers hold the outputs of finished jobs. Until
   * each of them has been claimed again (or a lease and 5 s have passed: enough for a
   * holder whose claim died with the old coordinator to be offered again), nothing is
   * declared lost: a finished job whose outputs are still held anywhere is never re-run.
   */
  private awaitedHolders?: Set<string>
  private graceTimer?: NodeJS.Timeout

  private settled (): boolean {
    if (this.awaitedHolders === undefined) return true
    if (![...this.awaitedHolders].every(h => this.claimed.has(h))) return false
    this.endGrace('every previous holder is back')
    return true
  }

  private startGrace (): void {
    const holders = this.blobHolders()
    holders.delete(this.node.peerId.toString())
    if (holders.size === 0) return
    this.awaitedHolders = holders
    this.graceTimer = setTimeout(() => {
      this.endGrace('previous holders not back in time')
      this.core.reconcile('resume: previous holders not back in time')
      this.adapter.notify()
      this.wakeMain()
    }, this.opts.leaseSec * 1000 + 5000)
  }

  private endGrace (why: string): void {
    if (this.awaitedHolders === undefined) return
    const missing = [...this.awaitedHolders].filter(h => !this.claimed.has(h))
    this.awaitedHolders = undefined
    clearTimeout(this.graceTimer)
    this.emit({ event: 'resume-settled', reason: why, missingHolders: missing }, missing.length > 0 ? `resume: ${missing.length} previous holder(s) not back; what only they held is made again` : undefined)
  }

  private async releaseOne (peer: string): Promise<void> {
    try { await call(this.node, peerIdFromString(peer), claimSpec, { op: 'release', run: this.runId }, { timeoutMs: 3000 }) } catch {}
  }

  // ---- outputs ------------------------------------------------------------------

  private async fetchToStore (hash: string, size: number): Promise<void> {
    // a copy here already is used only if it still holds its bytes (else it was quarantined: fetch again)
    if (this.store.has(hash) && await this.store.intact(hash)) return
    const holders = this.core.liveHolders(hash).filter(h => h !== this.node.peerId.toString())
    await fetchBlobVerified(this.node, this.store, hash, size, holders)
  }

  private async placeFile (hash: string, dest: string): Promise<void> {
    await mkdir(path.dirname(dest), { recursive: true })
    await rm(dest, { force: true })
    try { await link(this.store.blobPath(hash), dest) } catch { await copyFile(this.store.blobPath(hash), dest) }
  }

  private collect (job: JobRec): Promise<void> {
    const id = job.spec.id
    let p = this.collecting.get(id)
    if (p !== undefined) return p
    p = this.collectQueue.add(async () => { await this.collectNow(job) }).finally(() => { this.collecting.delete(id) })
    this.collecting.set(id, p)
    return p
  }

  private async collectNow (job: JobRec): Promise<void> {
    for (const [name, o] of job.outputs ?? []) {
      await this.fetchToStore(o.hash, o.size)
      this.core.addHolder(o.hash, o.size, this.node.peerId.toString())
      await this.placeFile(o.hash, path.join(this.outDir, job.spec.id, name))
    }
    job.collected = true
    this.journal.record(job, this.core)
  }

  private async collectLogs (): Promise<void> {
    for (const job of this.core.jobs.values()) {
      const last = [...job.attempts].reverse().find(a => a.status !== undefined && a.status !== 'lost')
      for (const which of ['stdout', 'stderr'] as const) {
        const log = last?.[which]
        if (log === undefined) continue
        try {
          await this.fetchToStore(log.hash, log.size)
          await this.placeFile(log.hash, path.join(this.outDir, 'logs', `${job.spec.id}.${which}`))
        } catch (err) {
          await writeFile(path.join(this.outDir, 'logs', `${job.spec.id}.${which}.tail`), log.tail).catch(() => {})
          this.log.debug('log not fetched', { job: job.spec.id, err: errorMessage(err) })
        }
      }
    }
  }

  // ---- status for `bgrid status` -------------------------------------------------

  analyze (job?: string): unknown {
    const accounts = this.nodeAccounts()
    if (job === undefined) return analyzeRun(this.core, accounts)
    const shapes = new Map<string, NodeShape>()
    for (const c of this.seenEver.values()) shapes.set(c.ad.peer, shapeOf(c))
    for (const w of this.claimed.values()) shapes.set(w.id, { name: w.candidate.name, slots: Math.max(1, w.offer.cores), attrs: attrsOf(w.offer) })
    const a = analyzeJob(this.core, job, accounts, shapes)
    if (a === undefined) throw new BgridError('NOT_FOUND', `no job ${job} in run ${this.runId}`)
    return a
  }

  /** A job attempt's stdout and stderr, brought into this run's store: their paths (attempt: 1-based; default the last). */
  private async attemptLogs (id: string, attempt?: number): Promise<unknown> {
    const job = this.core.jobs.get(id)
    if (job === undefined) throw new Error(`no job ${id} in run ${this.runId}`)
    if (job.attempts.length === 0) return { job: id, state: job.state, attempts: 0, waiting: this.core.whyWaiting(id) }
    const n = attempt ?? job.attempts.length
    const a = job.attempts[n - 1]
    if (a === undefined) throw new Error(`job ${id} has ${job.attempts.length} attempt(s), not ${n}`)
    const out: Record<string, unknown> = { job: id, attempt: n, attempts: job.attempts.length, id: a.id, node: this.nameOf(a.worker), status: a.status ?? 'running', startedAt: a.startedAt ?? a.assignedAt }
    for (const which of ['stdout', 'stderr'] as const) {
      const log = a[which]
      if (log === undefined) continue
      try {
        await this.fetchToStore(log.hash, log.size)
        out[which] = this.store.blobPath(log.hash)
      } catch (err) {
        out[`${which}Tail`] = log.tail
        out[`${which}Error`] = errorMessage(err)
      }
    }
    return out
  }

  private async writeStatus (final = false): Promise<void> {
    const report = this.report(final)
    const tmp = path.join(this.runDir, `status.json.${process.pid}.tmp`)
    await writeFile(tmp, JSON.stringify(report, null, 2))
    await rename(tmp, path.join(this.runDir, 'status.json'))
  }

  report (final: boolean): Record<string, unknown> {
    const jobs: Record<string, unknown> = {}
    const now = Date.now()
    for (const j of this.core.jobs.values()) {
      const last = j.attempts.at(-1)
      const waiting = final ? undefined : this.core.whyWaiting(j.spec.id, now)
      jobs[j.spec.id] = {
        state: j.state,
        ...(waiting !== undefined ? { waiting } : {}),
        ...(j.spec.verify !== null ? { validation: validationOf(j, (peer) => this.nameOf(peer)) } : {}),
        worker: last?.worker,
        node: last !== undefined ? this.nameOf(last.worker) : undefined,
        attempts: j.attempts.map(a => ({
          id: a.id, worker: a.worker, node: this.nameOf(a.worker), status: a.status ?? 'running', exitCode: a.exitCode, signal: a.signal, error: a.error,
          assignedAt: a.assignedAt, startedAt: a.startedAt, endedAt: a.endedAt, reportedAt: a.reportedAt,
          assignedAtIso: iso(a.assignedAt), startedAtIso: iso(a.startedAt), endedAtIso: iso(a.endedAt),
          inputWaitMs: a.inputWaitMs, bytesFetched: a.bytesFetched,
          ...(a.cpuMs !== undefined ? { cpuMs: a.cpuMs } : {}),
          // BOINC-style replicas: each one's outputs and what validation made of it
          ...(a.outputs !== undefined ? { outputs: Object.fromEntries(a.outputs.map(o => [o.name, { sha256: o.hash, size: o.size }])) } : {}),
          ...(a.validation !== undefined ? { validation: a.validation } : {}),
          ...(a.credit !== undefined ? { credit: a.credit } : {}),
          ...(a.timedOut === true ? { timedOut: true } : {}),
          ...(a.void === true ? { void: true } : {}),
          ...(a.stdout !== undefined ? { stdout: { sha256: a.stdout.hash, size: a.stdout.size } } : {}),
          ...(a.stderr !== undefined ? { stderr: { sha256: a.stderr.hash, size: a.stderr.size } } : {})
        })),
        startedAt: last?.startedAt,
        endedAt: last?.endedAt,
        exitCode: last?.exitCode,
        reason: j.reason,
        outputs: j.outputs === null ? null : Object.fromEntries([...j.outputs].map(([n, o]) => [n, { sha256: o.hash, size: o.size }])),
        stdoutTail: last?.stdout?.tail,
        stderrTail: last?.stderr?.tail,
        ...(this.collectErrors.has(j.spec.id) ? { collectError: this.collectErrors.get(j.spec.id) } : {})
      }
    }
    const s = this.core.stats
    return {
      run: this.runId,
      dag: this.dag.name,
      state: final ? (this.cancelled ? 'cancelled' : this.failure === undefined && this.collectErrors.size === 0 && this.core.counts().done === this.core.jobs.size ? 'succeeded' : 'failed') : 'running',
      ...(this.failure !== undefined ? { error: { code: this.failure instanceof BgridError ? this.failure.code : 'INTERNAL', message: errorMessage(this.failure) } } : {}),
      pid: process.pid,
      outDir: this.outDir,
      startedAt: this.startedAt,
      updatedAt: now,
      startedAtIso: iso(this.startedAt),
      updatedAtIso: iso(now),
      waitSec: this.opts.waitSec,
      workersWanted: { min: this.dag.workers.min, max: this.dag.workers.max },
      counts: this.core.counts(),
      workers: [...this.core.workers.values()].map(w => ({ peer: w.id, alive: w.alive, slots: w.slots, jobsDone: w.done, name: this.nameOf(w.id), attrs: w.attrs })),
      // every node seen, and why it is or is not a worker of this run (`bgrid status RUN --analyze`)
      nodes: this.browser !== undefined ? this.nodeAccounts().map(a => ({ ...a, attrs: this.seenEver.has(a.peer) ? attrsOf((this.seenEver.get(a.peer) as Candidate).ad) : undefined })) : [],
      data: { bytesFetched: s.bytesFetched, prefetchedBytes: s.prefetchedBytes, cacheHits: s.cacheHits, inputWaitMs: s.inputWaitMs, prefetchHints: s.prefetchHints, inputBytesStaged: this.inputBytesStaged, servedBytes: this.servedBytes, servedByBlob: Object.fromEntries(this.servedByBlob), prefetch: this.opts.prefetch },
      lowerBoundSec: makespanLowerBound(this.dag, [...this.core.workers.values()].reduce((a, w) => a + w.slots, 0)),
      waiting: this.core.waitingReasons(),
      jobs
    }
  }

  // ---- the run ------------------------------------------------------------------

  async run (): Promise<RunSummary> {
    await this.prepare()
    const o = this.opts
    const runDir = this.runDir
    await mkdir(path.join(runDir, 'cas'), { recursive: true })
    this.storeDb = await openDb(path.join(runDir, 'store'))
    this.store = new BlobStore(runDir, this.storeDb)
    await this.store.load()
    const gridKey = o.gridKeyFile !== undefined ? readGridKey(o.gridKeyFile) : undefined
    if (gridKey !== undefined) this.gridId = gridKeyId(gridKey)
    this.submitter = await submitterKey(o.dataDir)
    this.node = await createBgridNode({ privateKey: await loadRunIdentity(runDir), gridKey })

    const replication = await this.replicationPolicy()
    this.core = new RunCore(this.dag, {
      coordinatorId: this.node.peerId.toString(), prefetch: o.prefetch, nonce: randomBytes(3).toString('hex'), replication,
      hooks: {
        onTransition: (job, from, to, reason) => {
          let say: () => void
          if (to === 'failed' || (to === 'ready' && from === 'running')) {
            const tail = job.attempts.at(-1)?.stderr?.tail?.trim().split('\n').slice(-3).join('\n    ')
            say = () => { this.emit({ event: 'job', job: job.spec.id, from, to, reason }, `job ${job.spec.id}: ${to === 'failed' ? 'FAILED' : 'retrying'}: ${reason}${tail !== undefined && tail !== '' ? `\n    ${tail}` : ''}`) }
          } else say = () => { this.emit({ event: 'job', job: job.spec.id, from, to, reason }) }
          // the journal keeps what a resume needs: outcomes (a job that was only ready or
          // running starts again anyway), and a done job that must be made again; an
          // outcome is announced once it is on disk (what was said done stays done)
          if (TERMINAL.has(to) || from === 'done') {
            this.journal.record(job, this.core)
            this.journal.afterFlush(say)
          } else say()
          if (to === 'done' && this.opts.streamOutputs && this.core.isCollected(job.spec.id)) this.collect(job).catch(err => { this.log.warn('output not collected yet', { job: job.spec.id, err: errorMessage(err) }) })
          this.wakeMain()
        },
        onIllegal: (job, from, to, reason) => { this.log.error('illegal job transition refused', { job, from, to, reason }) }
      }
    })
    // nothing starts before the run has its workers.min (see RunCore.held)
    this.core.held = true
    await this.hashInputs()
    const restored = o.resume !== undefined ? await this.restoreJournal() : 0
    if (o.resume !== undefined) this.emit({ event: 'resumed', restoredJobs: restored, restored: [...this.core.jobs.values()].filter(j => j.state === 'done').map(j => j.spec.id) }, `resuming run ${this.runId}: ${restored} job(s) already done`)

    await serveBlobs(this.node, combineSources(this.store, this.staged), {
      log: this.log.child('blob'),
      canRead: (peer) => gridKey !== undefined || this.claimed.has(peer),
      onServed: (_peer, hash, bytes) => {
        this.servedBytes += bytes
        this.servedByBlob.set(hash, (this.servedByBlob.get(hash) ?? 0) + bytes)
      }
    })
    this.adapter = new NativeAdapter()
    await this.adapter.start({
      node: this.node, core: this.core, runId: this.runId, log: this.log,
      isWorker: (peer) => this.claimed.has(peer),
      isClosing: () => this.closing,
      // not over while final outputs may still have to be made again (see runToTheEnd)
      isOver: () => this.collected && this.core.finished(),
      persist: async () => { await this.journal.flush() },
      onResult: () => { this.wakeMain() }
    })
    this.node.addEventListener('peer:disconnect', (ev) => {
      const w = this.claimed.get(ev.detail.toString())
      if (w !== undefined) this.renew(w).catch(() => {})
    })

    // a local daemon stops offering this machine while it coordinates
    const ctl = await controlRequest(path.join(o.dataDir, 'control.sock'), { op: 'coordinate', run: this.runId }, true)
    if (ctl !== undefined) {
      this.localDaemon = { end: () => { ctl.socket.end() } }
      if (ctl.reply?.ok !== true) this.log.info('local daemon stays as it is', { reason: ctl.reply?.message })
    }
    // `bgrid cancel` talks to this socket
    this.control = new ControlServer(path.join(runDir, 'control.sock'), {
      status: () => this.report(false),
      enterCoordinator: () => ({ ok: false, message: 'this is a run, not a daemon' }),
      leaveCoordinator: () => {},
      cancel: () => { this.cancel('cancelled by bgrid cancel') },
      analyze: (job) => this.analyze(job),
      logs: async (job, attempt) => await this.attemptLogs(job, attempt)
    }, this.log.child('control'))
    await this.control.start()

    if (!hasMulticastRoute()) this.emit({ event: 'warning', message: MULTICAST_ROUTE_HINT }, `warning: ${MULTICAST_ROUTE_HINT}`)
    this.browser = new NodeBrowser({ interface: o.mdnsInterface, requeryMs: 2000 })
    const onNode = (n: DiscoveredNode): void => {
      this.seenEver.set(n.ad.peer, n)
      if (n.ad.state === 'idle') this.recruit()
    }
    this.browser.on('up', onNode)
    this.browser.on('update', onNode)
    this.browser.start()
    this.recruitTimer = setInterval(() => { this.recruit() }, 1000)
    this.startedAt = Date.now()
    if (o.resume !== undefined) this.startGrace()
    this.lastWaitNote = Date.now() // say we wait only once discovery has had a moment
    this.emit({ event: 'started', jobs: this.dag.jobs.length, outDir: this.outDir, coordinator: this.node.peerId.toString() },
      o.progress === 'quiet' ? undefined : `run ${this.runId}: ${this.dag.jobs.length} job(s), outputs in ${this.outDir}`)

    let failure: unknown
    try {
      await this.waitForWorkers()
      await this.checkDisk()
      this.core.held = false
      // after a resume: outputs whose holders were not claimed again are made again (once they had their chance)
      if (this.settled()) this.core.reconcile('run starts')
      this.adapter.notify()
      await this.runToTheEnd()
    } catch (err) {
      failure = err
    } finally {
      await this.shutdown()
    }
    // what this run learnt of its workers (BOINC-style runs): kept for the next runs
    await this.trust?.save().catch(err => { this.log.warn('worker records not saved', { err: errorMessage(err) }) })
    // whatever happened, the report and the final status are written
    const counts = this.core.counts()
    const ok = failure === undefined && !this.cancelled && counts.done === this.core.jobs.size && this.collectErrors.size === 0
    if (failure !== undefined) this.failure = failure
    const report = this.report(true)
    await writeFile(path.join(this.outDir, 'run.json'), JSON.stringify(report, null, 2))
    // report.html and trace.tsv beside it; a report that cannot be drawn costs the run nothing
    await writeRunReport(this.outDir, report as unknown as RunJson).catch(err => { this.log.warn('run report not written', { err: errorMessage(err) }) })
    await this.writeStatus(true).catch(() => {})
    this.meta.state = this.cancelled ? 'cancelled' : ok ? 'finished' : 'failed'
    this.meta.finishedAt = Date.now()
    await this.journal.setMeta(this.meta)
    await this.journal.close()
    await this.storeDb.close()
    if (failure !== undefined) throw failure
    const summary: RunSummary = {
      runId: this.runId, outDir: this.outDir, ok, cancelled: this.cancelled, counts, makespanMs: Date.now() - this.startedAt,
      workers: this.core.workers.size, bytesFetched: this.core.stats.bytesFetched, prefetchedBytes: this.core.stats.prefetchedBytes, cacheHits: this.core.stats.cacheHits,
      inputWaitMs: this.core.stats.inputWaitMs, inputBytesStaged: this.inputBytesStaged, servedBytes: this.servedBytes
    }
    this.emit({ event: 'finished', ...summary })
    return summary
  }

  /**
   * Run the jobs, then bring the final outputs back. An output no holder can give any
   * more (gone, or its bytes bad) sends its holders off the list and its job back to
   * run; then collection again (three times at most; then the job says why).
   */
  private async runToTheEnd (): Promise<void> {
    for (let round = 1; ; round++) {
      await this.mainLoop()
      if (this.cancelled) return
      const toCollect = [...this.core.jobs.values()].filter(j => j.state === 'done' && this.core.isCollected(j.spec.id) && !j.collected)
      const failed: Array<[JobRec, unknown]> = []
      // one job's outputs out of reach does not cost the others theirs
      await Promise.all(toCollect.map(async j => { await this.collect(j).catch(err => { failed.push([j, err]) }) }))
      if (failed.length === 0 || round >= 3) {
        for (const [j, err] of failed) this.collectErrors.set(j.spec.id, errorMessage(err))
        this.collected = true
        this.adapter.notify()
        break
      }
      for (const [j, err] of failed) {
        const named = failedHolders(err)
        for (const o of j.outputs?.values() ?? []) {
          if (this.store.has(o.hash)) continue
          const holders = named.length > 0 ? named : [...(this.core.blobs.get(o.hash)?.holders ?? [])].filter(h => h !== this.node.peerId.toString())
          this.core.dropHolders(o.hash, holders, `could not be collected: ${errorMessage(err)}`, { verify: true })
        }
        this.emit({ event: 'collect-retry', job: j.spec.id, reason: errorMessage(err) }, `outputs of ${j.spec.id} could not be collected (${errorMessage(err)}): making them again`)
      }
      this.adapter.notify()
    }
    this.progress.stop()
    await this.collectLogs()
  }

  private async waitForWorkers (): Promise<void> {
    const deadline = Date.now() + this.opts.waitSec * 1000
    while (this.claimed.size < this.dag.workers.min) {
      if (this.cancelled) return
      if (Date.now() >= deadline) throw this.noWorkers()
      await this.sleep(Math.min(500, deadline - Date.now()))
    }
  }

  /** Out of patience for workers.min: every node seen accounted for, and what to change. */
  private noWorkers (): BgridError {
    const accounts = this.nodeAccounts()
    const why = summariseAccounts(accounts)
    const seen = accounts.length
    const fixes: string[] = []
    const have = this.claimed.size
    if (have > 0) fixes.push(`lower workers.min in the DAG to ${have} (the run then starts on the workers it has)`)
    if (accounts.some(a => a.cause === 'busy' || a.cause === 'owner' || a.cause === 'untried')) fixes.push(`wait longer for busy nodes: --wait ${Math.max(60, this.opts.waitSec * 4)}`)
    if (accounts.some(a => a.cause === 'grid-key')) fixes.push('give the grid\'s key with --grid-key')
    if (accounts.some(a => a.cause === 'requirements')) fixes.push('loosen the DAG\'s requirements')
    if (accounts.some(a => a.cause === 'refused' && /^(POLICY|UNAUTHORISED)/.test(a.detail))) fixes.push('ask the owners of the nodes that refused to allow your submitter id (`bgrid id` prints it; daemons take --allow-coordinator)')
    if (seen === 0) fixes.push('start `bgrid daemon` on the machines to use (`bgrid peers` lists the nodes seen on this network)')
    return new BgridError('NO_WORKERS', `only ${have} of ${this.dag.workers.min} worker(s) claimed after ${this.opts.waitSec}s; ${seen} node(s) seen${why.length > 0 ? ':\n  ' + why.join('\n  ') : ''}\nTo run: ${fixes.join('; or ')}.`, { nodes: accounts })
  }

  /** Refuse early, before any transfer, if a worker cannot hold the inputs planned for it. */
  private async checkDisk (): Promise<void> {
    this.core.replan()
    for (const w of this.claimed.values()) {
      const need = this.core.stagingBytes(w.id)
      const freeMiB = w.offer.disk
      if (need / 1048576 > freeMiB) {
        throw new BgridError('DISK_FULL', `worker ${w.candidate.name} has ${freeMiB} MiB free but the inputs planned for it need ${Math.ceil(need / 1048576)} MiB: nothing was transferred`)
      }
      this.inputBytesStaged += need
    }
  }

  private async sleep (ms: number): Promise<void> {
    await new Promise<void>(resolve => {
      const t = setTimeout(() => { this.wakeMain = () => {}; resolve() }, Math.max(0, ms))
      this.wakeMain = () => { clearTimeout(t); this.wakeMain = () => {}; resolve() }
    })
  }

  private async mainLoop (): Promise<void> {
    let lastStatus = 0
    while (!this.core.finished() && !this.cancelled) {
      this.progress.update({ counts: this.core.counts(), total: this.core.jobs.size, workers: this.core.aliveWorkers().length, startedAt: this.startedAt })
      if (Date.now() - lastStatus > 1000) { lastStatus = Date.now(); this.writeStatus().catch(() => {}) }
      // replicas past their deadline count as no reply (BOINC-style jobs)
      this.core.tick(Date.now())
      // the grid has been looked at for --wait: a job no node seen can ever run fails, naming why
      if (Date.now() - this.startedAt >= this.opts.waitSec * 1000) this.core.failNeverPlaceable(this.possibleNodes())
      if (this.core.aliveWorkers().length === 0 && this.claimed.size === 0) {
        // every worker was lost: wait for new ones, as at the start
        await this.waitForWorkers()
      }
      // jobs left to a planned worker become stealable after a while: let waiting workers look again
      if (this.core.ready.size > 0) this.adapter.notify()
      await this.sleep(500)
    }
    this.progress.update({ counts: this.core.counts(), total: this.core.jobs.size, workers: this.core.aliveWorkers().length, startedAt: this.startedAt })
  }

  cancel (why: string): void {
    if (this.cancelled) return
    this.cancelled = true
    this.core?.cancelAll(why)
    this.emit({ event: 'cancelled', reason: why }, `cancelling: ${why}`)
    this.wakeMain()
  }

  private async shutdown (): Promise<void> {
    this.closing = true
    clearTimeout(this.graceTimer)
    this.progress.stop()
    clearInterval(this.recruitTimer)
    this.adapter?.notify()
    if (this.browser !== undefined) this.finalAccounts = this.nodeAccounts()
    await this.browser?.stop()
    // give pulling workers a moment to hear `done`, then release every claim
    const releases = [...this.claimed.values()].map(async w => {
      clearInterval(w.renewTimer)
      // the daemon frees the node before it answers, and may grant it to another coordinator
      // before that answer arrives here: the hold ends when the release was sent
      const requestedAt = Date.now()
      await this.releaseOne(w.id)
      this.emit({ event: 'worker', worker: w.id, name: w.candidate.name, state: 'released', requestedAt })
    })
    await Promise.all(releases)
    this.claimed.clear()
    await this.adapter?.stop()
    await this.control?.stop()
    this.localDaemon?.end()
    await this.node?.stop()
  }
}
