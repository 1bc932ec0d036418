// The soak for "a run never hangs" (issue 19), shared by bench/soak.ts (every trace) and
// test/soak-lab.test.ts (the short form). A DAG is run twice in a row on the same daemons
// (the second run finds its blobs already in the workers' stores, which is where a run
// once hung: proving possession of an empty blob waited for bytes that never came),
// optionally with one worker SIGKILLed mid-way and started again on its data dir and port
// while the run goes on. Contract of Soak.run: it returns within the run's deadline plus
// a few seconds, whatever the grid does; a run that outlives its deadline, or whose jobs
// make no move for stallMs, is killed and reported as hung, with what `bgrid status` (or
// the run dir's status.json) said of it; a run is ok only when submit exits 0, run.json
// says succeeded and every output equals the same DAG run locally, byte for byte
// (testbed/local-run.ts).
//
// Traces come from ../shared/workloads (WfCommons JSON), imported by the real CLI
// (`bgrid import wfcommons --size-scale 0.001 --sleep`). The import writes its outputs from
// /dev/urandom, which no two runs (grid or local) agree on, so the job commands are
// rebuilt here with the trace's shape kept (jobs, edges, file names, scaled sizes, sleeps)
// and each output made a function of the job's inputs: a job given a wrong or missing
// input writes a different output, and the comparison with the local run shows it.
import { spawnSync } from 'node:child_process'
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { BGRID, ROOT, type Cluster, type DaemonProc, type Proc } from './cluster.ts'
import { compareWithLocal, type LocalRun } from './local-run.ts'
import type { LabHost } from './netns.ts'

/** the shared traces, beside the repository (never copied into it) */
export const WORKLOADS = path.resolve(ROOT, '..', 'shared', 'workloads')

export interface Trace { name: string, file: string, tasks: number }

/** The traces in dir, fewest tasks first; [] when the folder is absent. */
export function listTraces (dir = WORKLOADS): Trace[] {
  if (!existsSync(dir)) return []
  return readdirSync(dir).filter(f => f.endsWith('.json')).map(f => {
    const file = path.join(dir, f)
    const wf = JSON.parse(readFileSync(file, 'utf8'))?.workflow
    // 1.4 lists tasks under workflow.tasks, 1.5 under workflow.specification.tasks
    const tasks = (wf?.tasks ?? wf?.specification?.tasks ?? []) as unknown[]
    return { name: f.replace(/\.json$/, ''), file, tasks: tasks.length }
  }).sort((a, b) => a.tasks - b.tasks || a.name.localeCompare(b.name))
}

/** A DAG ready to soak: its file, its job count, and how it was made. */
export interface SoakDag {
  name: string
  dagFile: string
  jobs: number
  note: string
  /** seconds of sleep, end to end */
  criticalPath: number
}
export type Prepared = SoakDag | { name: string, skipped: string }

export interface ImportOptions {
  timeScale: number
  sizeScale: number
  /** a longer critical path (in seconds of sleep) is cut to this by a lower time scale */
  maxCriticalPath: number
  /** workers.min of every run: all the daemons, so that a killed one is a worker of the run */
  workers: number
}

const q = (s: string): string => `'${s.replace(/'/g, "'\\''")}'`

interface ImportedJob {
  id: string
  after?: string[]
  inputs?: Array<{ src: string, as: string }>
  outputs?: Array<{ name: string, size: number }>
  runtime?: number
}

/** the longest chain of sleeps, edges from `after` and from job: inputs */
function criticalPath (jobs: ImportedJob[]): number {
  const byId = new Map(jobs.map(j => [j.id, j]))
  const memo = new Map<string, number>()
  const producers = (j: ImportedJob): string[] =>
    (j.inputs ?? []).filter(i => i.src.startsWith('job:')).map(i => i.src.slice(4, i.src.indexOf('/')))
  const depsOf = (j: ImportedJob): string[] => [...new Set([...(j.after ?? []), ...producers(j)])]
  const longest = (id: string): number => {
    const known = memo.get(id)
    if (known !== undefined) return known
    const j = byId.get(id)
    // an imported DAG is acyclic (the import refuses cycles), so this recursion ends
    const v = j === undefined ? 0 : (j.runtime ?? 0) + Math.max(0, ...depsOf(j).map(longest))
    memo.set(id, v)
    return v
  }
  return Math.max(0, ...jobs.map(j => longest(j.id)))
}

/**
 * The job's command rebuilt, deterministic: hash the inputs, sleep the recorded (scaled)
 * time (SOAK_PAUSE overrides it: the local reference does not need to wait), write each
 * output at its scaled size from a line naming the job, the output and the inputs' hash.
 */
export function deterministicCmd (j: ImportedJob): string {
  const inputs = (j.inputs ?? []).map(i => i.as)
  const read = inputs.length > 0 ? `h=$(cat ${inputs.map(q).join(' ')} | sha256sum | cut -c1-16)` : 'h=none'
  const work = (j.runtime ?? 0) > 0 ? [`sleep "\${SOAK_PAUSE:-${String(j.runtime)}}"`] : []
  const write = (j.outputs ?? []).map(o => `yes ${q(`${j.id} ${o.name}`)}" $h" | head -c ${o.size} > ${q(o.name)}`)
  return [read, ...work, ...write].join('; ')
}

function runImport (trace: Trace, out: string, timeScale: number, sizeScale: number): string | undefined {
  const r = spawnSync(process.execPath, [BGRID, 'import', 'wfcommons', trace.file, '-o', out,
    '--time-scale', String(timeScale), '--size-scale', String(sizeScale), '--sleep'],
  { encoding: 'utf8', timeout: 120_000 })
  if (r.status === 0) return undefined
  // the CLI's own one-line reason (`bgrid: INVALID_DAG: ...`), or how it died
  const line = r.stderr.trim().split('\n').at(-1) ?? ''
  return line !== '' ? line.replace(/^bgrid: /, '') : `import exited ${String(r.status ?? r.signal)}`
}

/**
 * Import a trace into dir (dag.json and inputs/ beside it) with the CLI, the time scale
 * lowered if the critical path would be longer than maxCriticalPath, the commands made
 * deterministic. A trace the CLI refuses is skipped, with its reason.
 */
export function importTrace (trace: Trace, dir: string, o: ImportOptions): Prepared {
  mkdirSync(dir, { recursive: true })
  const dagFile = path.join(dir, 'dag.json')
  let timeScale = o.timeScale
  let refused = runImport(trace, dagFile, timeScale, o.sizeScale)
  if (refused !== undefined) return { name: trace.name, skipped: refused }
  let dag = JSON.parse(readFileSync(dagFile, 'utf8'))
  const cp0 = criticalPath(dag.jobs)
  if (cp0 > o.maxCriticalPath) {
    // 3 significant digits: the scale printed is the scale used
    timeScale = Number((timeScale * o.maxCriticalPath / cp0).toPrecision(3))
    refused = runImport(trace, dagFile, timeScale, o.sizeScale)
    if (refused !== undefined) return { name: trace.name, skipped: refused }
    dag = JSON.parse(readFileSync(dagFile, 'utf8'))
  }
  const jobs = dag.jobs as ImportedJob[]
  const outputs = jobs.flatMap(j => j.outputs ?? [])
  const inputsDir = path.join(dir, 'inputs')
  const inputs = existsSync(inputsDir) ? readdirSync(inputsDir) : []
  const emptyInputs = inputs.filter(f => readFileSync(path.join(inputsDir, f)).length === 0).length
  dag.jobs = jobs.map(j => ({ ...j, cmd: deterministicCmd(j) }))
  dag.workers = { ...dag.workers, min: o.workers }
  writeFileSync(dagFile, JSON.stringify(dag, null, 1) + '\n')
  const cp = criticalPath(dag.jobs)
  const note = `${jobs.length} jobs, time scale ${timeScale} (critical path ${cp.toFixed(1)} s), ` +
    `${outputs.filter(f => f.size === 0).length}/${outputs.length} outputs and ` +
    `${emptyInputs}/${inputs.length} inputs empty`
  return { name: trace.name, dagFile, jobs: jobs.length, note, criticalPath: cp }
}

/**
 * The hand-made case of issue 19: producers read an empty input file and pass on an
 * empty output (and a small one) to consumers, so that in the second run every worker
 * holds the empty blob already and has to show it has it.
 */
export function emptyInputDag (dir: string, workers: number): SoakDag {
  mkdirSync(dir, { recursive: true })
  writeFileSync(path.join(dir, 'empty.txt'), '')
  const jobs: unknown[] = []
  // the pause spreads the producers over all the workers (they all fetch the empty input)
  for (let i = 0; i < 8; i++) {
    jobs.push({
      id: `p${i}`,
      cmd: `sleep "\${SOAK_PAUSE:-0.3}"; wc -c < empty.txt > n.txt; echo ${i} >> n.txt; cat empty.txt > e.txt`,
      inputs: [{ src: 'empty.txt', as: 'empty.txt' }],
      outputs: ['n.txt', 'e.txt']
    })
  }
  for (let i = 0; i < 8; i++) {
    jobs.push({
      id: `c${i}`,
      cmd: 'cat n.txt e.txt empty.txt > m.txt; wc -c < e.txt >> m.txt',
      inputs: [`job:p${i}/n.txt`, `job:p${(i + 1) % 8}/e.txt`, { src: 'empty.txt', as: 'empty.txt' }],
      outputs: ['m.txt']
    })
  }
  const dagFile = path.join(dir, 'dag.json')
  writeFileSync(dagFile, JSON.stringify({ name: 'empty-input', workers: { min: workers, max: workers }, jobs }))
  const note = '16 jobs reading an empty input file and empty intermediates'
  return { name: 'empty-input', dagFile, jobs: jobs.length, note, criticalPath: 0.3 }
}

export interface KillReport {
  /** the victim's data dir name */
  victim: string
  /** jobs done when it was killed, of the run's total */
  atDone: number
  of: number
  /** from the kill to the restarted daemon's 'daemon started' */
  downMs: number
  /** the run was still going when the daemon was back */
  backDuringRun: boolean
}

export interface RunResult {
  name: string
  round: number
  seconds: number
  ok: boolean
  hung: boolean
  /** why it is not ok: exit code, run state, failed jobs, differing outputs, the hung run's status */
  why: string[]
  kill?: KillReport
  runId: string
  outDir: string
  /** the submit process: its NDJSON events and stderr, for the evidence of a failure */
  submit: Proc
}

export interface SoakOptions {
  /** a run still going after this (ms), or after perJobMs times its job count if longer, is a hang (submit killed) */
  deadlineMs: number
  perJobMs?: number
  /** a run whose jobs make no move (no job event) for this long is a hang too, whatever its deadline */
  stallMs?: number
  /** the fraction of the jobs done when the worker is killed */
  killAt: number
  /** the coordinator's lease (s): a killed worker is declared lost after it */
  lease: number
}

/**
 * What a submit's NDJSON says so far, read incrementally (a 600-job run prints thousands
 * of events; parsing them all again on every chunk would load the machine it measures).
 */
class RunWatch {
  done = 0
  /** the last job started, and when a job last changed state */
  lastRunning: any
  lastMove = Date.now()
  private scanned = 0
  private readonly p: Proc

  constructor (p: Proc) { this.p = p }

  scan (): this {
    const s = this.p.stdout
    for (let nl = s.indexOf('\n', this.scanned); nl >= 0; nl = s.indexOf('\n', this.scanned)) {
      const line = s.slice(this.scanned, nl)
      this.scanned = nl + 1
      if (!line.startsWith('{') || !line.includes('"event":"job"')) continue
      const e = JSON.parse(line)
      this.lastMove = Date.now()
      if (e.to === 'done') this.done++
      if (e.to === 'running') this.lastRunning = e
    }
    return this
  }
}

/** SIGKILL a process and wait until it is gone (its port and store are free again). */
async function killHard (p: Proc): Promise<void> {
  p.kill('SIGKILL')
  await p.done(15_000)
}

/**
 * Four (or n) daemons on their own hosts, a user host, and one coordinator home: every
 * run of a soak goes to the same daemons, which keep their stores between runs.
 */
export class Soak {
  readonly cluster: Cluster
  readonly daemons: DaemonProc[]
  readonly user: LabHost
  readonly home: string
  readonly daemonArgs: string[]
  readonly o: SoakOptions
  private runs = 0

  private constructor (cluster: Cluster, daemons: DaemonProc[], daemonArgs: string[], o: SoakOptions) {
    this.cluster = cluster
    this.daemons = daemons
    this.daemonArgs = daemonArgs
    this.o = o
    this.user = cluster.lab.addHost()
    this.home = path.join(cluster.tmp, 'home')
  }

  static async start (cluster: Cluster, n: number, o: SoakOptions,
    daemonArgs = ['--always-available', '--slots', '2']): Promise<Soak> {
    return new Soak(cluster, await cluster.startDaemons(n, daemonArgs), daemonArgs, o)
  }

  /** Every live daemon idle (or never busy), so that a run starts with all of them. */
  async idle (timeoutMs = 30_000): Promise<void> {
    await Promise.all(this.daemons.filter(d => d.alive).map(async d => await d.until(() => {
      const st = d.events.filter(e => e.msg === 'state').at(-1)
      return st === undefined || st.to === 'idle' ? true : undefined
    }, timeoutMs, `daemon ${path.basename(d.dataDir)} idle`)))
  }

  /**
   * Kill, when `killAt` of the jobs are done, the worker that last started a job (it
   * has one running, and intermediates in its store), then start it again on the same
   * host, data dir and port. Resolves undefined if the run ended first.
   */
  private async killMidway (p: Proc, w: RunWatch, jobs: number): Promise<KillReport | undefined> {
    const want = Math.max(1, Math.floor(jobs * this.o.killAt))
    // a run that ends (or is killed as hung) before that point is judged by the caller
    await p.until(() => w.scan().done >= want || !p.alive ? true : undefined, 24 * 3600_000,
      `${want} of ${jobs} jobs done`)
    if (!p.alive) return undefined
    const last = w.lastRunning
    const ranLast = (d: DaemonProc): boolean => last !== undefined && String(last.reason).endsWith(d.peer.slice(-8))
    const victim = this.daemons.find(d => d.alive && ranLast(d)) ?? this.daemons.find(d => d.alive)
    if (victim === undefined) throw new Error('no live daemon to kill')
    const atDone = w.done
    const t0 = Date.now()
    await killHard(victim)
    const back = await this.cluster.startDaemon(this.daemonArgs, victim.host, path.basename(victim.dataDir),
      { port: victim.port })
    this.daemons.splice(this.daemons.indexOf(victim), 1, back)
    return { victim: path.basename(victim.dataDir), atDone, of: jobs, downMs: Date.now() - t0, backDuringRun: p.alive }
  }

  /** What the grid says of a run that did not end: `bgrid status RUN --json`, else its status.json. */
  private async statusOf (runId: string): Promise<string> {
    try {
      const r = await this.cluster.runCli(this.user, ['status', runId, '--json', '--data-dir', this.home], 20_000)
      if (r.code === 0 && r.stdout.trim() !== '') return summariseStatus(r.stdout)
    } catch (err: any) {
      // bgrid status itself stuck: fall back on the file the coordinator writes every second
      if (!String(err?.message).includes('still running')) throw err
    }
    const file = path.join(this.home, 'coordinator', 'runs', runId, 'status.json')
    return existsSync(file) ? summariseStatus(readFileSync(file, 'utf8')) : `no status: ${file} absent`
  }

  /** One run of dag, judged against the local run; with kill, a worker killed mid-way and restarted. */
  async run (dag: SoakDag, round: number, local: LocalRun, kill = false): Promise<RunResult> {
    const runId = `soak-${++this.runs}-${dag.name.replace(/[^A-Za-z0-9_-]/g, '_').slice(0, 60)}-r${round}`
    const outDir = path.join(this.cluster.tmp, 'out', runId)
    const t0 = Date.now()
    const p = this.cluster.cli(this.user, ['submit', dag.dagFile, '--data-dir', this.home, '--json', '--quiet',
      '--wait', '30', '--lease', String(this.o.lease), '--out', outDir, '--run-id', runId])
    const result: RunResult = {
      name: dag.name, round, seconds: 0, ok: false, hung: false, why: [], runId, outDir, submit: p
    }
    const w = new RunWatch(p)
    // settled at once: a failed kill is reported with the run, never an unhandled rejection
    const killing = (kill ? this.killMidway(p, w, dag.jobs) : Promise.resolve(undefined))
      .then(k => ({ k, err: undefined }), (err: unknown) => ({ k: undefined, err }))
    const deadlineMs = Math.max(this.o.deadlineMs, (this.o.perJobMs ?? 0) * dag.jobs)
    const stallMs = this.o.stallMs ?? deadlineMs
    const hang = await p.until(() => {
      if (!p.alive) return 'exited'
      if (Date.now() - t0 > deadlineMs) return `still running after its deadline of ${deadlineMs / 1000} s`
      if (Date.now() - w.scan().lastMove > stallMs) return `no job moved for ${stallMs / 1000} s`
      return undefined
    }, deadlineMs + 60_000, 'the run to end or hang')
    result.seconds = (Date.now() - t0) / 1000
    if (hang === 'exited') await p.exited
    else {
      result.hung = true
      result.why.push(`hung: ${hang}, ${w.scan().done}/${dag.jobs} jobs done; status: ${await this.statusOf(runId)}`)
      await killHard(p)
    }
    const code = p.child.exitCode
    const { k, err } = await killing
    result.kill = k
    if (err !== undefined) {
      result.why.push(`the kill and restart failed: ${String((err as Error)?.message ?? err).split('\n')[0]}`)
    }
    if (result.hung) return result
    if (code !== 0) {
      result.why.push(`submit exited ${String(code)}: ${p.stderr.trim().split('\n').slice(-3).join(' | ')}`)
    }
    const runFile = path.join(outDir, 'run.json')
    if (!existsSync(runFile)) {
      result.why.push('no run.json')
      return result
    }
    const run = JSON.parse(readFileSync(runFile, 'utf8'))
    if (run.state !== 'succeeded') {
      // the failed first (they say why), then those skipped or cancelled because of them
      const rank = (j: any): number => j.state === 'failed' ? 0 : 1
      const failed = Object.entries(run.jobs ?? {}).filter(([, j]: [string, any]) => j.state !== 'done')
        .sort(([, a]: [string, any], [, b]: [string, any]) => rank(a) - rank(b)).slice(0, 3)
        .map(([id, j]: [string, any]) => `${id}: ${String(j.state)} ${String(j.reason ?? '')}`)
      result.why.push(`run ${String(run.state)}: ${String(run.error ?? '')} ${failed.join('; ')}`.trim())
    }
    const diffs = compareWithLocal(local, run, outDir)
    if (diffs.length > 0) {
      result.why.push(`${diffs.length} output(s) differ from the local run: ${diffs.slice(0, 3).join('; ')}`)
    }
    result.ok = result.why.length === 0
    return result
  }
}

/**
 * A status (`bgrid status --json`, one JSON document; or status.json) cut to what tells
 * where a run stands: its state, its job counts, what it waits for, and the jobs not done.
 */
function summariseStatus (text: string): string {
  let s: any
  try {
    s = JSON.parse(text)
  } catch (err: any) {
    return `unreadable status (${String(err?.message)}): ${text.slice(0, 300)}`
  }
  const open = Object.entries(s.jobs ?? {}).filter(([, j]: [string, any]) => j?.state !== 'done')
  const jobs = open.slice(0, 6).map(([id, j]: [string, any]) => {
    const a = Array.isArray(j.attempts) ? j.attempts.at(-1) : undefined
    const on = a === undefined
      ? ''
      : ` (attempt ${String(a.id)} ${String(a.status ?? '')} on ${String(a.worker ?? '').slice(-8)})`
    return `${id}: ${String(j.state)}${on}`
  })
  return JSON.stringify({ state: s.state, counts: s.counts, waiting: s.waiting }) +
    `; ${open.length} job(s) not done: ${jobs.join(', ')}${open.length > jobs.length ? ', ...' : ''}`
}

/** The row printed for a run: trace, round, seconds, ok/failed, and the kill if there was one. */
export function formatRun (r: RunResult): string {
  const k = r.kill === undefined
    ? ''
    : `; ${r.kill.victim} killed at ${r.kill.atDone}/${r.kill.of} jobs done, ` +
      `back in ${(r.kill.downMs / 1000).toFixed(1)} s` +
      (r.kill.backDuringRun ? ' (run still going)' : ' (after the run ended)')
  const verdict = r.ok ? 'ok' : r.hung ? 'FAILED (hung)' : 'FAILED'
  return `${r.name.padEnd(46)} round ${r.round}  ${r.seconds.toFixed(1).padStart(6)} s  ${verdict}${k}` +
    (r.ok ? '' : `\n    ${r.why.join('\n    ')}`)
}
