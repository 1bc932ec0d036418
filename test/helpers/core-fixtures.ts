// The run core's test fixtures: small DAGs on a run core with workers, and results as
// workers report them (test/run-core, job-table, dispatch and prefetch tests share them).
import { parseDag } from '../../coordinator/dag-json.ts'
import { type Dag, type RunStats, type Schedule, type WorkerRec } from '../../coordinator/core/model.ts'
import { RunCore } from '../../coordinator/core/run-core.ts'
import { Holders } from '../../coordinator/core/holders.ts'
import { JobTable } from '../../coordinator/core/job-table.ts'
import { Prefetch } from '../../coordinator/core/prefetch.ts'
import { jobFits } from '../../coordinator/core/feasibility.ts'
import type { JobFit } from '../../coordinator/core/contracts.ts'
import type { AttemptResult } from '../../protocol/jobs.ts'

export const attrs = { ram: 8000, cores: 2, mhz: 2500, disk: 50000, load: 0, cost: 0, os: 'linux', arch: 'x64' }
export const H = (c: string): string => c.repeat(64)
export const ok = (attempt: string, outputs: Array<{ name: string, hash: string, size: number }> = []): AttemptResult => ({
  attempt, status: 'ok', exitCode: 0, signal: null, outputs, startedAt: 1, endedAt: 2, inputWaitMs: 0, bytesFetched: 0, cacheHits: 0
})
export const failed = (attempt: string, code = 1): AttemptResult => ({ ...ok(attempt), status: 'failed', exitCode: code })

/** a -> {b, c} -> d, each job one output; c may be retried once; two 2-slot workers, planned */
export function diamond (): RunCore {
  const dag = parseDag({
    jobs: [
      { id: 'a', cmd: ['x'], outputs: ['o'] },
      { id: 'b', cmd: ['x'], inputs: ['job:a/o'], outputs: ['o'] },
      { id: 'c', cmd: ['x'], inputs: ['job:a/o'], outputs: ['o'], retries: 1 },
      { id: 'd', cmd: ['x'], inputs: [{ src: 'job:b/o', as: 'b' }, { src: 'job:c/o', as: 'c' }], outputs: ['o'] }
    ]
  }, '/tmp/x.json', { checkFiles: false })
  const core = new RunCore(dag, { coordinatorId: 'C', prefetch: true, nonce: 'n' })
  core.addWorker({ id: 'W1', slots: 2, attrs, addrs: [] })
  core.addWorker({ id: 'W2', slots: 2, attrs, addrs: [] })
  core.replan()
  core.promote()
  return core
}

/** four jobs reading one 5 MB staged input, two 1-slot workers, planned */
export function sharedInput (): { core: RunCore, dag: ReturnType<typeof parseDag> } {
  const dag = parseDag({ workers: { min: 2, max: 2 }, jobs: [0, 1, 2, 3].map(i => ({ id: `j${i}`, cmd: ['x'], inputs: ['in.dat'] })) }, '/tmp/x.json', { checkFiles: false })
  const core = new RunCore(dag, { coordinatorId: 'C', prefetch: true, nonce: 'n' })
  core.setFileInput('/tmp/in.dat', H('f'), 5_000_000)
  core.addWorker({ id: 'W1', slots: 1, attrs, addrs: [] })
  core.addWorker({ id: 'W2', slots: 1, attrs, addrs: [] })
  core.replan()
  return { core, dag }
}

/** A live worker's record as the run core keeps it (for the parts tested without RunCore). */
export function workerRec (id: string, slots: number, host?: string): WorkerRec {
  return { id, slots, attrs: { ...attrs, cores: slots }, addrs: [], ...(host !== undefined ? { host } : {}), alive: true, speed: 1, running: new Map(), usedCores: 0, hinted: new Set(), assignedAt: new Map(), done: 0, verify: new Set() }
}

/** The run core's parts wired as RunCore wires them (coordinator 'C'), without RunCore: for tests of one part through its own interface. */
export function coreParts (dag: Dag, o: { prefetch: boolean, held: boolean }): {
  workers: Map<string, WorkerRec>, stats: RunStats, schedule: Schedule, holders: Holders, table: JobTable,
  prefetch: Prefetch, fits: JobFit
} {
  const workers = new Map<string, WorkerRec>()
  const stats: RunStats = { bytesFetched: 0, prefetchedBytes: 0, cacheHits: 0, inputWaitMs: 0, prefetchHints: 0, holdersDropped: 0, inputWaits: 0 }
  const schedule: Schedule = { plan: undefined, priority: new Map(), held: o.held }
  const holders = new Holders('C', workers)
  const table = new JobTable(dag, holders)
  const prefetch = new Prefetch(table, holders, workers, schedule, { coordinatorId: 'C', prefetch: o.prefetch }, stats)
  return { workers, stats, schedule, holders, table, prefetch, fits: jobFits }
}
