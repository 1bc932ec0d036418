// Dispatch: which attempts go to which worker, and what their results do. A pulling
// worker gets ready jobs, its planned ones first (their inputs are moving there), others
// stolen when their planned worker is saturated, gone or slow to take them; a worker
// holds at most a short queue. Results move jobs on: done, retried elsewhere, waiting for
// inputs, failed. Replicated (BOINC-style) jobs go out as replicas on distinct hosts and
// are judged by the replication policy. No I/O: the adapter brings pulls and results.
import type { JobState, AttemptRec, JobRec, RunStats, Schedule, WorkerRec } from './model.ts'
import type {
  ReplicationPolicy, Replica, CoreOptions, JobTablePort, HolderBook, PrefetchPort, JobFit, Clock
} from './contracts.ts'
import { isStartRefusal } from '../../protocol/start.ts'
import { MAX_HELD_ATTEMPTS, type HeldAttempt } from '../../protocol/claim.ts'
import { unranResult, MAX_QUEUE_FACTOR, type Assignment, type AttemptResult, type InputRef, type InputProblem } from '../../protocol/jobs.ts'

export const MAX_LOST_ATTEMPTS = 5
/**
 * An attempt that could not get its inputs is not the job's failure: the job waits
 * (1 s, 2 s, 4 s... at most 30 s) for another holder or for the producer to run again,
 * this many times at most before it fails with the reason.
 */
export const MAX_INPUT_WAITS = 20
const INPUT_BACKOFF_MS = 1000
const MAX_INPUT_BACKOFF_MS = 30_000

/** What dispatch asks of the run around it (RunCore). */
export interface DispatchHost {
  aliveWorkers: () => WorkerRec[]
  /** holders found failing a blob leave its list (and jobs that need it are reconciled) */
  dropHolders: (hash: string, holders: string[], why: string, opts: { verify?: boolean, reporter?: string }) => void
}

export interface DispatchParts {
  table: JobTablePort
  holders: Pick<HolderBook, 'liveHolders' | 'holds' | 'addHolder'>
  prefetch: PrefetchPort
  /** can this worker run this job? */
  fits: JobFit
  workers: ReadonlyMap<string, WorkerRec>
  schedule: Schedule
  stats: RunStats
  host: DispatchHost
}

export class Dispatch {
  readonly attempts = new Map<string, AttemptRec>()
  /** a job left this long to its planned worker may be taken by any worker */
  stealAfterMs = 2000
  private readonly table: JobTablePort
  private readonly holders: DispatchParts['holders']
  private readonly prefetch: PrefetchPort
  private readonly fits: JobFit
  private readonly workers: ReadonlyMap<string, WorkerRec>
  private readonly schedule: Schedule
  private readonly stats: RunStats
  private readonly host: DispatchHost
  private readonly opts: CoreOptions
  private readonly now: Clock
  /** replicas out with a deadline: attempt -> its job */
  private readonly deadlines = new Map<string, string>()
  private seq = 0

  constructor (parts: DispatchParts, opts: CoreOptions) {
    this.table = parts.table
    this.holders = parts.holders
    this.prefetch = parts.prefetch
    this.fits = parts.fits
    this.workers = parts.workers
    this.schedule = parts.schedule
    this.stats = parts.stats
    this.host = parts.host
    this.opts = opts
    this.now = opts.now ?? Date.now
  }

  // ---- handing out --------------------------------------------------------------

  private inputRefs (job: JobRec): InputRef[] | null {
    const refs: InputRef[] = []
    for (const i of job.spec.inputs) {
      const b = this.table.inputBlob(job.spec, i)
      if (b === undefined) return null
      const holders = this.holders.liveHolders(b.hash)
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
  holdLimit (w: WorkerRec): number {
    // bounded by what a lease renewal can name: a worker is never given more than it can account for
    return Math.min((this.opts.prefetch ? MAX_QUEUE_FACTOR : 1) * w.slots, MAX_HELD_ATTEMPTS / 2)
  }

  /** Choose up to `want` ready jobs for a pulling worker: its planned jobs first, then steal. */
  assign (workerId: string, want: number, now: number): Assignment[] {
    const w = this.workers.get(workerId)
    if (w === undefined || !w.alive || want <= 0 || this.schedule.held) return []
    const free = this.holdLimit(w) - w.usedCores
    if (free <= 0) return []
    const others = this.host.aliveWorkers().filter(x => x.id !== workerId)
    const candidates: Array<{ id: string, missing: number, mine: boolean, prio: number }> = []
    let scanned = 0
    for (const id of this.table.ready) {
      // the ready set is in topological order, close to priority order: a window of it is enough
      if (scanned++ >= 64 && (candidates.length >= want || scanned > 4096)) break
      const job = this.table.jobs.get(id) as JobRec
      if (job.notBefore !== undefined && job.notBefore > now) continue
      if (!this.fits(job.spec, w) || job.refusedBy?.has(workerId) === true) continue
      if (job.avoid.has(workerId) && others.some(o => !job.avoid.has(o.id) && this.fits(job.spec, o))) continue
      const missing = this.missingBytes(job, workerId, now)
      if (missing === null) continue
      const planned = this.schedule.plan?.worker.get(id)
      const mine = planned === undefined || planned === workerId || !this.opts.prefetch
      if (!mine && missing > 0) {
        const pw = this.workers.get(planned)
        // leave a job to its planned worker (its inputs are moving there) unless that worker is
        // saturated, gone, avoided by the job, or has not taken it for a while; a job whose
        // inputs are all here already may go anywhere
        if (!(pw === undefined || !pw.alive || pw.usedCores >= this.holdLimit(pw) || job.avoid.has(planned) ||
          now - (this.table.readyAt.get(id) ?? now) >= this.stealAfterMs)) continue
      }
      candidates.push({ id, missing, mine, prio: this.schedule.priority.get(id) ?? 0 })
    }
    // data already here first, then the worker's own planned jobs, then priority
    candidates.sort((a, b) => a.missing - b.missing || Number(b.mine) - Number(a.mine) || b.prio - a.prio)
    const out: Assignment[] = []
    let cores = free
    // more replicas of replicated jobs already running first: their siblings are under way
    for (const id of this.table.replicaQueue) {
      if (out.length >= want) break
      const job = this.table.jobs.get(id) as JobRec
      const need = Math.max(1, job.spec.cores)
      if (need > cores || !this.fits(job.spec, w) || !this.replicaFits(job, w)) continue
      const inputs = this.inputRefs(job)
      if (inputs === null) continue // its inputs come back (a producer runs again): the replica waits
      out.push(this.handOut(job, w, inputs, now))
      cores -= need
      job.replicasWanted = (job.replicasWanted ?? 1) - 1
      if (job.replicasWanted <= 0) this.table.replicaQueue.delete(id)
    }
    for (const { id } of candidates) {
      if (out.length >= want) break
      const job = this.table.jobs.get(id) as JobRec
      const need = Math.max(1, job.spec.cores)
      if (need > cores) continue
      const inputs = this.inputRefs(job)
      if (inputs === null) { this.table.move(job, 'pending', 'inputs unavailable'); continue }
      const policy = this.opts.replication
      // a replicated job's first replica opens a round (a job made again starts a new
      // one): the other replicas follow, on other hosts
      if (job.spec.verify !== null) job.roundStart = job.attempts.length
      out.push(this.handOut(job, w, inputs, now))
      cores -= need
      if (job.spec.verify !== null && policy !== undefined) {
        job.quorumNow = undefined
        job.replicasWanted = Math.max(0, policy.initialReplicas(job, workerId) - 1)
        if (job.replicasWanted > 0) this.table.replicaQueue.add(id)
      }
    }
    return out
  }

  /**
   * Bytes of a job's inputs that this worker does not hold yet (Dask: start where the
   * data is), or null when one of them is a staged input now travelling to another
   * worker: the remote cache sends each input into the grid once, so the job waits for
   * that copy (a few seconds at most).
   */
  private missingBytes (job: JobRec, workerId: string, now: number): number | null {
    let n = 0
    for (const i of job.spec.inputs) {
      const b = this.table.inputBlob(job.spec, i)
      if (b === undefined || this.holders.holds(b.hash, workerId)) continue
      if (this.opts.prefetch && this.prefetch.stagedElsewhere(b.hash, workerId, now)) return null
      n += b.size
    }
    return n
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
    this.table.move(job, 'running', `attempt ${attempt} on ${w.id.slice(-8)}`)
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
    for (const a of this.round(job)) {
      // never the same worker twice, even after a replica that did not count (it could void them one by one)
      if (a.worker === w.id) return false
      if (a.void === true) continue
      // one replica per host, whatever became of it: daemons of one PC must not add up errors or votes
      if ((this.workers.get(a.worker)?.host ?? a.worker) === host) return false
    }
    return true
  }

  // ---- results ------------------------------------------------------------------

  /** Apply a result reported by a worker. Duplicates and unknown attempts are ignored. */
  complete (workerId: string, r: AttemptResult, byCoordinator = false): 'ignored' | JobState {
    const rec = this.attempts.get(r.attempt)
    if (rec === undefined || rec.worker !== workerId) return 'ignored'
    const w = this.workers.get(workerId)
    if (w !== undefined) this.finishAttempt(w, r.attempt)
    // one result per attempt from its worker; a late one is taken only over the coordinator's own `lost`
    if (rec.reported === true || (rec.status !== undefined && rec.status !== 'lost')) return 'ignored'
    if (!byCoordinator) rec.reported = true
    const job = this.table.jobs.get(rec.job) as JobRec
    Object.assign(rec, {
      status: r.status, exitCode: r.exitCode, signal: r.signal, startedAt: r.startedAt, endedAt: r.endedAt, reportedAt: this.now(),
      inputWaitMs: r.inputWaitMs, bytesFetched: r.bytesFetched, cacheHits: r.cacheHits
    })
    if (r.error !== undefined) rec.error = r.error
    if (r.stdout !== undefined) { rec.stdout = r.stdout; this.holders.addHolder(r.stdout.hash, r.stdout.size, workerId) }
    if (r.stderr !== undefined) { rec.stderr = r.stderr; this.holders.addHolder(r.stderr.hash, r.stderr.size, workerId) }
    this.stats.bytesFetched += r.bytesFetched
    this.stats.cacheHits += r.cacheHits
    this.stats.inputWaitMs += r.inputWaitMs
    if (r.cpuMs !== undefined) rec.cpuMs = r.cpuMs
    if (job.spec.verify !== null && this.opts.replication !== undefined) return this.completeReplica(job, workerId, rec, r)
    this.opts.hooks?.onAttempt?.(job, rec)
    const current = job.state === 'running' && job.attempts.at(-1)?.id === r.attempt
    const acceptLate = job.state === 'ready' || job.state === 'running'
    if (r.status === 'ok') {
      for (const o of r.outputs) this.holders.addHolder(o.hash, o.size, workerId)
      if (job.state === 'done') return 'ignored' // another attempt won; its holder set grew
      if (!current && !acceptLate) return 'ignored'
      if (!outputsAsDeclared(job, r)) {
        rec.status = 'failed'
        rec.error = 'worker reported outputs other than those declared'
      } else {
        job.outputs = new Map(r.outputs.map(o => [o.name, { hash: o.hash, size: o.size }]))
        if (w !== undefined) w.done++
        this.table.succeed(job, `attempt ${r.attempt} ok`)
        return 'done'
      }
    }
    // bad or missing inputs: their holders leave the lists, whoever the attempt was
    for (const p of r.inputProblems ?? []) this.dropInputHolders(workerId, p)
    if (!current) return 'ignored'
    const status = rec.status as AttemptResult['status']
    if (status === 'lost' && isStartRefusal(rec.error)) {
      // the node's START policy refused it (it changed, or we could not read it): not the
      // job's failure, and never that node again for this job
      (job.refusedBy ??= new Set()).add(workerId)
      job.avoid.add(workerId)
      this.table.requeue(job, rec.error ?? 'refused')
      return job.state
    }
    if (status === 'lost' && (r.inputProblems?.length ?? 0) > 0) {
      const full = r.inputProblems?.find(p => p.code === 'DISK_FULL')
      if (full !== undefined) {
        // another worker may have room; when none has, the job fails saying why
        job.avoid.add(workerId)
        job.noRoom = new Set([...(job.noRoom ?? []), workerId])
        if (this.host.aliveWorkers().filter(w => this.fits(job.spec, w)).every(w => job.noRoom?.has(w.id) === true)) {
          this.table.fail(job, `no worker has room for its inputs: ${full.message}`)
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
    if (job.failures > job.spec.retries) this.table.fail(job, `${why} (after ${job.failures} attempt(s))`)
    else this.table.requeue(job, `retry ${job.failures}/${job.spec.retries}: ${why}`)
    return job.state
  }

  // ---- replicated jobs (BOINC-style) ----------------------------------------------

  /** A replica's result: recorded, keyed, and the job judged again. */
  private completeReplica (job: JobRec, workerId: string, rec: AttemptRec, r: AttemptResult): 'ignored' | JobState {
    const policy = this.opts.replication as ReplicationPolicy
    this.deadlines.delete(rec.id)
    for (const p of r.inputProblems ?? []) this.dropInputHolders(workerId, p)
    // a result for a job already decided earns nothing: its worker may have learnt the
    // canonical hashes from the job's children without doing the work
    const late = job.state !== 'running'
    if (r.status === 'ok') {
      if (!outputsAsDeclared(job, r)) {
        rec.status = 'failed'
        rec.error = 'worker reported outputs other than those declared'
      } else {
        rec.outputs = r.outputs.map(o => ({ name: o.name, hash: o.hash, size: o.size }))
        if (!late) {
          // its worker holds these bytes (whatever they are): only the canonical result's hashes are ever handed to children
          for (const o of r.outputs) this.holders.addHolder(o.hash, o.size, workerId)
          rec.key = policy.keyOf(job, rec, this.round(job).filter(a => a !== rec))
        }
      }
    }
    // not its worker's doing: inputs gone, the owner came back
    if ((r.status === 'lost' && ((r.inputProblems?.length ?? 0) > 0 || isStartRefusal(r.error))) || r.status === 'preempted') rec.void = true
    this.opts.hooks?.onAttempt?.(job, rec)
    if (late) return 'ignored'
    if (job.state !== 'running' || !this.round(job).includes(rec)) return 'ignored'
    if (rec.status !== 'ok' && rec.void !== true) policy.onError?.(job, rec, rec.timedOut === true ? 'timeout' : 'error')
    if (rec.void === true && ++job.lost > MAX_LOST_ATTEMPTS) { this.table.fail(job, `${rec.error ?? 'lost'} (${job.lost} replicas lost)`); return job.state }
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
    const job = this.table.jobs.get(rec.job)
    if (job?.state === 'running') this.judge(job)
    else if (job?.state === 'done' && this.round(job).includes(rec)) {
      rec.validation = key === job.canonicalKey ? 'valid' : 'invalid'
    }
  }

  /** Apply the policy's decision on a replicated job's replicas so far. */
  private judge (job: JobRec): JobState {
    const policy = this.opts.replication as ReplicationPolicy
    const round = this.round(job)
    // a trusted worker's unreplicated job whose one replica did not come back ok is
    // replicated as any other: never a quorum of one for whoever takes its place
    if (job.quorumNow === 1 && round.some(a => a.status !== undefined && a.status !== 'ok')) job.quorumNow = undefined
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
      this.table.replicaQueue.add(job.spec.id)
    } else if (d.kind === 'fail') {
      this.table.fail(job, d.reason)
    } else if (d.kind === 'canonical') {
      const canonical = this.attempts.get(d.attempt) as AttemptRec
      const valid = new Set(d.valid)
      for (const a of round) if (a.status === 'ok' && a.key !== undefined) a.validation = valid.has(a.id) ? 'valid' : 'invalid'
      job.canonicalKey = d.key
      job.outputs = new Map((canonical.outputs ?? []).map(o => [o.name, { hash: o.hash, size: o.size }]))
      // only the canonical bytes' holders serve them: an invalid result's blobs are other hashes
      const w = this.workers.get(canonical.worker)
      if (w !== undefined) w.done++
      this.table.succeed(job, `canonical result: attempt ${d.attempt}, ${d.valid.length} agreeing of ${d.valid.length + d.invalid.length}`)
      policy.onDecided?.(job, canonical, round.filter(a => a.validation === 'valid'), round.filter(a => a.validation === 'invalid'))
    }
    return job.state
  }

  /** Replicas out past their job's deadline count as no reply: another is issued (a late result still counts while the job is undecided). */
  tick (now: number): void {
    for (const [attempt, jobId] of this.deadlines) {
      const rec = this.attempts.get(attempt)
      const job = this.table.jobs.get(jobId)
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

  // ---- lost attempts ------------------------------------------------------------

  /** Attempts the coordinator thinks run on a worker that the worker does not know: lost. */
  reconcileRunning (workerId: string, running: string[], reported: Set<string>, now: number, graceMs = 5000): void {
    const w = this.workers.get(workerId)
    if (w === undefined) return
    const listed = new Set(running)
    for (const [attempt] of [...w.running]) {
      if (listed.has(attempt) || reported.has(attempt)) continue
      if (now - (w.assignedAt.get(attempt) ?? now) < graceMs) continue
      // the coordinator's own `lost`: a result the worker sends later still counts
      this.complete(workerId, unranResult(attempt, 'lost', 'the worker no longer runs this attempt', now), true)
    }
  }

  /** The attempts this worker was given and has not reported (what a lease renewal names). */
  attemptsOn (workerId: string): string[] {
    return [...(this.workers.get(workerId)?.running.keys() ?? [])]
  }

  /**
   * A lease renewal's answer: what the worker holds, each attempt's phase. An attempt it
   * was given before the renewal left (by more than the grace: they may cross) and does
   * not hold is lost now, whether the worker dropped it, forgot it or never got it.
   */
  heldBy (workerId: string, held: readonly HeldAttempt[], sentAt: number, now: number, graceMs: number): void {
    const w = this.workers.get(workerId)
    if (w === undefined) return
    const listed = new Set<string>()
    for (const h of held) {
      const rec = this.attempts.get(h.attempt)
      if (rec?.worker !== workerId || rec.status !== undefined) continue
      listed.add(h.attempt)
      rec.missedRenewals = 0
      // the worker's word, bounded: no older than the assignment; a phase is dated from when
      // it was first seen (a worker cannot make an old one young by saying so), except
      // "inputs", which the worker dates from its last byte (a big input on the move)
      const since = Math.max(rec.assignedAt, now - h.forMs)
      rec.phase = rec.phase?.name === h.phase && h.phase !== 'inputs' ? { name: h.phase, since: Math.min(rec.phase.since, since) } : { name: h.phase, since }
    }
    for (const [attempt] of [...w.running]) {
      if (listed.has(attempt) || sentAt - (w.assignedAt.get(attempt) ?? sentAt) < graceMs) continue
      const rec = this.attempts.get(attempt)
      if (rec === undefined) continue
      // one renewal may have been overtaken by the assignment (a big reply held back): two in a row decide
      rec.missedRenewals = (rec.missedRenewals ?? 0) + 1
      if (rec.missedRenewals < 2) continue
      rec.timedOut = true
      this.complete(workerId, unranResult(attempt, 'lost', 'the worker no longer holds this attempt (two lease renewals)', now), true)
    }
  }

  /**
   * The coordinator stops counting on an attempt (it made no progress for the stated
   * time): lost, its job to another worker; its worker drops it at the next renewal.
   */
  giveUp (attempt: string, why: string, now: number, as: 'lost' | 'failed' = 'lost'): void {
    const rec = this.attempts.get(attempt)
    if (rec === undefined || rec.status !== undefined) return
    this.table.jobs.get(rec.job)?.avoid.add(rec.worker)
    // no reply in time, as BOINC counts it (not an error of the worker's, for its trust)
    rec.timedOut = true
    // a command past its timeout failed (its retries count); one never started was lost
    this.complete(rec.worker, { ...unranResult(attempt, 'lost', why, now), status: as }, true)
  }

  /** A worker is gone (its lease lapsed, it died, it left): its attempts are lost; the jobs it ran go elsewhere. */
  workerLost (w: WorkerRec, why: string): string[] {
    const lostJobs: string[] = []
    for (const [attempt, jobId] of [...w.running]) {
      this.finishAttempt(w, attempt)
      const job = this.table.jobs.get(jobId)
      const rec = this.attempts.get(attempt)
      if (rec !== undefined && rec.status === undefined) { rec.status = 'lost'; rec.error = why; rec.endedAt = this.now() }
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
    return lostJobs
  }

  private dropInputHolders (reporter: string, p: InputProblem): void {
    // no room on that worker (its quota): the holders are fine (the job avoids that worker)
    if (p.code === 'DISK_FULL') return
    // HASH_MISMATCH and NOT_FOUND from a live holder: it is asked to re-hash its copy
    this.host.dropHolders(p.hash, p.holders, `${p.code}: ${p.message.slice(0, 200)}`, { verify: p.code === 'HASH_MISMATCH' || p.code === 'NOT_FOUND', reporter })
  }

  /** The attempt could not get its inputs: not the job's failure; back off, then try again (elsewhere or after the producer ran again). */
  private waitForInputs (job: JobRec, why: string, now: number, backOff = true): void {
    job.inputWaits++
    this.stats.inputWaits++
    if (job.inputWaits > MAX_INPUT_WAITS) { this.table.fail(job, `inputs unavailable after ${job.inputWaits} tries: ${why}`); return }
    // (no room on one worker: another may take it at once)
    if (backOff) job.notBefore = now + Math.min(MAX_INPUT_BACKOFF_MS, INPUT_BACKOFF_MS * 2 ** (job.inputWaits - 1))
    this.table.requeue(job, `waiting for inputs: ${why}`)
  }

  private retryLost (job: JobRec, why: string): void {
    job.lost++
    if (job.lost > MAX_LOST_ATTEMPTS) { this.table.fail(job, `${why} (${job.lost} attempts lost)`); return }
    this.table.requeue(job, why)
  }

  private finishAttempt (w: WorkerRec, attempt: string): void {
    const jobId = w.running.get(attempt)
    if (jobId === undefined) return
    w.running.delete(attempt)
    w.assignedAt.delete(attempt)
    w.usedCores -= Math.max(1, this.table.jobs.get(jobId)?.spec.cores ?? 1)
  }
}

/** The outputs a worker reports are exactly the job's declared ones, each once. */
function outputsAsDeclared (job: JobRec, r: AttemptResult): boolean {
  const declared = new Set(job.spec.outputs)
  const named = new Set(r.outputs.map(o => o.name))
  return r.outputs.length === declared.size && named.size === declared.size && [...named].every(n => declared.has(n))
}
