// Issue 2 benchmarks: discovery latency (1 and 50 daemons), state-change latency,
// idle footprint, claim races. Daemons run in network namespaces (root needed).
import path from 'node:path'
import { readFileSync } from 'node:fs'
import { Cluster, ROOT, type DaemonProc } from '../testbed/cluster.ts'
import { canMakeNamespaces } from '../testbed/netns.ts'
import { percentile, cpuMs } from './measure.ts'

if (!canMakeNamespaces()) { process.stderr.write('bench/daemon.ts needs root (network namespaces)\n'); process.exit(1) }
const only = process.argv.slice(2)
const want = (k: string): boolean => only.length === 0 || only.includes(k)
const say = (s: string): void => { process.stdout.write(s + '\n') }
const lines = (s: string): any[] => s.split('\n').filter(l => l.startsWith('{')).map(l => JSON.parse(l))

async function discovery (n: number): Promise<void> {
  const c = new Cluster()
  try {
    const viewer = c.lab.addHost()
    const watch = c.cli(viewer, ['peers', '--watch', '--json', '--timeout', '600'])
    await new Promise(resolve => setTimeout(resolve, 1500)) // the watcher's own start-up
    const spawnAt = new Map<DaemonProc, number>()
    const ds: DaemonProc[] = []
    // one at a time: each daemon starts on a LAN where the others already run (on 2 cores,
    // starting several Node processes at once measures CPU contention, not discovery)
    for (let i = 0; i < n; i += 1) {
      const batch = Array.from({ length: 1 }, async () => {
        const t = Date.now()
        const d = await c.startDaemon(['--always-available'])
        spawnAt.set(d, t)
        return d
      })
      ds.push(...await Promise.all(batch))
    }
    await watch.until(() => ds.every(d => lines(watch.stdout).some(e => e.peer === d.peer)) ? true : undefined, 60_000, 'all listed')
    const fromReady: number[] = []
    const fromSpawn: number[] = []
    for (const d of ds) {
      const seen = lines(watch.stdout).find(e => e.peer === d.peer).time as number
      const ready = Date.parse(String(d.events.find(e => e.msg === 'daemon started')?.time))
      fromReady.push(seen - ready)
      fromSpawn.push(seen - (spawnAt.get(d) ?? seen))
    }
    if (n > 1) {
      const fresh = c.cli(viewer, ['peers', '--watch', '--json', '--timeout', '600'])
      const t0 = Date.now()
      await fresh.until(() => ds.every(d => lines(fresh.stdout).some(e => e.peer === d.peer)) ? true : undefined, 60_000, 'fresh browser lists all')
      const firstOut = Math.min(...lines(fresh.stdout).map(e => Number(e.time)))
      say(`a new browser lists all ${n} running daemons ${Math.max(...lines(fresh.stdout).map(e => Number(e.time))) - firstOut} ms after its first answer (${Date.now() - t0} ms including its own process start)`)
      fresh.kill()
    }
    say(`discovery, ${n} daemon(s): listed relative to its 'daemon started' log line (negative: seen before that line): median ${percentile(fromReady, 50)} ms, max ${Math.max(...fromReady)} ms; after process spawn: median ${percentile(fromSpawn, 50)} ms, max ${Math.max(...fromSpawn)} ms (target < 3000 ms)`)
    if (n === 1) {
      // state change: claim the node, time until the watcher sees state=worker
      const d = ds[0]
      const results: number[] = []
      for (let k = 0; k < 10; k++) {
        const before = lines(watch.stdout).length
        const logFrom = d.events.length
        const probe = c.spawn(viewer, [process.execPath, path.join(ROOT, 'testbed', 'probe.ts'), '--addr', `/ip4/${d.host.ip}/tcp/${d.port}/p2p/${d.peer}`, '--op', 'claim', '--run', `sc${k}`, '--lease', '1000'])
        const granted = await probe.until(() => lines(probe.stdout).find(e => e.op === 'claim'), 15_000, 'claim')
        const tGrant = Date.now()
        const seen = await watch.until(() => lines(watch.stdout).slice(before).find(e => e.peer === d.peer && e.state === 'worker'), 10_000, 'state worker')
        // from the daemon's own log line of the transition (same clock: one machine)
        const changed = await d.waitLog(e => e.msg === 'state' && e.to === 'worker', 10_000, 'state worker logged', logFrom)
        results.push(seen.time - Date.parse(String(changed.time)))
        if (granted.ok !== true) throw new Error('claim refused')
        await d.waitLog(e => e.msg === 'state' && e.to === 'idle' && Date.parse(String(e.time)) > tGrant, 10_000, 'idle again')
      }
      say(`state change idle->worker seen by a browser: median ${percentile(results, 50)} ms, max ${Math.max(...results)} ms over ${results.length} claims, from the daemon's log line of the transition to the browser's output line (target < 1500 ms)`)
    }
    watch.kill()
  } finally { await c.stop() }
}

async function footprint (): Promise<void> {
  const c = new Cluster()
  try {
    const d = await c.startDaemon(['--always-available', '--sample', '2000'])
    await new Promise(resolve => setTimeout(resolve, 3000)) // past start-up
    const rss = (): number => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${d.pid}/status`, 'utf8'))?.[1] ?? 0) / 1024
    const t0 = cpuMs(d.pid)[0]; const w0 = Date.now()
    let maxRss = 0
    while (Date.now() - w0 < 60_000) { maxRss = Math.max(maxRss, rss()); await new Promise(resolve => setTimeout(resolve, 1000)) }
    const cpu = (cpuMs(d.pid)[0] - t0) / (Date.now() - w0) * 100
    say(`idle daemon footprint over 60 s: RSS max ${maxRss.toFixed(0)} MB, CPU ${cpu.toFixed(2)}% of one core (targets < 100 MB, < 2%)`)
  } finally { await c.stop() }
}

async function races (): Promise<void> {
  const c = new Cluster()
  try {
    const d = await c.startDaemon(['--always-available'])
    const h = c.lab.addHost()
    const p = c.spawn(h, [process.execPath, path.join(ROOT, 'bench', 'claim-race.ts'), '--addr', `/ip4/${d.host.ip}/tcp/${d.port}/p2p/${d.peer}`, '--rounds', '1000', '--racers', '5'])
    await p.done(600_000)
    const res = lines(p.stdout)[0]
    say(`claim races: ${res.rounds} rounds of ${res.racers} coordinators on separate connections: ${res.doubleGrants} double grants, ${res.roundsWithoutWinner} rounds without a winner, ${res.msPerRound.toFixed(1)} ms per round (target: 0 double grants)`)
  } finally { await c.stop() }
}

if (want('discovery')) { await discovery(1); await discovery(50) }
if (want('races')) await races()
if (want('footprint')) await footprint()
