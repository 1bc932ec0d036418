// Two-sided matching on namespaced daemons (issue 10): a node's START policy keeps the
// jobs it refuses away from it, a node's custom attribute draws the jobs that require
// it, and --analyze names the clauses of a job no node can run, the job's and the
// nodes'. Outputs compared with a local run of the same jobs.
import t from 'tap'
import path from 'node:path'
import { readFileSync } from 'node:fs'
import { clusterOrSkip, type Proc } from '../testbed/cluster.ts'
import { runLocally, compareWithLocal } from '../testbed/local-run.ts'

const cluster = clusterOrSkip(t)
if (cluster !== undefined) {
  // small: takes no job over 512 MiB; matlab: the one with HasMatlab; two plain nodes
  const small = await cluster.startDaemon(['--always-available', '--start', 'RequestMemory <= 512', '--attr', 'Site="lab-s"'])
  const matlab = await cluster.startDaemon(['--always-available', '--attr', 'HasMatlab=true', '--attr', 'Site=lab-b'])
  const plain = await cluster.startDaemons(2)
  const user = cluster.lab.addHost()
  const home = path.join(cluster.tmp, 'home')
  const submit = (file: string, args: string[] = []): Proc =>
    cluster.cli(user, ['submit', file, '--data-dir', home, '--json', '--lease', '3', ...args])
  const cli = async (args: string[], timeoutMs = 30_000): ReturnType<typeof cluster.runCli> => await cluster.runCli(user, [...args, '--data-dir', home], timeoutMs)
  const runJson = (out: string): any => JSON.parse(readFileSync(path.join(out, 'run.json'), 'utf8'))
  const idle = async (): Promise<void> => {
    await Promise.all(cluster.daemons.filter(d => d.alive).map(async d => await d.until(() => {
      const st = d.events.filter(e => e.msg === 'state').at(-1)
      return st === undefined || st.to === 'idle' ? true : undefined
    }, 20_000, 'idle')))
  }
  const workerOf = (run: any, id: string): string => run.jobs[id].worker

  t.test('a node with --start \'RequestMemory <= 512\' never gets a 1 GiB job; the 256 MiB ones may run there; outputs equal a local run', async t => {
    const jobs: any[] = []
    for (let i = 0; i < 6; i++) {
      jobs.push({ id: `small${i}`, cmd: `seq ${i} 400 > s.txt`, outputs: ['s.txt'], ram: 256 })
      jobs.push({ id: `big${i}`, cmd: `seq ${i} 700 | sort -r > b.txt`, outputs: ['b.txt'], ram: 1024 })
    }
    jobs.push({ id: 'sum', cmd: 'cat s*.txt b*.txt | wc -l > sum.txt', inputs: [...jobs.map(j => ({ src: `job:${j.id}/${j.outputs[0]}`, as: `${j.outputs[0].replace('.txt', '')}-${j.id}.txt` }))], outputs: ['sum.txt'], ram: 1024 })
    const file = cluster.writeDag({ name: 'start-policy', workers: { min: 4, max: 4 }, jobs })
    const local = runLocally(file, cluster.tmp)
    t.teardown(local.cleanup)
    for (let round = 0; round < 2; round++) {
      const out = path.join(cluster.tmp, `start-${round}`)
      const p = submit(file, ['--out', out, '--wait', '20'])
      const { code } = await p.done(120_000)
      t.equal(code, 0, `round ${round}: succeeded ${p.stderr.slice(-800)}`)
      const run = runJson(out)
      const big = Object.keys(run.jobs).filter(id => run.jobs[id].attempts.length > 0 && (id.startsWith('big') || id === 'sum'))
      t.equal(big.length, 7)
      t.same(big.filter(id => workerOf(run, id) === small.peer), [], `round ${round}: no 1 GiB job ran on the node whose START refuses them`)
      t.same(big.flatMap(id => run.jobs[id].attempts.filter((a: any) => a.worker === small.peer)), [], 'nor was one ever handed to it')
      t.ok(Object.values(run.jobs).every((j: any) => j.state === 'done'))
      t.same(compareWithLocal(local, run, out), [], `round ${round}: outputs equal the local ones`)
      t.comment(`small jobs on the START node: ${Object.keys(run.jobs).filter(id => id.startsWith('small') && workerOf(run, id) === small.peer).length}`)
      await idle()
    }
    t.notOk(small.events.some(e => e.msg === 'job refused by the START policy'), 'the coordinator never sent it one it refuses (the node did not have to refuse)')
  })

  t.test('a node with --attr HasMatlab=true is the only one that gets HasMatlab jobs', async t => {
    const jobs: any[] = []
    for (let i = 0; i < 4; i++) {
      jobs.push({ id: `m${i}`, cmd: `echo matlab ${i} > m.txt`, outputs: ['m.txt'], requirements: i % 2 === 0 ? 'HasMatlab =?= true' : 'HasMatlab == true && Site == "LAB-B"' })
      jobs.push({ id: `p${i}`, cmd: `seq 1 ${100 + i} > p.txt`, outputs: ['p.txt'] })
    }
    const file = cluster.writeDag({ name: 'matlab', workers: { min: 4, max: 4 }, jobs })
    const local = runLocally(file, cluster.tmp)
    t.teardown(local.cleanup)
    const out = path.join(cluster.tmp, 'matlab')
    const p = submit(file, ['--out', out, '--wait', '20'])
    const { code } = await p.done(120_000)
    t.equal(code, 0, p.stderr.slice(-800))
    const run = runJson(out)
    for (let i = 0; i < 4; i++) t.equal(workerOf(run, `m${i}`), matlab.peer, `m${i} ran on the HasMatlab node`)
    t.same(compareWithLocal(local, run, out), [], 'outputs equal the local ones')
    await idle()
  })

  t.test('--analyze names the clauses of a job no node can run: the job\'s requirements and the nodes\' START', async t => {
    // only the small node is at Site "lab-s", and its START refuses 1 GiB
    const file = cluster.writeDag({
      name: 'nowhere',
      workers: { min: 1, max: 4 },
      jobs: [
        { id: 'fine', cmd: 'echo fine > f.txt', outputs: ['f.txt'] },
        { id: 'nowhere', cmd: 'echo never > n.txt', outputs: ['n.txt'], ram: 1024, requirements: 'Site =?= "lab-s"' }
      ]
    })
    const out = path.join(cluster.tmp, 'nowhere')
    const d = await cli(['submit', file, '--detach', '--lease', '3', '--out', out, '--wait', '15'])
    t.equal(d.code, 0, d.stderr)
    const id = d.stdout.trim()
    let an = { code: null as number | null, stdout: '', stderr: '' }
    const until = Date.now() + 12_000
    // until every node has been seen (the analysis accounts for each)
    while (Date.now() < until) {
      an = await cli(['status', id, '--analyze', 'nowhere'])
      if (/0 of 4 node\(s\) seen can run it/.test(an.stdout)) break
      await new Promise(resolve => setTimeout(resolve, 300))
    }
    t.equal(an.code, 0, an.stderr)
    t.comment(an.stdout)
    t.match(an.stdout, /0 of 4 node\(s\) seen can run it/, an.stdout)
    t.match(an.stdout, /`Site =\?= "lab-s"` fails on 3 node\(s\)/, 'the job\'s clause, with the nodes that fail it')
    t.match(an.stdout, /Site="lab-b"/, 'with their values')
    t.match(an.stdout, /Site=undefined/, 'an attribute a node lacks is undefined')
    t.match(an.stdout, /the node's START `RequestMemory <= 512` fails on 1 node\(s\): [^\n]*\(RequestMemory=1024\)/, 'the node\'s START clause, with the job\'s value')
    t.match(an.stdout, /3 node\(s\) rejected by the job's requirements, 1 reject the job by their START policy/)
    // after --wait it fails as unplaceable, saying the same
    const deadline = Date.now() + 40_000
    let run: any
    while (Date.now() < deadline) {
      try { run = runJson(out); break } catch { await new Promise(resolve => setTimeout(resolve, 300)) }
    }
    t.equal(run?.jobs.fine.state, 'done')
    t.equal(run?.jobs.nowhere.state, 'failed')
    t.match(run?.jobs.nowhere.reason, /unplaceable: .*the node's START `RequestMemory <= 512` fails on 1 node\(s\)/)
    await idle()
  })
}
