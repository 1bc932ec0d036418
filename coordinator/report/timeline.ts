// The timeline of a run, computed (pure): each attempt's phases, attempts packed into
// one row per worker slot, and, for huge runs, the sample of them that is drawn.
import { isMarked, nodeLabel, type RunAttempt, type RunJson } from './run-json.ts'

/** Above this many attempts the timeline draws a sample (the page says so). */
export const SAMPLE_LIMIT = 5000

export interface Span { worker: string, begin: number, end: number }

/** One attempt as drawn; times are epoch ms, in order begin <= inputsFrom <= runFrom <= runTo <= end. */
export interface Bar extends Span {
  job: string
  attempt: RunAttempt
  /** 1 for a job's first attempt, 2 for its first retry... */
  number: number
  node: string
  /** queued from begin, waiting for inputs from inputsFrom, running from runFrom to runTo, sending outputs until end */
  inputsFrom: number
  runFrom: number
  runTo: number
  /** the worker reported its times (lost, cancelled and running attempts may have none: drawn as one running span) */
  timed: boolean
  marked: boolean
  row: number
}

export interface SlotRow {
  worker: string
  node: string
  slot: number
  /** beyond the worker's slots: attempts it held at once, one handed out before a slot was free */
  extra: boolean
}

export interface Timeline {
  from: number
  to: number
  rows: SlotRow[]
  /** every attempt */
  bars: Bar[]
  /** those drawn: all of them, or a sample when there are more than the limit */
  drawn: Bar[]
  sampled: boolean
}

const finite = (x: unknown): x is number => typeof x === 'number' && Number.isFinite(x)

/**
 * An attempt's phase boundaries. Start and end times come from the worker's clock,
 * assignment and report from the coordinator's: where clocks disagree the queued and
 * sending phases give way (they shrink to nothing) so that the running phase stays
 * as measured.
 */
export function phasesOf (a: RunAttempt, now: number): Pick<Bar, 'begin' | 'inputsFrom' | 'runFrom' | 'runTo' | 'end' | 'timed'> {
  if (finite(a.startedAt)) {
    const runFrom = a.startedAt
    const runTo = finite(a.endedAt) ? Math.max(a.endedAt, runFrom) : Math.max(now, runFrom)
    const inputsFrom = runFrom - (finite(a.inputWaitMs) ? Math.max(0, a.inputWaitMs) : 0)
    const begin = Math.min(finite(a.assignedAt) ? a.assignedAt : inputsFrom, inputsFrom)
    const end = Math.max(finite(a.reportedAt) ? a.reportedAt : runTo, runTo)
    return { begin, inputsFrom, runFrom, runTo, end, timed: true }
  }
  // never reported: from assignment to its end (lost, cancelled) or to now (still out)
  const end = finite(a.endedAt) ? a.endedAt : finite(a.reportedAt) ? a.reportedAt : now
  const begin = Math.min(finite(a.assignedAt) ? a.assignedAt : end, end)
  return { begin, inputsFrom: begin, runFrom: begin, runTo: end, end, timed: false }
}

/**
 * Greedy slot packing: each worker's spans, by start time, go to its first row free by
 * then; a worker gets a row per slot, and more only where its spans overlap more
 * than it has slots (a queued attempt handed out before the previous result was in).
 * Returns the rows (workers in the given order, then any others) and each span's row.
 */
export function packSlots (spans: readonly Span[], slotsOf: ReadonlyMap<string, number>, order: readonly string[] = []): { rows: Array<{ worker: string, slot: number, extra: boolean }>, rowOf: number[] } {
  const byWorker = new Map<string, number[]>()
  for (const w of order) byWorker.set(w, [])
  spans.forEach((s, i) => {
    let list = byWorker.get(s.worker)
    if (list === undefined) { list = []; byWorker.set(s.worker, list) }
    list.push(i)
  })
  const rows: Array<{ worker: string, slot: number, extra: boolean }> = []
  const rowOf = new Array<number>(spans.length).fill(-1)
  for (const [worker, idx] of byWorker) {
    idx.sort((a, b) => spans[a].begin - spans[b].begin || spans[a].end - spans[b].end)
    const first = rows.length
    const freeAt: number[] = []
    for (let k = 0; k < Math.max(1, slotsOf.get(worker) ?? 1); k++) { freeAt.push(-Infinity); rows.push({ worker, slot: k + 1, extra: false }) }
    for (const i of idx) {
      let k = freeAt.findIndex(t => t <= spans[i].begin)
      if (k < 0) { k = freeAt.length; freeAt.push(-Infinity); rows.push({ worker, slot: k + 1, extra: true }) }
      freeAt[k] = spans[i].end
      rowOf[i] = first + k
    }
  }
  return { rows, rowOf }
}

/**
 * At most `limit` bars: every marked one (failed, lost, preempted, cancelled) while
 * they fit, then every k-th of the others, spread over the run.
 */
export function sampleBars<T extends { marked: boolean }> (bars: readonly T[], limit: number): T[] {
  if (bars.length <= limit) return [...bars]
  const marked = bars.filter(b => b.marked)
  const others = bars.filter(b => !b.marked)
  const everyKth = (list: readonly T[], budget: number): T[] => {
    if (budget <= 0) return []
    const k = Math.ceil(list.length / budget)
    return list.filter((_, i) => i % k === 0)
  }
  if (marked.length >= limit) return everyKth(marked, limit)
  return [...marked, ...everyKth(others, limit - marked.length)]
}

export function buildTimeline (run: RunJson, limit = SAMPLE_LIMIT): Timeline {
  const names = new Map<string, string | undefined>()
  const slotsOf = new Map<string, number>()
  for (const w of run.workers ?? []) { names.set(w.peer, w.name); slotsOf.set(w.peer, w.slots ?? 1) }
  const jobs = Object.entries(run.jobs ?? {})
  let latest = finite(run.updatedAt) ? run.updatedAt : -Infinity
  if (!finite(run.updatedAt)) {
    for (const [, j] of jobs) for (const a of j.attempts ?? []) for (const t of [a.assignedAt, a.startedAt, a.endedAt, a.reportedAt]) if (finite(t) && t > latest) latest = t
  }
  const now = finite(latest) ? latest : (run.startedAt ?? 0)
  const bars: Bar[] = []
  for (const [job, j] of jobs) {
    const attempts = j.attempts ?? []
    for (let n = 0; n < attempts.length; n++) {
      const a = attempts[n]
      bars.push({
        job, attempt: a, number: n + 1, worker: a.worker, node: nodeLabel(a.worker, a.node ?? names.get(a.worker)),
        ...phasesOf(a, now), marked: isMarked(a.status), row: -1
      })
    }
  }
  const { rows, rowOf } = packSlots(bars, slotsOf, (run.workers ?? []).map(w => w.peer))
  bars.forEach((b, i) => { b.row = rowOf[i] })
  let from = Infinity
  let to = -Infinity
  for (const b of bars) { if (b.begin < from) from = b.begin; if (b.end > to) to = b.end }
  if (!finite(from)) { from = run.startedAt ?? now; to = now }
  const nodeOf = new Map<string, string>()
  for (const b of bars) if (!nodeOf.has(b.worker)) nodeOf.set(b.worker, b.node)
  const drawn = sampleBars(bars, limit)
  return {
    from, to,
    rows: rows.map(r => ({ ...r, node: nodeOf.get(r.worker) ?? nodeLabel(r.worker, names.get(r.worker)) })),
    bars, drawn, sampled: drawn.length < bars.length
  }
}

/**
 * Attempts running at each moment, averaged over `bins` equal columns of the timeline
 * (from all attempts, sampled or not).
 */
export function runningProfile (bars: readonly Bar[], from: number, to: number, bins: number): number[] {
  const out = new Array<number>(bins).fill(0)
  const width = (to - from) / bins
  if (!(width > 0)) return out
  for (const b of bars) {
    const lo = Math.max(0, Math.floor((b.runFrom - from) / width))
    const hi = Math.min(bins - 1, Math.floor((b.runTo - from) / width))
    for (let k = lo; k <= hi; k++) {
      const overlap = Math.min(b.runTo, from + (k + 1) * width) - Math.max(b.runFrom, from + k * width)
      if (overlap > 0) out[k] += overlap / width
    }
  }
  return out
}
