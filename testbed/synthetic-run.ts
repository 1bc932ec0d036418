// A plausible run.json without running anything: tasks list-scheduled (earliest free
// slot, in topological order) on workers x slots, with input waits from their bytes,
// a result delay, and a failed first attempt every `failEvery` tasks. For the report's
// scale tests and benchmark, where what matters is the shape and size of run.json.
import type { RunAttempt, RunJob, RunJson } from '../coordinator/report/run-json.ts'

export interface SimTask { id: string, runtime: number, after: string[], inputBytes: number }
export interface SimOptions { workers: number, slots: number, failEvery?: number, start?: number, name?: string, linkBytesPerSec?: number }

function topological (tasks: readonly SimTask[]): SimTask[] {
  const byId = new Map(tasks.map(t => [t.id, t]))
  const indegree = new Map(tasks.map(t => [t.id, t.after.filter(p => byId.has(p)).length]))
  const children = new Map<string, string[]>()
  for (const t of tasks) for (const p of t.after) if (byId.has(p)) { const list = children.get(p); if (list === undefined) children.set(p, [t.id]); else list.push(t.id) }
  const queue = tasks.filter(t => indegree.get(t.id) === 0)
  for (let i = 0; i < queue.length; i++) {
    for (const c of children.get(queue[i].id) ?? []) {
      const left = (indegree.get(c) ?? 1) - 1
      indegree.set(c, left)
      if (left === 0) queue.push(byId.get(c) as SimTask)
    }
  }
  if (queue.length !== tasks.length) throw new Error('simulated DAG has a cycle')
  return queue
}

export function simulateRun (tasks: readonly SimTask[], o: SimOptions): RunJson {
  const start = o.start ?? Date.UTC(2025, 0, 1)
  const link = o.linkBytesPerSec ?? 100e6 / 8
  const peers = Array.from({ length: o.workers }, (_, w) => `12D3KooWsimulated${String(w).padStart(8, '0')}`)
  const freeAt: number[] = new Array(o.workers * o.slots).fill(start + 500)
  const finish = new Map<string, number>()
  const jobs: Record<string, RunJob> = {}
  let seq = 0
  let fetched = 0
  const earliestSlot = (): number => { let k = 0; for (let i = 1; i < freeAt.length; i++) if (freeAt[i] < freeAt[k]) k = i; return k }
  topological(tasks).forEach((t, index) => {
    const ready = Math.max(start + 500, ...t.after.map(p => finish.get(p) ?? 0))
    const attempts: RunAttempt[] = []
    const tries = o.failEvery !== undefined && index % o.failEvery === o.failEvery - 1 ? 2 : 1
    let end = ready
    for (let k = 0; k < tries; k++) {
      const slot = earliestSlot()
      const worker = Math.floor(slot / o.slots)
      const assignedAt = Math.max(freeAt[slot], end)
      const inputWaitMs = Math.round((t.inputBytes / link) * 1000)
      const startedAt = assignedAt + inputWaitMs
      const failed = k < tries - 1
      const endedAt = startedAt + Math.round(t.runtime * 1000 * (failed ? 0.5 : 1))
      const reportedAt = endedAt + 15
      fetched += t.inputBytes
      attempts.push({
        id: `a${++seq}-sim`, worker: peers[worker], node: `pc-${String(worker + 1).padStart(2, '0')}`, status: failed ? 'failed' : 'ok',
        exitCode: failed ? 1 : 0, signal: null, assignedAt, startedAt, endedAt, reportedAt, inputWaitMs, bytesFetched: t.inputBytes
      })
      freeAt[slot] = reportedAt
      end = reportedAt
    }
    finish.set(t.id, end)
    const last = attempts[attempts.length - 1]
    jobs[t.id] = { state: 'done', worker: last.worker, attempts, startedAt: last.startedAt, endedAt: last.endedAt, exitCode: 0 }
  })
  const work = tasks.reduce((s, t) => s + t.runtime, 0)
  const critical = (() => {
    const longest = new Map<string, number>()
    let cp = 0
    for (const t of topological(tasks)) { const f = Math.max(0, ...t.after.map(p => longest.get(p) ?? 0)) + t.runtime; longest.set(t.id, f); cp = Math.max(cp, f) }
    return cp
  })()
  return {
    run: `${o.name ?? 'simulated'}-sim`, dag: o.name ?? 'simulated', state: 'succeeded', outDir: '/nonexistent', startedAt: start,
    updatedAt: [...finish.values()].reduce((a, b) => Math.max(a, b), start),
    workers: peers.map((peer, w) => ({ peer, name: `pc-${String(w + 1).padStart(2, '0')}`, alive: true, slots: o.slots, jobsDone: 0 })),
    data: { bytesFetched: fetched, prefetchedBytes: 0, inputBytesStaged: 0, cacheHits: 0, inputWaitMs: 0, prefetch: true },
    lowerBoundSec: Math.max(critical, work / (o.workers * o.slots)),
    jobs
  }
}

/** n independent jobs of 1 to 10 s (a fixed pseudo-random sequence: the same run every time). */
export function bagOfTasks (n: number): SimTask[] {
  let x = 12345
  const next = (): number => { x = (x * 1103515245 + 12345) % 2147483648; return x / 2147483648 }
  return Array.from({ length: n }, (_, i) => ({ id: `t${i}`, runtime: 1 + 9 * next(), after: [], inputBytes: Math.round(next() * 1e6) }))
}
