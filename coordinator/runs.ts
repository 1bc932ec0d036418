// The runs a data dir knows (<data-dir>/coordinator/runs/<id>): ids given by any unique
// prefix, and what each run is doing, asked of its coordinator when it answers, else
// read from what it left behind (status.json, then its journal), else said plainly.
import { readdirSync, statSync } from 'node:fs'
import { readFile } from 'node:fs/promises'
import path from 'node:path'
import { controlRequest } from '../protocol/control.ts'
import { BgridError } from '../protocol/errors.ts'
import type { JobState } from './core/model.ts'
import { RUN_ID, runsDirOf } from './run-dir.ts'
import { bestEffort } from '../protocol/best-effort.ts'



/** Run ids in a data dir, unsorted (none when there is no runs dir yet). */
function runIds (dataDir: string): string[] {
  try {
    return readdirSync(runsDirOf(dataDir), { withFileTypes: true }).filter(e => e.isDirectory() && RUN_ID.test(e.name)).map(e => e.name)
  } catch { return [] }
}

/** A run id from itself or from any unique prefix of it (condor_q and git let people type little). */
export function resolveRunId (dataDir: string, idOrPrefix: string): string {
  if (!RUN_ID.test(idOrPrefix)) throw new BgridError('INVALID_CONFIG', `not a run id: ${idOrPrefix}`)
  const ids = runIds(dataDir)
  if (ids.includes(idOrPrefix)) return idOrPrefix
  const matches = ids.filter(id => id.startsWith(idOrPrefix)).sort()
  if (matches.length === 1) return matches[0]
  if (matches.length === 0) throw new BgridError('NOT_FOUND', `no run ${idOrPrefix} in ${runsDirOf(dataDir)}${ids.length > 0 ? ' (`bgrid status` lists them)' : ''}`)
  const shown = matches.slice(0, 8).join(', ') + (matches.length > 8 ? ` and ${matches.length - 8} more` : '')
  throw new BgridError('INVALID_CONFIG', `${idOrPrefix} is ambiguous: matches ${shown}`)
}

export type RunState = 'running' | 'succeeded' | 'failed' | 'cancelled' | 'interrupted' | 'unknown'

export interface RunInfo {
  id: string
  dir: string
  state: RunState
  /** when it started (ms since epoch): the run's own time, else its directory's */
  startedAt: number
  counts?: Record<JobState, number>
  total?: number
  outDir?: string
  /** the coordinator's pid, when known */
  pid?: number
  /** where this came from: its coordinator, status.json, its journal, or nothing yet */
  source: 'live' | 'status' | 'journal' | 'none'
  /** the run's full status report (live or status.json) */
  status?: any
  /** what people should know beside the state: why there is no status, how to go on */
  note?: string
}

export function pidAlive (pid: number | undefined): boolean {
  if (pid === undefined || !Number.isInteger(pid) || pid <= 0) return false
  try { process.kill(pid, 0); return true } catch (err: any) { return err.code === 'EPERM' }
}

function emptyCounts (): Record<JobState, number> {
  return { pending: 0, ready: 0, running: 0, done: 0, failed: 0, skipped: 0, cancelled: 0 }
}

function dirTime (dir: string): number {
  try { return statSync(dir).mtimeMs } catch { return 0 }
}

const JOURNAL_STATE: Record<string, RunState> = { finished: 'succeeded', failed: 'failed', cancelled: 'cancelled' }

/** What one run is doing (its id must exist: see resolveRunId). */
export async function readRun (dataDir: string, id: string): Promise<RunInfo> {
  const dir = path.join(runsDirOf(dataDir), id)
  const resume = `resume it with bgrid submit --resume ${id}`
  const fromStatus = (s: any, source: 'live' | 'status'): RunInfo => {
    const info: RunInfo = {
      id, dir, source, status: s, state: s.state, startedAt: Number(s.startedAt ?? dirTime(dir)), counts: s.counts,
      total: Object.keys(s.jobs ?? {}).length, outDir: s.outDir, pid: s.pid
    }
    if (source === 'status' && s.state === 'running') {
      // status.json says running, but nobody answers on the run's socket
      if (pidAlive(s.pid)) info.note = `coordinator pid ${String(s.pid)} does not answer`
      else { info.state = 'interrupted'; info.note = `coordinator pid ${String(s.pid)} is gone: ${resume}` }
    }
    return info
  }
  const live = await controlRequest(path.join(dir, 'control.sock'), { op: 'status' })
  if (live?.reply?.ok === true) return fromStatus(live.reply.status, 'live')
  try { return fromStatus(JSON.parse(await readFile(path.join(dir, 'status.json'), 'utf8')), 'status') } catch (err) { bestEffort('fromStatus()', err) }

  // no status written (the coordinator died or failed before its first one): the journal
  // (loaded only here: LevelDB is a native module)
  const { readJournal } = await import('./journal.ts')
  const j = await readJournal(path.join(dir, 'journal'))
  if (j === 'locked') {
    return { id, dir, source: 'journal', state: 'running', startedAt: dirTime(dir), note: 'no status yet: its coordinator holds the journal but does not answer (still starting?)' }
  }
  if (j !== undefined && j.meta !== undefined) {
    const m = j.meta
    const alive = pidAlive(m.pid)
    const counts = emptyCounts()
    for (const st of j.states.values()) counts[st]++
    const total = Array.isArray((m.dag as any)?.jobs) ? (m.dag as any).jobs.length : j.states.size
    counts.pending += Math.max(0, total - j.states.size)
    const state: RunState = m.state === 'running' ? (alive ? 'running' : 'interrupted') : JOURNAL_STATE[m.state] ?? 'unknown'
    const pidNote = m.pid !== undefined ? ` (coordinator pid ${m.pid} ${alive ? 'running, not answering yet' : 'not running'})` : ''
    return {
      id, dir, source: 'journal', state, startedAt: m.createdAt, counts, total, outDir: m.outDir, pid: m.pid,
      note: `no status yet${pidNote}${state === 'interrupted' || state === 'failed' ? `; ${resume}` : ''}`
    }
  }
  let held: string[] = []
  try { held = readdirSync(dir).sort() } catch (err) { bestEffort('readdirSync(dir).sort()', err) }
  return {
    id, dir, source: 'none', state: 'unknown', startedAt: dirTime(dir),
    note: `no status yet: its coordinator stopped before writing its journal (${dir} holds ${held.length > 0 ? held.join(', ') : 'nothing'})`
  }
}

/** Every run of a data dir, newest first. */
export async function listRuns (dataDir: string): Promise<RunInfo[]> {
  const runs = await Promise.all(runIds(dataDir).map(async id => await readRun(dataDir, id)))
  return runs.sort((a, b) => b.startedAt - a.startedAt || (a.id < b.id ? 1 : -1))
}
