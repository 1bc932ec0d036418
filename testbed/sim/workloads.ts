// The simulation's workloads: each coordinator runs a DAG, a bag of tasks or a real
// workflow from the WfCommons traces (read at run time from the shared workloads folder,
// turned into dag.json by the real importer, coordinator/wfcommons.ts, and parsed by the
// real parser, coordinator/dag-json.ts, input files not looked for). A run's recorded
// runtimes are scaled so that its total work is the run's share of work (seeded), which
// keeps one 12,000 s trace from standing for a whole grid. A trace the importer refuses
// is left out, and said so.
// Contract: `loadTraces(dir)` once; `makeDag(rng, ...)` for each run: its Dag, what it is
// and its critical path. Imports the coordinator's importer and parser, and the run core's model.
import { existsSync, readFileSync, readdirSync } from 'node:fs'
import path from 'node:path'
import { importWfCommons } from '../../coordinator/wfcommons.ts'
import { parseDag } from '../../coordinator/dag-json.ts'
import type { Dag } from '../../coordinator/core/model.ts'
import { makespanLowerBound } from '../../coordinator/core/plan.ts'
import { errorMessage } from '../../protocol/errors.ts'

/** where the traces are (the shared workloads beside the repository) */
export const DEFAULT_WORKLOADS = path.resolve(import.meta.dirname, '..', '..', '..', 'shared', 'workloads')

export interface Trace { name: string, raw: unknown, totalRuntime: number }
export interface TraceSet { traces: Trace[], refused: Array<{ file: string, why: string }> }

/**
 * The traces in `dir`; none (and why, in `refused`) where the shared workloads are not
 * beside this checkout: the runs are bags only then.
 */
export function loadTraces (dir: string): TraceSet {
  const traces: Trace[] = []
  const refused: TraceSet['refused'] = []
  if (!existsSync(dir)) return { traces, refused: [{ file: dir, why: 'no such directory: the runs are bags of tasks only' }] }
  for (const file of readdirSync(dir).filter(f => f.endsWith('.json')).sort()) {
    const raw: unknown = JSON.parse(readFileSync(path.join(dir, file), 'utf8'))
    try {
      const imp = importWfCommons(raw, { timeScale: 1, sizeScale: 0, sleep: true })
      traces.push({ name: file.replace(/-chameleon|-001\.json$|\.json$/g, ''), raw, totalRuntime: imp.totalRuntime })
    } catch (err) {
      refused.push({ file, why: errorMessage(err) })
    }
  }
  return { traces, refused }
}

export interface RunDag { dag: Dag, kind: string, workSec: number, criticalPathSec: number }

/** the longest chain of runtimes through the DAG, s (the planner's bound with unlimited cores) */
export function criticalPath (dag: Dag): number {
  return makespanLowerBound(dag, Number.POSITIVE_INFINITY)
}

/** A run's DAG: a bag of `20..200` tasks (`bagShare` of the runs) or one of the traces, `workSec` of work in all. */
export function makeDag (rand: () => number, runId: string, traces: Trace[], workSec: number, bagShare: number): RunDag {
  const file = `/sim/${runId}/dag.json`
  let raw: unknown
  let kind: string
  if (traces.length === 0 || rand() < bagShare) {
    const n = 20 + Math.floor(rand() * 181)
    const weights = Array.from({ length: n }, () => 0.5 + rand())
    const sum = weights.reduce((a, b) => a + b, 0)
    raw = {
      name: runId, workers: { min: 1, max: 64 }, defaults: { retries: 2 },
      jobs: weights.map((w, i) => ({ id: `t${i}`, cmd: 'true', runtime: Math.round(w / sum * workSec * 1000) / 1000 }))
    }
    kind = 'bag'
  } else {
    const t = traces[Math.floor(rand() * traces.length)]
    raw = importWfCommons(t.raw, { timeScale: workSec / t.totalRuntime, sizeScale: 0, sleep: true, name: runId }).dag
    kind = t.name
  }
  const dag = parseDag(raw, file, { checkFiles: false })
  let work = 0
  for (const j of dag.jobs) work += j.runtime * Math.max(1, j.cores)
  return { dag, kind, workSec: work, criticalPathSec: criticalPath(dag) }
}
