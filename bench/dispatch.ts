// Dispatch benchmarks: the rate of 2,000 /bin/true jobs on two local daemons against
// `xargs -P2` in the same run, the same bag on two daemons of the same build without
// job containment (--isolation none: what containment costs), and the time to first
// result of a one-job DAG. The contained pair advertises cost 0, the unconfined pair
// cost 1: each DAG picks its pair with `requirements`.
import path from 'node:path'
import { writeFileSync, mkdirSync, readFileSync } from 'node:fs'
import { execFileSync } from 'node:child_process'
import { Cluster } from '../testbed/cluster.ts'
import { canMakeNamespaces } from '../testbed/netns.ts'
import { median, cpuMs } from './measure.ts'

function childrenOf (pid: number): number[] {
  try { return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number) } catch { return [] }
}

if (!canMakeNamespaces()) { process.stderr.write('bench/dispatch.ts needs root (network namespaces)\n'); process.exit(1) }
const say = (s: string): void => { process.stdout.write(s + '\n') }
const N = Number(process.argv[2] ?? 2000)
const c = new Cluster()
c.logLevel = 'info'
try {
  const ds = await c.startDaemons(2)
  const open = await c.startDaemons(2, ['--always-available', '--isolation', 'none', '--cost', '1'])
  const h = c.lab.addHost()
  mkdirSync(path.join(c.tmp, 'bag'))
  const bagOf = (file: string, requirements: string): string => {
    const f = path.join(c.tmp, 'bag', file)
    writeFileSync(f, JSON.stringify({ name: 'true-bag', requirements, workers: { min: 2, max: 2 }, jobs: Array.from({ length: N }, (_, i) => ({ id: `t${i}`, cmd: ['/bin/true'] })) }))
    return f
  }
  const bag = bagOf('dag.json', 'cost == 0')
  const bagOpen = bagOf('open.json', 'cost == 1')
  const one = path.join(c.tmp, 'bag', 'one.json')
  writeFileSync(one, JSON.stringify({ name: 'one', requirements: 'cost == 0', jobs: [{ id: 'only', cmd: ['/bin/echo', 'hello'] }] }))

  // first result: a one-job DAG, daemons idle and already known on the LAN
  const firsts: number[] = []
  for (let k = 0; k < 5; k++) {
    const t0 = Date.now()
    const r = await c.runCli(h, ['submit', one, '--data-dir', path.join(c.tmp, 'home'), '--quiet', '--out', path.join(c.tmp, `one${k}`)], 60_000)
    if (r.code !== 0) throw new Error(r.stderr)
    firsts.push(Date.now() - t0)
    await Promise.all(ds.map(async d => await d.until(() => d.events.filter(e => e.msg === 'state').at(-1)?.to === 'idle' ? true : undefined, 10_000, 'idle')))
  }
  firsts.sort((a, b) => a - b)
  say(`first result: submit of a one-job DAG to exit: median ${firsts[2]} ms, best ${firsts[0]} ms over 5 runs (target < 1500 ms)`)

  // rounds alternate the baseline and the bag, so a slow spell of this shared VM hits both
  const ROUNDS = Number(process.env.BGRID_BENCH_ROUNDS ?? 3)
  const idle = async (): Promise<void> => { await Promise.all(ds.map(async d => await d.until(() => d.events.filter(e => e.msg === 'state').at(-1)?.to === 'idle' ? true : undefined, 10_000, 'idle'))) }
  // where the CPU goes: daemons, their job launchers (and the jobs they reaped), the coordinator
  // a daemon's job starters: a long-lived launcher (unconfined) or a starter per attempt
  // slot that exits with its session (contained: its CPU, and its jobs', then shows as
  // the daemon's reaped children). Both are counted: live children and reaped ones.
  const meter = (pair: typeof ds): (() => { daemons: number, startersAndJobs: number }) => {
    const at = (): Array<{ own: number, reaped: number, live: Map<number, number> }> =>
      pair.map(d => { const [own, reaped] = cpuMs(d.pid); return { own, reaped, live: new Map(childrenOf(d.pid).map(p => { const [o, r] = cpuMs(p); return [p, o + r] })) } })
    const before = at()
    return () => {
      const out = { daemons: 0, startersAndJobs: 0 }
      at().forEach((now, i) => {
        out.daemons += now.own - before[i].own
        out.startersAndJobs += now.reaped - before[i].reaped
        for (const [p, t] of now.live) out.startersAndJobs += t - (before[i].live.get(p) ?? 0)
      })
      return out
    }
  }
  const containedCpu = meter(ds)
  const unconfinedCpu = meter(open)
  let coordinatorMs = 0
  // the yardstick for the absolute rate: Node's own spawn loop, two in flight
  // (no network, no sandbox, no journal), measured here in the same rounds
  const NODE_SPAWN = `const { spawn } = require('node:child_process'); let started = 0, done = 0; const t0 = performance.now();
    const next = () => { if (started === ${N}) return; started++; spawn('/bin/true', [], { stdio: 'ignore' }).on('exit', () => { if (++done === ${N}) console.log(${N} / ((performance.now() - t0) / 1000)); else next() }) };
    next(); next()`
  const rounds: Array<{ xargs: number, nodeSpawn: number, bgrid: number, withStartup: number, unconfined: number }> = []
  const rateOf = async (dag: string, out: string): Promise<number> => {
    const r = await c.runCli(h, ['submit', dag, '--data-dir', path.join(c.tmp, 'home'), '--quiet', '--out', out], 600_000)
    if (r.code !== 0) throw new Error(r.stderr.slice(-2000))
    const run = JSON.parse(readFileSync(path.join(out, 'run.json'), 'utf8'))
    const starts = Object.values(run.jobs).map((j: any) => j.attempts[0].startedAt as number)
    const ends = Object.values(run.jobs).map((j: any) => j.endedAt as number)
    return N / ((Math.max(...ends) - Math.min(...starts)) / 1000)
  }
  for (let k = 0; k < ROUNDS; k++) {
    // baseline: xargs -P2 spawning the same processes
    const x0 = performance.now()
    execFileSync('/bin/sh', ['-c', `seq ${N} | xargs -P2 -n1 /bin/true`])
    const xargs = N / ((performance.now() - x0) / 1000)
    const nodeSpawn = Number(execFileSync(process.execPath, ['-e', NODE_SPAWN], { encoding: 'utf8' }))
    const unconfined = await rateOf(bagOpen, path.join(c.tmp, `open-out${k}`))
    await Promise.all(open.map(async d => await d.until(() => d.events.filter(e => e.msg === 'state').at(-1)?.to === 'idle' ? true : undefined, 10_000, 'idle')))
    const t0 = Date.now()
    const reaped0 = cpuMs('self')[1]
    const out = path.join(c.tmp, `bag-out${k}`)
    const r = await c.runCli(h, ['submit', bag, '--data-dir', path.join(c.tmp, 'home'), '--quiet', '--out', out], 600_000)
    if (r.code !== 0) throw new Error(r.stderr.slice(-2000))
    const total = Date.now() - t0
    // the submit process, reaped by this one (the xargs baseline is outside this window)
    coordinatorMs += cpuMs('self')[1] - reaped0
    const run = JSON.parse(readFileSync(path.join(out, 'run.json'), 'utf8'))
    if (process.env.BGRID_BENCH_KEEP !== undefined) writeFileSync(path.join(process.env.BGRID_BENCH_KEEP, `dispatch-run${k}.json`), JSON.stringify(run))
    const starts = Object.values(run.jobs).map((j: any) => j.attempts[0].startedAt as number)
    const ends = Object.values(run.jobs).map((j: any) => j.endedAt as number)
    rounds.push({ xargs, nodeSpawn, unconfined, bgrid: N / ((Math.max(...ends) - Math.min(...starts)) / 1000), withStartup: N / (total / 1000) })
    await idle()
  }
  const jobs = N * ROUNDS
  const perJob = (ms: number): string => (ms / jobs).toFixed(2)
  const cc = containedCpu()
  const uc = unconfinedCpu()
  const ratios = rounds.map(r => r.xargs / r.bgrid)
  const fmt = (xs: number[]): string => xs.map(x => x.toFixed(0)).join('/')
  say(`dispatch: ${N} x /bin/true on 2 daemons (2 cores each, one 2-core machine), ${ROUNDS} rounds: ${fmt(rounds.map(r => r.bgrid))} jobs/s from first start to last end (median ${median(rounds.map(r => r.bgrid)).toFixed(0)}; ${fmt(rounds.map(r => r.withStartup))} counting submit start-up); xargs -P2: ${fmt(rounds.map(r => r.xargs))} jobs/s; ratio xargs/bgrid per round ${ratios.map(x => x.toFixed(2)).join('/')}, median ${median(ratios).toFixed(2)}x (targets >= 800 jobs/s, within 2.5x); Node's own spawn loop, 2 in flight: ${fmt(rounds.map(r => r.nodeSpawn))} jobs/s, bgrid at ${median(rounds.map(r => r.bgrid / r.nodeSpawn)).toFixed(2)} of it (median)`)
  say(`containment: ${fmt(rounds.map(r => r.bgrid))} jobs/s contained, ${fmt(rounds.map(r => r.unconfined))} jobs/s without (--isolation none, same build); contained/unconfined per round ${rounds.map(r => (r.bgrid / r.unconfined).toFixed(2)).join('/')}, median ${median(rounds.map(r => r.bgrid / r.unconfined)).toFixed(2)} (target >= 0.8)`)
  say(`dispatch CPU per job (ms, 2 cores shared by all): daemons ${perJob(cc.daemons)}, job starters and the jobs themselves ${perJob(cc.startersAndJobs)}, coordinator (bgrid submit) ${perJob(coordinatorMs)}; without containment: daemons ${perJob(uc.daemons)}, launcher and jobs ${perJob(uc.startersAndJobs)}`)
} finally {
  await c.stop()
}
