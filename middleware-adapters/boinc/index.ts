// The BOINC style (middleware "boinc"): jobs run as replicas on distinct hosts and count
// once a quorum of them agree (BOINC's transitioner and validator), with adaptive
// replication from the submitter's records of its workers (kept across runs) and credit.
// Workers pull as in the XtremWeb style: the adapter is that pull server plus the run
// core's replication policy, wired to this run here.
// Contract: `boinc(init)` returns a middleware factory that takes only the components it
// uses. Imports protocol/, the run core's contracts and model.
import { errorMessage } from '../../protocol/errors.ts'
import { QuorumPolicy } from './policy.ts'
import { TrustBook } from './trust.ts'
import { resultsEquivalent } from './compare.ts'
import type { Dag } from '../../coordinator/core/model.ts'
import type { AdapterComponents, MiddlewareAdapter } from '../../coordinator/core/contracts.ts'
import { xtremweb, type XtremWebComponents } from '../xtremweb/index.ts'

/** What the replication policy uses of the run. */
export type ReplicationWiring =
  Pick<AdapterComponents, 'dataDir' | 'gflopsOf' | 'nameOf' | 'resultDir' | 'classified' | 'emit'>

/** What the BOINC style uses of the run: the pull server's components and the policy's. */
export type BoincComponents = XtremWebComponents & ReplicationWiring & Pick<AdapterComponents, 'dag'>

/** Nothing to configure yet: each job's verify block says how it is replicated. */
export type BoincInit = Record<string, never>

/** The BOINC-style middleware: the XtremWeb-style pull server and a replication policy for the run core. */
export function boinc (_init: BoincInit = {}): (components: BoincComponents) => MiddlewareAdapter {
  return (components) => {
    const pull = xtremweb()(components)
    let trust: TrustBook | undefined
    return {
      name: 'boinc',
      replication: async () => {
        const replicated = await replicationPolicy(components.dag, components)
        trust = replicated?.trust
        return replicated?.policy
      },
      start: async () => { await pull.start() },
      notify: () => { pull.notify() },
      stop: async () => { await pull.stop() },
      // what this run learnt of its workers: kept for the next runs
      save: async () => {
        await trust?.save().catch(err => { components.log.warn('worker records not saved', { err: errorMessage(err) }) })
      }
    }
  }
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
