// `bgrid status [RUN]` and `bgrid cancel RUN`: the local daemon and the runs of a data
// dir (newest first, condor_q-style), or one run; --watch redraws until the run is over.
// What a job or a worker said (a reason, an error, a node's words) is one escaped line
// each (protocol/printable.ts), and the whole text is escaped again as it is printed.
import path from 'node:path'
import { controlRequest } from '../../protocol/control.ts'
import { resolveRunId, readRun, listRuns, type RunInfo } from '../../coordinator/runs.ts'
import { runsDirOf } from '../../coordinator/run-dir.ts'
import { BgridError } from '../../protocol/errors.ts'
import { printable, printableJson, printableLines } from '../../protocol/printable.ts'
import { sleep } from '../../protocol/sleep.ts'

const pad2 = (n: number): string => String(n).padStart(2, '0')

/** Local time for people: 2025-03-14 09:26:53 */
export function localTime (ms: number): string {
  const d = new Date(ms)
  return `${d.getFullYear()}-${pad2(d.getMonth() + 1)}-${pad2(d.getDate())} ${pad2(d.getHours())}:${pad2(d.getMinutes())}:${pad2(d.getSeconds())}`
}

/** 4h03m, 3m12s, 42s */
export function duration (ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000))
  if (s < 60) return `${s}s`
  if (s < 3600) return `${Math.floor(s / 60)}m${pad2(s % 60)}s`
  return `${Math.floor(s / 3600)}h${pad2(Math.floor(s / 60) % 60)}m`
}

function renderRun (r: RunInfo): string {
  const lines: string[] = []
  const started = `started ${localTime(r.startedAt)}${r.state === 'running' ? `, ${duration(Date.now() - r.startedAt)} ago` : ''}`
  if (r.status !== undefined) {
    const s = r.status
    const c = s.counts
    lines.push(
      `run ${r.id} (${String(s.dag)}): ${r.state}, ${started}`,
      `  jobs: ${c.done}/${r.total ?? '?'} done, ${c.running} running, ${c.ready} ready, ${c.pending} pending, ${c.failed} failed, ${c.skipped} skipped, ${c.cancelled} cancelled`,
      `  workers: ${(s.workers ?? []).filter((w: any) => w.alive).length} alive of ${(s.workers ?? []).length}`,
      `  outputs: ${String(s.outDir)}`
    )
    if (s.error !== undefined) {
      lines.push(`  error: ${printable(s.error.code)}: ${printable(s.error.message, { max: 2000 })}`)
    }
    if (r.note !== undefined) lines.push(`  ${r.note}`)
    for (const w of s.waiting ?? []) lines.push(`  waiting: ${printable(w, { max: 2000 })}`)
    const failed = Object.entries(s.jobs ?? {}).filter(([, j]: any) => j.state === 'failed')
    for (const [id, j] of failed.slice(0, 10) as any) lines.push(`  failed ${printable(id)}: ${printable(j.reason)}`)
    if (failed.length > 10) lines.push(`  ... and ${failed.length - 10} more failed`)
    return lines.join('\n')
  }
  // no status: what its journal says, or what is there
  lines.push(`run ${r.id}: ${r.note ?? 'no status yet'}`)
  lines.push(`  state: ${r.state}, ${r.source === 'none' ? `directory made ${localTime(r.startedAt)}` : started}`)
  if (r.counts !== undefined) {
    const c = r.counts
    lines.push(`  jobs (from its journal): ${c.done}/${r.total ?? '?'} done, ${c.failed} failed, ${c.skipped} skipped, ${c.cancelled} cancelled, ${c.pending} not run`)
  }
  if (r.outDir !== undefined) lines.push(`  outputs: ${r.outDir}`)
  return lines.join('\n')
}

/** condor_q-style: one row per run, newest first, then a one-line summary. */
function renderTable (runs: RunInfo[]): string {
  if (runs.length === 0) return 'no runs here yet'
  const head = ['RUN ID', 'STARTED', 'STATE', 'DONE/TOTAL', 'RUNNING', 'FAILED']
  const rows = runs.map(r => [
    r.id, localTime(r.startedAt), r.state,
    r.counts !== undefined ? `${r.counts.done}/${r.total ?? '?'}` : '-',
    r.counts !== undefined ? String(r.counts.running) : '-',
    r.counts !== undefined ? String(r.counts.failed) : '-'
  ])
  const width = head.map((h, i) => Math.max(h.length, ...rows.map(r => r[i].length)))
  // names left, numbers right
  const line = (cells: string[]): string => cells.map((c, i) => i < 3 ? c.padEnd(width[i]) : c.padStart(width[i])).join('  ').trimEnd()
  const byState = new Map<string, number>()
  for (const r of runs) byState.set(r.state, (byState.get(r.state) ?? 0) + 1)
  const summary = `${runs.length} run(s): ${[...byState].map(([s, n]) => `${n} ${s}`).join(', ')}`
  return [line(head), ...rows.map(line), '', summary].join('\n')
}

function renderDaemon (reply: any, dataDir: string): string {
  if (reply?.ok !== true) return `no daemon running with data dir ${dataDir}`
  const d = reply.status
  const lines = [`daemon ${String(d.peer)}: ${String(d.state)}, ${Number(d.running)} job(s) running, cache ${Number(d.cache?.blobs)} blob(s) ${(Number(d.cache?.bytes) / 1048576).toFixed(1)} MiB`]
  // why the owner's machine is not offered, in words, with the numbers
  const why = d.policy?.notOffered ?? (d.state === 'owner' ? d.policy?.reason : undefined)
  if (why !== undefined) lines.push(`  not offered: ${printable(why)}`)
  return lines.join('\n')
}

function runSummary (r: RunInfo): Record<string, unknown> {
  return {
    id: r.id, state: r.state, startedAt: new Date(r.startedAt).toISOString(), counts: r.counts ?? null, total: r.total ?? null,
    outDir: r.outDir ?? null, pid: r.pid ?? null, ...(r.note !== undefined ? { note: r.note } : {})
  }
}

function runJson (r: RunInfo): unknown {
  // the full report when there is one (its state corrected when its coordinator is gone)
  if (r.status !== undefined) return { ...r.status, state: r.state, ...(r.note !== undefined ? { note: r.note } : {}) }
  return runSummary(r)
}

interface Snapshot { text: string, json: unknown, over: boolean }

export async function statusCommand (idOrPrefix: string | undefined, o: any): Promise<number> {
  const id = idOrPrefix === undefined ? undefined : resolveRunId(o.dataDir, idOrPrefix)
  const snapshot = async (): Promise<Snapshot> => {
    if (id !== undefined) {
      const r = await readRun(o.dataDir, id)
      return { text: renderRun(r), json: runJson(r), over: r.state !== 'running' }
    }
    const [daemon, runs] = await Promise.all([controlRequest(path.join(o.dataDir, 'control.sock'), { op: 'status' }), listRuns(o.dataDir)])
    return {
      text: `${renderDaemon(daemon?.reply, o.dataDir)}\n\n${renderTable(runs)}`,
      json: { daemon: daemon?.reply?.ok === true ? daemon.reply.status : null, runs: runs.map(runSummary) },
      // the daemon and the list are watched until Ctrl-C
      over: false
    }
  }
  if (o.watch === undefined) {
    const s = await snapshot()
    process.stdout.write((o.json === true ? printableJson(s.json, 2) : printableLines(s.text)) + '\n')
    return 0
  }
  const every = o.watch === true ? 2 : Number(o.watch)
  const tty = process.stdout.isTTY === true && o.json !== true
  for (let n = 0; ; n++) {
    const s = await snapshot()
    const head = `every ${every}s: bgrid status${id !== undefined ? ` ${id}` : ''}   ${localTime(Date.now())}${s.over ? '' : '   (Ctrl-C to stop)'}`
    if (o.json === true) process.stdout.write(printableJson(s.json) + '\n')
    // a terminal: clear and redraw in place (our own escape, the one written raw); a pipe or file: successive snapshots
    else if (tty) process.stdout.write(`\x1b[H\x1b[2J${printableLines(`${head}\n\n${s.text}`)}\n`)
    else process.stdout.write(`${n > 0 ? '\n' : ''}${printableLines(`${head}\n${s.text}`)}\n`)
    if (s.over) return 0
    await sleep(every * 1000)
  }
}

export async function cancelCommand (idOrPrefix: string, o: any): Promise<number> {
  const id = resolveRunId(o.dataDir, idOrPrefix)
  const r = await controlRequest(path.join(runsDirOf(o.dataDir), id, 'control.sock'), { op: 'cancel' })
  if (r === undefined || r.reply?.ok !== true) {
    const info = await readRun(o.dataDir, id)
    throw new BgridError('NOT_FOUND', `run ${id} is not running here: ${info.state}${info.note !== undefined ? ` (${info.note})` : ''}`)
  }
  process.stdout.write(`cancelling run ${printable(id)}: its workers are being released\n`)
  return 0
}
