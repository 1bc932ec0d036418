// DAGMan bag benchmark: a 1,000-node DAGMan file of /bin/true nodes (no edges, no
// PRE/POST scripts) submitted with `bgrid submit bag.dag`, against the same bag as a
// dag.json, on the same two local daemons in the same run. Rounds alternate the two
// (json, dagman, json, dagman...), each timed from the submit's spawn to its exit.
// Target: the DAGMan bag runs at >= 0.8x the dag.json rate.
import path from 'node:path'
import { cpSync, writeFileSync, mkdirSync, readFileSync, readdirSync, rmSync, copyFileSync } from 'node:fs'
import { Cluster, BGRID } from '../testbed/cluster.ts'
import { canMakeNamespaces } from '../testbed/netns.ts'
import { median } from './measure.ts'

if (!canMakeNamespaces()) { process.stderr.write('bench/dagman-bag.ts needs root (network namespaces)\n'); process.exit(1) }
const say = (s: string): void => { process.stdout.write(s + '\n') }
const N = Number(process.argv[2] ?? 1000)
const ROUNDS = Number(process.env.BGRID_BENCH_ROUNDS ?? 3)
const c = new Cluster()
c.logLevel = 'info'
try {
  const ds = await c.startDaemons(2)
  const h = c.lab.addHost()
  const dir = path.join(c.tmp, 'bag')
  mkdirSync(dir)
  const home = path.join(c.tmp, 'home')
  writeFileSync(path.join(dir, 'node.sub'), 'executable = /bin/true\nuniverse = vanilla\nqueue\n')
  writeFileSync(path.join(dir, 'bag.dag'), Array.from({ length: N }, (_, k) => `JOB N${k} node.sub\n`).join(''))
  writeFileSync(path.join(dir, 'bag.json'), JSON.stringify({ defaults: { retries: 0 }, jobs: Array.from({ length: N }, (_, k) => ({ id: `N${k}`, cmd: ['/bin/true'] })) }))

  const idle = async (): Promise<void> => { await Promise.all(ds.map(async d => await d.until(() => d.events.filter(e => e.msg === 'state').at(-1)?.to === 'idle' ? true : undefined, 30_000, 'idle'))) }
  // the DAGMan run's outputs (bag.dag.dagman.out, .nodes.log, .metrics, a rescue DAG...): gone before each run
  const clean = (): void => { for (const f of readdirSync(dir)) if (f.startsWith('bag.dag.')) rmSync(path.join(dir, f), { recursive: true, force: true }) }
  /** ms from the submit's spawn to its exit */
  const submit = async (args: string[], what: string): Promise<number> => {
    const t0 = performance.now()
    const p = c.spawn(h, [process.execPath, BGRID, 'submit', ...args, '--data-dir', home, '--quiet', '--wait', '20'], process.env.BGRID_BENCH_SUBMIT_NODE_OPTIONS !== undefined ? { NODE_OPTIONS: process.env.BGRID_BENCH_SUBMIT_NODE_OPTIONS } : {}, dir)
    const { code, signal } = await p.done(600_000)
    const ms = performance.now() - t0
    if (code !== 0) throw new Error(`${what}: bgrid submit exited ${String(code ?? signal)}\n${p.stderr.slice(-3000)}`)
    return ms
  }

  const rounds: Array<{ json: number, dagman: number }> = []
  for (let k = 0; k < ROUNDS; k++) {
    const jsonMs = await submit(['bag.json', '--out', path.join(c.tmp, `json-out${k}`)], `round ${k + 1} dag.json`)
    await idle()
    clean()
    const dagmanMs = await submit(['bag.dag'], `round ${k + 1} DAGMan`)
    const dout = readFileSync(path.join(dir, 'bag.dag.dagman.out'), 'utf8')
    if (process.env.BGRID_BENCH_KEEP !== undefined) {
      copyFileSync(path.join(dir, 'bag.dag.dagman.out'), path.join(process.env.BGRID_BENCH_KEEP, `dagman-bag-run${k}.dagman.out`))
      cpSync(path.join(dir, 'bgrid-runs'), path.join(process.env.BGRID_BENCH_KEEP, `dagman-runs${k}`), { recursive: true })
      cpSync(path.join(c.tmp, `json-out${k}`), path.join(process.env.BGRID_BENCH_KEEP, `json-out${k}`), { recursive: true })
    }
    if (!/EXITING WITH STATUS 0\s*$/.test(dout)) throw new Error(`round ${k + 1} DAGMan: bag.dag.dagman.out does not end with EXITING WITH STATUS 0:\n${dout.slice(-2000)}`)
    await idle()
    clean()
    rounds.push({ json: N / (jsonMs / 1000), dagman: N / (dagmanMs / 1000) })
    say(`round ${k + 1}: dag.json ${(N / (jsonMs / 1000)).toFixed(0)} jobs/s (${(jsonMs / 1000).toFixed(2)} s), DAGMan ${(N / (dagmanMs / 1000)).toFixed(0)} jobs/s (${(dagmanMs / 1000).toFixed(2)} s), dagman/json ${(jsonMs / dagmanMs).toFixed(2)}`)
  }
  const ratios = rounds.map(r => r.dagman / r.json)
  const fmt = (xs: number[]): string => xs.map(x => x.toFixed(0)).join('/')
  say(`dagman bag: ${N} x /bin/true nodes (no edges) on 2 daemons (one 2-core machine), ${ROUNDS} rounds, submit spawn to exit: DAGMan ${fmt(rounds.map(r => r.dagman))} jobs/s (median ${median(rounds.map(r => r.dagman)).toFixed(0)}), dag.json ${fmt(rounds.map(r => r.json))} jobs/s (median ${median(rounds.map(r => r.json)).toFixed(0)}); ratio dagman/json per round ${ratios.map(x => x.toFixed(2)).join('/')}`)
  say(`dagman bag: median ${median(ratios).toFixed(2)} of the dag.json rate (target >= 0.8)`)
  process.exitCode = median(ratios) >= 0.8 ? 0 : 1
} finally {
  await c.stop()
}
