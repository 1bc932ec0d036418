// BOINC-style jobs (middleware boinc): the run's replication policy, wired to this run.
// Replicas, validation, adaptive replication from the submitter's records of its workers
// (kept across runs), credit. None for a native DAG.
import path from 'node:path'
import { errorMessage } from '../protocol/errors.ts'
import { QuorumPolicy } from '../middleware-adapters/boinc/policy.ts'
import { TrustBook } from '../middleware-adapters/boinc/trust.ts'
import { resultsEquivalent } from '../middleware-adapters/boinc/compare.ts'
import type { Dag, AttemptRec } from './core/model.ts'
import type { Collector } from './collect.ts'

export interface ReplicationWiring {
  dataDir: string
  /** a claimed worker's measured GFLOPS per core (undefined: not claimed, or it did not measure itself) */
  gflopsOf: (peer: string) => number | undefined
  nameOf: (peer: string) => string
  /** an ok replica's outputs in a directory of their own (for the job's compare command) */
  resultDir: (a: AttemptRec) => Promise<string>
  /** a compared replica's key, to the run core (which judges its job again) */
  classified: (attempt: string, key: string) => void
  emit: (ev: Record<string, unknown>, human?: string) => void
}

/** The policy and the records it keeps, or undefined for a DAG with no replicated job. */
export async function replicationPolicy (dag: Dag, w: ReplicationWiring): Promise<{ policy: QuorumPolicy, trust: TrustBook } | undefined> {
  if (!dag.jobs.some(j => j.verify !== null)) return undefined
  const trust = new TrustBook(w.dataDir)
  await trust.load()
  const policy = new QuorumPolicy({
    trust,
    // a node that did not measure itself counts as 1 GFLOPS a core (the cobblestone's reference)
    gflopsOf: (peer) => w.gflopsOf(peer) ?? 1,
    nameOf: (peer) => w.nameOf(peer),
    compare: async (job, a, b) => {
      const [dirA, dirB] = await Promise.all([w.resultDir(a), w.resultDir(b)])
      return await resultsEquivalent(job.spec.verify?.compare as string[], dag.dir, dirA, dirB)
    },
    classified: (attempt, key) => { w.classified(attempt, key) },
    onCompareError: (job, err) => { w.emit({ event: 'warning', job: job.spec.id, message: `compare: ${errorMessage(err)}` }, `job ${job.spec.id}: the compare command failed (${errorMessage(err)}): the results count as different`) }
  })
  return { policy, trust }
}

/** A replica's outputs in a directory of their own under the run's, read-only (for the job's compare command). */
export async function resultDir (outputs: Pick<Collector, 'fetchToStore' | 'placeFile'>, runDir: string, a: AttemptRec): Promise<string> {
  const dir = path.join(runDir, 'results', a.id)
  for (const o of a.outputs ?? []) {
    await outputs.fetchToStore(o.hash, o.size)
    await outputs.placeFile(o.hash, path.join(dir, o.name))
  }
  return dir
}
