// A run never hangs (issue 19), the short form of bench/soak.ts: a hand-made DAG whose
// producers read an empty input file, then the two smallest WfCommons traces of
// ../shared/workloads (by task count; imported at --size-scale 0.001, so that many of
// their files are empty), each run twice in a row on the same 4 daemons in network
// namespaces. In the second run of the trace with the longest critical path (run last:
// its tail leaves time for the restart) one worker is SIGKILLed when a quarter of the
// jobs are done and started again (same data dir, same port) while the run goes on.
// Every run must succeed within its deadline, its outputs equal byte for byte to a local
// run of the same DAG. A hung run (no job moves for 30 s, or 60 s in all) fails the test,
// with its status, and ends the soak (the daemons are suspect after it): the test fails,
// it never hangs tap. On the code before the fix of the empty blob's proof of possession
// (0702daf), the empty-input DAG's second run hangs and this test fails there (in 95 s).
import t from 'tap'
import path from 'node:path'
import { clusterOrSkip } from '../testbed/cluster.ts'
import { runLocally } from '../testbed/local-run.ts'
import { Soak, WORKLOADS, listTraces, importTrace, emptyInputDag, formatRun, type SoakDag } from '../testbed/soak.ts'

const DAEMONS = 4
const cluster = clusterOrSkip(t)
// Uncontained jobs (--isolation none): the hang was in the data path, not in the sandbox,
// and a contained job costs about 2 s more on a loaded 2-core machine, which would put
// four runs of 40-job traces past the test's budget (bench/soak.ts runs them contained).
// A run here takes 5-25 s on a loaded machine; 30 s without a job moving, or 60 s in
// all, is a hang, and keeps a hung test well inside tap's 240 s. Daemons that do not
// start fail the test, not the process: its teardown then stops those that did.
const soak = cluster === undefined
  ? undefined
  : await Soak.start(cluster, DAEMONS, { deadlineMs: 60_000, stallMs: 30_000, killAt: 0.25, lease: 3 },
    ['--always-available', '--slots', '2', '--isolation', 'none']).catch((err: unknown) => {
    t.fail(`the ${DAEMONS} daemons did not start: ${String((err as Error)?.message ?? err)}`)
    return undefined
  })
if (cluster !== undefined && soak !== undefined) {
  const traceDags: SoakDag[] = []
  const traces = listTraces()
  if (traces.length === 0) t.comment(`no WfCommons traces at ${WORKLOADS}: only the hand-made DAG runs`)
  // the smallest ones that import: a refused trace (Nextflow's absolute paths) is another issue's
  for (const trace of traces) {
    if (traceDags.length === 2) break
    const p = importTrace(trace, path.join(cluster.tmp, 'traces', trace.name),
      { timeScale: 0.02, sizeScale: 0.001, maxCriticalPath: 5, workers: DAEMONS })
    if ('skipped' in p) t.comment(`${trace.name} skipped: ${p.skipped}`)
    else traceDags.push(p)
  }
  traceDags.sort((a, b) => a.criticalPath - b.criticalPath)
  const dags = [emptyInputDag(path.join(cluster.tmp, 'empty-input'), DAEMONS), ...traceDags]
  // a worker killed in the second run of the last DAG: a trace if there is one
  let hung: string | undefined
  for (const [i, dag] of dags.entries()) {
    const killed = i === dags.length - 1 ? ', a worker killed mid-way through the second' : ''
    t.test(`${dag.name} (${dag.note}) twice on the same daemons${killed}`, async t => {
      if (hung !== undefined) {
        t.fail(`not run: ${hung} hung before`)
        return
      }
      const local = runLocally(dag.dagFile, cluster.tmp, { SOAK_PAUSE: '0' })
      t.teardown(local.cleanup)
      for (const round of [1, 2]) {
        await soak.idle()
        const kill = i === dags.length - 1 && round === 2
        const r = await soak.run(dag, round, local, kill)
        t.comment(formatRun(r))
        t.ok(r.ok, `round ${round} succeeds in time, outputs equal the local run: ${r.why.join(' | ')}`)
        if (kill) {
          t.ok(r.kill !== undefined, 'a worker was killed mid-way')
          t.ok(r.kill?.backDuringRun, 'and it was back while the run went on')
        }
        if (r.hung) {
          hung = `${dag.name} round ${round}`
          return
        }
      }
    })
  }
}
