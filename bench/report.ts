// Run report generation (issue 13): report.html and trace.tsv for the 619-task Montage
// 2mass-025d replay (target: under 1 s and under 2 MB of HTML), and for a 100,000-job
// run.json (target: under 5 s, with a sampled timeline), plus headless Chromium loading
// each page to the end of --dump-dom.
//
//   node bench/report.ts [montage-run.json]
//
// Without an argument the Montage run.json is a replay made here: the trace's tasks,
// runtimes and file sizes list-scheduled on 8 workers x 4 slots (testbed/synthetic-run.ts).
// A run.json kept by `BGRID_BENCH_KEEP=dir node bench/data.ts montage` can be given instead.
import { readFileSync, writeFileSync, mkdtempSync, rmSync, statSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { importWfCommons } from '../coordinator/wfcommons.ts'
import { writeRunReport } from '../coordinator/report/write.ts'
import type { RunJson } from '../coordinator/report/run-json.ts'
import { simulateRun, bagOfTasks, type SimTask } from '../testbed/synthetic-run.ts'
import { findChromium, runChromium, killChromiums } from '../testbed/chromium.ts'
import { ROOT } from '../testbed/cluster.ts'

const say = (s: string): void => { process.stdout.write(s + '\n') }
const MONTAGE = path.join(ROOT, '..', 'shared', 'workloads', 'montage-chameleon-2mass-025d-001.json')

function montageRun (): RunJson {
  const imported = importWfCommons(JSON.parse(readFileSync(MONTAGE, 'utf8')), { timeScale: 1, sizeScale: 1, sleep: true })
  const jobs = (imported.dag as { jobs: Array<{ id: string, after: string[], runtime: number, inputs: Array<{ src: string, as: string }>, outputs: Array<{ name: string, size: number }> }> }).jobs
  const produced = new Map<string, number>()
  for (const j of jobs) for (const o of j.outputs) produced.set(`job:${j.id}/${o.name}`, o.size)
  const external = new Map(imported.external.map(f => [`inputs/${f.name}`, f.size]))
  const tasks: SimTask[] = jobs.map(j => ({
    id: j.id, runtime: j.runtime, after: j.after,
    inputBytes: j.inputs.reduce((n, i) => n + (produced.get(i.src) ?? external.get(i.src) ?? 0), 0)
  }))
  return simulateRun(tasks, { workers: 8, slots: 4, failEvery: 100, name: 'montage-2mass-025d' })
}

const attemptsOf = (run: RunJson): number => Object.values(run.jobs).reduce((n, j) => n + (j.attempts?.length ?? 0), 0)
const tmp = mkdtempSync(path.join(os.tmpdir(), 'bgrid-bench-report-'))
const chromium = findChromium()
let failed = 0

/** From run.json on disk to both files written, as `bgrid report` does it. */
async function measure (label: string, run: RunJson, maxMs: number, maxHtmlBytes?: number): Promise<void> {
  const dir = path.join(tmp, label.replace(/[^A-Za-z0-9]+/g, '-'))
  const file = `${dir}.run.json`
  writeFileSync(file, JSON.stringify(run))
  const t0 = performance.now()
  const parsed = JSON.parse(readFileSync(file, 'utf8')) as RunJson
  const t1 = performance.now()
  const report = await writeRunReport(dir, parsed)
  const t2 = performance.now()
  const html = statSync(report).size
  const ok = t2 - t0 < maxMs && (maxHtmlBytes === undefined || html < maxHtmlBytes)
  if (!ok) failed++
  const sampled = readFileSync(report, 'utf8').includes('id="sampled"')
  say(`${label}: ${Object.keys(run.jobs).length} jobs, ${attemptsOf(run)} attempts: report in ${((t2 - t0) / 1000).toFixed(2)} s (parse ${((t1 - t0) / 1000).toFixed(2)} s, render + write ${((t2 - t1) / 1000).toFixed(2)} s), ` +
    `HTML ${(html / 1e6).toFixed(2)} MB${sampled ? ' (sampled timeline)' : ''}, trace.tsv ${(statSync(path.join(dir, 'trace.tsv')).size / 1e6).toFixed(2)} MB; ` +
    `target < ${maxMs / 1000} s${maxHtmlBytes !== undefined ? ` and < ${maxHtmlBytes / 1e6} MB` : ''}: ${ok ? 'met' : 'NOT met'}`)
  if (chromium === undefined) { say(`${label}: chromium not found, page load not measured`); return }
  const dom = await runChromium(chromium, report, { dumpDom: true }, 120_000)
  const bars = (dom.stdout.match(/data-attempt="/g) ?? []).length
  say(`${label}: headless Chromium loaded it to the end of --dump-dom in ${(dom.ms / 1000).toFixed(2)} s (process start included), ${bars} bars in the DOM`)
}

try {
  const given = process.argv[2]
  const montage = given !== undefined ? JSON.parse(readFileSync(given, 'utf8')) as RunJson : montageRun()
  await measure(given !== undefined ? `montage (${path.basename(given)})` : 'montage 2mass-025d replay on 8x4 slots', montage, 1000, 2e6)
  await measure('100,000 jobs on 50x4 slots', simulateRun(bagOfTasks(100_000), { workers: 50, slots: 4, failEvery: 1000 }), 5000)
} finally {
  killChromiums()
  rmSync(tmp, { recursive: true, force: true })
}
process.exit(failed === 0 ? 0 : 1)
