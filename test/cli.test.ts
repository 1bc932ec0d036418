// The CLI as users meet it (the built dist/bin/bgrid.js, as child processes): the
// Node version check, a closed pipe, --json errors, the cache subcommands' options.
import t from 'tap'
import { mkdtempSync, mkdirSync, rmSync, writeFileSync, existsSync, readFileSync } from 'node:fs'
import { spawnSync, spawn, execFileSync, type SpawnSyncReturns } from 'node:child_process'
import os from 'node:os'
import path from 'node:path'
import { BGRID, ROOT } from '../testbed/cluster.ts'
import { openDb } from '../protocol/db.ts'
import { BlobStore } from '../cache/store.ts'

const dir = mkdtempSync(path.join(os.tmpdir(), 'bgrid-cli-'))
t.teardown(() => { rmSync(dir, { recursive: true, force: true }) })
const home = path.join(dir, 'home')
const bgrid = (args: string[], opts: { node?: string, nodeArgs?: string[] } = {}) =>
  spawnSync(opts.node ?? process.execPath, [...(opts.nodeArgs ?? []), BGRID, ...args], { encoding: 'utf8', timeout: 60_000, env: { ...process.env, BGRID_HOME: home } })

const required = String(JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')).engines.node).replace(/^>=\s*/, '')
const older = (v: string): boolean => {
  const [a, b] = v.replace(/^v/, '').split('.').map(Number)
  const [x, y] = required.split('.').map(Number)
  return a < x || (a === x && b < y)
}

/** A Node older than required on this machine (Debian 12's is 20): what `#!/usr/bin/env node` finds outside npm scripts. */
function oldNode (): string | undefined {
  const bins = (process.env.PATH ?? '').split(':').filter(d => d !== '' && !d.startsWith(path.join(ROOT, 'node_modules')))
  for (const file of [...bins.map(d => path.join(d, 'node')), '/usr/bin/node', '/usr/local/bin/node']) {
    if (!existsSync(file)) continue
    const v = spawnSync(file, ['--version'], { encoding: 'utf8', timeout: 10_000 }).stdout?.trim() ?? ''
    if (/^v\d+\.\d+/.test(v) && older(v)) return file
  }
  return undefined
}

const NEEDS = new RegExp(`^bgrid needs Node\\.js >= ${required.replace('.', '\\.')} \\(this is [0-9.]+ at [^)]+\\): .*https://nodejs\\.org.*npx bgrid.*\\n$`)

const node20 = oldNode()
t.test('under an older Node, one line says which Node is needed and how to get it', { skip: node20 === undefined ? `no Node older than ${required} on this machine` : false }, async t => {
  const r = bgrid(['--version'], { node: node20 })
  t.equal(r.status, 1, 'exit 1')
  t.equal(r.stdout, '', 'nothing on stdout')
  t.match(r.stderr, NEEDS)
  t.equal(r.stderr.split('\n').length, 2, `one line:\n${r.stderr}`)
  t.match(r.stderr, /this is 20\.|this is 1\d\./, 'names the Node it runs on')
})

t.test('the check itself, on any machine: versions below and at the one required', async t => {
  const as = (v: string) => ['--import', `data:text/javascript,Object.defineProperty(process, "versions", { value: { ...process.versions, node: "${v}" } })`]
  const [x, y] = required.split('.').map(Number)
  const below = bgrid(['--version'], { nodeArgs: as(`${x}.${y - 1}.9`) })
  t.equal(below.status, 1)
  t.match(below.stderr, NEEDS)
  const at = bgrid(['--version'], { nodeArgs: as(`${x}.${y}.0`) })
  t.equal(at.status, 0, at.stderr)
  t.equal(at.stdout.trim(), '0.1.0')
})

t.test('a closed stdout (`bgrid status | head -1`): a quiet exit, no EPIPE', async t => {
  // the reader is gone before bgrid writes anything
  const child = spawn(process.execPath, [BGRID, 'status', '--data-dir', path.join(dir, 'pipe')], { stdio: ['ignore', 'pipe', 'pipe'] })
  child.stdout.destroy()
  let stderr = ''
  child.stderr.setEncoding('utf8').on('data', (c: string) => { stderr += c })
  const timer = setTimeout(() => { child.kill('SIGKILL') }, 30_000)
  const code = await new Promise<number | null>(resolve => { child.on('close', resolve) })
  clearTimeout(timer)
  t.equal(code, 0, stderr)
  t.notMatch(stderr, /EPIPE|Error/, 'no stack trace')
  // and through a real pipe: --watch writes again after head has gone
  const r = spawnSync('bash', ['-c', `set -o pipefail; "${process.execPath}" "${BGRID}" status --data-dir "${path.join(dir, 'pipe')}" --watch 0.1 | head -1`], { encoding: 'utf8', timeout: 30_000 })
  t.equal(r.status, 0, r.stderr)
  t.match(r.stdout, /^every 0\.1s: bgrid status/)
  t.equal(r.stderr, '')
})

t.test('submit --json: an invalid DAG ends stdout with an error event', async t => {
  const dag = path.join(dir, 'bad.json')
  writeFileSync(dag, JSON.stringify({ jobs: [{ id: 'a', cmd: 'true', cpu: 2 }] }))
  const r = bgrid(['submit', '--json', dag, '--data-dir', home])
  t.equal(r.status, 2)
  t.match(r.stderr, /unknown field "cpu"/, 'the line for people stays on stderr')
  const last = JSON.parse(r.stdout.trim().split('\n').at(-1) ?? '')
  t.match(last, { event: 'error', code: 'INVALID_DAG', exitCode: 2 })
  t.match(last.message, /job "a" \(jobs\[0\]\): unknown field "cpu": bgrid calls it "cores"/, 'naming the field')
  t.type(last.time, 'number')
  // without --json, stdout stays empty
  t.equal(bgrid(['submit', dag, '--data-dir', home]).stdout, '')
})

/** `bgrid submit FILE` of a DAGMan file, run in its directory (as condor_submit_dag is) */
function dagmanRun (d: string, file: string, args: string[] = [], o: { timeoutMs?: number, env?: NodeJS.ProcessEnv } = {}): SpawnSyncReturns<string> {
  return spawnSync(process.execPath, [BGRID, 'submit', file, '--data-dir', home, '--quiet', ...args], { cwd: d, encoding: 'utf8', timeout: o.timeoutMs ?? 60_000, ...(o.env !== undefined ? { env: o.env } : {}) })
}

t.test('submit of a DAGMan file: a bad line names file:line (on the terminal and in dagman.out, exit 1 as condor_dagman); REJECT; an unknown condor_submit_dag option is refused; nothing is run', async t => {
  const d = path.join(dir, 'dagman-bad')
  mkdirSync(d, { recursive: true })
  writeFileSync(path.join(d, 'pipeline.dag'), 'JOB A a.sub\nPARENT A CHILD\n')
  const r = bgrid(['submit', path.join(d, 'pipeline.dag'), '--data-dir', home])
  t.equal(r.status, 1, r.stderr)
  t.match(r.stderr, /pipeline\.dag:2/)
  t.notMatch(r.stderr, /not valid JSON/)
  const out = readFileSync(path.join(d, 'pipeline.dag.dagman.out'), 'utf8')
  t.match(out, /ERROR: .*pipeline\.dag:2/)
  t.match(out, /EXITING WITH STATUS 1\n$/)
  writeFileSync(path.join(d, 'rejected.dag'), 'JOB A a.sub\nREJECT\n')
  const rj = bgrid(['submit', path.join(d, 'rejected.dag'), '--data-dir', home])
  t.equal(rj.status, 1)
  t.match(readFileSync(path.join(d, 'rejected.dag.dagman.out'), 'utf8'), /rejected\.dag:2: Exiting because of REJECT specification/)
  writeFileSync(path.join(d, 'ok.dag'), 'JOB A a.sub\n')
  writeFileSync(path.join(d, 'a.sub'), 'executable = /bin/true\nuniverse = scheduler\nqueue\n')
  const u = bgrid(['submit', path.join(d, 'ok.dag'), '-frobnicate', '--data-dir', home])
  t.equal(u.status, 2)
  t.match(u.stderr, /-frobnicate: not a condor_submit_dag option/)
  t.notOk(existsSync(path.join(d, 'ok.dag.dagman.out')), 'nothing ran')
})

t.test('submit of a DAGMan file (scheduler universe): a failed node leaves a rescue DAG, the next submit runs only what is left, --no-rescue starts over', async t => {
  const d = path.join(dir, 'dagman-rescue')
  mkdirSync(d, { recursive: true })
  // B fails until the file "fixed" exists; A counts its runs
  writeFileSync(path.join(d, 'a.sh'), '#!/bin/sh\necho run >> a.count\necho A done\n', { mode: 0o755 })
  writeFileSync(path.join(d, 'b.sh'), '#!/bin/sh\n[ -e fixed ] && echo B done && exit 0\necho B broken; exit 4\n', { mode: 0o755 })
  writeFileSync(path.join(d, 'a.sub'), 'executable = a.sh\nuniverse = scheduler\noutput = a.out\nqueue\n')
  writeFileSync(path.join(d, 'b.sub'), 'executable = b.sh\nuniverse = local\noutput = b.out\nerror = b.err\nqueue\n')
  writeFileSync(path.join(d, 'p.dag'), 'JOB A a.sub\nJOB B b.sub\nPARENT A CHILD B\nNODE_STATUS_FILE p.status\nJOBSTATE_LOG p.jobstate.log\n')
  const first = dagmanRun(d, 'p.dag')
  t.equal(first.status, 1, 'the DAG failed: exit 1, as condor_dagman')
  t.equal(readFileSync(path.join(d, 'b.out'), 'utf8'), 'B broken\n', 'the node\'s output is where its submit file says')
  const rescue = readFileSync(path.join(d, 'p.dag.rescue001'), 'utf8')
  t.match(rescue, /^DONE A$/m)
  t.notMatch(rescue, /^DONE B$/m)
  t.match(rescue, /# Nodes that failed: 1\n#   B,<ENDLIST>/)
  t.match(readFileSync(path.join(d, 'p.status'), 'utf8'), /DagStatus = 6; \/\* "STATUS_ERROR \(failed\)" \*\/[\s\S]*Node = "B";\n  NodeStatus = 6;/)
  t.match(readFileSync(path.join(d, 'p.jobstate.log'), 'utf8'), /^\d+ B JOB_FAILURE 4 - - \d+$/m)
  t.match(readFileSync(path.join(d, 'p.dag.dagman.out'), 'utf8'), /EXITING WITH STATUS 1\n$/)
  writeFileSync(path.join(d, 'fixed'), '')
  const second = dagmanRun(d, 'p.dag')
  t.equal(second.status, 0, second.stderr)
  t.equal(readFileSync(path.join(d, 'a.count'), 'utf8'), 'run\n', 'A, done in the rescue DAG, did not run again')
  t.equal(readFileSync(path.join(d, 'b.out'), 'utf8'), 'B done\n')
  t.equal(JSON.parse(readFileSync(path.join(d, 'p.dag.metrics'), 'utf8')).rescue_dag_number, 1)
  const third = dagmanRun(d, 'p.dag', ['--no-rescue'])
  t.equal(third.status, 0, third.stderr)
  t.equal(readFileSync(path.join(d, 'a.count'), 'utf8'), 'run\nrun\n', '--no-rescue: every node again')
})

t.test('cache subcommands have their own options; gc needs --target and says what it evicted', async t => {
  const ls = bgrid(['cache', 'ls', '--help'])
  t.equal(ls.status, 0)
  t.notMatch(ls.stdout, /--target/, 'no gc option in `cache ls --help`')
  t.notMatch(bgrid(['cache', 'du', '--help']).stdout, /--target/)
  t.match(bgrid(['cache', 'gc', '--help']).stdout, /--target <MiB>/)

  const data = path.join(dir, 'store')
  const db = await openDb(data)
  const store = new BlobStore(data, db)
  await store.load()
  const a = await store.putBuffer(Buffer.alloc(1048576, 1))
  await store.putBuffer(Buffer.alloc(2 * 1048576, 2))
  const pinned = await store.putBuffer(Buffer.alloc(1048576, 3))
  await store.pin(pinned.hash)
  await db.close()

  const bare = bgrid(['cache', 'gc', '--data-dir', data])
  t.equal(bare.status, 2, 'a bare gc is refused')
  t.match(bare.stderr, /--target/)
  t.equal(JSON.parse(bgrid(['cache', 'du', '--json', '--data-dir', data]).stdout).blobs, 3, 'nothing evicted')

  const keep = bgrid(['cache', 'gc', '--target', '3', '--data-dir', data])
  t.equal(keep.status, 0, keep.stderr)
  t.equal(keep.stdout, 'evicted 1 blob(s), 1.0 MiB; kept 2 blob(s), 3.0 MiB (1.0 MiB pinned)\n', 'the least recently used one went')
  const nothing = bgrid(['cache', 'gc', '--target', '10', '--data-dir', data])
  t.equal(nothing.stdout, 'evicted 0 blob(s), 0.0 MiB; kept 2 blob(s), 3.0 MiB (1.0 MiB pinned)\n', 'it says so when it did nothing')
  const all = JSON.parse(bgrid(['cache', 'gc', '--target', '0', '--json', '--data-dir', data]).stdout)
  t.equal(all.evicted.length, 1)
  t.equal(all.keptBytes, 1048576, 'the pinned blob stays')
  t.notOk(all.evicted.some((e: any) => e.hash === a.hash || e.hash === pinned.hash), 'names the blobs it evicted')
})

t.test('submit of a DAGMan file: a SUBDAG that runs its own DAG fails its node with why, instead of recursing forever', async t => {
  const d = path.join(dir, 'dagman-selfsub')
  mkdirSync(d, { recursive: true })
  writeFileSync(path.join(d, 'top.dag'), 'SUBDAG EXTERNAL S inner.dag\n')
  writeFileSync(path.join(d, 'inner.dag'), 'SUBDAG EXTERNAL T top.dag\n')
  const r = dagmanRun(d, 'top.dag')
  t.equal(r.status, 1, r.stderr)
  t.match(readFileSync(path.join(d, 'inner.dag.dagman.out'), 'utf8'), /top\.dag is already running above it \(top\.dag -> inner\.dag\)/)
})

t.test('submit of a DAGMan file: Ctrl-C removes the DAG as condor_rm does: no retry, no POST, what runs is killed, FINAL runs, a rescue DAG; exit 2', async t => {
  const d = path.join(dir, 'dagman-interrupt')
  mkdirSync(d, { recursive: true })
  writeFileSync(path.join(d, 'long.sh'), '#!/bin/sh\ntouch long.started\nsleep 307\n', { mode: 0o755 })
  writeFileSync(path.join(d, 'post.sh'), '#!/bin/sh\necho post ran >> post.log\n', { mode: 0o755 })
  writeFileSync(path.join(d, 'fin.sh'), '#!/bin/sh\necho "final ran" > final.log\n', { mode: 0o755 })
  writeFileSync(path.join(d, 'long.sub'), 'executable = long.sh\nuniverse = local\nqueue\n')
  writeFileSync(path.join(d, 'fin.sub'), 'executable = fin.sh\nuniverse = local\nqueue\n')
  writeFileSync(path.join(d, 'i.dag'), 'JOB L long.sub\nRETRY L 3\nSCRIPT POST L post.sh\nJOB K long.sub\nPARENT L CHILD K\nFINAL F fin.sub\nNODE_STATUS_FILE i.status\n')
  const p = spawn(process.execPath, [BGRID, 'submit', 'i.dag', '--data-dir', home, '--quiet'], { cwd: d, stdio: ['ignore', 'pipe', 'pipe'] })
  let stderr = ''
  p.stderr.on('data', (c) => { stderr += String(c) })
  const exited = new Promise<number | null>(resolve => p.once('exit', (code) => { resolve(code) }))
  for (let i = 0; i < 200 && !existsSync(path.join(d, 'long.started')); i++) await new Promise(resolve => setTimeout(resolve, 50))
  t.ok(existsSync(path.join(d, 'long.started')), 'the long job started')
  p.kill('SIGINT')
  const code = await exited
  t.equal(code, 2, `removed: exit 2 ${stderr}`)
  t.notOk(existsSync(path.join(d, 'post.log')), 'no POST script for a removed job')
  t.equal(readFileSync(path.join(d, 'final.log'), 'utf8'), 'final ran\n', 'FINAL ran')
  t.match(readFileSync(path.join(d, 'i.status'), 'utf8'), /Node = "L";\n {2}NodeStatus = 6;[^\n]*\n {2}StatusDetails = "removed: interrupted";\n {2}RetryCount = 0;/)
  t.ok(existsSync(path.join(d, 'i.dag.rescue001')), 'a rescue DAG')
  let left = ''
  try { left = execFileSync('pgrep', ['-af', 'sleep 307'], { encoding: 'utf8' }) } catch {}
  t.equal(left.trim(), '', 'no process of the removed job is left')
})

t.test('submit of a DAGMan file: the grid run failing before it starts fails the vanilla nodes with why, at once', async t => {
  const d = path.join(dir, 'dagman-nogrid')
  mkdirSync(d, { recursive: true })
  writeFileSync(path.join(d, 'v.sub'), 'executable = /bin/true\nqueue\n')
  writeFileSync(path.join(d, 'v.dag'), 'JOB A v.sub\nJOB B v.sub\n')
  const r = dagmanRun(d, 'v.dag', ['--grid-key', path.join(d, 'no-such.key')])
  t.equal(r.status, 1, `the DAG failed (it did not hang, nor exit 0) ${r.stderr}`)
  t.match(readFileSync(path.join(d, 'v.dag.dagman.out'), 'utf8'), /no-such\.key/)
})

t.test('submit of a DAGMan file: a FINAL node that succeeds after a failure still leaves the rescue DAG (written before FINAL, as DAGMan does)', async t => {
  const d = path.join(dir, 'dagman-final-rescue')
  mkdirSync(d, { recursive: true })
  writeFileSync(path.join(d, 'bad.sub'), 'executable = /bin/false\nuniverse = local\nqueue\n')
  writeFileSync(path.join(d, 'ok.sub'), 'executable = /bin/true\nuniverse = local\nqueue\n')
  writeFileSync(path.join(d, 'f.dag'), 'JOB A ok.sub\nJOB B bad.sub\nFINAL F ok.sub\n')
  const r = dagmanRun(d, 'f.dag')
  t.equal(r.status, 0, 'FINAL succeeded: the DAG succeeds')
  const rescue = readFileSync(path.join(d, 'f.dag.rescue001'), 'utf8')
  t.match(rescue, /^DONE A$/m)
  t.notMatch(rescue, /^DONE F$/m, 'a FINAL node is never marked DONE')
})

t.test('submit of a DAGMan file: condor_submit_dag options -no_submit, -force, an unknown one with a value; --detach and --resume are refused with why', async t => {
  const d = path.join(dir, 'dagman-options')
  mkdirSync(d, { recursive: true })
  writeFileSync(path.join(d, 'ok.sub'), 'executable = /bin/true\nuniverse = local\nqueue\n')
  writeFileSync(path.join(d, 'o.dag'), 'JOB A ok.sub\n')
  const run = (...args: string[]): SpawnSyncReturns<string> => dagmanRun(d, 'o.dag', args)
  const dump = run('-dumprescue')
  t.equal(dump.status, 0)
  t.match(readFileSync(path.join(d, 'o.dag.rescue001'), 'utf8'), /Rescue DAG version: 2\.0\.1 \(full\)[\s\S]*^JOB A ok\.sub $/m, '-dumprescue: the DAG as a full rescue DAG')
  t.notOk(existsSync(path.join(d, 'o.dag.dagman.out')) && /Submitting/.test(readFileSync(path.join(d, 'o.dag.dagman.out'), 'utf8')), 'nothing run')
  rmSync(path.join(d, 'o.dag.rescue001'))
  const ns = run('-no_submit')
  t.equal(ns.status, 0)
  t.ok(existsSync(path.join(d, 'o.dag.condor.sub')))
  t.notOk(/Submitting/.test(readFileSync(path.join(d, 'o.dag.dagman.out'), 'utf8')), '-no_submit: not run')
  const foo = run('-foo', '1')
  t.equal(foo.status, 2)
  t.match(String(foo.stderr), /-foo: not a condor_submit_dag option/)
  for (const bad of ['high', '5000']) {
    const prio = run('-priority', bad)
    t.equal(prio.status, 2, `-priority ${bad}: refused`)
    t.match(String(prio.stderr), new RegExp(`-priority needs a whole number from -1000 to 1000 \\(got ${bad}\\)`))
  }
  t.match(String(run('--detach').stderr), /--detach is for dag\.json runs/)
  t.match(String(run('--resume', 'x').stderr), /--resume is for dag\.json runs: .*rescue DAG/)
  t.match(String(run('-outfile_dir', 'nowhere').stderr), /-outfile_dir nowhere: .* is not a directory/)
  writeFileSync(path.join(d, 'o.dag.rescue001'), 'DONE A\n')
  const forced = run('-force')
  t.equal(forced.status, 0)
  t.ok(existsSync(path.join(d, 'o.dag.rescue001.old')), '-force: the old rescue DAG is kept aside')
  t.match(readFileSync(path.join(d, 'o.dag.dagman.out'), 'utf8'), /Node A job proc .* completed successfully/, 'and A ran again')
})

t.test('submit of a DAGMan file: a full rescue DAG of a DAG with splices reads back (splice+node names, their DIR kept)', async t => {
  const d = path.join(dir, 'dagman-full-rescue')
  mkdirSync(path.join(d, 'sub'), { recursive: true })
  writeFileSync(path.join(d, 'sub', 'ok.sub'), 'executable = /bin/true\nuniverse = local\nqueue\n')
  writeFileSync(path.join(d, 'sub', 'gate.sub'), 'executable = gate.sh\nuniverse = local\nqueue\n')
  writeFileSync(path.join(d, 'sub', 'gate.sh'), '#!/bin/sh\n[ -e open ]\n', { mode: 0o755 })
  // the splice's file and nodes are in DIR sub
  writeFileSync(path.join(d, 'sub', 'sp.dag'), 'JOB A ok.sub\nJOB B gate.sub\nPARENT A CHILD B\n')
  writeFileSync(path.join(d, 'top.dag'), 'SPLICE SP sp.dag DIR sub\n')
  const env = { ...process.env, _CONDOR_DAGMAN_WRITE_PARTIAL_RESCUE: 'False' }
  const first = dagmanRun(d, 'top.dag', [], { env })
  t.equal(first.status, 1)
  const rescue = readFileSync(path.join(d, 'top.dag.rescue001'), 'utf8')
  t.match(rescue, /^JOB SP\+A ok\.sub DIR sub $/m)
  t.match(rescue, /^DONE SP\+A$/m)
  writeFileSync(path.join(d, 'sub', 'open'), '')
  const second = dagmanRun(d, 'top.dag', [], { env })
  t.equal(second.status, 0, second.stderr)
  t.match(readFileSync(path.join(d, 'top.dag.dagman.out'), 'utf8'), /Running rescue DAG 1 \(top\.dag\.rescue001\), a full rescue DAG/)
})

t.test('submit of a DAGMan file: with DAGMAN_RESET_RETRIES_UPON_RESCUE = False the partial rescue DAG carries the retries left, and the next run has only those', async t => {
  const d = path.join(dir, 'dagman-retries-left')
  mkdirSync(d, { recursive: true })
  writeFileSync(path.join(d, 'b.sh'), '#!/bin/sh\necho try >> tries\nexit 3\n', { mode: 0o755 })
  writeFileSync(path.join(d, 'b.sub'), 'executable = b.sh\nuniverse = local\nqueue\n')
  writeFileSync(path.join(d, 'r.dag'), 'JOB B b.sub\nRETRY B 2\n')
  const env = { ...process.env, _CONDOR_DAGMAN_RESET_RETRIES_UPON_RESCUE: 'False' }
  const run = (): SpawnSyncReturns<string> => dagmanRun(d, 'r.dag', [], { env })
  t.equal(run().status, 1)
  t.equal(readFileSync(path.join(d, 'tries'), 'utf8'), 'try\ntry\ntry\n', 'three attempts: the first and two retries')
  const rescue = readFileSync(path.join(d, 'r.dag.rescue001'), 'utf8')
  t.match(rescue, /^# 2 of 2 retries already performed; 0 remaining\nRETRY B 0$/m)
  t.equal(run().status, 1)
  t.equal(readFileSync(path.join(d, 'tries'), 'utf8'), 'try\ntry\ntry\ntry\n', 'the rescue run had no retry left')
})

t.test('submit of a DAGMan file: SCRIPT DEFER runs a script again later, DAGMAN_SUBMIT_DEPTH_FIRST orders newly ready nodes first, dagman.out says retries and PRE_SKIP as DAGMan does', async t => {
  const d = path.join(dir, 'dagman-defer')
  mkdirSync(d, { recursive: true })
  writeFileSync(path.join(d, 'pre.sh'), '#!/bin/sh\necho pre >> pre.count\n[ "$(wc -l < pre.count)" -ge 2 ] || exit 7\n', { mode: 0o755 })
  writeFileSync(path.join(d, 'skip.sh'), '#!/bin/sh\nexit 9\n', { mode: 0o755 })
  writeFileSync(path.join(d, 'rec.sh'), '#!/bin/sh\nprintf "%s " "$1" >> order\n', { mode: 0o755 })
  writeFileSync(path.join(d, 'flaky.sh'), '#!/bin/sh\necho x >> flaky.count\n[ "$(wc -l < flaky.count)" -ge 2 ]\n', { mode: 0o755 })
  writeFileSync(path.join(d, 'rec.sub'), 'executable = rec.sh\narguments = $(JOB)\nuniverse = local\nqueue\n')
  writeFileSync(path.join(d, 'flaky.sub'), 'executable = flaky.sh\nuniverse = local\nqueue\n')
  writeFileSync(path.join(d, 'cfg'), 'DAGMAN_SUBMIT_DEPTH_FIRST = True\n')
  writeFileSync(path.join(d, 'x.dag'), [
    'CONFIG cfg',
    'JOB A rec.sub', 'SCRIPT DEFER 7 1 PRE A pre.sh',
    'JOB B1 rec.sub', 'JOB B2 rec.sub', 'JOB C1 rec.sub', 'PARENT A CHILD B1 B2', 'PARENT B1 CHILD C1',
    'JOB S rec.sub', 'SCRIPT PRE S skip.sh', 'PRE_SKIP S 9',
    'JOB F flaky.sub', 'RETRY F 2', ''
  ].join('\n'))
  const r = dagmanRun(d, 'x.dag', ['-maxjobs', '1'])
  t.equal(r.status, 0, r.stderr)
  t.equal(readFileSync(path.join(d, 'pre.count'), 'utf8'), 'pre\npre\n', 'the deferred PRE script ran again')
  const out = readFileSync(path.join(d, 'x.dag.dagman.out'), 'utf8')
  t.match(out, /Deferring PRE script of node A for 1 seconds \(exit status 7\)/)
  t.match(out, /Retrying node F \(retry #1 of 2\)\.\.\./)
  t.match(out, /PRE_SKIP return value 9 indicates we are done with node S/)
  t.notMatch(readFileSync(path.join(d, 'order'), 'utf8'), /(^| )S /, 'S was skipped')
  // depth first: the nodes that became ready last go first
  t.equal(readFileSync(path.join(d, 'order'), 'utf8'), 'A B2 B1 C1 ', 'B2, ready last, first; then B1, then its child C1 (breadth first: A B1 B2 C1)')
})

t.test('submit of a DAGMan file: a node of several jobs (queue 3) fails as soon as one does, and its other jobs are removed', async t => {
  const d = path.join(dir, 'dagman-cluster')
  mkdirSync(d, { recursive: true })
  writeFileSync(path.join(d, 'p.sh'), '#!/bin/sh\n[ "$1" = 0 ] && exit 6\nexec sleep 313\n', { mode: 0o755 })
  writeFileSync(path.join(d, 'p.sub'), 'executable = p.sh\narguments = $(Process)\nuniverse = local\nqueue 3\n')
  writeFileSync(path.join(d, 'c.dag'), 'JOB N p.sub\n')
  const t0 = Date.now()
  const r = dagmanRun(d, 'c.dag', [], { timeoutMs: 120_000 })
  t.equal(r.status, 1, r.stderr)
  t.ok(Date.now() - t0 < 60_000, 'it did not wait for the other jobs\' 313 s')
  t.match(readFileSync(path.join(d, 'c.dag.dagman.out'), 'utf8'), /Node N job proc .* failed with status 6\./)
  let left = ''
  try { left = execFileSync('pgrep', ['-af', 'sleep 313'], { encoding: 'utf8' }) } catch {}
  t.equal(left.trim(), '', 'the node\'s other jobs were removed')
})

t.test('submit of a DAGMan file: a submit file is read when its node is submitted, so a node that rewrites it changes what later nodes run', async t => {
  const d = path.join(dir, 'dagman-rewrite')
  mkdirSync(d, { recursive: true })
  writeFileSync(path.join(d, 's.sub'), 'executable = /bin/echo\narguments = first\nuniverse = local\noutput = $(JOB).out\nqueue\n')
  writeFileSync(path.join(d, 'w.sh'), '#!/bin/sh\nsed -i "s/arguments = first/arguments = the second one/" s.sub\n', { mode: 0o755 })
  writeFileSync(path.join(d, 'w.sub'), 'executable = w.sh\nuniverse = local\nqueue\n')
  writeFileSync(path.join(d, 'r.dag'), 'JOB A s.sub\nJOB W w.sub\nJOB C s.sub\nPARENT A CHILD W\nPARENT W CHILD C\n')
  const r = dagmanRun(d, 'r.dag')
  t.equal(r.status, 0, r.stderr)
  t.equal(readFileSync(path.join(d, 'A.out'), 'utf8'), 'first\n')
  t.equal(readFileSync(path.join(d, 'C.out'), 'utf8'), 'the second one\n', 'C read s.sub as W left it')
})
