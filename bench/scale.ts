// Issue 3 scale benchmark: a 100,000-job DAG through validation, run-state setup and
// planning on 50 workers, in this process. Prints time and memory (targets: < 3 s, < 1 GB).
import { parseDag } from '../coordinator/dag-json.ts'
import { RunCore } from '../coordinator/core/run-core.ts'

const N = Number(process.argv[2] ?? 100_000)
const WIDTH = 1000
// layers of WIDTH jobs; each job reads one output of a job in the previous layer
const jobs = Array.from({ length: N }, (_, i) => {
  const layer = Math.floor(i / WIDTH)
  const parent = layer === 0 ? undefined : (layer - 1) * WIDTH + ((i * 7) % WIDTH)
  return {
    id: `j${i}`,
    cmd: ['/bin/true'],
    outputs: ['o.dat'],
    ...(parent !== undefined ? { inputs: [`job:j${parent}/o.dat`] } : {}),
    runtime: 1 + (i % 5)
  }
})
const raw = { name: 'scale', workers: { min: 1, max: 50 }, jobs }
global.gc?.()
const mem0 = process.memoryUsage().rss
const t0 = performance.now()
const dag = parseDag(raw, '/tmp/scale-dag.json', { checkFiles: false })
const t1 = performance.now()
const core = new RunCore(dag, { coordinatorId: 'coordinator', prefetch: true, nonce: 'x' })
for (let w = 0; w < 50; w++) core.addWorker({ id: `w${w}`, slots: 8, attrs: { ram: 16000, cores: 8, mhz: 2500, disk: 100000, load: 0, cost: 0, os: 'linux', arch: 'x64' }, addrs: [] })
core.replan(() => 1e6)
core.promote()
const t2 = performance.now()
const first = core.assign('w0', 8, Date.now())
const t3 = performance.now()
const rss = process.memoryUsage().rss
process.stdout.write(`scale: ${N} jobs, ${dag.jobs.reduce((a, j) => a + j.after.length, 0)} edges: validate ${(t1 - t0).toFixed(0)} ms, state + HEFT plan on 50 workers (400 slots) ${(t2 - t1).toFixed(0)} ms, total ${(t2 - t0).toFixed(0)} ms (target < 3000 ms); first dispatch ${(t3 - t2).toFixed(1)} ms for ${first.length} jobs; planned makespan ${core.plan?.makespan.toFixed(0)} s; RSS ${(rss / 1048576).toFixed(0)} MB (+${((rss - mem0) / 1048576).toFixed(0)} MB for the run; target < 1024 MB)\n`)
