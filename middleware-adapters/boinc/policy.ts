// BOINC-style verified execution as a replication policy of the run core: replicas,
// quorum validation (bitwise, or the job's own compare command), adaptive replication
// from each worker's record, credit for valid results only.
import type { ReplicationPolicy, Decision, Replica } from '../../coordinator/core/contracts.ts'
import type { JobRec, AttemptRec, VerifySpec } from '../../coordinator/core/model.ts'
import { decide } from './quorum.ts'
import type { TrustBook } from './trust.ts'
import { bestEffort } from '../../protocol/best-effort.ts'

/** a worker with this many consecutive valid results may get unreplicated work (BOINC's adaptive replication) */
export const TRUSTED_AFTER = 10
/** a cobblestone: 1/200 of a day of CPU on a 1 GFLOPS machine */
export const COBBLESTONES_PER_GFLOPS_DAY = 200

/** The credit a result claims: its CPU time (or, unmeasured, its run time x cores) on a core of `gflops`. */
export function claimedCredit (rec: AttemptRec, gflops: number, cores: number): number {
  // never more CPU than the attempt's cores for as long as the coordinator saw it out (its own clock)
  const seenSec = Math.max(0, ((rec.reportedAt ?? rec.endedAt ?? 0) - rec.assignedAt) / 1000) * cores
  const cpuSec = Math.min(seenSec, rec.cpuMs !== undefined ? rec.cpuMs / 1000 : Math.max(0, ((rec.endedAt ?? 0) - (rec.startedAt ?? 0)) / 1000) * cores)
  const credit = cpuSec / 86400 * Math.min(1000, Math.max(0, gflops)) * COBBLESTONES_PER_GFLOPS_DAY
  return Number.isFinite(credit) ? credit : 0
}

export interface QuorumPolicyOptions {
  trust: TrustBook
  /** a worker's benchmark (GFLOPS per core) and name */
  gflopsOf: (peer: string) => number
  nameOf: (peer: string) => string | undefined
  /** compare two results with the job's compare command: equivalent? (compare jobs only) */
  compare?: (job: JobRec, a: AttemptRec, b: AttemptRec) => Promise<boolean>
  /** hand a compared result's key to the run core (RunCore.classified) */
  classified?: (attempt: string, key: string) => void
  onCompareError?: (job: JobRec, err: unknown) => void
  random?: () => number
}

export class QuorumPolicy implements ReplicationPolicy {
  /** replicas handed out per job, for the adaptive-replication curve */
  readonly issued: number[] = []
  private readonly comparing = new Map<string, Promise<void>>()
  private readonly random: () => number

  private readonly o: QuorumPolicyOptions

  constructor (o: QuorumPolicyOptions) {
    this.o = o
    this.random = o.random ?? Math.random
  }

  initialReplicas (job: JobRec, workerId: string): number {
    const v = job.spec.verify as VerifySpec
    const n = this.o.trust.consecutiveValid(workerId)
    // a spot check now and then (1/n of the time) keeps a trusted worker honest
    if (v.adaptive && n >= TRUSTED_AFTER && this.random() < 1 - 1 / n) {
      job.quorumNow = 1
      return 1
    }
    return v.replicas
  }

  keyOf (job: JobRec, rec: AttemptRec, others: AttemptRec[]): string | undefined {
    const v = job.spec.verify as VerifySpec
    if (v.compare === null) return (rec.outputs ?? []).map(o => `${o.name}=${o.hash}`).sort().join('\n')
    this.classify(job, rec, others)
    return undefined
  }

  /** Compare a result with one of each class found so far, one job's comparisons in turn. */
  private classify (job: JobRec, rec: AttemptRec, _others: AttemptRec[]): void {
    const id = job.spec.id
    const prev = this.comparing.get(id) ?? Promise.resolve()
    const next = prev.then(async () => {
      const compare = this.o.compare
      if (compare === undefined) { this.o.classified?.(rec.id, rec.id); return }
      // the classes as they are now (earlier comparisons of this job are done)
      const reps = new Map<string, AttemptRec>()
      for (const a of job.attempts) if (a !== rec && a.status === 'ok' && a.key !== undefined && !reps.has(a.key)) reps.set(a.key, a)
      let key = rec.id
      for (const [k, a] of reps) {
        try { if (await compare(job, a, rec)) { key = k; break } } catch (err) { this.o.onCompareError?.(job, err) }
      }
      this.o.classified?.(rec.id, key)
    })
    this.comparing.set(id, next.catch(err => { bestEffort('next', err) }))
  }

  judge (job: JobRec, replicas: Replica[]): Decision {
    const v = job.spec.verify as VerifySpec
    return decide(replicas, { quorum: job.quorumNow ?? v.quorum, maxErrors: v.maxErrors, maxTotal: v.maxTotal })
  }

  onDecided (job: JobRec, canonical: AttemptRec, valid: AttemptRec[], invalid: AttemptRec[]): void {
    // canonical credit: every agreeing result gets the same, the least any of them claimed
    // (a late agreeing result gets what the job was granted)
    const granted = canonical.credit ?? Math.min(...valid.map(a => claimedCredit(a, this.o.gflopsOf(a.worker), Math.max(1, job.spec.cores))))
    for (const a of valid) {
      a.credit = granted
      this.o.trust.valid(a.worker, this.o.nameOf(a.worker), granted)
    }
    for (const a of invalid) this.o.trust.invalid(a.worker, this.o.nameOf(a.worker))
    if (!this.counted.has(job.spec.id)) {
      this.counted.add(job.spec.id)
      this.issued.push(job.attempts.length - (job.roundStart ?? 0))
    }
  }

  private readonly counted = new Set<string>()

  onError (_job: JobRec, rec: AttemptRec, kind: 'error' | 'timeout'): void {
    this.o.trust.error(rec.worker, this.o.nameOf(rec.worker), kind)
  }
}
