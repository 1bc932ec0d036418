// The run report: the pure parts (slot packing, sampling, Nextflow formats, the page),
// then a real run's report rendered by headless Chromium.
import t from 'tap'
import { mkdtempSync, mkdirSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync, copyFileSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { packSlots, sampleBars, buildTimeline, phasesOf, SAMPLE_LIMIT, type Span } from '../coordinator/report/timeline.ts'
import { formatDuration, formatDate, formatBytes } from '../coordinator/report/format.ts'
import { renderTrace, TRACE_FIELDS } from '../coordinator/report/trace.ts'
import { renderReportHtml } from '../coordinator/report/html.ts'
import { writeRunReport } from '../coordinator/report/write.ts'
import type { RunJson } from '../coordinator/report/run-json.ts'
import { reportCommand } from '../bin/commands/report.ts'
import { simulateRun, bagOfTasks } from '../testbed/synthetic-run.ts'
import { findChromium, runChromium, killChromiums } from '../testbed/chromium.ts'
import { clusterOrSkip, stdoutJson } from '../testbed/cluster.ts'

// trace dates are local time, as Nextflow writes them: fix the zone for the assertions
process.env.TZ = 'UTC'
const tmp = mkdtempSync(path.join(os.tmpdir(), 'bgrid-report-'))
t.teardown(() => { killChromiums(); rmSync(tmp, { recursive: true, force: true }) })

const countAttempts = (run: RunJson): number => Object.values(run.jobs).reduce((n, j) => n + (j.attempts?.length ?? 0), 0)
const attemptIdsIn = (html: string): string[] => [...html.matchAll(/data-attempt="([^"]*)"/g)].map(m => m[1])

/** A small hand-made run: two workers (2 slots and 1), a retry, a lost attempt, hostile names. */
function smallRun (): RunJson {
  const w1 = '12D3KooWAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAworker01'
  const w2 = '12D3KooWBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBworker02'
  const T = Date.UTC(2025, 2, 4, 10, 0, 0)
  return {
    run: 'small-1', dag: 'small', state: 'failed', outDir: '/nonexistent', startedAt: T - 1000, updatedAt: T + 60_000,
    workers: [{ peer: w1, name: 'lab-pc<script>alert(1)</script>', slots: 2, alive: true }, { peer: w2, slots: 1, alive: false }],
    data: { bytesFetched: 3 * 1048576, prefetchedBytes: 1048576, inputBytesStaged: 2048 },
    lowerBoundSec: 10,
    jobs: {
      a: { state: 'done', attempts: [{ id: 'a1', worker: w1, status: 'ok', exitCode: 0, assignedAt: T, startedAt: T + 500, endedAt: T + 10_500, reportedAt: T + 10_700, inputWaitMs: 300, bytesFetched: 1048576 }] },
      b: { state: 'done', attempts: [{ id: 'b1', worker: w1, status: 'ok', exitCode: 0, assignedAt: T + 100, startedAt: T + 200, endedAt: T + 5_200, inputWaitMs: 0, bytesFetched: 0 }] },
      c: {
        state: 'failed', reason: 'exit code 7 <b>bold</b>',
        attempts: [
          { id: 'c1', worker: w2, status: 'failed', exitCode: 7, assignedAt: T, startedAt: T + 100, endedAt: T + 1_100, reportedAt: T + 1_200, inputWaitMs: 0 },
          { id: 'c2', worker: w1, status: 'lost', error: 'worker lost', assignedAt: T + 5_300, endedAt: T + 9_000 },
          { id: 'c3', worker: w1, status: 'failed', exitCode: 7, startedAt: T + 11_000, endedAt: T + 12_000, inputWaitMs: 1_000 }
        ]
      }
    }
  }
}

t.test('slot packing: a 2-slot worker with overlapping attempts gets 2 rows, and no row holds overlapping attempts', async t => {
  const spans: Span[] = [
    { worker: 'w', begin: 0, end: 10 }, { worker: 'w', begin: 5, end: 15 }, { worker: 'w', begin: 10, end: 20 },
    { worker: 'w', begin: 16, end: 30 }, { worker: 'v', begin: 0, end: 100 }
  ]
  const { rows, rowOf } = packSlots(spans, new Map([['w', 2], ['v', 1]]), ['w', 'v'])
  t.same(rows, [{ worker: 'w', slot: 1, extra: false }, { worker: 'w', slot: 2, extra: false }, { worker: 'v', slot: 1, extra: false }])
  t.same(rowOf, [0, 1, 0, 1, 2], 'each attempt in the first row free when it begins')
  for (let r = 0; r < rows.length; r++) {
    const inRow = spans.filter((_, i) => rowOf[i] === r).sort((x, y) => x.begin - y.begin)
    for (let i = 1; i < inRow.length; i++) t.ok(inRow[i].begin >= inRow[i - 1].end, `row ${r}: no overlap`)
  }
  // three at once on 2 slots (one handed out before the previous result was in): a third row, never an overlap
  const crowded = packSlots([{ worker: 'w', begin: 0, end: 10 }, { worker: 'w', begin: 1, end: 10 }, { worker: 'w', begin: 2, end: 10 }], new Map([['w', 2]]))
  t.same(crowded.rows.map(r => r.extra), [false, false, true], 'the third row is marked as beyond the slots')
  t.same(new Set(crowded.rowOf).size, 3)
})

t.test('phases: input wait, assignment and report frame the running time; missing times fall back', async t => {
  const p = phasesOf({ id: 'x', worker: 'w', assignedAt: 1000, startedAt: 3000, endedAt: 8000, reportedAt: 8500, inputWaitMs: 1500 }, 0)
  t.same(p, { begin: 1000, inputsFrom: 1500, runFrom: 3000, runTo: 8000, end: 8500, timed: true })
  const old = phasesOf({ id: 'x', worker: 'w', startedAt: 3000, endedAt: 8000, inputWaitMs: 1500 }, 0)
  t.same([old.begin, old.end], [1500, 8000], 'no assignedAt: queued from the input wait; no reportedAt: ends with the command')
  const skewed = phasesOf({ id: 'x', worker: 'w', assignedAt: 4000, startedAt: 3000, endedAt: 8000, reportedAt: 7000 }, 0)
  t.same([skewed.begin, skewed.runFrom, skewed.runTo, skewed.end], [3000, 3000, 8000, 8000], 'clocks that disagree never shorten the running phase')
  const lost = phasesOf({ id: 'x', worker: 'w', status: 'lost', assignedAt: 1000, endedAt: 4000 }, 9999)
  t.same([lost.begin, lost.end, lost.timed], [1000, 4000, false])
  const out = phasesOf({ id: 'x', worker: 'w', status: 'running', assignedAt: 1000 }, 9999)
  t.same([out.begin, out.end], [1000, 9999], 'a running attempt reaches to now')
})

t.test('sampling keeps every failed attempt and stays within the limit', async t => {
  const bars = Array.from({ length: 20_000 }, (_, i) => ({ i, marked: i % 500 === 7 }))
  const s = sampleBars(bars, 1000)
  t.ok(s.length <= 1000 && s.length > 900, `${s.length} drawn`)
  t.equal(s.filter(b => b.marked).length, 40, 'all 40 marked ones kept')
  t.ok(s.some(b => b.i > 19_000), 'the sample reaches the end of the run')
  t.equal(sampleBars(bars.slice(0, 10), 1000).length, 10, 'under the limit: everything')
  const allMarked = sampleBars(bars.map(b => ({ ...b, marked: true })), 1000)
  t.ok(allMarked.length <= 1000, 'more marked than the limit: a sample of them')
})

t.test('Nextflow formats: durations, dates, bytes', async t => {
  const cases: Array<[number, string]> = [[0, '0ms'], [931, '931ms'], [1234, '1.2s'], [5000, '5s'], [59_940, '59.9s'], [184_000, '3m 4s'], [3_600_000, '1h'], [3_723_000, '1h 2m 3s'], [90_061_000, '1d 1h 1m 1s'], [120_400, '2m']]
  for (const [ms, s] of cases) t.equal(formatDuration(ms), s, `${ms} ms`)
  t.equal(formatDate(Date.UTC(2014, 9, 23, 16, 33, 16, 288)), '2014-10-23 16:33:16.288')
  t.equal(formatDate(Date.UTC(2025, 0, 2, 3, 4, 5, 6)), '2025-01-02 03:04:05.006')
  t.equal(formatBytes(512), '512 B')
  t.equal(formatBytes(3 * 1048576), '3.0 MiB')
})

t.test('trace.tsv: Nextflow default fields plus node and attempt, one row per attempt, unmeasured fields as -', async t => {
  const run = smallRun()
  const lines = renderTrace(run).trimEnd().split('\n')
  t.same(lines[0].split('\t'), [...TRACE_FIELDS])
  t.same(TRACE_FIELDS.slice(0, 14), ['task_id', 'hash', 'native_id', 'name', 'status', 'exit', 'submit', 'duration', 'realtime', '%cpu', 'peak_rss', 'peak_vmem', 'rchar', 'wchar'])
  const rows = lines.slice(1).map(l => Object.fromEntries(l.split('\t').map((v, i) => [TRACE_FIELDS[i], v])))
  t.equal(rows.length, countAttempts(run))
  t.same(rows.map(r => r.task_id), rows.map((_, i) => String(i + 1)))
  const a = rows.find(r => r.native_id === 'a1')
  t.same(a, {
    task_id: a?.task_id, hash: '-', native_id: 'a1', name: 'a', status: 'COMPLETED', exit: '0', submit: '2025-03-04 10:00:00.000',
    duration: '10.7s', realtime: '10s', '%cpu': '-', peak_rss: '-', peak_vmem: '-', rchar: '-', wchar: '-', node: 'lab-pc<script>alert(1)</script>', attempt: '1'
  })
  const c2 = rows.find(r => r.native_id === 'c2')
  t.same([c2?.status, c2?.exit, c2?.realtime, c2?.attempt, c2?.node], ['ABORTED', '-', '-', '2', 'lab-pc<script>alert(1)</script>'])
  const c3 = rows.find(r => r.native_id === 'c3')
  t.same([c3?.status, c3?.exit, c3?.submit, c3?.attempt], ['FAILED', '7', '2025-03-04 10:00:10.000', '3'], 'no assignedAt: submitted when its input wait began')
  t.equal(rows.find(r => r.native_id === 'c1')?.node, 'worker02', 'no node name: the end of the peer id')
})

t.test('report.html: a bar per attempt, phases, marks, summary figures, log links, escaped names, nothing fetched', async t => {
  const run = smallRun()
  const html = renderReportHtml(run, { logFiles: new Set(['a.stdout', 'a.stderr', 'c.stdout', 'c.stderr.tail']) })
  t.same(attemptIdsIn(html).sort(), ['a1', 'b1', 'c1', 'c2', 'c3'])
  const bar = (id: string): string => new RegExp(`<div class="[^"]*" data-attempt="${id}"[^>]*>.*?</div>`).exec(html)?.[0] ?? ''
  t.match(bar('a1'), /class="b st-ok"/)
  t.match(bar('a1'), /<i class="q"[^>]*><\/i><i class="w"[^>]*><\/i><i class="r"[^>]*><\/i><i class="s"/, 'queued, waiting, running, sending')
  t.match(bar('c1'), /class="b st-failed m"/, 'failed attempts marked')
  t.match(bar('c2'), /class="b st-lost m u"/, 'lost, and drawn without phases')
  t.match(bar('a1'), /title="job a, attempt 1 \(a1\)&#10;node lab-pc&lt;script&gt;/, 'tooltip with job, attempt, node')
  t.match(bar('a1'), /fetched 1\.0 MiB/)
  t.notMatch(html, /<script>alert/, 'a hostile node name is escaped')
  t.notMatch(html, /<b>bold/, 'reasons are escaped')
  t.notMatch(html, /\b(src|href)="(https?:)?\/\/|@import|url\(/, 'no network fetch')
  t.match(html, /<td[^>]*>lab-pc&lt;script&gt;alert\(1\)&lt;\/script&gt;<\/td><td class="n">2<\/td><td class="n">4<\/td><td class="n">16s<\/td><td class="n">66\.7%<\/td>/, 'worker busy: 16 s of running over 2 slots x 12 s of makespan')
  t.match(html, /1\.20x/, 'makespan (12 s) against the lower bound (10 s)')
  t.match(html, /<dd>5, 2 retries: /, 'retries: attempts beyond one per job')
  t.match(html, /3\.0 MiB fetched by jobs, 1\.0 MiB prefetched, 2\.0 KiB of staged inputs/)
  t.match(html, /<a href="logs\/a\.stdout">stdout<\/a> <a href="logs\/a\.stderr">stderr<\/a>/)
  t.match(html, /<a href="logs\/c\.stdout">stdout<\/a> <a href="logs\/c\.stderr\.tail">stderr \(tail\)<\/a>/, 'a tail where the full log could not be fetched')
  t.notMatch(html, /logs\/b\./, 'no link to logs that are not there')
  t.notMatch(html, /id="sampled"/, 'small runs are drawn whole')
  // the rows: one per slot, the 2-slot worker's two attempts at once side by side
  const tl = buildTimeline(run)
  t.same(tl.rows.map(r => [r.node, r.slot]), [['lab-pc<script>alert(1)</script>', 1], ['lab-pc<script>alert(1)</script>', 2], ['worker02', 1]])
  t.not(tl.bars.find(b => b.attempt.id === 'a1')?.row, tl.bars.find(b => b.attempt.id === 'b1')?.row)
})

t.test('a bare status (no workers, data, bound, names or result times yet) still renders', async t => {
  const run: RunJson = {
    run: 'live-1', state: 'running', updatedAt: 50_000,
    jobs: { a: { state: 'running', attempts: [{ id: 'a1', worker: '12D3KooWxyzworker99', status: 'running', assignedAt: 20_000 }] }, b: { state: 'pending' } }
  }
  const html = renderReportHtml(run)
  t.same(attemptIdsIn(html), ['a1'])
  t.match(html, /data-attempt="a1" style="left:0\.000%;width:100\.000%"/, 'a running attempt reaches to the last update')
  t.match(html, /class="b st-running u"/)
  t.match(html, /<tr id="job-b" class="pending"><td>b<\/td><td>pending<\/td><td class="n">0<\/td><td>-<\/td>/)
  const row = renderTrace(run).trimEnd().split('\n')[1].split('\t')
  t.same([row[2], row[4], row[5], row[7], row[8], row[14]], ['a1', 'RUNNING', '-', '-', '-', 'worker99'])
})

t.test('a 100,000-job run renders: sampled timeline, truncated table with every failed job, said on the page', async t => {
  const run = simulateRun(bagOfTasks(100_000), { workers: 50, slots: 4, failEvery: 1000 })
  const failedJobs = ['t17', 't4242', 't99999']
  for (const id of failedJobs) { run.jobs[id].state = 'failed'; run.jobs[id].reason = 'exit code 1' }
  const html = renderReportHtml(run)
  t.match(html, /id="sampled">Sampled timeline: \d+ of 100100 attempts drawn/)
  const ids = attemptIdsIn(html)
  t.ok(ids.length <= SAMPLE_LIMIT && ids.length > SAMPLE_LIMIT / 2, `${ids.length} bars drawn`)
  const failedAttempts = Object.values(run.jobs).flatMap(j => j.attempts ?? []).filter(a => a.status === 'failed').map(a => a.id)
  t.equal(failedAttempts.length, 100)
  t.ok(failedAttempts.every(id => ids.includes(id)), 'every failed attempt drawn')
  t.match(html, /id="truncated">Table truncated/)
  for (const id of failedJobs) t.match(html, new RegExp(`<tr id="job-${id}"`), `failed job ${id} listed`)
  t.equal(renderTrace(run).trimEnd().split('\n').length, 100_101, 'the trace has every attempt')
})

t.test('writeRunReport and reportCommand (from status.json) write both files whole', async t => {
  const out = path.join(tmp, 'out-small')
  const report = await writeRunReport(out, smallRun())
  t.equal(report, path.join(out, 'report.html'))
  t.same(readdirSync(out).sort(), ['report.html', 'trace.tsv'], 'no temporary file left')
  // a finished run as `bgrid report` finds it: its status.json in the data dir
  const dataDir = path.join(tmp, 'home')
  const runDir = path.join(dataDir, 'coordinator', 'runs', 'small-1')
  mkdirSync(runDir, { recursive: true })
  const out2 = path.join(tmp, 'out-cmd')
  writeFileSync(path.join(runDir, 'status.json'), JSON.stringify({ ...smallRun(), outDir: out2 }))
  const printed = await captureStdout(async () => await reportCommand('small-1', { dataDir }))
  t.equal(printed.code, 0)
  t.equal(printed.text, path.join(out2, 'report.html') + '\n', 'prints where the page is')
  t.equal(attemptIdsIn(readFileSync(path.join(out2, 'report.html'), 'utf8')).length, 5)
  t.equal(readFileSync(path.join(out2, 'trace.tsv'), 'utf8').trimEnd().split('\n').length, 6)
  await t.rejects(reportCommand('no-such-run', { dataDir }), { code: 'NOT_FOUND' })
})

async function captureStdout (fn: () => Promise<number>): Promise<{ code: number, text: string }> {
  const write = process.stdout.write
  let text = ''
  process.stdout.write = ((chunk: string | Uint8Array): boolean => { text += String(chunk); return true }) as typeof process.stdout.write
  try { return { code: await fn(), text } } finally { process.stdout.write = write }
}

const chromium = findChromium()
t.test('a real run\'s report in headless Chromium: one bar per attempt; readable while the run goes', { skip: chromium === undefined ? 'chromium not found (Debian: apt-get install chromium)' : false }, async t => {
  if (chromium === undefined) return
  const cluster = clusterOrSkip(t)
  if (cluster === undefined) return
  await cluster.startDaemons(3)
  const user = cluster.lab.addHost()
  const dir = path.join(cluster.tmp, 'dag')
  mkdirSync(dir, { recursive: true })
  writeFileSync(path.join(dir, 'dag.json'), JSON.stringify({
    name: 'report',
    workers: { min: 3, max: 3 },
    defaults: { retries: 1 },
    jobs: [
      { id: 'seed', cmd: 'echo seed > s.txt', outputs: ['s.txt'] },
      ...Array.from({ length: 6 }, (_, i) => ({ id: `p${i}`, cmd: `sleep 0.${i + 2}; cat s.txt > p.txt`, inputs: ['job:seed/s.txt'], outputs: ['p.txt'] })),
      { id: 'flaky', cmd: 'if [ "$BGRID_RETRY" -ge 1 ]; then echo ok; else echo first try fails >&2; exit 3; fi' },
      { id: 'broken', cmd: 'echo boom >&2; exit 7' },
      { id: 'slow', cmd: 'sleep 4; echo done > slow.txt', outputs: ['slow.txt'] },
      { id: 'sum', cmd: 'cat p*.txt > all.txt', inputs: Array.from({ length: 6 }, (_, i) => ({ src: `job:p${i}/p.txt`, as: `p${i}.txt` })), outputs: ['all.txt'] }
    ]
  }))
  const home = path.join(cluster.tmp, 'home')
  const out = path.join(cluster.tmp, 'out')
  const p = cluster.cli(user, ['submit', path.join(dir, 'dag.json'), '--data-dir', home, '--out', out, '--json', '--wait', '20', '--run-id', 'report-test-1'])

  // while it runs: `bgrid report` asks the coordinator over its control socket
  await p.until(() => stdoutJson(p).find(e => e.event === 'job' && e.job === 'slow' && e.to === 'running'), 60_000, 'the slow job to start')
  const liveOut = path.join(cluster.tmp, 'live')
  t.equal(await captureStdout(async () => await reportCommand('report-test-1', { dataDir: home, out: liveOut })).then(r => r.code), 0)
  const live = readFileSync(path.join(liveOut, 'report.html'), 'utf8')
  t.match(live, /<span class="state running">running<\/span>/, 'the live report says the run is going')
  t.ok(attemptIdsIn(live).length >= 1, 'and draws the attempts so far')

  const { code } = await p.done(120_000)
  t.equal(code, 1, 'one job failed for good: exit 1')
  const run = JSON.parse(readFileSync(path.join(out, 'run.json'), 'utf8')) as RunJson
  const attempts = countAttempts(run)
  t.ok(attempts >= 13, `${attempts} attempts: 11 jobs, a retry of flaky and one of broken`)
  t.equal(await captureStdout(async () => await reportCommand('report-test-1', { dataDir: home })).then(r => r.code), 0, 'after the run: from its status.json into its --out')
  const reportFile = path.join(out, 'report.html')

  const dom = await runChromium(chromium, reportFile, { dumpDom: true }, 60_000)
  const drawn = attemptIdsIn(dom.stdout)
  const expected = Object.values(run.jobs).flatMap(j => (j.attempts ?? []).map(a => a.id))
  t.equal(drawn.length, expected.length, 'exactly one bar per attempt in the rendered DOM')
  t.same([...drawn].sort(), [...expected].sort(), 'every attempt of run.json, each once')
  t.match(dom.stdout, /<tr id="job-broken" class="failed">/, 'the failed job in the table')
  t.match(dom.stdout, /href="logs\/broken\.stderr"/, 'with a link to its stderr')
  t.ok(readdirSync(path.join(out, 'logs')).includes('broken.stderr'), 'which is there')
  const shot = path.join(cluster.tmp, 'report.png')
  await runChromium(chromium, reportFile, { screenshot: shot, width: 1400, height: 900 }, 60_000)
  const size = statSync(shot).size
  t.ok(size > 20_000, `screenshot ${size} bytes`)
  if (process.env.BGRID_KEEP_REPORT !== undefined) for (const f of [reportFile, shot, path.join(out, 'trace.tsv'), path.join(out, 'run.json')]) copyFileSync(f, path.join(process.env.BGRID_KEEP_REPORT, path.basename(f)))
})
