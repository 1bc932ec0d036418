// Planning, pure: job priorities (HEFT upward rank) and a job -> worker placement made
// by list scheduling with file sizes and expected runtimes. The plan drives
// prefetching (inputs move to a job's planned worker before it runs); the run loop
// may still move a job elsewhere when its planned worker is saturated.
import type { Dag, Plan } from './model.ts'

export interface PlanWorker { id: string, slots: number, speed: number }

/** bytes/s between nodes for planning: a 100 Mbit/s campus link, where desktop grids live
 * (Dask assumes 100 MB/s inside a cluster; that would make moving data look free here) */
export const DEFAULT_BANDWIDTH = 12.5e6

/** bytes each job reads from each parent: parent -> child -> bytes (keys are the jobs' own id strings: no key is built per lookup) */
export type EdgeBytes = Map<string, Map<string, number>>

/** Sizes (bytes) of what each job reads from each parent. */
export function edgeBytes (dag: Dag, outSize: (job: string, file: string) => number): EdgeBytes {
  const m: EdgeBytes = new Map()
  for (const j of dag.jobs) {
    for (const i of j.inputs) {
      if (i.source.kind !== 'job') continue
      let to = m.get(i.source.job)
      if (to === undefined) { to = new Map(); m.set(i.source.job, to) }
      to.set(j.id, (to.get(j.id) ?? 0) + outSize(i.source.job, i.source.file))
    }
  }
  return m
}

/** the bytes a child reads from a parent (0: none) */
export function edgeOf (edges: EdgeBytes, parent: string, child: string): number {
  return edges.get(parent)?.get(child) ?? 0
}

/** HEFT upward rank: runtime plus the longest (transfer + rank) path to an exit job. */
export function upwardRank (dag: Dag, edges: EdgeBytes, bandwidth = DEFAULT_BANDWIDTH): Map<string, number> {
  const rank = new Map<string, number>()
  for (let i = dag.order.length - 1; i >= 0; i--) {
    const id = dag.order[i]
    const job = dag.byId.get(id)
    if (job === undefined) continue
    let best = 0
    const out = edges.get(id)
    for (const c of dag.children.get(id) ?? []) {
      const v = (out?.get(c) ?? 0) / bandwidth + (rank.get(c) ?? 0)
      if (v > best) best = v
    }
    // a tiny term by topological depth keeps parents ahead of children when runtimes are 0
    rank.set(id, job.runtime + best + 1e-9 * (dag.order.length - i))
  }
  return rank
}

/**
 * List scheduling (HEFT): jobs by decreasing upward rank, each on the worker slot where it
 * finishes earliest, counting the time to move inputs from parents placed elsewhere and
 * staged inputs (`inputBytes`) that the worker does not hold yet.
 *
 * Two terms favour keeping data where it is, because on 100 Mbit/s links that desktop
 * grids live on, bytes moved delay other jobs' data even when a transfer itself could
 * overlap computation (HEFT assumes contention-free links):
 * - each worker is charged the time to move the inputs it lacks, on top of its finish
 *   time, so a slot freeing slightly earlier elsewhere does not pull a job from its data;
 * - a job whose child also reads from a sibling already placed on a worker is credited,
 *   on that worker, with the transfer the child will not need (the smaller of the two
 *   edges). Plain HEFT deals such siblings round-robin, so every child of a fan-in must
 *   fetch from another worker (the idea of data-aware clustering in Pegasus).
 */
export function planPlacement (dag: Dag, workers: PlanWorker[], edges: EdgeBytes, rank: Map<string, number>,
  opts: { bandwidth?: number, inputBytes?: (job: string, worker: string) => number, feasible?: (job: string) => ((workerIndex: number) => boolean) | undefined } = {}): Plan {
  const bw = opts.bandwidth ?? DEFAULT_BANDWIDTH
  const worker = new Map<string, string>()
  const start = new Map<string, number>()
  const finish = new Map<string, number>()
  if (workers.length === 0) return { worker, start, makespan: 0 }
  const slots = workers.map(w => new Float64Array(Math.max(1, w.slots)))
  // each worker's earliest-free slot, kept up to date as jobs are placed
  const earliest = new Int32Array(workers.length)
  // jobs by decreasing upward rank (ranks read once: a comparator reading maps is most of the cost at 100k jobs)
  const order = dag.order
  const rk = new Float64Array(order.length)
  for (let i = 0; i < order.length; i++) rk[i] = rank.get(order[i]) ?? 0
  const byRank = new Uint32Array(order.length)
  for (let i = 0; i < byRank.length; i++) byRank[i] = i
  byRank.sort((a, b) => rk[b] - rk[a])
  // for each job with several parents: bytes its placed parents give it, per worker index
  const fanIn = new Map<string, Float64Array>()
  const credit = new Float64Array(workers.length)
  // a job's parents, reused from job to job
  let pFinish = new Float64Array(16)
  let pWorker = new Int32Array(16)
  let pMove = new Float64Array(16)
  const placedAt = new Map<string, number>()
  let makespan = 0
  for (let r = 0; r < byRank.length; r++) {
    const id = order[byRank[r]]
    const job = dag.byId.get(id)
    if (job === undefined) continue
    let bestW = -1; let bs = 0; let bslot = 0; let bf = Infinity; let bcost = Infinity
    // parents once per job, not once per worker
    const np = job.after.length
    if (np > pFinish.length) { pFinish = new Float64Array(np); pWorker = new Int32Array(np); pMove = new Float64Array(np) }
    for (let k = 0; k < np; k++) {
      const p = job.after[k]
      pFinish[k] = finish.get(p) ?? 0
      pWorker[k] = placedAt.get(p) ?? -1
      pMove[k] = edgeOf(edges, p, id) / bw
    }
    // transfer time each worker saves for this job's children (see the look-ahead above)
    credit.fill(0)
    const kids = dag.children.get(id) ?? []
    const out = edges.get(id)
    for (const c of kids) {
      const placed = fanIn.get(c)
      if (placed === undefined) continue
      const mine = out?.get(c) ?? 0
      for (let wi = 0; wi < placed.length; wi++) if (placed[wi] > 0) credit[wi] += Math.min(mine, placed[wi]) / bw
    }
    // undefined: every worker can run this job (the common case, checked once per job)
    const canRun = opts.feasible?.(id)
    for (let wi = 0; wi < workers.length; wi++) {
      const w = workers[wi]
      if (canRun !== undefined && !canRun(wi)) continue
      let ready = 0
      let moved = 0
      for (let k = 0; k < np; k++) {
        const move = pWorker[k] === wi ? 0 : pMove[k]
        moved += move
        if (pFinish[k] + move > ready) ready = pFinish[k] + move
      }
      const staged = opts.inputBytes !== undefined && job.inputs.length > 0 ? opts.inputBytes(id, w.id) / bw : 0
      const slot = earliest[wi]
      const s = Math.max(ready, slots[wi][slot]) + staged
      const f = s + job.runtime / Math.max(0.01, w.speed)
      const cost = f + moved - credit[wi]
      if (cost < bcost) { bestW = wi; bs = s; bslot = slot; bf = f; bcost = cost }
    }
    if (bestW < 0) continue // no feasible worker: the run loop reports it
    const ws = slots[bestW]
    ws[bslot] = bf
    let e = 0
    for (let k = 1; k < ws.length; k++) if (ws[k] < ws[e]) e = k
    earliest[bestW] = e
    worker.set(id, workers[bestW].id)
    placedAt.set(id, bestW)
    for (const c of kids) {
      if ((dag.byId.get(c)?.after.length ?? 0) < 2) continue
      let placed = fanIn.get(c)
      if (placed === undefined) { placed = new Float64Array(workers.length); fanIn.set(c, placed) }
      // a parent that gives 0 bytes still marks the worker (it saves nothing: min(mine, 0) is 0)
      placed[bestW] = Math.max(placed[bestW], out?.get(c) ?? 0)
    }
    start.set(id, bs)
    finish.set(id, bf)
    if (bf > makespan) makespan = bf
  }
  return { worker, start, makespan }
}

/** The lower bound on makespan: max(critical path, total work / total cores). */
export function makespanLowerBound (dag: Dag, totalCores: number): number {
  const longest = new Map<string, number>()
  let cp = 0
  let work = 0
  for (const id of dag.order) {
    const j = dag.byId.get(id)
    if (j === undefined) continue
    let s = 0
    for (const p of j.after) s = Math.max(s, longest.get(p) ?? 0)
    const f = s + j.runtime
    longest.set(id, f)
    cp = Math.max(cp, f)
    work += j.runtime * j.cores
  }
  return Math.max(cp, work / Math.max(1, totalCores))
}
