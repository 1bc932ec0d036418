// The native path loses nothing to the middleware seam: 2,000 `/bin/true` on two
// daemons of this build against two daemons (and the CLI) of the build before the seam,
// same run, rounds alternating. The old build is checked out into a git worktree and
// compiled (node_modules shared). Target: this build at least 0.9x the old one's rate.
// usage: node bench/seam.ts [N] [REV]   (REV: the commit before the seam, by default)
import path from 'node:path'
import os from 'node:os'
import { writeFileSync, mkdirSync, existsSync, symlinkSync, rmSync } from 'node:fs'
import { execFileSync } from 'node:child_process'
import { Cluster, stdoutJson, ROOT, BGRID, type DaemonProc } from '../testbed/cluster.ts'
import { canMakeNamespaces } from '../testbed/netns.ts'
import { median } from './measure.ts'

/** the last commit before the two-sided seam (claim 2.1.0, replication policy) */
const BEFORE_SEAM = 'd94144e'

if (!canMakeNamespaces()) { process.stderr.write('bench/seam.ts needs root (network namespaces)\n'); process.exit(1) }
const say = (s: string): void => { process.stdout.write(s + '\n') }
const N = Number(process.argv[2] ?? 2000)
const rev = process.argv[3] ?? BEFORE_SEAM
const old = path.join(os.tmpdir(), `bgrid-bench-${rev}`)
if (!existsSync(path.join(old, 'dist', 'bin', 'bgrid.js'))) {
  say(`building ${rev} in ${old} (once)`)
  rmSync(old, { recursive: true, force: true })
  execFileSync('git', ['-C', ROOT, 'worktree', 'add', '--force', '--detach', old, rev], { stdio: 'inherit' })
  symlinkSync(path.join(ROOT, 'node_modules'), path.join(old, 'node_modules'))
  execFileSync(process.execPath, [path.join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', path.join(old, 'tsconfig.build.json')], { stdio: 'inherit', cwd: old })
  execFileSync(process.execPath, [path.join(old, 'daemon', 'contain', 'build.ts')], { stdio: 'inherit', cwd: old })
}
const OLD_BGRID = path.join(old, 'dist', 'bin', 'bgrid.js')

const c = new Cluster()
c.logLevel = 'info'
try {
  // each build's pair advertises its own cost, and each DAG asks for its pair
  const now = await c.startDaemons(2, ['--always-available', '--cost', '0'])
  const before = await Promise.all([0, 1].map(async () => await c.startDaemon(['--always-available', '--cost', '1'], undefined, undefined, { entry: OLD_BGRID })))
  const h = c.lab.addHost()
  mkdirSync(path.join(c.tmp, 'bag'))
  const bag = (cost: number): string => {
    const f = path.join(c.tmp, 'bag', `cost${cost}.json`)
    writeFileSync(f, JSON.stringify({ name: 'true-bag', requirements: `cost == ${cost}`, workers: { min: 2, max: 2 }, jobs: Array.from({ length: N }, (_, i) => ({ id: `t${i}`, cmd: ['/bin/true'] })) }))
    return f
  }
  const idle = async (ds: DaemonProc[]): Promise<void> => { await Promise.all(ds.map(async d => await d.until(() => d.events.filter(e => e.msg === 'state').at(-1)?.to === 'idle' ? true : undefined, 15_000, 'idle'))) }
  let k = 0
  const rate = async (cli: string, file: string, ds: DaemonProc[]): Promise<number> => {
    const p = c.spawn(h, [process.execPath, cli, 'submit', file, '--data-dir', path.join(c.tmp, cli === BGRID ? 'home-new' : 'home-old'), '--json', '--out', path.join(c.tmp, `out${++k}`)])
    const { code } = await p.done(600_000)
    if (code !== 0) throw new Error(`${cli}: exit ${String(code)}\n${p.stderr.slice(-2000)}`)
    const fin = stdoutJson(p).find(e => e.event === 'finished')
    await idle(ds)
    return N / (fin.makespanMs / 1000)
  }
  const ratios: number[] = []
  const ROUNDS = Number(process.env.BGRID_BENCH_ROUNDS ?? 3)
  for (let r = 0; r < ROUNDS; r++) {
    const b = await rate(OLD_BGRID, bag(1), before)
    const a = await rate(BGRID, bag(0), now)
    ratios.push(a / b)
    say(`round ${r + 1}: this build ${a.toFixed(0)} jobs/s, ${rev} ${b.toFixed(0)} jobs/s: ${(a / b).toFixed(2)}x`)
  }
  say(`native path after the seam vs ${rev}, ${N} /bin/true on 2 daemons each: median ${median(ratios).toFixed(2)}x (target >= 0.9x: ${median(ratios) >= 0.9 ? 'met' : 'NOT met'})`)
} finally {
  await c.stop()
}
