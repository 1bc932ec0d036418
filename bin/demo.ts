// `npm run demo`: three volunteer daemons, then two DAGs and a DAGMan file submitted end to end.
// As root each daemon gets its own network namespace (no multicast on the real LAN);
// as an ordinary user they run on this machine and announce _bgrid._tcp on the LAN.
import path from 'node:path'
import { readFileSync, cpSync } from 'node:fs'
import { Cluster, ROOT, BGRID } from '../testbed/cluster.ts'
import { canMakeNamespaces } from '../testbed/netns.ts'

const say = (s: string): void => { process.stdout.write(s + '\n') }
const isolated = canMakeNamespaces()
say(isolated
  ? '== bgrid demo: 3 volunteer daemons, each in its own network namespace (a private 10.x LAN on a bridge)'
  : '== bgrid demo: 3 volunteer daemons on this machine (not root: they announce _bgrid._tcp on your LAN, as a real daemon does)')
const cluster = new Cluster({ hostMode: !isolated })
let code = 1
const stop = (): void => { cluster.stop().finally(() => process.exit(130)) }
process.once('SIGINT', stop)
try {
  const daemons = await cluster.startDaemons(3, ['--always-available', '--cost', '0'])
  say(`started ${daemons.length} daemons: ${daemons.map(d => d.peer.slice(-8)).join(', ')}`)
  const user = cluster.lab.addHost()
  say('\n$ bgrid peers')
  const peers = await cluster.runCli(user, ['peers', '--timeout', '2'])
  process.stdout.write(peers.stdout)

  const home = path.join(cluster.tmp, 'submitter')
  for (const name of ['diamond', 'bag']) {
    const out = path.join(cluster.tmp, `out-${name}`)
    say(`\n$ bgrid submit examples/${name}/dag.json --out ${out}`)
    const t0 = Date.now()
    const p = cluster.cli(user, ['submit', path.join(ROOT, 'examples', name, 'dag.json'), '--data-dir', home, '--out', out, '--wait', '20'])
    p.child.stderr?.on('data', (c: Buffer) => { process.stdout.write(c) })
    const r = await p.done(120_000)
    if (r.code !== 0) throw new Error(`submit ${name} exited ${String(r.code)}`)
    if (name === 'diamond') say(`total.txt = ${readFileSync(path.join(out, 'sum', 'total.txt'), 'utf8').trim()} (words in examples/diamond/data/words.txt, split in two halves, counted in parallel, summed)`)
    else say(`gather: ${readFileSync(path.join(out, 'gather', 'count.txt'), 'utf8').trim()} digests collected from 40 tasks in ${((Date.now() - t0) / 1000).toFixed(1)}s`)
    const run = JSON.parse(readFileSync(path.join(out, 'run.json'), 'utf8'))
    const perWorker = new Map<string, number>()
    for (const j of Object.values(run.jobs) as any[]) perWorker.set(String(j.worker).slice(-8), (perWorker.get(String(j.worker).slice(-8)) ?? 0) + 1)
    say(`jobs per worker: ${[...perWorker].map(([w, n]) => `${w}=${n}`).join(' ')}`)
  }
  // an HTCondor DAGMan file, run as it is (in a copy: DAGMan writes beside the DAG)
  const dagman = path.join(cluster.tmp, 'dagman')
  cpSync(path.join(ROOT, 'examples', 'dagman'), dagman, { recursive: true })
  say(`\n$ cd ${dagman} && bgrid submit wordcount.dag`)
  const dm = cluster.spawn(user, [process.execPath, BGRID, 'submit', 'wordcount.dag', '--data-dir', home, '--wait', '20'], {}, dagman)
  dm.child.stderr?.on('data', (c: Buffer) => { process.stdout.write(c) })
  const dr = await dm.done(120_000)
  if (dr.code !== 0) throw new Error(`submit wordcount.dag exited ${String(dr.code)}`)
  say(`report.txt (its FINAL node): ${readFileSync(path.join(dagman, 'report.txt'), 'utf8').trim()}; dagman.out, the node status file and jobstate.log are beside it`)

  say('\n$ bgrid peers   (workers released: idle again)')
  process.stdout.write((await cluster.runCli(user, ['peers', '--timeout', '1.5'])).stdout)
  code = 0
} catch (err) {
  process.stderr.write(`demo failed: ${(err as Error).message}\n`)
} finally {
  await cluster.stop()
  say(isolated ? 'cleaned up: daemons stopped, namespaces removed' : 'cleaned up: daemons stopped')
}
process.exit(code)
