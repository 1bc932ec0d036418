// Data movement end to end: remote cache, worker-to-worker transfers, dedup across
// runs, and a real workflow trace imported from WfCommons.
import t from 'tap'
import path from 'node:path'
import { readFileSync, writeFileSync, mkdirSync, readdirSync, existsSync } from 'node:fs'
import { randomBytes, createHash } from 'node:crypto'
import { stdoutJson, clusterOrSkip, ROOT, type Proc } from '../testbed/cluster.ts'

const events = stdoutJson

const cluster = clusterOrSkip(t)
if (cluster !== undefined) {
  await cluster.startDaemons(3)
  const user = cluster.lab.addHost()
  const home = path.join(cluster.tmp, 'home')
  const submit = async (dag: string, out: string): Promise<{ code: number | null, run: any, finished: any, p: Proc }> => {
    const p = cluster.cli(user, ['submit', dag, '--data-dir', home, '--json', '--wait', '20', '--out', out])
    const { code } = await p.done(120_000)
    if (!existsSync(path.join(out, 'run.json'))) throw new Error(`submit exited ${String(code)} without run.json:\n${p.stderr.slice(-3000)}`)
    return { code, run: JSON.parse(readFileSync(path.join(out, 'run.json'), 'utf8')), finished: events(p).find(e => e.event === 'finished'), p }
  }

  const dir = path.join(cluster.tmp, 'shared-input')
  mkdirSync(path.join(dir, 'data'), { recursive: true })
  const big = randomBytes(4 * 1024 * 1024)
  writeFileSync(path.join(dir, 'data', 'big.bin'), big)
  const bigHash = createHash('sha256').update(big).digest('hex')

  t.test('children read parent outputs worker-to-worker; the submitter sends each input into the grid about once', async t => {
    const dag = path.join(dir, 'chain.json')
    writeFileSync(dag, JSON.stringify({
      name: 'chain',
      workers: { min: 3, max: 3 },
      jobs: [
        ...Array.from({ length: 6 }, (_, i) => ({ id: `a${i}`, cmd: `sha256sum big.bin | cut -c1-64 > in.txt; head -c ${100_000 * (i + 1)} /dev/urandom > out.bin; sleep 0.5`, inputs: [{ src: 'data/big.bin', as: 'big.bin' }], outputs: ['in.txt', 'out.bin'] })),
        ...Array.from({ length: 6 }, (_, i) => ({ id: `b${i}`, cmd: 'sha256sum out.bin | cut -c1-64 > h.txt', inputs: [`job:a${i}/out.bin`], outputs: ['h.txt'] })),
        { id: 'gather', cmd: 'cat h*.txt > all.txt', inputs: Array.from({ length: 6 }, (_, i) => ({ src: `job:b${i}/h.txt`, as: `h${i}.txt` })), outputs: ['all.txt'] }
      ]
    }))
    const { code, run, finished } = await submit(dag, path.join(cluster.tmp, 'out-chain'))
    t.equal(code, 0)
    const all = readFileSync(path.join(cluster.tmp, 'out-chain', 'gather', 'all.txt'), 'utf8').trim().split('\n')
    for (let i = 0; i < 6; i++) t.equal(all[i], run.jobs[`a${i}`].outputs['out.bin'].sha256, `b${i} read exactly the bytes a${i} wrote`)
    t.notOk(existsSync(path.join(cluster.tmp, 'out-chain', 'a0', 'in.txt')), 'intermediate outputs are not collected (only sinks)')
    t.ok(existsSync(path.join(cluster.tmp, 'out-chain', 'gather', 'all.txt')))
    const served = run.data.servedBytes as number
    t.ok(served >= big.length, `submitter sent the input (${served} bytes)`)
    t.ok(served < 6 * big.length, `…fewer times than jobs read it (${(served / big.length).toFixed(1)} copies for 6 readers on 3 workers)`)
    t.same(Object.keys(run.data.servedByBlob), [bigHash], 'the submitter sent the staged input and nothing else: job outputs went worker to worker')
    t.ok(finished.prefetchedBytes > 0, 'prefetching moved data ahead of jobs')
    t.ok(Object.values(run.jobs).some((j: any) => j.worker !== run.jobs.gather.worker), 'work was spread over workers')
  })

  t.test('the same DAG again with unchanged inputs moves zero input bytes', async t => {
    const dag = path.join(dir, 'dedup.json')
    writeFileSync(dag, JSON.stringify({
      name: 'dedup',
      workers: { min: 3, max: 3 },
      jobs: Array.from({ length: 6 }, (_, i) => ({ id: `r${i}`, cmd: 'sleep 0.6; sha256sum big.bin | cut -c1-64 > h.txt', inputs: [{ src: 'data/big.bin', as: 'big.bin' }], outputs: ['h.txt'] }))
    }))
    const first = await submit(dag, path.join(cluster.tmp, 'out-dedup1'))
    t.equal(first.code, 0)
    t.equal(readFileSync(path.join(cluster.tmp, 'out-dedup1', 'r0', 'h.txt'), 'utf8').trim(), bigHash)
    const second = await submit(dag, path.join(cluster.tmp, 'out-dedup2'))
    t.equal(second.code, 0)
    t.equal(second.finished.bytesFetched + second.finished.prefetchedBytes, 0, 'no bytes moved between nodes')
    t.equal(second.run.data.servedBytes, 0, 'the submitter sent nothing')
    t.equal(second.finished.cacheHits, 6, 'every job found its input in place')
  })

  // the project's shared workloads sit beside the repository (../shared/workloads)
  const trace = path.join(ROOT, '..', 'shared', 'workloads', 'epigenomics-chameleon-hep-1seq-100k-001.json')
  t.test('a WfCommons trace (Epigenomics, 41 tasks) imported and run', { skip: !existsSync(trace) && `no trace at ${trace}` }, async t => {
    const wdir = path.join(cluster.tmp, 'epi')
    mkdirSync(wdir)
    const imp = await cluster.runCli(user, ['import', 'wfcommons', trace, '-o', path.join(wdir, 'dag.json'), '--time-scale', '0.002', '--size-scale', '0.01'])
    t.equal(imp.code, 0, imp.stderr)
    t.match(imp.stdout, /41 jobs/)
    const dag = JSON.parse(readFileSync(path.join(wdir, 'dag.json'), 'utf8'))
    t.equal(dag.jobs.length, 41)
    const { code, run } = await submit(path.join(wdir, 'dag.json'), path.join(cluster.tmp, 'out-epi'))
    t.equal(code, 0)
    t.equal(Object.values(run.jobs).filter((j: any) => j.state === 'done').length, 41)
    const sinks = dag.jobs.filter((j: any) => !dag.jobs.some((k: any) => (k.after ?? []).includes(j.id)))
    for (const s of sinks) {
      for (const o of s.outputs) {
        const want = o.size as number
        const got = readFileSync(path.join(cluster.tmp, 'out-epi', s.id, o.name)).length
        t.equal(got, want, `${s.id}/${o.name} has the scaled recorded size`)
      }
    }
    t.ok(readdirSync(path.join(cluster.tmp, 'out-epi')).length > 1)
  })
}
