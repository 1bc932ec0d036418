// The figures at the top of a run report (pure): makespan against the lower bound,
// jobs per state, attempts and retries, bytes moved, and how busy each worker was.
import { nodeLabel, type RunJson } from './run-json.ts'
import type { Timeline } from './timeline.ts'

export interface WorkerBusy {
  worker: string
  node: string
  slots: number
  attempts: number
  runningMs: number
  /** running time over slots x makespan */
  busy: number
}

export interface ReportSummary {
  /** first attempt handed out to last result in */
  makespanMs: number
  lowerBoundSec?: number
  jobs: number
  jobsByState: Record<string, number>
  attempts: number
  /** attempts beyond one per job */
  retries: number
  attemptsByStatus: Record<string, number>
  bytesFetched: number
  prefetchedBytes: number
  inputBytesStaged: number
  workers: WorkerBusy[]
}

export function summarize (run: RunJson, timeline: Timeline): ReportSummary {
  const jobsByState: Record<string, number> = {}
  let retries = 0
  const jobs = Object.values(run.jobs ?? {})
  for (const j of jobs) {
    jobsByState[j.state] = (jobsByState[j.state] ?? 0) + 1
    retries += Math.max(0, (j.attempts?.length ?? 0) - 1)
  }
  const attemptsByStatus: Record<string, number> = {}
  const perWorker = new Map<string, WorkerBusy>()
  for (const w of run.workers ?? []) perWorker.set(w.peer, { worker: w.peer, node: nodeLabel(w.peer, w.name), slots: Math.max(1, w.slots ?? 1), attempts: 0, runningMs: 0, busy: 0 })
  for (const b of timeline.bars) {
    const status = b.attempt.status ?? 'running'
    attemptsByStatus[status] = (attemptsByStatus[status] ?? 0) + 1
    let w = perWorker.get(b.worker)
    if (w === undefined) { w = { worker: b.worker, node: b.node, slots: 1, attempts: 0, runningMs: 0, busy: 0 }; perWorker.set(b.worker, w) }
    // a node name learnt from an attempt beats the end of a peer id
    if (w.node === nodeLabel(b.worker) && b.node !== w.node) w.node = b.node
    w.attempts++
    if (b.timed) w.runningMs += b.runTo - b.runFrom
  }
  const makespanMs = Math.max(0, timeline.to - timeline.from)
  for (const w of perWorker.values()) w.busy = makespanMs > 0 ? w.runningMs / (w.slots * makespanMs) : 0
  return {
    makespanMs,
    lowerBoundSec: run.lowerBoundSec,
    jobs: jobs.length,
    jobsByState,
    attempts: timeline.bars.length,
    retries,
    attemptsByStatus,
    bytesFetched: run.data?.bytesFetched ?? 0,
    prefetchedBytes: run.data?.prefetchedBytes ?? 0,
    inputBytesStaged: run.data?.inputBytesStaged ?? 0,
    workers: [...perWorker.values()]
  }
}
