// What an idle volunteer PC pays for the LAN it is on: N real daemons (idle, no run) on
// one bridge, each in its own network namespace; over a window, the CPU they use (from
// /proc) and the multicast packets each receives (its eth0). Several sizes, several runs
// each (it is noisy on a shared machine); the per-daemon CPU is fitted as a + b·N by
// least squares and extrapolated to 1,000 nodes (issue target: under 1 % of a core).
// usage: node bench/idle-cost.ts [--nodes 10,60] [--runs 2] [--window 20] [--json]
import { parseArgs } from 'node:util'
import { readFileSync } from 'node:fs'
import { execFileSync } from 'node:child_process'
import { Cluster, type DaemonProc } from '../testbed/cluster.ts'
import { sleep } from '../protocol/sleep.ts'

const { values: o } = parseArgs({
  options: {
    nodes: { type: 'string', default: '10,60' },
    runs: { type: 'string', default: '2' },
    window: { type: 'string', default: '20' },
    settle: { type: 'string', default: '15' },
    json: { type: 'boolean', default: false }
  }
})
const sizes = String(o.nodes).split(',').map(Number)
const windowSec = Number(o.window)
const TICK = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim())

/** user + system CPU seconds of a process so far */
function cpuSeconds (pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ')
  return (Number(fields[11]) + Number(fields[12])) / TICK
}

/** packets received on a host's eth0 so far */
function rxPackets (ns: string): number {
  const out = execFileSync('ip', ['-n', ns, '-s', 'link', 'show', 'eth0'], { encoding: 'utf8' })
  const lines = out.split('\n')
  const i = lines.findIndex(l => /^\s*RX:/.test(l))
  return Number(lines[i + 1].trim().split(/\s+/)[1])
}

interface Point { nodes: number, cpuPercentPerDaemon: number, packetsPerSecondPerNode: number, cpuMsPerPacket: number }

async function measure (n: number): Promise<Point> {
  const cluster = new Cluster()
  cluster.logLevel = 'info'
  const daemons: DaemonProc[] = []
  try {
    for (let i = 0; i < n; i += 4) daemons.push(...await cluster.startDaemons(Math.min(4, n - i), ['--always-available', '--sample', '2000']))
    // past the start: announcements repeat for a while after publishing (1, 3, 9 s...)
    await sleep(Number(o.settle) * 1000)
    const cpu0 = daemons.reduce((s, d) => s + cpuSeconds(d.pid), 0)
    const rx0 = rxPackets(daemons[0].host.ns)
    const t0 = Date.now()
    await sleep(windowSec * 1000)
    const seconds = (Date.now() - t0) / 1000
    const cpu = daemons.reduce((s, d) => s + cpuSeconds(d.pid), 0) - cpu0
    const rx = rxPackets(daemons[0].host.ns) - rx0
    const perDaemon = cpu / n / seconds
    return {
      nodes: n,
      cpuPercentPerDaemon: Math.round(perDaemon * 100 * 1000) / 1000,
      packetsPerSecondPerNode: Math.round(rx / seconds * 100) / 100,
      cpuMsPerPacket: rx > 0 ? Math.round(perDaemon * 1000 / (rx / seconds) * 1000) / 1000 : 0
    }
  } finally {
    for (const d of daemons) d.kill('SIGTERM')
    await Promise.all(daemons.map(async d => await d.done(15_000).catch(() => undefined)))
    await cluster.stop()
  }
}

const points: Point[] = []
for (let r = 0; r < Number(o.runs); r++) {
  for (const n of sizes) {
    const p = await measure(n)
    points.push(p)
    if (o.json !== true) process.stdout.write(`${n} idle daemons: ${p.cpuPercentPerDaemon} % of a core each, ${p.packetsPerSecondPerNode} packets/s received per node, ${p.cpuMsPerPacket} ms of CPU per packet\n`)
  }
}
// least squares: cpu% = a + b·N
const mx = points.reduce((s, p) => s + p.nodes, 0) / points.length
const my = points.reduce((s, p) => s + p.cpuPercentPerDaemon, 0) / points.length
const sxx = points.reduce((s, p) => s + (p.nodes - mx) ** 2, 0)
const b = sxx > 0 ? points.reduce((s, p) => s + (p.nodes - mx) * (p.cpuPercentPerDaemon - my), 0) / sxx : 0
const a = my - b * mx
const at1000 = a + b * 1000
const summary = { points, fit: { a: Math.round(a * 1000) / 1000, b: Math.round(b * 1e6) / 1e6 }, cpuPercentAt1000: Math.round(at1000 * 1000) / 1000, targetPercent: 1 }
if (o.json === true) process.stdout.write(JSON.stringify(summary) + '\n')
else process.stdout.write(`fit: ${summary.fit.a} + ${summary.fit.b}·N % of a core per idle daemon; at 1,000 nodes: ${summary.cpuPercentAt1000} % (target under 1 %)\n`)
