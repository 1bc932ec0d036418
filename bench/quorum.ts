// BOINC-style verified execution: what replication costs and what adaptive replication
// gives back. (1) 200 jobs of 0.2 s on the same 6 workers, native against quorum 2
// (adaptive replication off: every job twice), rounds alternating, same run: the work
// doubles, so the makespan ratio should stay near 2 (target <= 2.2x). (2) 1,000 short
// jobs with adaptive replication on honest workers, from a submitter with no record of
// them: replicas issued per job as trust builds (target <= 1.3 once it is built).
import path from 'node:path'
import { writeFileSync, mkdirSync, readFileSync } from 'node:fs'
import { Cluster, stdoutJson } from '../testbed/cluster.ts'
import { canMakeNamespaces } from '../testbed/netns.ts'
import { median } from './measure.ts'

if (!canMakeNamespaces()) { process.stderr.write('bench/quorum.ts needs root (network namespaces)\n'); process.exit(1) }
const say = (s: string): void => { process.stdout.write(s + '\n') }
const ROUNDS = Number(process.env.BGRID_BENCH_ROUNDS ?? 3)
const c = new Cluster()
c.logLevel = 'info'
try {
  const ds = await c.startDaemons(6)
  const h = c.lab.addHost()
  const dir = path.join(c.tmp, 'dags')
  mkdirSync(dir)
  const dag = (name: string, extra: Record<string, unknown>, n: number, cmd: string[]): string => {
    const f = path.join(dir, `${name}.json`)
    writeFileSync(f, JSON.stringify({ name, workers: { min: 6, max: 6 }, ...extra, jobs: Array.from({ length: n }, (_, i) => ({ id: `j${i}`, cmd, outputs: ['o.txt'] })) }))
    return f
  }
  const sleepCmd = ['/bin/sh', '-c', 'sleep 0.2; echo "$BGRID_JOB" > o.txt']
  const native = dag('native', {}, 200, sleepCmd)
  const quorum = dag('quorum', { middleware: 'boinc', defaults: { quorum: 2, replicas: 2, adaptive: false } }, 200, sleepCmd)
  const idle = async (): Promise<void> => { await Promise.all(ds.map(async d => await d.until(() => d.events.filter(e => e.msg === 'state').at(-1)?.to === 'idle' ? true : undefined, 15_000, 'idle'))) }
  let k = 0
  const run = async (file: string, home = 'home'): Promise<{ makespanMs: number, run: any }> => {
    const out = path.join(c.tmp, `out${++k}`)
    const p = c.cli(h, ['submit', file, '--data-dir', path.join(c.tmp, home), '--json', '--wait', '30', '--out', out])
    const { code } = await p.done(600_000)
    if (code !== 0) throw new Error(`${file}: exit ${String(code)}\n${p.stderr.slice(-2000)}`)
    const fin = stdoutJson(p).find(e => e.event === 'finished')
    await idle()
    return { makespanMs: fin.makespanMs, run: JSON.parse(readFileSync(path.join(out, 'run.json'), 'utf8')) }
  }

  const ratios: number[] = []
  for (let r = 0; r < ROUNDS; r++) {
    const a = await run(native)
    const b = await run(quorum)
    const attempts = Object.values(b.run.jobs).reduce((n: number, j: any) => n + j.attempts.length, 0)
    ratios.push(b.makespanMs / a.makespanMs)
    say(`round ${r + 1}: native ${(a.makespanMs / 1000).toFixed(2)} s, quorum 2 ${(b.makespanMs / 1000).toFixed(2)} s (${attempts} replicas for 200 jobs): ${(b.makespanMs / a.makespanMs).toFixed(2)}x`)
  }
  say(`quorum 2 vs native, 200 jobs of 0.2 s on 6 workers: median ${median(ratios).toFixed(2)}x (target <= 2.2x: ${median(ratios) <= 2.2 ? 'met' : 'NOT met'})`)

  // adaptive replication from a submitter that knows none of the workers yet
  const N = Number(process.env.BGRID_BENCH_ADAPTIVE_JOBS ?? 1000)
  const adaptive = dag('adaptive', { middleware: 'boinc' }, N, ['/bin/sh', '-c', 'echo "$BGRID_JOB" > o.txt'])
  const { run: ar } = await run(adaptive, 'fresh-home')
  // replicas per job, in the order the jobs were decided
  const perJob = (Object.values(ar.jobs) as any[]).map(j => ({ at: Math.max(...j.attempts.map((a: any) => a.reportedAt ?? a.endedAt ?? 0)), n: j.attempts.length }))
    .sort((x, y) => x.at - y.at).map(x => x.n)
  const curve: string[] = []
  for (let i = 0; i < perJob.length; i += 100) {
    const slice = perJob.slice(i, i + 100)
    curve.push((slice.reduce((a, b) => a + b, 0) / slice.length).toFixed(2))
  }
  const tail = perJob.slice(Math.floor(perJob.length / 2))
  const tailMean = tail.reduce((a, b) => a + b, 0) / tail.length
  say(`adaptive replication, ${N} jobs on 6 honest workers: replicas per job by 100s of jobs: ${curve.join(' ')}`)
  say(`replicas per job over the second half (trust built): ${tailMean.toFixed(2)} (target <= 1.3: ${tailMean <= 1.3 ? 'met' : 'NOT met'})`)
} finally {
  await c.stop()
}
