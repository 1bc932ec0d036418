// Issue 4 data benchmarks, daemons in network namespaces whose links are shaped to
// 100 Mbit/s (tbf on both ends), and unshaped: DAG-aware prefetching against
// --no-prefetch on the Condor use-case shape, and a Montage replay against the
// makespan lower bound. Jobs sleep for their compute time: the daemons share this
// machine's 2 cores, and sleeping models each volunteer PC having its own CPU.
import path from 'node:path'
import { writeFileSync, mkdirSync, readFileSync, copyFileSync } from 'node:fs'
import { randomBytes } from 'node:crypto'
import { Cluster, ROOT } from '../testbed/cluster.ts'
import { canMakeNamespaces } from '../testbed/netns.ts'
import { median } from './measure.ts'

if (!canMakeNamespaces()) { process.stderr.write('bench/data.ts needs root (network namespaces)\n'); process.exit(1) }
const say = (s: string): void => { process.stdout.write(s + '\n') }
const only = process.argv.slice(2)
const want = (k: string): boolean => only.length === 0 || only.includes(k)

async function withCluster<T> (rate: string | undefined, workers: number, fn: (c: Cluster, submit: (dag: string, extra: string[]) => Promise<any>) => Promise<T>): Promise<T> {
  const c = new Cluster(rate !== undefined ? { rate } : {})
  c.logLevel = 'info'
  try {
    await c.startDaemons(workers)
    const user = c.lab.addHost()
    let k = 0
    const submit = async (dag: string, extra: string[]): Promise<any> => {
      const out = path.join(c.tmp, `out${++k}`)
      const t0 = Date.now()
      const r = await c.runCli(user, ['submit', dag, '--data-dir', path.join(c.tmp, `home${k}`), '--quiet', '--wait', '30', '--out', out, ...extra], 900_000)
      if (r.code !== 0) throw new Error(`submit failed: ${r.stderr.slice(-2000)}`)
      const run = JSON.parse(readFileSync(path.join(out, 'run.json'), 'utf8'))
      // keep run.json files for a closer look at timelines
      if (process.env.BGRID_BENCH_KEEP !== undefined) copyFileSync(path.join(out, 'run.json'), path.join(process.env.BGRID_BENCH_KEEP, `${path.basename(path.dirname(dag))}-${k}.json`))
      const starts = Object.values(run.jobs).map((j: any) => j.attempts[0]?.startedAt ?? Infinity)
      const ends = Object.values(run.jobs).map((j: any) => j.endedAt ?? 0)
      return { wallMs: Date.now() - t0, makespanMs: Math.max(...ends) - Math.min(...starts), run }
    }
    return await fn(c, submit)
  } finally { await c.stop() }
}

/** The Condor use case of the seed: jobs reading staged inputs or their parents' outputs, 3 stages. */
function condorShape (dir: string, n = 100, mb = 1, computeSec = 0.1): string {
  mkdirSync(path.join(dir, 'inputs'), { recursive: true })
  const jobs: unknown[] = []
  for (let i = 0; i < n; i++) {
    writeFileSync(path.join(dir, 'inputs', `in${i}.dat`), randomBytes(mb * 1048576))
    jobs.push({ id: `p${i}`, cmd: `cat in.dat > /dev/null; sleep ${computeSec}; head -c ${mb * 1048576} /dev/urandom > out.dat`, inputs: [{ src: `inputs/in${i}.dat`, as: 'in.dat' }], outputs: [{ name: 'out.dat', size: mb * 1048576 }], runtime: computeSec })
    jobs.push({ id: `t${i}`, cmd: `cat in.dat > /dev/null; sleep ${computeSec}; head -c ${mb * 1048576} /dev/urandom > out.dat`, inputs: [{ src: `job:p${i}/out.dat`, as: 'in.dat' }], outputs: [{ name: 'out.dat', size: mb * 1048576 }], runtime: computeSec })
    jobs.push({ id: `f${i}`, cmd: `cat in.dat > /dev/null; sleep ${computeSec}; sha256sum in.dat > sum.txt`, inputs: [{ src: `job:t${i}/out.dat`, as: 'in.dat' }], outputs: ['sum.txt'], runtime: computeSec })
  }
  const file = path.join(dir, 'dag.json')
  writeFileSync(file, JSON.stringify({ name: 'condor-shape', workers: { min: 4, max: 4 }, jobs }))
  return file
}

/**
 * The seed's DAG case: three stages of 100 jobs; each job of stages 2 and 3 reads the
 * outputs of two neighbours of the stage before, so data must cross between workers;
 * staged inputs are few and shared (the submitter's link is not the bottleneck).
 */
function neighbourShape (dir: string, n = 100, mb = Number(process.env.BGRID_BENCH_MB ?? 1), computeSec = Number(process.env.BGRID_BENCH_COMPUTE ?? 0.15)): string {
  mkdirSync(path.join(dir, 'inputs'), { recursive: true })
  for (let k = 0; k < 4; k++) writeFileSync(path.join(dir, 'inputs', `shared${k}.dat`), randomBytes(mb * 1048576))
  const out = { name: 'out.dat', size: mb * 1048576 }
  const work = `cat a.dat b.dat > /dev/null; sleep ${computeSec}; head -c ${mb * 1048576} /dev/urandom > out.dat`
  const jobs: unknown[] = []
  for (let i = 0; i < n; i++) jobs.push({ id: `s1-${i}`, cmd: work.replace('b.dat', 'a.dat'), inputs: [{ src: `inputs/shared${i % 4}.dat`, as: 'a.dat' }], outputs: [out], runtime: computeSec })
  for (const stage of [2, 3]) {
    for (let i = 0; i < n; i++) {
      jobs.push({ id: `s${stage}-${i}`, cmd: work, inputs: [{ src: `job:s${stage - 1}-${i}/out.dat`, as: 'a.dat' }, { src: `job:s${stage - 1}-${(i + 1) % n}/out.dat`, as: 'b.dat' }], outputs: [out], runtime: computeSec })
    }
  }
  const file = path.join(dir, 'dag.json')
  writeFileSync(file, JSON.stringify({ name: 'neighbours', workers: { min: 4, max: 4 }, jobs }))
  return file
}

if (want('prefetch') || want('neighbours')) {
  // alternating rounds, median: one pair of runs on this shared VM moves by a few percent
  const ROUNDS = Number(process.env.BGRID_BENCH_ROUNDS ?? 3)
  for (const rate of (process.env.BGRID_BENCH_RATES ?? '100mbit,none').split(',').map(r => r === 'none' ? undefined : r)) {
    await withCluster(rate, 4, async (c, submit) => {
      const rounds: Array<{ without: any, withP: any }> = []
      for (let k = 0; k < ROUNDS; k++) {
        // new input bytes each time (random), so no run finds another's data cached
        const without = await submit(neighbourShape(path.join(c.tmp, `nb-a${k}`)), ['--no-prefetch'])
        const withP = await submit(neighbourShape(path.join(c.tmp, `nb-b${k}`)), [])
        rounds.push({ without, withP })
      }
      const cuts = rounds.map(r => 1 - r.withP.makespanMs / r.without.makespanMs)
      const sec = (ms: number): string => (ms / 1000).toFixed(1)
      const waited = (rs: any[], key: 'without' | 'withP'): string => rs.map(r => sec(r[key].run.data.inputWaitMs)).join('/')
      const d = rounds.map(r => r.withP.run.data)
      say(`prefetch, ${rate ?? 'unshaped'} links, 300 jobs in 3 stages, each reading 2 x ${process.env.BGRID_BENCH_MB ?? 1} MiB outputs of neighbours from the stage before (${process.env.BGRID_BENCH_COMPUTE ?? 0.15} s compute), 4 workers x 2 slots, ${ROUNDS} alternating rounds: ` +
        `makespan without prefetching ${rounds.map(r => sec(r.without.makespanMs)).join('/')} s, with ${rounds.map(r => sec(r.withP.makespanMs)).join('/')} s; ` +
        `cut per round ${cuts.map(x => (x * 100).toFixed(0)).join('/')} %, median ${(median(cuts) * 100).toFixed(0)}% (target >= 30%); ` +
        `jobs waited for data ${waited(rounds, 'withP')} s in total (without: ${waited(rounds, 'without')} s); per run with prefetching, MiB moved ahead ${d.map(x => (x.prefetchedBytes / 1048576).toFixed(0)).join('/')}, at job start ${d.map(x => (x.bytesFetched / 1048576).toFixed(0)).join('/')}`)
    })
  }
}

if (want('prefetch') || want('condor')) {
  for (const rate of ['100mbit', undefined]) {
    await withCluster(rate, 4, async (c, submit) => {
      // fresh input bytes for each run: a second run would otherwise find them cached on the workers
      const without = await submit(condorShape(path.join(c.tmp, 'condor-a')), ['--no-prefetch'])
      const withP = await submit(condorShape(path.join(c.tmp, 'condor-b')), [])
      const d = withP.run.data
      const cut = 1 - withP.makespanMs / without.makespanMs
      say(`prefetch, ${rate ?? 'unshaped'} links, 300 jobs (100 x 1 MiB staged inputs, 1 MiB outputs read by children, 0.1 s compute), 4 workers x 2 slots: ` +
        `makespan ${(without.makespanMs / 1000).toFixed(1)} s without prefetching, ${(withP.makespanMs / 1000).toFixed(1)} s with; ratio ${(withP.makespanMs / without.makespanMs).toFixed(2)} (cut ${(cut * 100).toFixed(0)}%, target >= 30%). ` +
        `With prefetching: ${(d.prefetchedBytes / 1048576).toFixed(0)} MiB moved ahead, ${(d.bytesFetched / 1048576).toFixed(0)} MiB fetched at job start, ${d.cacheHits} inputs already in place, jobs waited ${(d.inputWaitMs / 1000).toFixed(1)} s in total for data (without: ${(without.run.data.inputWaitMs / 1000).toFixed(1)} s); submitter sent ${(d.servedBytes / 1048576).toFixed(0)} MiB`)
    })
  }
}

if (want('montage')) {
  for (const rate of [undefined, '100mbit']) {
    await withCluster(rate, 4, async (c, submit) => {
      const dir = path.join(c.tmp, 'montage')
      mkdirSync(dir)
      const trace = path.join(ROOT, '..', 'shared', 'workloads', 'montage-chameleon-2mass-025d-001.json')
      const timeScale = 0.25
      const imp = await c.runCli(c.lab.addHost(), ['import', 'wfcommons', trace, '-o', path.join(dir, 'dag.json'), '--time-scale', String(timeScale), '--size-scale', '0.1', '--sleep'], 120_000)
      if (imp.code !== 0) throw new Error(imp.stderr)
      const dag = JSON.parse(readFileSync(path.join(dir, 'dag.json'), 'utf8'))
      dag.workers = { min: 4, max: 4 }
      writeFileSync(path.join(dir, 'dag.json'), JSON.stringify(dag))
      const r = await submit(path.join(dir, 'dag.json'), [])
      const lb = r.run.lowerBoundSec as number
      const d = r.run.data
      say(`montage 2mass-025d replay (619 tasks, runtimes x${timeScale}, sizes x0.1, ${rate ?? 'unshaped'} links) on 4 daemons x 2 slots: makespan ${(r.makespanMs / 1000).toFixed(1)} s vs lower bound max(critical path, work/cores) ${lb.toFixed(1)} s: ${(r.makespanMs / 1000 / lb).toFixed(2)}x (target <= 1.3x); ${((d.prefetchedBytes + d.bytesFetched) / 1048576).toFixed(0)} MiB moved between nodes, jobs waited ${(d.inputWaitMs / 1000).toFixed(1)} s in total for data`)
    })
  }
}
