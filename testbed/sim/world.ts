// One simulation: N volunteer nodes and C coordinators arriving at seeded random times
// over a short window, each running a DAG, on the virtual clock, to the end of the last
// run. Deterministic by seed: every random choice comes from one mulberry32 stream, and
// events at one virtual time run in the order they were scheduled.
// Contract: `simulate(options)` returns the measurements bench/sim.ts prints (wall time
// excepted: the caller measures it). Imports the sim's parts.
import { VirtualClock, mulberry32, VIRTUAL_EPOCH } from './clock.ts'
import { SimClaimTransport } from './transport.ts'
import { Lan, CENSUS_REFRESH_MS } from './lan.ts'
import { GrantLog } from './grants.ts'
import { SimNode } from './node.ts'
import { SimCoordinator } from './coordinator.ts'
import { loadTraces, makeDag, DEFAULT_WORKLOADS, type TraceSet } from './workloads.ts'
import type { SimWorld } from './types.ts'

export interface SimOptions {
  nodes: number
  coordinators: number
  seed: number
  /** slots (cores) of every node */
  slots: number
  /** coordinators arrive over this window, s */
  windowSec: number
  /** total work of the grid over all slots, per slot, s: each run gets its share of it, +-50 % */
  loadSec: number
  /** share of runs that are bags of tasks (the others: WfCommons traces) */
  bagShare: number
  leaseSec: number
  /**
   * each submit's --wait, s: 600 by default, not the CLI's 30 (a run submitted into a grid
   * every node of which works for others waits for its first worker up to a job's length
   * plus a reservation; at 30 s some runs end NO_WORKERS: see bench/sim.ts --wait 30)
   */
  waitSec: number
  workloads: string
  /** stop there if runs are still going, virtual s */
  limitSec: number
}

export const DEFAULT_SIM: Omit<SimOptions, 'nodes' | 'coordinators' | 'seed'> = {
  slots: 1, windowSec: 30, loadSec: 240, bagShare: 0.5, leaseSec: 6, waitSec: 600, workloads: DEFAULT_WORKLOADS, limitSec: 100_000
}

export interface SimResult {
  nodes: number
  coordinators: number
  seed: number
  slots: number
  /** runs that finished with every job done */
  completed: number
  /** runs that ended short, by why */
  failed: Record<string, number>
  /** runs still going at the limit */
  unfinished: number
  doubleGrants: number
  /** state changes the node state table refused */
  illegalTransitions: number
  virtualMakespanSeconds: number
  boundSeconds: number
  /** what the bound is: total work over all slots, or an arrival plus its run's critical path */
  boundBy: 'work' | 'critical path'
  makespanOverBound: number
  totalWorkSeconds: number
  /** each run's makespan (its end less its arrival), s */
  perRunMakespan: { min: number, median: number, max: number, maxOverMin: number }
  /** each run's makespan over what it could not beat (its critical path), spread */
  perRunStretch: { min: number, median: number, max: number }
  jobs: number
  /** attempts handed out: above jobs when outputs lost with a departed worker were made again */
  attempts: number
  claims: number
  grants: number
  claimMessages: number
  events: number
  workloads: Record<string, number>
  tracesRefused: string[]
}

function quantile (sorted: number[], q: number): number {
  if (sorted.length === 0) return 0
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]
}
const r3 = (x: number): number => Math.round(x * 1000) / 1000

let traceCache: { dir: string, set: TraceSet } | undefined

export function simulate (o: SimOptions): SimResult {
  const rand = mulberry32(o.seed)
  const clock = new VirtualClock()
  const coordinators = new Map<string, SimCoordinator>()
  const world: SimWorld = {
    clock,
    transport: new SimClaimTransport(clock, () => 0.2 + rand() * 1.8),
    lan: new Lan(),
    grants: new GrantLog(),
    latency: () => 0.2 + rand() * 1.8,
    coordinator: id => coordinators.get(id)
  }
  if (traceCache?.dir !== o.workloads) traceCache = { dir: o.workloads, set: loadTraces(o.workloads) }
  const { traces, refused } = traceCache.set
  const width = String(Math.max(o.nodes, o.coordinators)).length
  const nodes = Array.from({ length: o.nodes }, (_, i) => new SimNode(`n${String(i).padStart(width, '0')}`, o.slots, world))
  // each run's share of the grid's work, +-50 %
  const workPerRun = o.loadSec * o.nodes * o.slots / Math.max(1, o.coordinators)
  const workloads: Record<string, number> = {}
  const runs: Array<{ c: SimCoordinator, work: number, cp: number }> = []
  for (let i = 0; i < o.coordinators; i++) {
    const id = `C${String(i).padStart(width, '0')}`
    const arrival = VIRTUAL_EPOCH + Math.round(rand() * o.windowSec * 1000)
    const { dag, kind, workSec, criticalPathSec } = makeDag(rand, `r${String(i).padStart(width, '0')}-s${o.seed}`, traces, workPerRun * (0.5 + rand()), o.bagShare)
    workloads[kind] = (workloads[kind] ?? 0) + 1
    const c = new SimCoordinator({ id, runId: dag.name, dag, arrival, leaseSec: o.leaseSec, waitSec: o.waitSec, priority: 0 }, world)
    coordinators.set(id, c)
    runs.push({ c, work: workSec, cp: criticalPathSec })
    clock.at(arrival, () => { c.start() })
  }
  const refresh = (): void => {
    if (runs.every(r => r.c.over)) return
    world.lan.refresh(clock.now())
    clock.after(CENSUS_REFRESH_MS, refresh)
  }
  clock.after(CENSUS_REFRESH_MS, refresh)
  clock.run(() => runs.every(r => r.c.over), VIRTUAL_EPOCH + o.limitSec * 1000)

  const ended = runs.filter(r => r.c.over)
  const end = Math.max(VIRTUAL_EPOCH, ...ended.map(r => r.c.finishedAt ?? VIRTUAL_EPOCH))
  const totalWork = runs.reduce((a, r) => a + r.work, 0)
  const byWork = totalWork / (o.nodes * o.slots)
  const byPath = Math.max(0, ...runs.map(r => (r.c.spec.arrival - VIRTUAL_EPOCH) / 1000 + r.cp))
  const bound = Math.max(byWork, byPath)
  const makespan = (end - VIRTUAL_EPOCH) / 1000
  const spans = ended.map(r => ((r.c.finishedAt ?? 0) - r.c.spec.arrival) / 1000).sort((a, b) => a - b)
  const stretch = ended.map(r => ((r.c.finishedAt ?? 0) - r.c.spec.arrival) / 1000 / Math.max(1e-3, r.cp)).sort((a, b) => a - b)
  const failed: Record<string, number> = {}
  for (const r of ended) {
    if (r.c.completed) continue
    const why = (r.c.failure ?? 'jobs failed').split(':')[0]
    failed[why] = (failed[why] ?? 0) + 1
  }
  let jobs = 0
  let attempts = 0
  for (const r of runs) { jobs += r.c.core.jobs.size; attempts += r.c.core.attempts.size }
  return {
    nodes: o.nodes,
    coordinators: o.coordinators,
    seed: o.seed,
    slots: o.slots,
    completed: ended.filter(r => r.c.completed).length,
    failed,
    unfinished: runs.length - ended.length,
    doubleGrants: world.grants.doubleGrants,
    illegalTransitions: nodes.reduce((a, n) => a + n.illegal, 0),
    virtualMakespanSeconds: r3(makespan),
    boundSeconds: r3(bound),
    boundBy: byWork >= byPath ? 'work' : 'critical path',
    makespanOverBound: r3(makespan / Math.max(1e-9, bound)),
    totalWorkSeconds: r3(totalWork),
    perRunMakespan: { min: r3(spans[0] ?? 0), median: r3(quantile(spans, 0.5)), max: r3(spans.at(-1) ?? 0), maxOverMin: r3((spans.at(-1) ?? 0) / Math.max(1e-9, spans[0] ?? 0)) },
    perRunStretch: { min: r3(stretch[0] ?? 0), median: r3(quantile(stretch, 0.5)), max: r3(stretch.at(-1) ?? 0) },
    jobs,
    attempts,
    claims: runs.reduce((a, r) => a + r.c.claims, 0),
    grants: world.grants.grants,
    claimMessages: world.transport.messages,
    events: clock.ran,
    workloads,
    tracesRefused: refused.map(r => `${r.file}: ${r.why.slice(0, 160)}`)
  }
}
