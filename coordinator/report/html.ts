// report.html (pure): one self-contained page, no script, font or style fetched from
// anywhere: a summary, a timeline (a row per worker slot, a bar per attempt, its
// phases coloured, a tooltip on hover) and the table of jobs with links to their logs.
// Huge runs draw a sample of the attempts and a truncated table, and say so.
import { isMarked, type RunJson } from './run-json.ts'
import { buildTimeline, runningProfile, SAMPLE_LIMIT, type Bar, type Timeline } from './timeline.ts'
import { summarize, type ReportSummary } from './summary.ts'
import { escapeHtml as esc, formatBytes, formatDuration } from './format.ts'

/** Above this many jobs the table lists every failed job and the first others up to it. */
export const TABLE_LIMIT = 5000

export interface HtmlOptions {
  /** the files in `<outDir>/logs`: only those are linked (without it, `<job>.stdout` and `.stderr` are) */
  logFiles?: ReadonlySet<string>
  sampleLimit?: number
  tableLimit?: number
}

const CSS = `
body{font:13px/1.4 system-ui,sans-serif;margin:16px 24px;color:#222}
h1{font-size:20px;margin:0 0 8px}h2{font-size:16px;margin:20px 0 6px}
.state{padding:1px 8px;border-radius:9px;color:#fff;background:#757575;font-size:13px;vertical-align:middle}
.state.succeeded{background:#2e7d32}.state.failed{background:#c62828}.state.running{background:#1565c0}.state.cancelled{background:#6d4c41}
dl{display:grid;grid-template-columns:max-content auto;gap:2px 14px;margin:0}dt{color:#666}dd{margin:0}
table{border-collapse:collapse}td,th{padding:2px 8px;border-bottom:1px solid #eee;text-align:left;vertical-align:top}
th{background:#fafafa;position:sticky;top:0}td.n{text-align:right;font-variant-numeric:tabular-nums}
tr.failed td{background:#fff3f3}.reason{max-width:40em;overflow-wrap:anywhere;color:#555}
.note{background:#fff8e1;border-left:3px solid #f9a825;padding:4px 8px}
.legend span{display:inline-block;margin-right:14px}.legend i{display:inline-block;width:14px;height:10px;margin-right:4px;vertical-align:middle;position:relative}
.tl{--h:18px;margin-top:4px}.row{display:flex;height:var(--h)}.row.first{border-top:1px solid #bbb}
.lbl{flex:none;width:170px;padding-right:6px;font-size:min(11px,var(--h));line-height:var(--h);white-space:nowrap;overflow:hidden;text-overflow:ellipsis;color:#444}
.track{flex:1;position:relative;background:#fcfcfc}
.axis{height:18px}.axis .track span{position:absolute;font-size:10px;color:#777;border-left:1px solid #ccc;padding-left:2px;height:18px}
.b{position:absolute;top:2px;bottom:2px;display:flex;min-width:2px;box-sizing:border-box;border-right:1px solid #fff;background:#90a4ae;overflow:hidden}
.b>i{flex:1 1 0;min-width:0}
.q{background:#cfd8dc}.w{background:#ffb74d}.r{background:#1e88e5}.s{background:#66bb6a}
.b.m{outline:2px solid #c62828;outline-offset:-1px}
.b.m::after,.legend i.m::after{content:"";position:absolute;inset:0;background:repeating-linear-gradient(45deg,transparent 0 3px,rgba(198,40,40,.6) 3px 5px)}
.b.u{opacity:.6}.b.st-running{outline:1px dashed #0d47a1}
.row.prof{height:44px}.prof .lbl{white-space:normal;line-height:1.2}.profile{display:block;width:100%;height:44px}
`

const rel = (t: number, from: number): string => `+${((t - from) / 1000).toFixed(3)}s`
const safeClass = (s: string): string => s.replace(/[^a-z]/g, '')

function tooltip (b: Bar, from: number): string {
  const a = b.attempt
  const status = a.status ?? 'running'
  const outcome = [status, a.exitCode !== undefined && a.exitCode !== null ? `exit ${a.exitCode}` : '', a.signal ?? '', a.error !== undefined ? `: ${a.error.slice(0, 300)}` : ''].filter(s => s !== '').join(' ')
  const lines = [
    `job ${b.job}, attempt ${b.number} (${a.id})`,
    `node ${b.node} (${b.worker.slice(-8)})`,
    outcome,
    b.timed
      ? `queued ${rel(b.begin, from)}, inputs ${rel(b.inputsFrom, from)}, running ${rel(b.runFrom, from)} to ${rel(b.runTo, from)} (${formatDuration(b.runTo - b.runFrom)}), result in ${rel(b.end, from)}`
      : `${rel(b.begin, from)} to ${rel(b.end, from)} (no times reported)`,
    `${new Date(b.timed ? b.runFrom : b.begin).toISOString()}`,
    `fetched ${formatBytes(a.bytesFetched ?? 0)}`
  ]
  return lines.join('\n')
}

function barHtml (b: Bar, from: number, span: number): string {
  const pct = (t: number): string => (((t - from) / span) * 100).toFixed(3)
  const left = pct(b.begin)
  const width = Math.max(0, ((b.end - b.begin) / span) * 100).toFixed(3)
  const cls = `b st-${safeClass(b.attempt.status ?? 'running')}${b.marked ? ' m' : ''}${b.timed ? '' : ' u'}`
  // phases as flex children grown in proportion to their length
  const phases = b.timed
    ? ([['q', b.inputsFrom - b.begin], ['w', b.runFrom - b.inputsFrom], ['r', b.runTo - b.runFrom], ['s', b.end - b.runTo]] as const)
      .filter(([, ms]) => ms > 0).map(([c, ms]) => `<i class="${c}" style="flex-grow:${ms}"></i>`).join('')
    : '<i class="r"></i>'
  return `<div class="${cls}" data-attempt="${esc(b.attempt.id)}" style="left:${left}%;width:${width}%" title="${esc(tooltip(b, from))}">${phases}</div>`
}

/** Tick spacing of 1, 2 or 5 times a power of ten, about `want` ticks over the span. */
function tickStep (spanMs: number, want = 10): number {
  const raw = Math.max(1, spanMs / want)
  const p = 10 ** Math.floor(Math.log10(raw))
  return [1, 2, 5, 10].map(m => m * p).find(s => s >= raw) ?? 10 * p
}

function profileSvg (tl: Timeline, slots: number): string {
  const bins = 400
  const h = 40
  const v = runningProfile(tl.bars, tl.from, tl.to, bins)
  const top = Math.max(slots, ...v, 1)
  let d = `M0 ${h}`
  for (let k = 0; k < bins; k++) { const y = (h - (v[k] / top) * h).toFixed(1); d += `L${k} ${y}L${k + 1} ${y}` }
  d += `L${bins} ${h}Z`
  const slotLine = (h - (slots / top) * h).toFixed(1)
  return `<svg class="profile" viewBox="0 0 ${bins} ${h}" preserveAspectRatio="none" role="img" aria-label="attempts running over time"><path d="${d}" fill="#90caf9" stroke="#1e88e5" stroke-width="0.5" vector-effect="non-scaling-stroke"/><line x1="0" x2="${bins}" y1="${slotLine}" y2="${slotLine}" stroke="#555" stroke-dasharray="4 3" vector-effect="non-scaling-stroke"/></svg>`
}

function timelineHtml (tl: Timeline, slots: number): string {
  const span = Math.max(1, tl.to - tl.from)
  const byRow = new Map<number, Bar[]>()
  for (const b of tl.drawn) { const list = byRow.get(b.row); if (list === undefined) byRow.set(b.row, [b]); else list.push(b) }
  const step = tickStep(span)
  const ticks: string[] = []
  for (let t = 0, i = 0; t <= span && i < 100; t += step, i++) ticks.push(`<span style="left:${((t / span) * 100).toFixed(3)}%">${t === 0 ? '0' : formatDuration(t)}</span>`)
  const rowH = tl.rows.length <= 60 ? 18 : Math.max(4, Math.min(18, Math.floor(1200 / tl.rows.length)))
  const rows = tl.rows.map((r, i) => {
    const bars = (byRow.get(i) ?? []).map(b => barHtml(b, tl.from, span)).join('')
    const label = r.extra ? `${esc(r.node)} #${r.slot} (queue)` : `${esc(r.node)} #${r.slot}`
    const title = r.extra ? `${r.worker}: more attempts at once than its slots (handed out before a slot was free)` : r.worker
    return `<div class="row${r.slot === 1 ? ' first' : ''}"><span class="lbl" title="${esc(title)}">${label}</span><div class="track">${bars}</div></div>`
  })
  const marked = tl.drawn.filter(b => b.marked).length
  const note = tl.sampled
    ? `<p class="note" id="sampled">Sampled timeline: ${tl.drawn.length} of ${tl.bars.length} attempts drawn (${marked} failed, lost, preempted or cancelled, then every k-th of the others). The profile of attempts running and the summary count every attempt; trace.tsv lists them all.</p>`
    : ''
  return `<section id="timeline"><h2>Timeline</h2>
<div class="legend"><span><i class="q"></i>queued</span><span><i class="w"></i>waiting for inputs</span><span><i class="r"></i>running</span><span><i class="s"></i>sending outputs</span><span><i class="m" style="outline:2px solid #c62828"></i>failed, lost, preempted or cancelled</span><span>time from the first job handed out; hover a bar for details</span></div>
${note}
<div class="tl" style="--h:${rowH}px"><div class="row prof"><span class="lbl">attempts running (dashed line: ${slots} slots)</span><div class="track">${profileSvg(tl, slots)}</div></div>
<div class="row axis"><span class="lbl"></span><div class="track">${ticks.join('')}</div></div>
${rows.join('\n')}</div></section>`
}

function summaryHtml (run: RunJson, s: ReportSummary, tl: Timeline): string {
  const lb = s.lowerBoundSec
  const makespan = `${formatDuration(s.makespanMs)}${lb !== undefined && lb > 0 ? ` against a lower bound of ${formatDuration(lb * 1000)} (max of critical path and work over slots): ${(s.makespanMs / 1000 / lb).toFixed(2)}x` : ''}`
  const counts = (o: Record<string, number>): string => Object.entries(o).sort((a, b) => b[1] - a[1]).map(([k, n]) => `${n} ${esc(k)}`).join(', ') || 'none'
  const items: Array<[string, string]> = [
    ['run', `${esc(run.run)}${run.dag !== undefined ? ` (${esc(run.dag)})` : ''}`],
    ['state', `${esc(run.state)}${run.error !== undefined ? `: ${esc(run.error.code)} ${esc(run.error.message)}` : ''}`],
    ['started', run.startedAt !== undefined ? new Date(run.startedAt).toISOString() : '-'],
    ...(run.state === 'running' && run.updatedAt !== undefined ? [['updated', new Date(run.updatedAt).toISOString()] as [string, string]] : []),
    ['makespan', `${makespan} <span class="reason">(first job handed out to last result in${run.startedAt !== undefined && tl.bars.length > 0 ? `; ${formatDuration(tl.from - run.startedAt)} after the run started` : ''})</span>`],
    ['jobs', `${s.jobs}: ${counts(s.jobsByState)}`],
    ['attempts', `${s.attempts}, ${s.retries} retr${s.retries === 1 ? 'y' : 'ies'}: ${counts(s.attemptsByStatus)}`],
    ['data', `${formatBytes(s.bytesFetched)} fetched by jobs, ${formatBytes(s.prefetchedBytes)} prefetched, ${formatBytes(s.inputBytesStaged)} of staged inputs`],
    ...((run.waiting ?? []).length > 0 ? [['waiting', (run.waiting ?? []).slice(0, 20).map(esc).join('<br>')] as [string, string]] : [])
  ]
  return `<section id="summary"><h2>Summary</h2><dl>${items.map(([k, v]) => `<dt>${k}</dt><dd>${v}</dd>`).join('')}</dl></section>`
}

function workersHtml (s: ReportSummary): string {
  const rows = s.workers.map(w => `<tr><td title="${esc(w.worker)}">${esc(w.node)}</td><td class="n">${w.slots}</td><td class="n">${w.attempts}</td><td class="n">${formatDuration(w.runningMs)}</td><td class="n">${(w.busy * 100).toFixed(1)}%</td></tr>`).join('')
  return `<section id="workers"><h2>Workers</h2><table><thead><tr><th>node</th><th>slots</th><th>attempts</th><th>running</th><th>busy</th></tr></thead><tbody>${rows}</tbody></table>
<p class="reason">busy: time spent running jobs over slots x makespan</p></section>`
}

function logLinks (job: string, files: ReadonlySet<string> | undefined): string {
  const links: string[] = []
  for (const which of ['stdout', 'stderr']) {
    const full = `${job}.${which}`
    const name = files === undefined || files.has(full) ? full : files.has(`${full}.tail`) ? `${full}.tail` : undefined
    if (name !== undefined) links.push(`<a href="logs/${encodeURIComponent(name)}">${name.endsWith('.tail') ? `${which} (tail)` : which}</a>`)
  }
  return links.join(' ')
}

function jobsHtml (run: RunJson, tl: Timeline, o: HtmlOptions): string {
  const lastBar = new Map<string, Bar>()
  for (const b of tl.bars) lastBar.set(b.job, b)
  const entries = Object.entries(run.jobs ?? {})
  const limit = o.tableLimit ?? TABLE_LIMIT
  const failed = entries.filter(([, j]) => j.state === 'failed').length
  const others = Math.max(0, limit - failed)
  let shownOthers = 0
  const rows: string[] = []
  for (const [id, j] of entries) {
    const isFailed = j.state === 'failed'
    if (!isFailed) { if (shownOthers >= others) continue; shownOthers++ }
    const b = lastBar.get(id)
    const a = b?.attempt
    const exit = a?.exitCode ?? j.exitCode
    const reason = j.reason ?? (a !== undefined && isMarked(a.status) ? a.error : undefined)
    rows.push(`<tr id="job-${esc(id)}" class="${safeClass(j.state)}"><td>${esc(id)}</td><td>${esc(j.state)}</td><td class="n">${j.attempts?.length ?? 0}</td><td>${b !== undefined ? esc(b.node) : '-'}</td>` +
      `<td class="n">${b !== undefined ? rel(b.timed ? b.runFrom : b.begin, tl.from) : '-'}</td><td class="n">${b?.timed === true ? formatDuration(b.runTo - b.runFrom) : '-'}</td>` +
      `<td class="n">${exit !== undefined && exit !== null ? exit : esc(a?.signal ?? '-')}</td><td class="reason">${reason !== undefined ? esc(reason.slice(0, 500)) : ''}</td><td>${j.attempts !== undefined && j.attempts.length > 0 ? logLinks(id, o.logFiles) : ''}</td></tr>`)
  }
  const note = rows.length < entries.length
    ? `<p class="note" id="truncated">Table truncated: ${rows.length} of ${entries.length} jobs listed (all ${failed} failed, then the first ${shownOthers} others). trace.tsv lists every attempt.</p>`
    : ''
  return `<section id="jobs"><h2>Jobs</h2>${note}<table><thead><tr><th>job</th><th>state</th><th>attempts</th><th>node</th><th>start</th><th>duration</th><th>exit</th><th>reason</th><th>logs</th></tr></thead>
<tbody>${rows.join('\n')}</tbody></table></section>`
}

export function renderReportHtml (run: RunJson, o: HtmlOptions = {}): string {
  const tl = buildTimeline(run, o.sampleLimit ?? SAMPLE_LIMIT)
  const s = summarize(run, tl)
  const slots = s.workers.reduce((n, w) => n + w.slots, 0)
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>bgrid run ${esc(run.run)}</title><style>${CSS}</style></head>
<body><h1>bgrid run ${esc(run.run)} <span class="state ${safeClass(run.state)}">${esc(run.state)}</span></h1>
${summaryHtml(run, s, tl)}
${timelineHtml(tl, slots)}
${workersHtml(s)}
${jobsHtml(run, tl, o)}
<p class="reason">Every attempt is in trace.tsv beside this page (Nextflow's trace fields).</p>
</body></html>
`
}
