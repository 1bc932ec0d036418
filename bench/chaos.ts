// Chaos benchmark: a 300-job, data-heavy DAG (1-3 MiB intermediates, worker to worker)
// on 8 daemons, a fault-free round, then rounds with random faults chosen by seed:
// kill -9 of up to two workers, SIGSTOP of one for two leases, garbage written over
// stored blobs, the owner of one machine coming back. Each round's outputs are
// compared byte for byte with the same jobs run locally.
// Prints: rounds succeeded, wrong outputs, jobs re-run beyond what a fault destroyed,
// makespan against the fault-free round.
// usage: node bench/chaos.ts [rounds=10] [seed=1]
import path from 'node:path'
import { writeFileSync, readFileSync, mkdirSync, readdirSync, utimesSync } from 'node:fs'
import { Cluster, stdoutJson, type DaemonProc } from '../testbed/cluster.ts'
import { canMakeNamespaces } from '../testbed/netns.ts'
import { runLocally, compareWithLocal } from '../testbed/local-run.ts'
import { median } from './measure.ts'
import { tryBestEffort } from '../protocol/best-effort.ts'

if (!canMakeNamespaces()) { process.stderr.write('bench/chaos.ts needs root (network namespaces)\n'); process.exit(1) }
const say = (s: string): void => { process.stdout.write(s + '\n') }
const ROUNDS = Number(process.argv[2] ?? 10)
let seed = Number(process.argv[3] ?? 1)
/** mulberry32: the same faults for the same seed */
const rand = (): number => { seed |= 0; seed = seed + 0x6D2B79F5 | 0; let t = Math.imul(seed ^ seed >>> 15, 1 | seed); t = t + Math.imul(t ^ t >>> 7, 61 | t) ^ t; return ((t ^ t >>> 14) >>> 0) / 4294967296 }
const pick = <T>(xs: T[]): T => xs[Math.floor(rand() * xs.length)]
const LEASE = 3

function dag (): Record<string, unknown> {
  const jobs: unknown[] = []
  const A = 100; const B = 150; const C = 50
  for (let i = 0; i < A; i++) jobs.push({ id: `a${i}`, cmd: `sleep "$PAUSE"; yes "a${i}" | head -c ${((i % 3) + 1) << 20} > a.bin`, outputs: [{ name: 'a.bin', size: ((i % 3) + 1) << 20 }] })
  for (let i = 0; i < B; i++) jobs.push({ id: `b${i}`, cmd: 'sleep "$PAUSE"; cat x.bin y.bin | sha256sum > b.txt; head -c 200000 y.bin > b.bin', inputs: [{ src: `job:a${i % A}/a.bin`, as: 'x.bin' }, { src: `job:a${(i * 7 + 3) % A}/a.bin`, as: 'y.bin' }], outputs: ['b.txt', 'b.bin'] })
  for (let i = 0; i < C; i++) jobs.push({ id: `c${i}`, cmd: 'sleep "$PAUSE"; cat p.txt q.txt r.bin | sha256sum > c.txt', inputs: [{ src: `job:b${i}/b.txt`, as: 'p.txt' }, { src: `job:b${i + 50}/b.txt`, as: 'q.txt' }, { src: `job:b${i + 100}/b.bin`, as: 'r.bin' }], outputs: ['c.txt'] })
  return { name: 'chaos', workers: { min: 4, max: 8 }, defaults: { retries: 3, env: { PAUSE: '0.2' } }, jobs }
}

const c = new Cluster()
c.logLevel = 'info'
try {
  const activity = path.join(c.tmp, 'owner-activity')
  writeFileSync(activity, '')
  utimesSync(activity, new Date(0), new Date(0))
  const ownerArgs = ['--slots', '2', '--activity-file', activity, '--idle-start', '1', '--suspend-active', '1', '--idle-load', '1', '--suspend-load', '1', '--max-suspend', '2']
  const plainArgs = ['--always-available', '--slots', '2']
  const daemons: DaemonProc[] = await c.startDaemons(7, plainArgs)
  daemons.push(await c.startDaemon(ownerArgs))
  const argsOf = (d: DaemonProc): string[] => d === daemons[7] ? ownerArgs : plainArgs
  const user = c.lab.addHost()
  mkdirSync(path.join(c.tmp, 'dag'))
  const file = path.join(c.tmp, 'dag', 'dag.json')
  writeFileSync(file, JSON.stringify(dag()))
  const local = runLocally(file, c.tmp, { PAUSE: '0' })
  const idle = async (): Promise<void> => {
    await Promise.all(daemons.map(async d => await d.until(() => ['idle', undefined].includes(d.events.filter(e => e.msg === 'state').at(-1)?.to as string | undefined) ? true : undefined, 60_000, 'idle')))
  }
  const rows: Array<{ round: number, faults: string[], ok: boolean, wrong: number, makespan: number, extra: number, destroyed: number }> = []
  // round -1 warms up (caches, JIT) and is not counted; round 0 is the fault-free baseline
  for (let round = -1; round <= ROUNDS; round++) {
    await idle()
    const out = path.join(c.tmp, `out${round}`)
    const p = c.cli(user, ['submit', file, '--data-dir', path.join(c.tmp, 'home'), '--json', '--quiet', '--out', out, '--lease', String(LEASE), '--wait', '60'])
    const faults: string[] = []
    const done = (): number => stdoutJson(p).filter(e => e.event === 'job' && e.to === 'done').length
    const at = async (fraction: number): Promise<void> => { await p.until(() => done() >= fraction * 300 || !p.alive ? true : undefined, 300_000, `${fraction} done`) }
    const injected: Array<Promise<void>> = []
    if (round > 0) {
      const kills = Math.floor(rand() * 3)
      for (let k = 0; k < kills; k++) {
        const when = 0.2 + rand() * 0.5
        injected.push(at(when).then(() => {
          const alive = daemons.slice(0, 7).filter(d => d.alive)
          const v = pick(alive)
          if (alive.length > 4) { process.kill(v.pid, 'SIGKILL'); faults.push(`kill -9 at ${Math.round(when * 100)} %`) }
        }))
      }
      if (rand() < 0.5) {
        const when = 0.2 + rand() * 0.5
        injected.push(at(when).then(async () => {
          const v = pick(daemons.slice(0, 7).filter(d => d.alive))
          process.kill(v.pid, 'SIGSTOP')
          faults.push(`SIGSTOP for 2 leases at ${Math.round(when * 100)} %`)
          await new Promise(resolve => setTimeout(resolve, 2 * LEASE * 1000))
          process.kill(v.pid, 'SIGCONT')
        }))
      }
      if (rand() < 0.6) {
        const when = 0.3 + rand() * 0.4
        injected.push(at(when).then(() => {
          const v = pick(daemons.filter(d => d.alive))
          const cas = path.join(v.dataDir, 'cas')
          const blobs = readdirSync(cas).filter(x => /^[0-9a-f]{2}$/.test(x)).flatMap(x => readdirSync(path.join(cas, x)).map(f => path.join(cas, x, f)))
          const n = Math.min(blobs.length, 1 + Math.floor(rand() * 3))
          for (let i = 0; i < n; i++) writeFileSync(pick(blobs), 'garbage\n')
          faults.push(`${n} stored blob(s) corrupted at ${Math.round(when * 100)} %`)
        }))
      }
      if (rand() < 0.4) {
        const when = 0.2 + rand() * 0.4
        injected.push(at(when).then(async () => {
          faults.push(`the owner of one machine back for 4 s at ${Math.round(when * 100)} %`)
          const typing = setInterval(() => { utimesSync(activity, new Date(), new Date()) }, 100)
          await new Promise(resolve => setTimeout(resolve, 4000))
          clearInterval(typing)
          utimesSync(activity, new Date(0), new Date(0))
        }))
      }
    }
    const { code } = await p.done(600_000)
    await Promise.allSettled(injected)
    let run: any = {}
    const runJson = path.join(out, 'run.json')
    tryBestEffort('reading the run\'s run.json', () => { run = JSON.parse(readFileSync(runJson, 'utf8')) })
    const wrong = code === 0 ? compareWithLocal(local, run, out).length : 0
    const ev = stdoutJson(p)
    const fin = ev.find(e => e.event === 'finished')
    // attempts past one per job; those a fault explains: lost or preempted attempts, and
    // finished jobs made again because a fault took their outputs
    const attempts = Object.values(run.jobs ?? {}).reduce((n: number, j: any) => n + j.attempts.length, 0)
    const destroyed = Object.values(run.jobs ?? {}).reduce((n: number, j: any) => n + j.attempts.filter((a: any) => ['lost', 'preempted'].includes(a.status)).length, 0) +
      ev.filter(e => e.event === 'job' && e.from === 'done').length
    if (round >= 0) rows.push({ round, faults, ok: code === 0, wrong, makespan: Number(fin?.makespanMs ?? NaN), extra: attempts - 300, destroyed })
    say(`round ${round}: ${code === 0 ? 'ok' : `FAILED (exit ${String(code)})`} in ${(Number(fin?.makespanMs) / 1000).toFixed(1)} s; ${wrong} wrong output(s); ${attempts - 300} extra attempt(s), ${destroyed} explained by the faults; faults: ${faults.length > 0 ? faults.join(', ') : 'none'}`)
    // the killed come back, with their stores, for the next round
    for (let i = 0; i < daemons.length; i++) {
      const d = daemons[i]
      if (d.alive) continue
      daemons[i] = await c.startDaemon(argsOf(d), d.host, path.basename(d.dataDir))
    }
  }
  const faulty = rows.slice(1)
  const base = rows[0].makespan
  say(`chaos: ${faulty.filter(r => r.ok).length}/${faulty.length} faulty rounds succeeded (target all); wrong outputs ${rows.reduce((n, r) => n + r.wrong, 0)} (must be 0); extra attempts beyond the faults' ${faulty.reduce((n, r) => n + Math.max(0, r.extra - r.destroyed), 0)}; makespan median ${(median(faulty.map(r => r.makespan)) / 1000).toFixed(1)} s against ${(base / 1000).toFixed(1)} s fault-free (${(median(faulty.map(r => r.makespan)) / base).toFixed(2)}x)`)
  local.cleanup()
} finally {
  await c.stop()
}
