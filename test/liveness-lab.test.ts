// A run never hangs: the cases that once waited forever, each on real daemons in
// network namespaces. A DAG whose producers read an empty input file, run again and
// again on the same daemons (the second run once waited for ever: proving possession
// of an empty blob read zero bytes and waited for more).
import t from 'tap'
import path from 'node:path'
import { readFileSync, writeFileSync, mkdirSync, existsSync } from 'node:fs'
import { stdoutJson, clusterOrSkip, type Proc } from '../testbed/cluster.ts'

const cluster = clusterOrSkip(t)
if (cluster !== undefined) {
  await cluster.startDaemons(3)
  const user = cluster.lab.addHost()
  const home = path.join(cluster.tmp, 'home')
  const submit = async (dag: string, out: string, timeoutMs = 60_000): Promise<{ code: number | null, run: any, p: Proc }> => {
    const p = cluster.cli(user, ['submit', dag, '--data-dir', home, '--json', '--wait', '20', '--out', out])
    const { code } = await p.done(timeoutMs)
    if (!existsSync(path.join(out, 'run.json'))) throw new Error(`submit exited ${String(code)} without run.json:\n${p.stderr.slice(-3000)}`)
    return { code, run: JSON.parse(readFileSync(path.join(out, 'run.json'), 'utf8')), p }
  }

  t.test('a DAG reading an empty input file runs three times in a row on the same daemons', async t => {
    const dir = path.join(cluster.tmp, 'empty-input')
    mkdirSync(dir, { recursive: true })
    writeFileSync(path.join(dir, 'empty.txt'), '')
    const dag = path.join(dir, 'dag.json')
    writeFileSync(dag, JSON.stringify({
      name: 'empty-input',
      workers: { min: 3, max: 3 },
      jobs: [
        ...Array.from({ length: 8 }, (_, i) => ({ id: `p${i}`, cmd: `wc -c < empty.txt > n.txt; echo ${i} >> n.txt`, inputs: [{ src: 'empty.txt', as: 'empty.txt' }], outputs: ['n.txt'] })),
        ...Array.from({ length: 8 }, (_, i) => ({ id: `c${i}`, cmd: 'cat n.txt > m.txt', inputs: [`job:p${i}/n.txt`], outputs: ['m.txt'] }))
      ]
    }))
    for (let round = 1; round <= 3; round++) {
      const out = path.join(cluster.tmp, `out-empty-${round}`)
      // a run of 16 one-line jobs takes a couple of seconds; 60 s is a hang
      const { code, run, p } = await submit(dag, out)
      t.equal(code, 0, `run ${round} succeeds\n${p.stderr.slice(-2000)}`)
      t.equal(run.state, 'succeeded', `run ${round}: ${String(run.error ?? '')}`)
      for (let i = 0; i < 8; i++) {
        t.equal(readFileSync(path.join(out, `c${i}`, 'm.txt'), 'utf8'), `0\n${i}\n`, `run ${round}: c${i} read what p${i} wrote from the empty file`)
      }
      t.ok(stdoutJson(p).some(e => e.event === 'finished'), `run ${round} reports its end`)
    }
  })
}
