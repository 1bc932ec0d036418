// Conformance with HTCondor's own DAGMan tests (issue 10): each test of
// ../shared/corpus/htcondor-dagman (its DAG, submit files, Perl node programs and .run
// driver), copied to a scratch directory and run by its own .run driver unchanged, with
// testbed/condor-perl standing in for HTCondor's CondorTest.pm: RunDagTest runs
// `bgrid submit FILE.dag -verbose` inside a lab namespace where bgrid daemons serve the
// vanilla jobs, and the driver checks the files, lines and exit codes it expects.
import t from 'tap'
import path from 'node:path'
import { cpSync, existsSync, readdirSync, readFileSync, copyFileSync } from 'node:fs'
import { spawnSync } from 'node:child_process'
import { clusterOrSkip, ROOT, BGRID } from '../testbed/cluster.ts'
import { PENDING_CORPUS_TESTS } from '../testbed/corpus.ts'

const CORPUS = path.resolve(ROOT, '..', 'shared', 'corpus', 'htcondor-dagman')
const PENDING = PENDING_CORPUS_TESTS
const SHIM = path.join(ROOT, 'testbed', 'condor-perl')

const hasPerl = spawnSync('perl', ['-e', '1']).status === 0
if (!existsSync(CORPUS)) t.plan(0, `needs HTCondor's DAGMan tests in ${CORPUS}`)
else if (!hasPerl) t.plan(0, 'needs perl: the tests\' drivers and node programs are Perl')
else {
  const cluster = clusterOrSkip(t)
  if (cluster !== undefined) {
    await cluster.startDaemons(3)
    const user = cluster.lab.addHost()
    const home = path.join(cluster.tmp, 'home')
    const tests = readdirSync(CORPUS).filter(d => existsSync(path.join(CORPUS, d, `${d}.run`))).sort()
    const passed: string[] = []
    for (const name of tests) {
      if (PENDING[name] !== undefined) { t.test(name, { skip: `issue 24: ${PENDING[name]}` }, async () => {}); continue }
      t.test(name, async t => {
        const dir = path.join(cluster.tmp, name)
        cpSync(path.join(CORPUS, name), dir, { recursive: true })
        copyFileSync(path.join(SHIM, 'appendmsg'), path.join(dir, 'appendmsg'))
        const submit = [process.execPath, BGRID, 'submit', '--data-dir', home, '--quiet', '--wait', '20', '--lease', '3']
        const p = cluster.spawn(user, ['perl', '-I', SHIM, `${name}.run`], { BGRID_SUBMIT: submit.join('\x1f') }, dir)
        const { code } = await p.done(240_000)
        const out = (f: string): string => { try { return readFileSync(path.join(dir, f), 'utf8').slice(-1500) } catch { return '(none)' } }
        t.equal(code, 0, code === 0 ? `${name}.run accepts what bgrid did` : `${name}.run refuses what bgrid did\n${p.stderr.slice(-2000)}\n--- dagman.out:\n${out(`${name}.dag.dagman.out`)}`)
        // vanilla jobs ran on the lab's daemons (the grid run's run.json names their workers)
        const vanilla = readdirSync(dir).filter(f => /\.(cmd|sub)$/.test(f) && !/universe\s*=\s*(scheduler|local)/i.test(readFileSync(path.join(dir, f), 'utf8')))
        if (vanilla.length > 0) {
          const runs = existsSync(path.join(dir, 'bgrid-runs')) ? readdirSync(path.join(dir, 'bgrid-runs')) : []
          const workers = new Set<string>()
          for (const r of runs) {
            const run = JSON.parse(readFileSync(path.join(dir, 'bgrid-runs', r, 'run.json'), 'utf8'))
            for (const j of Object.values(run.jobs) as any[]) if (j.worker !== undefined) workers.add(j.worker)
          }
          const peers = new Set(cluster.daemons.map(d => d.peer))
          t.ok(workers.size > 0 && [...workers].every(w => peers.has(w)), `${name}: its vanilla jobs (${vanilla.join(', ')}) ran on the lab's bgrid daemons (${workers.size} of them)`)
        }
        if (code === 0) passed.push(name)
      })
    }
    t.test('summary', async t => {
      const due = tests.filter(n => PENDING[n] === undefined)
      t.comment(`${passed.length} of ${due.length} of HTCondor's DAGMan tests pass (${tests.length - due.length} pending issue 24): ${passed.join(' ')}`)
      t.ok(due.length >= 12, `the twelve of issue 10 at least are run (${due.length})`)
      t.equal(passed.length, due.length, 'every corpus test not pending passes')
    })
  }
}
