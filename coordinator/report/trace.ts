// trace.tsv (pure): Nextflow's default trace fields, one row per attempt, plus the node
// that ran it and the attempt's number, so that tools reading Nextflow traces read it.
// What bgrid does not measure (hash, CPU, memory, I/O counters) is `-`, as Nextflow
// prints a value it does not have.
import type { RunAttempt, RunJson } from './run-json.ts'
import { nodeLabel } from './run-json.ts'
import { formatDate, formatDuration } from './format.ts'

export const TRACE_FIELDS = ['task_id', 'hash', 'native_id', 'name', 'status', 'exit', 'submit', 'duration', 'realtime', '%cpu', 'peak_rss', 'peak_vmem', 'rchar', 'wchar', 'node', 'attempt'] as const

const NA = '-'
const finite = (x: unknown): x is number => typeof x === 'number' && Number.isFinite(x)

/** Nextflow's task states: COMPLETED, FAILED, ABORTED (stopped by something other than itself), RUNNING. */
export function traceStatus (status: string | undefined): string {
  switch (status) {
    case 'ok': return 'COMPLETED'
    case 'failed': return 'FAILED'
    case 'lost': case 'preempted': case 'cancelled': return 'ABORTED'
    default: return 'RUNNING'
  }
}

/** When the attempt was handed out: its assignment, else the start of its wait for inputs. */
function submittedAt (a: RunAttempt): number | undefined {
  if (finite(a.assignedAt)) return a.assignedAt
  if (finite(a.startedAt)) return a.startedAt - (finite(a.inputWaitMs) ? a.inputWaitMs : 0)
  return undefined
}

const clean = (s: string): string => s.replace(/[\t\r\n]/g, ' ')

export function renderTrace (run: RunJson): string {
  const names = new Map<string, string | undefined>((run.workers ?? []).map(w => [w.peer, w.name]))
  const rows: Array<{ submit: number, cells: string[] }> = []
  for (const [job, j] of Object.entries(run.jobs ?? {})) {
    const attempts = j.attempts ?? []
    attempts.forEach((a, i) => {
      const submit = submittedAt(a)
      const finished = (a.status ?? 'running') !== 'running'
      const complete = finite(a.reportedAt) ? a.reportedAt : a.endedAt
      const duration = finished && submit !== undefined && finite(complete) ? formatDuration(complete - submit) : NA
      const realtime = finished && finite(a.startedAt) && finite(a.endedAt) ? formatDuration(a.endedAt - a.startedAt) : NA
      rows.push({
        submit: submit ?? Infinity,
        cells: [
          '', NA, clean(a.id), clean(job), traceStatus(a.status), finite(a.exitCode) ? String(a.exitCode) : NA,
          submit !== undefined ? formatDate(submit) : NA, duration, realtime,
          NA, NA, NA, NA, NA, clean(nodeLabel(a.worker, a.node ?? names.get(a.worker))), String(i + 1)
        ]
      })
    })
  }
  // in the order they were handed out, numbered as Nextflow numbers its tasks
  rows.sort((x, y) => (x.submit - y.submit) || 0)
  const lines = [TRACE_FIELDS.join('\t')]
  rows.forEach((r, i) => { r.cells[0] = String(i + 1); lines.push(r.cells.join('\t')) })
  return lines.join('\n') + '\n'
}
