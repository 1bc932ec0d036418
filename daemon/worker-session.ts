// The worker role for one claim, and the native middleware's driver (drivers/driver.ts):
// pull jobs from the coordinator (XtremWeb-style), run them, report results, prefetch
// inputs the coordinator says are coming.
import { peerIdFromString } from '@libp2p/peer-id'
import { multiaddr } from '@multiformats/multiaddr'
import { randomInt } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'
import { open } from 'node:fs/promises'
import { call, dropIdleStreams } from '../protocol/rpc.ts'
import { jobsSpec, unranResult, MAX_QUEUE_FACTOR, PULL_RETRY_FIRST_MS, nextPullRetryMs, type Assignment, type AttemptResult, type BlobRef, type PrefetchHint, type PeerInfo, type InputProblem, type CorruptReport } from '../protocol/jobs.ts'
import { BgridError } from '../protocol/errors.ts'
import { fetchBlobVerified, isDownloading, readRange, failedHolders } from '../cache/blob-protocol.ts'
import { RunningAttempt, runAttempt, InputUnavailable } from './executor.ts'
import type { RunJail } from './containment.ts'
import type { Claim } from './claim-book.ts'
import type { DriverContext, WorkerDriver } from './drivers/driver.ts'
import { MAX_HELD_ATTEMPTS, type AttemptPhase, type HeldAttempt } from '../protocol/claim.ts'
import { bestEffort } from '../protocol/best-effort.ts'

/** SHA-256 of no bytes: the one blob anybody can have without proof */
const EMPTY_BLOB = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855'

/** the longest error a result carries (protocol/jobs.ts allows 4096) */
const MAX_ERROR_CHARS = 4000

export interface WorkerSessionOptions extends DriverContext {
  /**
   * runs one attempt (default: executor.ts runAttempt). Another driver may wrap it:
   * the test bed's misbehaving workers (testbed/cheating-daemon.ts) alter its results
   */
  execute?: typeof runAttempt
}

/** results wait at most this long for others to share their report, and only while queued work remains */
const REPORT_DELAY_MS = 20
/** ... and at most this many times the slots share one report */
const REPORT_BATCH = 8

export class WorkerSession implements WorkerDriver {
  readonly claim: Claim
  /** this run's user, directories and cgroup here (made when the session starts) */
  private readonly jail: Promise<RunJail>
  readonly running = new Map<string, RunningAttempt>()
  /** peers of this run, allowed to read our blobs */
  readonly runPeers = new Set<string>()
  private readonly opts: WorkerSessionOptions
  private readonly results: AttemptResult[] = []
  /** blobs fetched ahead of time, not yet announced to the coordinator */
  private have: string[] = []
  /** holders (this node among them) found with bad or missing copies, not yet reported */
  private corrupt: CorruptReport[] = []
  private prefetchedBytes = 0
  private readonly abort = new AbortController()
  private wake: () => void = () => {}
  private longPoll = false
  private suspended = false
  private stopped = false
  private loopDone?: Promise<void>
  private pidTimer?: NodeJS.Timeout
  /** hinted blobs not fetched yet, sooner-needed first */
  private readonly prefetchQueue: PrefetchHint[] = []
  private prefetchActive = 0
  /** when the oldest unreported result arrived */
  private firstResultAt = 0
  private avgRuntimeMs = 0
  private samples = 0
  /** where each held attempt is, and since when (told to the coordinator with every lease renewal) */
  private readonly phases = new Map<string, { phase: AttemptPhase, since: number, received: number }>()
  /** attempts the coordinator no longer counts on: killed, and their results never sent */
  private readonly dropped = new Set<string>()
  /** when the last input byte landed here: attempts getting inputs are not stalled while bytes arrive */
  private lastInputByteAt = 0
  /** when each result not yet acknowledged was made (its "reporting" age) */
  private readonly endedAt = new Map<string, number>()
  /** attempts held here that the last renewal did not count on: dropped at the second one in a row */
  private readonly uncounted = new Set<string>()
  /** attempts whose results are in an exchange not acknowledged yet */
  private readonly reporting = new Set<string>()

  constructor (opts: WorkerSessionOptions) {
    this.opts = opts
    this.claim = opts.claim
    this.jail = opts.containment.forRun(opts.claim.run)
    // an unhandled rejection here would be a crash; the loop reports it
    this.jail.catch(err => { bestEffort('this.jail', err) })
    this.runPeers.add(opts.claim.coordinator)
  }

  start (): void {
    this.rememberPeer(this.claim.coordinator, this.claim.addrs)
    this.loopDone = this.jail.then(async () => { await this.loop() }).catch(err => { this.opts.log.error('worker loop failed', { err: String(err) }) })
  }

  get run (): string { return this.claim.run }

  private peersAsked?: Promise<void>
  private peersAskedAt = 0

  /**
   * Is this peer one of the run's? A worker learns of the others from its pull replies,
   * and a busy one does not pull for a while: a peer it does not know yet may have
   * joined since, so it asks its coordinator (one question at a time, at most one a
   * second, whoever asks) before it refuses.
   */
  async isRunPeer (peer: string): Promise<boolean> {
    if (this.runPeers.has(peer)) return true
    if (this.stopped) return false
    if (this.peersAsked === undefined && Date.now() - this.peersAskedAt >= 1000) {
      this.peersAskedAt = Date.now()
      this.peersAsked = this.exchange(0, false).catch(err => { bestEffort('this.exchange()', err) }).finally(() => { this.peersAsked = undefined })
    }
    await this.peersAsked
    return this.runPeers.has(peer)
  }

  /** A blob here turned out corrupt or missing (quarantined by the store): the coordinator must know. */
  reportCorrupt (hash: string, holder = this.opts.node.peerId.toString()): void {
    if (this.corrupt.some(c => c.hash === hash && c.holder === holder)) return
    this.corrupt.push({ hash, holder })
    this.wake()
  }

  private usedCores (): number {
    let n = 0
    for (const r of this.running.values()) if (r.started) n += Math.max(1, r.assignment.cores)
    return n
  }

  private queuedCores (): number {
    let n = 0
    for (const r of this.running.values()) if (!r.started) n += Math.max(1, r.assignment.cores)
    return n
  }

  /**
   * How many cores' worth of jobs to hold: the slots, plus as many queued when jobs are
   * short (under a second on average), so a finished job is replaced without a round trip.
   */
  private capacity (): number {
    if (this.suspended || this.retiring !== undefined) return 0
    if (this.samples < 3 || this.avgRuntimeMs >= 1000) return this.opts.slots
    // very short jobs: a deeper queue, so one round trip brings several
    return this.opts.slots * (this.avgRuntimeMs < 100 ? MAX_QUEUE_FACTOR : 2)
  }

  private async sleepUntilWoken (ms: number): Promise<void> {
    await new Promise<void>(resolve => {
      const t = setTimeout(() => { this.wake = () => {}; resolve() }, ms)
      this.wake = () => { clearTimeout(t); this.wake = () => {}; resolve() }
    })
  }

  private async loop (): Promise<void> {
    let backoff = PULL_RETRY_FIRST_MS
    while (!this.stopped) {
      this.fillSlots()
      const free = Math.max(0, this.capacity() - this.usedCores() - this.queuedCores())
      const wantLongPoll = free > 0 && this.results.length === 0 && !this.longPoll
      if (wantLongPoll) {
        this.longPoll = true
        this.exchange(free, true).then(() => { backoff = PULL_RETRY_FIRST_MS }, async (err) => {
          this.opts.log.debug('pull failed', { err: String(err) })
          // stop() ends the wait at once (abort)
          await sleep(backoff, undefined, { signal: this.abort.signal }).catch(err => { bestEffort('sleep()', err) })
          backoff = nextPullRetryMs(backoff)
        }).finally(() => { this.longPoll = false; this.wake() })
      } else if (this.results.length > 0 || this.have.length > 0 || this.corrupt.length > 0) {
        // blobs fetched ahead are announced at once, even while a long poll is pending:
        // the coordinator waits for that news to send other workers to this copy
        // while queued work keeps the slots busy for a while, let more results join this
        // report (Nagle-like): each exchange costs both sides more CPU than a short job
        const wait = this.firstResultAt + REPORT_DELAY_MS - Date.now()
        if (this.have.length === 0 && this.corrupt.length === 0 && this.queuedCores() > this.opts.slots && this.results.length < REPORT_BATCH * this.opts.slots && wait > 0) {
          await this.sleepUntilWoken(wait)
          continue
        }
        try {
          await this.exchange(this.longPoll ? 0 : free, false)
          backoff = PULL_RETRY_FIRST_MS
          continue
        } catch (err) {
          this.opts.log.debug('report failed', { err: String(err) })
          await sleep(backoff, undefined, { signal: this.abort.signal }).catch(err => { bestEffort('sleep()', err) })
          backoff = nextPullRetryMs(backoff)
          continue
        }
      }
      if (this.stopped) break
      await this.sleepUntilWoken(5000)
    }
  }

  private async exchange (want: number, longPoll: boolean): Promise<void> {
    const results = this.results.splice(0, 512)
    for (const r of results) this.reporting.add(r.attempt)
    let delivered = false
    try { await this.exchangeWith(results, want, longPoll); delivered = true } finally {
      for (const r of results) {
        this.reporting.delete(r.attempt)
        if (delivered) this.endedAt.delete(r.attempt)
      }
    }
  }

  private async exchangeWith (results: AttemptResult[], want: number, longPoll: boolean): Promise<void> {
    const have = this.have.splice(0, 4096)
    const corrupt = this.corrupt.splice(0, 1024)
    const prefetchedBytes = this.prefetchedBytes
    this.prefetchedBytes = 0
    let reply
    try {
      reply = await call(this.opts.node, peerIdFromString(this.claim.coordinator), jobsSpec, {
        op: 'pull', run: this.claim.run, want, running: [...this.running.keys()], results, have, prefetchedBytes, ...(corrupt.length > 0 ? { corrupt } : {})
      }, { signal: this.abort.signal, timeoutMs: longPoll ? jobsSpec.timeoutMs : 10_000, reuse: true })
    } catch (err) {
      // not delivered: keep them for the next exchange (the coordinator de-duplicates by attempt id)
      this.results.unshift(...results)
      this.have.unshift(...have)
      this.corrupt.unshift(...corrupt)
      this.prefetchedBytes += prefetchedBytes
      if (err instanceof BgridError && (err.code === 'NOT_CLAIMED' || err.code === 'UNAUTHORISED')) {
        this.opts.log.warn('coordinator no longer knows this worker', { code: err.code })
      }
      throw err
    }
    this.learnPeers(reply.peers)
    for (const hash of reply.verify ?? []) this.verify(hash)
    for (const ref of reply.prefetch) this.prefetch(ref)
    for (const a of reply.jobs) this.launch(a)
    if (reply.done && this.running.size === 0 && this.results.length === 0) {
      this.stopped = true
      this.opts.onDone()
    }
  }

  private learnPeers (peers: PeerInfo[]): void {
    for (const p of peers) {
      this.runPeers.add(p.id)
      if (p.id !== this.opts.node.peerId.toString()) this.rememberPeer(p.id, p.addrs)
    }
  }

  /** Tell libp2p where a peer of this run listens (a worker has never dialled the others). */
  private rememberPeer (id: string, addrs: string[]): void {
    const parsed = addrs.flatMap(a => { try { return [multiaddr(a)] } catch { return [] } })
    if (parsed.length > 0) this.opts.node.peerStore.merge(peerIdFromString(id), { multiaddrs: parsed }).catch(err => { bestEffort('this.opts.node.peerStore.merge()', err) })
  }

  /**
   * Make a blob usable by this run; bytes moved over the network. A copy already here
   * from another run is used only once a holder of this run has shown it has the same
   * bytes (a random range of them): knowing a hash is not having the data. Failures are
   * InputUnavailable, naming the holders that failed (and those that sent bad bytes
   * are reported to the coordinator).
   */
  async fetch (ref: BlobRef): Promise<number> {
    const { store, node } = this.opts
    const run = this.claim.run
    if (store.has(ref.hash) && store.allows(ref.hash, run) && await store.intact(ref.hash)) return 0
    // a copy here from another run: re-hashed (as thoroughly checked as a download would
    // be; a bad one is quarantined and fetched anew), then proven to match this run's
    if (store.has(ref.hash)) await store.check(ref.hash, true).catch(err => { bestEffort('store.check()', err) })
    try {
      if (store.has(ref.hash)) {
        await this.prove(ref)
        return 0
      }
      const got = await fetchBlobVerified(node, store, ref.hash, ref.size, ref.holders, { signal: this.abort.signal, run, onBytes: () => { this.lastInputByteAt = Date.now() } })
      for (const h of got.badHolders) this.reportCorrupt(ref.hash, h)
      return got.bytes
    } catch (err: any) {
      const code: InputProblem['code'] = err instanceof BgridError && ['HASH_MISMATCH', 'NOT_FOUND', 'UNREACHABLE', 'UNAUTHORISED', 'DISK_FULL'].includes(err.code) ? err.code as InputProblem['code'] : 'UNREACHABLE'
      const holders = failedHolders(err)
      if (code === 'HASH_MISMATCH') for (const h of holders) this.reportCorrupt(ref.hash, h)
      throw new InputUnavailable([{ hash: ref.hash, code, holders: code === 'DISK_FULL' ? [] : holders.length > 0 ? holders : ref.holders, message: err?.message ?? String(err) }])
    }
  }

  /** Proof of possession: a random range of our copy must match what a holder of this run sends. */
  private async prove (ref: BlobRef): Promise<void> {
    const { store, node } = this.opts
    // the size is the coordinator's word: a proof reads the copy we hold, whatever it claims
    if (store.sizeOf(ref.hash) !== ref.size) throw new BgridError('HASH_MISMATCH', `blob ${ref.hash.slice(0, 12)} is not ${ref.size} bytes here`, { holders: [] })
    // the empty blob has no bytes to show, and its hash is public knowledge: nothing to prove
    if (ref.hash === EMPTY_BLOB) { await store.grant(ref.hash, this.claim.run); return }
    const self = node.peerId.toString()
    const len = Math.min(64, ref.size)
    const offset = ref.size > len ? randomInt(0, ref.size - len + 1) : 0
    const mine = Buffer.alloc(len)
    const fh = await open(await store.openPath(ref.hash), 'r')
    try { await fh.read(mine, 0, len, offset) } finally { await fh.close() }
    const failed: string[] = []
    for (const holder of ref.holders.filter(h => h !== self).slice(0, 3)) {
      try {
        const theirs = await readRange(node, holder, ref.hash, offset, len, this.abort.signal)
        if (Buffer.compare(Buffer.from(theirs), mine) === 0) { await store.grant(ref.hash, this.claim.run); return }
        failed.push(holder)
      } catch { failed.push(holder) }
    }
    throw new BgridError('UNREACHABLE', `no holder of run ${this.claim.run} showed it has blob ${ref.hash.slice(0, 12)}`, { holders: failed })
  }

  /** The coordinator heard our copy is bad: re-hash it; a good one is announced again, a bad one quarantined (and reported). */
  private verify (hash: string): void {
    const { store } = this.opts
    if (!store.has(hash)) { this.reportCorrupt(hash); return }
    store.check(hash, true).then(() => { this.have.push(hash); this.wake() }, () => {})
  }

  /**
   * Prefetches run two at a time, in the order the coordinator's plan needs them: all at
   * once would split the link between the next job's input and inputs needed much later.
   * A job that needs a queued blob fetches it at once (fetch() is shared).
   */
  private prefetch (ref: PrefetchHint): void {
    if (this.opts.store.has(ref.hash) && this.opts.store.allows(ref.hash, this.claim.run)) { this.have.push(ref.hash); this.wake(); return }
    if (isDownloading(this.opts.store, ref.hash)) return
    // a hint without an order (an input of a job already queued here) is needed soonest
    const order = ref.order ?? -1
    let at = this.prefetchQueue.length
    while (at > 0 && (this.prefetchQueue[at - 1].order ?? -1) > order) at--
    this.prefetchQueue.splice(at, 0, ref)
    this.pumpPrefetch()
  }

  private pumpPrefetch (): void {
    while (this.prefetchActive < 2 && this.prefetchQueue.length > 0 && !this.stopped) {
      const ref = this.prefetchQueue.shift() as PrefetchHint
      this.prefetchActive++
      this.prefetchOne(ref).finally(() => { this.prefetchActive--; this.pumpPrefetch() })
    }
  }

  private async prefetchOne (ref: BlobRef): Promise<void> {
    await this.fetch(ref).then((bytes) => { this.have.push(ref.hash); this.prefetchedBytes += bytes; this.wake() }, err => { this.opts.log.debug('prefetch failed', { hash: ref.hash.slice(0, 12), err: String(err) }) })
  }

  private launch (a: Assignment): void {
    if (this.running.has(a.attempt)) return
    // given back for the owner: what still arrives (a long poll sent before) goes back at once
    if (this.handingBack) { this.pushResult(unranResult(a.attempt, 'preempted', 'preempted before it started: the owner is using this machine')); this.wake(); return }
    if (this.retiring !== undefined) { this.pushResult(unranResult(a.attempt, 'preempted', `preempted before it started: ${this.retiring}`)); this.wake(); return }
    // the machine's say: its START policy
    const refused = this.opts.admit?.(a)
    if (refused !== undefined) {
      this.opts.log.info('job refused by the START policy', { job: a.job, attempt: a.attempt, why: refused })
      this.pushResult(unranResult(a.attempt, 'lost', refused)); this.wake(); return
    }
    this.running.set(a.attempt, new RunningAttempt(a))
    this.setPhase(a.attempt, 'queued')
    this.fillSlots()
    // inputs of queued jobs can move while the slots are busy
    for (const i of a.inputs) if (!this.opts.store.has(i.hash)) this.prefetch(i)
  }

  /** Start queued attempts while cores are free (in the order they were assigned). */
  private fillSlots (): void {
    if (this.suspended || this.stopped) return
    for (const r of this.running.values()) {
      if (r.started) continue
      const need = Math.max(1, r.assignment.cores)
      if (this.usedCores() + need > this.opts.slots && this.usedCores() > 0) break
      r.started = true
      this.begin(r)
    }
  }

  private begin (r: RunningAttempt): void {
    const a = r.assignment
    const execute = this.opts.execute ?? runAttempt
    this.jail.then(async jail => await execute(r, {
      store: this.opts.store,
      jail,
      self: this.opts.node.peerId.toString(),
      onStart: () => { this.setPhase(a.attempt, 'running'); this.pidsChanged() },
      ensureInputs: async (asg) => {
        this.setPhase(a.attempt, 'inputs')
        let bytesFetched = 0
        let cacheHits = 0
        const problems: InputProblem[] = []
        await Promise.all(asg.inputs.map(async i => {
          try {
            const n = await this.fetch(i)
            if (n === 0) cacheHits++
            bytesFetched += n
          } catch (err) {
            if (err instanceof InputUnavailable) problems.push(...err.problems)
            else throw err
          }
        }))
        if (problems.length > 0) throw new InputUnavailable(problems)
        return { bytesFetched, cacheHits }
      }
    })).then(res => {
      this.running.delete(a.attempt)
      this.phases.delete(a.attempt)
      this.uncounted.delete(a.attempt)
      this.pidsChanged()
      // the coordinator gave this attempt up (and may have handed the job to another worker)
      if (this.dropped.delete(a.attempt)) { this.fillSlots(); this.wake(); return }
      const ms = res.endedAt - res.startedAt
      this.avgRuntimeMs = this.samples === 0 ? ms : 0.8 * this.avgRuntimeMs + 0.2 * ms
      this.samples++
      this.fillSlots()
      if (res.status !== 'ok') this.opts.log.info('attempt ended', { job: a.job, attempt: a.attempt, status: res.status, exit: res.exitCode, error: res.error, cpuMs: res.cpuMs })
      else this.opts.log.debug('attempt ended', { job: a.job, attempt: a.attempt, status: res.status, ms, cpuMs: res.cpuMs })
      this.pushResult(res)
      this.wake()
    }, err => {
      this.running.delete(a.attempt)
      this.phases.delete(a.attempt)
      this.uncounted.delete(a.attempt)
      if (!this.dropped.delete(a.attempt)) this.pushResult(unranResult(a.attempt, 'lost', String(err)))
      this.wake()
    })
  }

  private setPhase (attempt: string, phase: AttemptPhase): void {
    const now = Date.now()
    this.phases.set(attempt, { phase, since: now, received: this.phases.get(attempt)?.received ?? now })
  }

  /**
   * A lease renewal from the coordinator. What it no longer counts on (it gave the
   * attempt up: re-queued elsewhere after a silence, a stall) is dropped here, so the two
   * never disagree for longer than a renewal; what is held is told with its phase.
   */
  reconcile (owned: readonly string[] | undefined, graceMs: number): HeldAttempt[] {
    const now = Date.now()
    if (owned !== undefined) {
      const counted = new Set(owned)
      for (const [attempt, r] of [...this.running]) {
        // an assignment the coordinator made after it sent this renewal may be that young,
        // and one renewal may have been overtaken by it: two in a row decide
        if (counted.has(attempt) || now - (this.phases.get(attempt)?.received ?? now) < graceMs || this.dropped.has(attempt)) {
          this.uncounted.delete(attempt)
          continue
        }
        if (!this.uncounted.has(attempt)) { this.uncounted.add(attempt); continue }
        this.uncounted.delete(attempt)
        const phase = this.phases.get(attempt)?.phase ?? 'queued'
        this.opts.log.warn('attempt dropped: the coordinator no longer counts on it', { job: r.assignment.job, attempt, phase })
        if (r.started) { this.dropped.add(attempt); r.kill('dropped: the coordinator no longer counts on this attempt'); continue }
        this.running.delete(attempt)
        this.phases.delete(attempt)
      }
      this.fillSlots()
      this.wake()
    }
    const held: HeldAttempt[] = []
    for (const attempt of this.running.keys()) {
      if (this.dropped.has(attempt)) continue
      const p = this.phases.get(attempt) ?? { phase: 'queued' as const, since: now }
      // getting inputs: for how long no byte arrived (a big input moving is progress)
      const since = p.phase === 'inputs' ? Math.max(p.since, this.lastInputByteAt) : p.since
      held.push({ attempt, phase: p.phase, forMs: Math.max(0, now - since) })
    }
    for (const attempt of [...this.results.map(r => r.attempt), ...this.reporting]) {
      held.push({ attempt, phase: 'reporting', forMs: Math.max(0, now - (this.endedAt.get(attempt) ?? now)) })
    }
    return held.slice(0, MAX_HELD_ATTEMPTS)
  }

  private pushResult (r: AttemptResult): void {
    // within the schema's bounds, whatever the job's inputs were called: a result the
    // coordinator refuses would stay at the head of the queue and block every later one
    if (r.error !== undefined && r.error.length > MAX_ERROR_CHARS) r.error = r.error.slice(0, MAX_ERROR_CHARS - 1) + '…'
    if (r.inputProblems !== undefined) r.inputProblems = r.inputProblems.slice(0, 1024).map(p => p.message.length > MAX_ERROR_CHARS ? { ...p, message: p.message.slice(0, MAX_ERROR_CHARS - 1) + '…' } : p)
    if (this.results.length === 0) this.firstResultAt = Date.now()
    this.results.push(r)
    this.endedAt.set(r.attempt, Date.now())
  }

  pids (): number[] {
    return [...this.running.values()].flatMap(r => r.pid !== undefined && r.pid > 0 && !r.exited ? [r.pid] : [])
  }

  /** Tell the daemon which task processes run, at most every 100 ms (it persists them for crash clean-up). */
  private pidsChanged (): void {
    if (this.pidTimer !== undefined) return
    this.pidTimer = setTimeout(() => { this.pidTimer = undefined; this.opts.onPids?.(this.pids()) }, 100)
  }

  /** The owner is back: freeze our tasks (SIGSTOP) and take no new ones. */
  suspend (): void {
    this.suspended = true
    for (const r of this.running.values()) r.suspend()
  }

  resume (): void {
    this.suspended = false
    this.handingBack = false
    for (const r of this.running.values()) r.resume()
    this.fillSlots()
    this.wake()
  }

  /** set once the tasks were given back for the owner (until the owner leaves: resume) */
  private handingBack = false

  /** Suspended too long (or retiring too long): give the tasks back to the coordinator. */
  vacate (why = 'the owner is using this machine'): void {
    this.handingBack = true
    for (const r of [...this.running.values()]) {
      if (r.started) { r.kill(`preempted: ${why}`); continue }
      // never started: hand it straight back
      this.running.delete(r.assignment.attempt)
      this.phases.delete(r.assignment.attempt)
      this.pushResult(unranResult(r.assignment.attempt, 'preempted', `preempted before it started: ${why}`))
    }
    this.wake()
  }

  /** why this node leaves the run (fair sharing), once it does: no new job is taken */
  private retiring?: string

  retire (why: string): void {
    this.retiring = why
    for (const r of [...this.running.values()]) {
      if (r.started) continue
      this.running.delete(r.assignment.attempt)
      this.phases.delete(r.assignment.attempt)
      this.pushResult(unranResult(r.assignment.attempt, 'preempted', `preempted before it started: ${why}`))
    }
    this.wake()
  }

  /** Everything here handed back (no attempt runs, every result delivered), or the time is up. */
  async drained (timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs
    while ((this.running.size > 0 || this.results.length > 0 || this.reporting.size > 0) && Date.now() < deadline && !this.stopped) {
      this.wake()
      await sleep(50)
    }
  }

  /** End the session: everything of this run on this node dies, its directories go. */
  async stop (why: string): Promise<void> {
    this.stopped = true
    clearTimeout(this.pidTimer)
    for (const r of this.running.values()) r.kill(why)
    this.abort.abort(new BgridError('NOT_CLAIMED', why))
    this.wake()
    await this.loopDone
    dropIdleStreams(this.opts.node, this.claim.coordinator)
    // attempts end (and remove their own directories) once their processes are reaped
    const deadline = Date.now() + 3000
    while (this.running.size > 0 && Date.now() < deadline) await sleep(20)
    const jail = await this.jail.catch(() => undefined)
    // whatever is left of the run (a weaker containment, an attempt that would not end)
    jail?.destroy()
    await jail?.sandboxes.removeAll().catch(err => { bestEffort('jail?.sandboxes.removeAll()', err) })
  }
}
