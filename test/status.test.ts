// `bgrid status` and `bgrid cancel` over the runs a data dir holds, whatever state their
// coordinators left them in: finished, killed while running, dead before any status,
// dead before any journal. Ids by unique prefix; --watch until the run is over.
import t from 'tap'
import { mkdtempSync, rmSync, mkdirSync, writeFileSync, utimesSync } from 'node:fs'
import { spawnSync, spawn } from 'node:child_process'
import os from 'node:os'
import path from 'node:path'
import { Level } from 'level'
import { BGRID } from '../testbed/cluster.ts'
import { localTime } from '../bin/commands/status.ts'

const data = mkdtempSync(path.join(os.tmpdir(), 'bgrid-status-'))
t.teardown(() => { rmSync(data, { recursive: true, force: true }) })
const runs = path.join(data, 'coordinator', 'runs')
const bgrid = (args: string[]) => spawnSync(process.execPath, [BGRID, ...args, '--data-dir', data], { encoding: 'utf8', timeout: 60_000 })

// a pid nobody has any more
const deadPid = spawnSync('true').pid as number
const T0 = Date.parse('2025-01-01T09:00:00Z')
const DAY = 86_400_000
const counts = (o: Record<string, number>) => ({ pending: 0, ready: 0, running: 0, done: 0, failed: 0, skipped: 0, cancelled: 0, ...o })
const status = (id: string, state: string, startedAt: number, pid: number, c: Record<string, number>, jobs: string[]) => ({
  run: id, dag: 'diamond', state, pid, outDir: `/out/${id}`, startedAt, updatedAt: startedAt, counts: counts(c), workers: [], waiting: [],
  jobs: Object.fromEntries(jobs.map(j => [j, { state: 'done' }]))
})
const writeStatus = (id: string, s: unknown): void => {
  mkdirSync(path.join(runs, id), { recursive: true })
  writeFileSync(path.join(runs, id, 'status.json'), JSON.stringify(s))
}

const FINISHED = 'diamond-20250101090000-aaaa'
const KILLED = 'diamond-20250102090000-bbbb'
const NO_STATUS = 'big-20250103090000-cccc'
const NO_JOURNAL = 'early-20250104090000-dddd'
const LIVE = 'live-20250105090000-eeee'
writeStatus(FINISHED, status(FINISHED, 'succeeded', T0, deadPid, { done: 4 }, ['a', 'b', 'c', 'd']))
writeStatus(KILLED, status(KILLED, 'running', T0 + DAY, deadPid, { done: 1, running: 2, pending: 1 }, ['a', 'b', 'c', 'd']))
// killed before its first status: only the journal tells
const journal = new Level<string, any>(path.join(runs, NO_STATUS, 'journal'), { valueEncoding: 'json' })
await journal.open()
await journal.put('meta', { runId: NO_STATUS, dagFile: '/x/dag.json', dag: { jobs: [{ id: 'a' }, { id: 'b' }, { id: 'c' }] }, outDir: '/out/big', createdAt: T0 + 2 * DAY, options: {}, state: 'running', pid: deadPid })
await journal.put('job:a', { state: 'done', failures: 0, lost: 0, collected: true, outputs: [], attempts: [] })
await journal.close()
// died before its journal
mkdirSync(path.join(runs, NO_JOURNAL), { recursive: true })
writeFileSync(path.join(runs, NO_JOURNAL, 'identity.key'), '')
utimesSync(path.join(runs, NO_JOURNAL), new Date(T0 + 3 * DAY), new Date(T0 + 3 * DAY))
// running (its coordinator is this test: alive, but not answering on a socket)
const liveStart = Date.now() - 60_000
writeStatus(LIVE, status(LIVE, 'running', liveStart, process.pid, { done: 1, running: 1, pending: 2 }, ['a', 'b', 'c', 'd']))

t.test('without a run: the daemon line, then the runs newest first, condor_q-style', async t => {
  const r = bgrid(['status'])
  t.equal(r.status, 0, r.stderr)
  const lines = r.stdout.split('\n')
  t.equal(lines[0], `no daemon running with data dir ${data}`)
  t.match(lines[2], /^RUN ID +STARTED +STATE +DONE\/TOTAL +RUNNING +FAILED$/)
  const rows = lines.slice(3, 8).map(l => l.split(/ {2,}/))
  t.same(rows.map(r => r[0]), [LIVE, NO_JOURNAL, NO_STATUS, KILLED, FINISHED], 'newest first')
  t.same(rows.map(r => r[1]), [liveStart, T0 + 3 * DAY, T0 + 2 * DAY, T0 + DAY, T0].map(localTime), 'started, local time')
  t.same(rows.map(r => r[2]), ['running', 'unknown', 'interrupted', 'interrupted', 'succeeded'], 'a run whose coordinator died is not "running"')
  t.same(rows.map(r => r.slice(3).join(' ')), ['1/4 1 0', '- - -', '1/3 0 0', '1/4 2 0', '4/4 0 0'], 'DONE/TOTAL RUNNING FAILED')
  t.match(r.stdout, /^5 run\(s\): 1 running, 1 unknown, 2 interrupted, 1 succeeded$/m)
})

t.test('--json: objects, not bare ids', async t => {
  const j = JSON.parse(bgrid(['status', '--json']).stdout)
  t.equal(j.daemon, null)
  t.same(j.runs.map((r: any) => r.id), [LIVE, NO_JOURNAL, NO_STATUS, KILLED, FINISHED])
  t.match(j.runs[4], { id: FINISHED, state: 'succeeded', startedAt: new Date(T0).toISOString(), counts: { done: 4 }, total: 4, outDir: `/out/${FINISHED}` })
  t.match(j.runs[2], { id: NO_STATUS, state: 'interrupted', counts: { done: 1, pending: 2 }, total: 3, pid: deadPid })
})

t.test('a run given by a unique prefix; every state said plainly', async t => {
  const killed = bgrid(['status', 'diamond-20250102'])
  t.equal(killed.status, 0, killed.stderr)
  t.match(killed.stdout, new RegExp(`^run ${KILLED} \\(diamond\\): interrupted, started `))
  t.match(killed.stdout, new RegExp(`coordinator pid ${deadPid} is gone: resume it with bgrid submit --resume ${KILLED}`))
  const noStatus = bgrid(['status', 'big'])
  t.equal(noStatus.status, 0, noStatus.stderr)
  t.match(noStatus.stdout, new RegExp(`^run ${NO_STATUS}: no status yet \\(coordinator pid ${deadPid} not running\\); resume it with bgrid submit --resume ${NO_STATUS}`))
  t.match(noStatus.stdout, /jobs \(from its journal\): 1\/3 done/)
  t.match(noStatus.stdout, /outputs: \/out\/big/)
  const early = bgrid(['status', 'early'])
  t.equal(early.status, 0, early.stderr)
  t.match(early.stdout, new RegExp(`^run ${NO_JOURNAL}: no status yet: its coordinator stopped before writing its journal \\(.*${NO_JOURNAL} holds identity.key\\)`))
  t.match(JSON.parse(bgrid(['status', 'early', '--json']).stdout), { id: NO_JOURNAL, state: 'unknown' })
  const finished = JSON.parse(bgrid(['status', FINISHED, '--json']).stdout)
  t.match(finished, { run: FINISHED, state: 'succeeded', jobs: { a: { state: 'done' } } }, 'a status report as before')
})

t.test('ambiguous and unknown ids', async t => {
  const amb = bgrid(['status', 'diamond'])
  t.equal(amb.status, 2)
  t.match(amb.stderr, `diamond is ambiguous: matches ${FINISHED}, ${KILLED}`)
  const none = bgrid(['status', 'nope'])
  t.equal(none.status, 1)
  t.match(none.stderr, `NOT_FOUND: no run nope in ${runs}`)
  const cancel = bgrid(['cancel', 'big'])
  t.equal(cancel.status, 1)
  t.match(cancel.stderr, `run ${NO_STATUS} is not running here: interrupted`)
  t.equal(bgrid(['cancel', 'diamond']).status, 2, 'cancel takes prefixes too')
})

t.test('--watch redraws until the run is over', async t => {
  const once = spawnSync(process.execPath, [BGRID, 'status', FINISHED, '--watch', '0.1', '--json', '--data-dir', data], { encoding: 'utf8', timeout: 30_000 })
  t.equal(once.status, 0, 'a finished run: one snapshot')
  t.equal(once.stdout.trim().split('\n').length, 1, 'one JSON line')
  const misplaced = bgrid(['status', '--watch', LIVE])
  t.equal(misplaced.status, 2)
  t.match(misplaced.stderr, /give the run id before --watch/)

  const w = spawn(process.execPath, [BGRID, 'status', 'live', '--watch', '0.2', '--data-dir', data], { stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''
  w.stdout.setEncoding('utf8').on('data', (c: string) => { out += c })
  const exited = new Promise<number | null>(resolve => { w.on('close', resolve) })
  const timer = setTimeout(() => { w.kill('SIGKILL') }, 30_000)
  try {
    for (let i = 0; i < 200 && (out.match(/^every 0\.2s/gm) ?? []).length < 2; i++) await new Promise(resolve => setTimeout(resolve, 50))
    t.ok((out.match(/^every 0\.2s: bgrid status live-20250105090000-eeee/gm) ?? []).length >= 2, 'successive snapshots on a pipe')
    t.match(out, /running, started .*, 1m\d\ds ago/)
    writeStatus(LIVE, status(LIVE, 'succeeded', liveStart, process.pid, { done: 4 }, ['a', 'b', 'c', 'd']))
    t.equal(await exited, 0, 'it stops once the run is over')
  } finally { clearTimeout(timer) }
  t.match(out.trim().split('\n\n').at(-1) ?? '', /^every 0\.2s: bgrid status live-\S+ +\S+ \S+\nrun live-\S+ \(diamond\): succeeded/)
})
