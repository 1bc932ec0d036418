// `bgrid submit FILE.dag`: a DAGMan file run as condor_dagman runs it, on the submitter's
// machine. The story: read the DAG (and the rescue DAG a failed run left) -> the engine
// (engine.ts) says what starts -> PRE and POST scripts run here, in the node's directory;
// scheduler/local universe jobs run here too; vanilla jobs go to bgrid workers through
// one run of the coordinator kept open for the DAG (grid-pool.ts); a SUBDAG EXTERNAL is
// this same function on its DAG file -> the node status file, jobstate.log, dagman.out
// and metrics as it goes -> a rescue DAG when the DAG did not succeed.
import { spawn } from 'node:child_process'
import { openSync, closeSync, writeFileSync, existsSync, readFileSync, statSync, renameSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { BgridError, errorMessage } from '../../protocol/errors.ts'
import { readDagmanFile, type DagmanDag, type DagmanNode } from './dag-file.ts'
import { dagmanNodeJobs, type NodeJob, type SubmitFileCache } from './to-dag-json.ts'
import { DagmanEngine, DEFAULT_ENGINE_OPTIONS, DAG_STATUS, type Action, type EngineNode, type EngineOptions, type DagResult } from './engine.ts'
import { nodeStatusFile } from './status-file.ts'
import { rescueName, lastRescue, rescueDoneNodes, partialRescue, fullRescue, MAX_RESCUE } from './rescue.ts'
import { DagmanOut, JobstateLog, writeMetrics } from './dagman-logs.ts'

/** sub-DAGs nested deeper than this fail their node */
const MAX_SUBDAG_DEPTH = 32

/** Where vanilla jobs run: bgrid workers (grid-pool.ts). */
export interface JobRunner {
  run: (job: NodeJob, signal: AbortSignal) => Promise<{ code: number, why?: string }>
  /** whether this file was written from what a worker sent, in this DAG run */
  broughtBack: (file: string) => boolean
}

/** scheduler/local universe jobs running at once at most (HTCondor's schedd: START_LOCAL_UNIVERSE) */
export const MAX_LOCAL_JOBS = 200

export interface DagmanRunOptions {
  dagFile: string
  /** condor_submit_dag's options as given (kept in FILE.dag.condor.sub, passed to SUBDAGs) */
  csdArgs: string[]
  /** -autorescue 0 / --no-rescue: false; undefined: DAGMAN_AUTO_RESCUE (default true) */
  autoRescue?: boolean
  /** -dorescuefrom N */
  doRescueFrom?: number
  maxJobs?: number
  maxPre?: number
  maxPost?: number
  /** -outfile_dir: where dagman.out goes */
  outfileDir?: string
  /** -dumprescue: write the DAG as a full rescue DAG and run nothing */
  dumpRescue?: boolean
  /** -config FILE: DAGMan configuration read before the DAG's own CONFIG files */
  configFile?: string
  /** vanilla jobs: made on the first one (a DAG of scheduler-universe nodes needs no worker) */
  grid: () => Promise<JobRunner>
  /** a second interrupt: kill everything still running at once, FINAL included */
  kill?: AbortSignal
  /** each dagman.out line, as it is written (the terminal) */
  echo?: (line: string) => void
  signal: AbortSignal
  /** nesting (SUBDAG EXTERNAL): the DAG files running above this one */
  depth?: number
  ancestors?: string[]
  env?: Record<string, string | undefined>
}

export interface DagmanRunResult extends DagResult {
  dagFile: string
  rescue: string | null
  /** why the DAG could not be run at all (a parse error, REJECT): said in dagman.out too */
  error?: string
  nodes: number
  done: number
}

/** DAGMan configuration: the DAG's CONFIG file, then _CONDOR_ variables (which win) */
function dagmanConfig (dag: DagmanDag, env: Record<string, string | undefined>, configFile?: string): Map<string, string> {
  const cfg = new Map<string, string>()
  const read = (f: string, where: string): void => {
    let text: string
    try { text = readFileSync(f, 'utf8') } catch (err) { throw new BgridError('INVALID_DAG', `${where}: ${errorMessage(err)}`) }
    for (const line of text.split('\n')) {
      const m = /^\s*([A-Za-z_][A-Za-z0-9_.]*)\s*=\s*(.*?)\s*$/.exec(line)
      if (m !== null) cfg.set(m[1].toUpperCase(), m[2])
    }
  }
  if (configFile !== undefined) read(path.resolve(configFile), `-config ${configFile}`)
  for (const c of dag.commands) {
    if (c.keyword !== 'CONFIG') continue
    read(path.resolve(dag.dir, c.args.trim()), `${path.relative(dag.dir, c.at.file) || c.at.file}:${c.at.line}: CONFIG ${c.args}`)
  }
  for (const [k, v] of Object.entries(env)) if (k.startsWith('_CONDOR_') && v !== undefined) cfg.set(k.slice(8).toUpperCase(), v)
  return cfg
}

function bool (v: string | undefined, dflt: boolean): boolean {
  if (v === undefined || v.trim() === '') return dflt
  return /^(true|t|yes|y|1)$/i.test(v.trim()) ? true : /^(false|f|no|n|0)$/i.test(v.trim()) ? false : dflt
}
function int (v: string | undefined, dflt: number): number {
  const n = Number(v)
  return v === undefined || v.trim() === '' || !Number.isInteger(n) ? dflt : n
}

/** a child's exit as DAGMan sees it: its code, or its signal's number negated */
function exitValue (code: number | null, signal: NodeJS.Signals | null): number {
  if (code !== null) return code
  return -(os.constants.signals[signal ?? 'SIGKILL'] ?? 9)
}

/** Run a process to its end in `cwd`; killed (its whole group) when `signal` aborts. */
async function runProcess (file: string, args: string[], o: { cwd: string, env: Record<string, string>, stdin?: string | null, stdout?: string | null, stderr?: string | null, append?: boolean, signal: AbortSignal }): Promise<{ code: number, why?: string }> {
  const fds: number[] = []
  const open = (f: string | null | undefined, flags: string): number | 'ignore' => {
    if (f === null || f === undefined) return 'ignore'
    const fd = openSync(f, flags, 0o644)
    fds.push(fd)
    return fd
  }
  try {
    const inFd = open(o.stdin, 'r')
    const mode = o.append === true ? 'a' : 'w'
    const outFd = open(o.stdout, mode)
    const errFd = o.stderr !== null && o.stderr === o.stdout ? outFd : open(o.stderr, mode)
    return await new Promise(resolve => {
      let child: ReturnType<typeof spawn>
      try {
        child = spawn(file, args, { cwd: o.cwd, env: o.env, stdio: [inFd, outFd, errFd], detached: true })
      } catch (err) { resolve({ code: 1, why: `cannot start ${file}: ${errorMessage(err)}` }); return }
      const kill = (): void => { try { process.kill(-(child.pid as number), 'SIGKILL') } catch {} }
      o.signal.addEventListener('abort', kill, { once: true })
      child.once('error', err => { o.signal.removeEventListener('abort', kill); resolve({ code: 1, why: `cannot start ${file}: ${err.message}` }) })
      child.once('exit', (code, sig) => {
        o.signal.removeEventListener('abort', kill)
        // nothing it started outlives it
        kill()
        resolve({ code: exitValue(code, sig) })
      })
    })
  } catch (err) {
    return { code: 1, why: errorMessage(err) }
  } finally {
    for (const fd of fds) closeSync(fd)
  }
}

/** a script's or executable's name: a file in `dir` when there is one there, else looked up in PATH */
function program (name: string, dir: string): string {
  if (name.includes('/')) return path.resolve(dir, name)
  const local = path.join(dir, name)
  return existsSync(local) ? local : name
}

function baseEnv (env: Record<string, string | undefined>): Record<string, string> {
  const out: Record<string, string> = {}
  for (const k of ['PATH', 'HOME', 'USER', 'LOGNAME', 'LANG', 'LC_ALL', 'TZ', 'PERL5LIB']) if (env[k] !== undefined) out[k] = env[k] as string
  return out
}

export async function runDagman (o: DagmanRunOptions): Promise<DagmanRunResult> {
  const env = o.env ?? process.env
  let dagFile = path.resolve(o.dagFile)
  if (!existsSync(dagFile) || !statSync(dagFile).isFile()) throw new BgridError('NOT_FOUND', `${o.dagFile}: no such DAG file`)
  const depth = o.depth ?? 0
  // condor_submit_dag's output files are named after the DAG file given, rescue or not
  const outBase = dagFile
  const outDir = o.outfileDir !== undefined ? path.resolve(path.dirname(dagFile), o.outfileDir) : path.dirname(dagFile)
  if (!existsSync(outDir) || !statSync(outDir).isDirectory()) throw new BgridError('INVALID_CONFIG', `-outfile_dir ${o.outfileDir ?? ''}: ${outDir} is not a directory`)
  const out = new DagmanOut(path.join(outDir, path.basename(outBase) + '.dagman.out'), o.echo)
  out.line('******************************************************')
  out.line(`** bgrid ${depth > 0 ? 'SUBDAG ' : ''}run of ${path.basename(dagFile)} (condor_dagman semantics)`)
  out.line(`** PID = ${process.pid}`)
  out.line('******************************************************')
  writeCondorSub(dagFile, o.csdArgs)

  // a DAG that cannot be run is said in dagman.out and ends the run with 1, as condor_dagman does
  const refuse = (why: string): DagmanRunResult => {
    for (const l of why.split('\n')) out.line(`ERROR: ${l}`)
    out.exiting(1)
    return { exitCode: 1, status: DAG_STATUS.error, failed: 0, dagFile, rescue: null, error: why, nodes: 0, done: 0 }
  }
  try { return await runParsed() } catch (err) {
    if (err instanceof BgridError && (err.code === 'INVALID_DAG' || err.code === 'NOT_FOUND')) return refuse(err.message)
    throw err
  }

  async function runParsed (): Promise<DagmanRunResult> {
    // the rescue DAG a failed run left: DONE nodes (partial) or the DAG to run (full)
    let first = readDagmanFile(dagFile)
    let cfg = dagmanConfig(first, env, o.configFile)
    const autoRescue = o.autoRescue ?? bool(cfg.get('DAGMAN_AUTO_RESCUE'), true)
    const maxRescue = int(cfg.get('DAGMAN_MAX_RESCUE_NUM'), MAX_RESCUE)
    let rescueNum = o.doRescueFrom ?? (autoRescue ? lastRescue(dagFile) : 0)
    if (rescueNum > maxRescue) rescueNum = maxRescue
    const done = new Set<string>()
    let retriesLeft = new Map<string, number>()
    if (rescueNum > 0) {
      const rf = rescueName(dagFile, rescueNum)
      if (!existsSync(rf)) throw new BgridError('NOT_FOUND', `rescue DAG ${rf} does not exist (-dorescuefrom ${rescueNum})`)
      const r = rescueDoneNodes(rf)
      out.line(`Running rescue DAG ${rescueNum} (${path.basename(rf)})${r.full ? ', a full rescue DAG' : ''}`)
      if (r.full) { first = readDagmanFile(rf, { rescue: true }); cfg = dagmanConfig(first, env, o.configFile); dagFile = rf } else { for (const d of r.done) done.add(d); retriesLeft = r.retries }
    }
    const dag = first
    for (const n of dag.nodes) {
      if (n.kind === 'PROVISIONER' || n.kind === 'SERVICE') throw new BgridError('INVALID_DAG', `${path.relative(dag.dir, n.at.file) || n.at.file}:${n.at.line}: ${n.kind} nodes are not supported by bgrid`)
    }
    for (const d of done) if (!dag.byName.has(d)) throw new BgridError('INVALID_DAG', `the rescue DAG marks node ${d} DONE, but ${path.basename(dagFile)} has no such node: the DAG changed since (\`bgrid submit ${path.basename(dagFile)} --no-rescue\` starts over)`)

    const engineOpts: EngineOptions = {
      ...DEFAULT_ENGINE_OPTIONS,
      maxJobs: o.maxJobs ?? int(cfg.get('DAGMAN_MAX_JOBS_SUBMITTED'), 0),
      maxPre: o.maxPre ?? int(cfg.get('DAGMAN_MAX_PRE_SCRIPTS'), DEFAULT_ENGINE_OPTIONS.maxPre),
      maxPost: o.maxPost ?? int(cfg.get('DAGMAN_MAX_POST_SCRIPTS'), DEFAULT_ENGINE_OPTIONS.maxPost),
      categoryLimits: new Map(dag.maxJobs.map(m => [m.category, m.limit])),
      alwaysRunPost: bool(cfg.get('DAGMAN_ALWAYS_RUN_POST'), false),
      depthFirst: bool(cfg.get('DAGMAN_SUBMIT_DEPTH_FIRST'), false)
    }
    // splice pins are read but not wired yet: refused, rather than run with edges missing
    const pins = dag.commands.find(c => c.keyword === 'CONNECT' || c.keyword === 'PIN_IN' || c.keyword === 'PIN_OUT')
    if (pins !== undefined) return refuse(`${path.relative(dag.dir, pins.at.file) || pins.at.file}:${pins.at.line}: ${pins.keyword}: splice pin connections are not supported by bgrid yet (write the PARENT/CHILD edges instead)`)
    const reject = dag.commands.find(c => c.keyword === 'REJECT')
    if (reject !== undefined) return refuse(`REJECT specification at ${path.relative(dag.dir, reject.at.file) || reject.at.file}:${reject.at.line}: Exiting because of REJECT specification`)
    const engine = new DagmanEngine(dag.nodes.map((n): EngineNode => ({
      name: n.name,
      parents: n.parents,
      final: n.kind === 'FINAL',
      pre: n.scripts.some(s => s.kind === 'PRE'),
      post: n.scripts.some(s => s.kind === 'POST'),
      retryMax: retriesLeft.get(n.name) ?? n.retry?.count ?? 0,
      unlessExit: n.retry?.unlessExit ?? null,
      abortOn: n.abortDagOn === null ? null : { value: n.abortDagOn.value, returnValue: n.abortDagOn.returnValue },
      priority: n.priority?.value ?? 0,
      category: n.category?.name ?? null,
      preSkip: n.preSkip?.code ?? null,
      done: n.done !== null || done.has(n.name)
    })), engineOpts)
    out.line(`Dag contains ${dag.nodes.length} total jobs`)
    if (o.dumpRescue === true) {
      // -dumprescue: the DAG as a full rescue DAG, nothing run
      const num = Math.min(lastRescue(outBase) + 1, maxRescue)
      const file = rescueName(outBase, num)
      writeFileSync(file, fullRescue(dag, engine, new Date(), true))
      out.line(`Writing Rescue DAG file ${path.basename(file)} (-dumprescue): nothing is run`)
      out.exiting(0)
      return { exitCode: 0, status: DAG_STATUS.ok, failed: 0, dagFile, rescue: file, nodes: dag.nodes.length, done: 0 }
    }

    const statusCmd = dag.commands.filter(c => c.keyword === 'NODE_STATUS_FILE').at(-1)
    const statusArgs = statusCmd?.args.trim().split(/\s+/) ?? []
    const statusFile = statusArgs[0] !== undefined ? path.resolve(dag.dir, statusArgs[0]) : null
    const jobstateCmd = dag.commands.filter(c => c.keyword === 'JOBSTATE_LOG').at(-1)
    const jobstate = new JobstateLog(jobstateCmd !== undefined ? path.resolve(dag.dir, jobstateCmd.args.trim()) : null)
    jobstate.internal('DAGMAN_STARTED', `${process.pid}.0`)
    const startedAt = Date.now()
    const dagFiles = [path.basename(dagFile)]
    const writeStatus = (result: DagResult | null): void => {
      if (statusFile === null) return
      // a new file renamed over the old one: readers never see half of it
      try { writeFileSync(statusFile + '.tmp', nodeStatusFile(dagFiles, engine, result, new Date(), Math.floor(Date.now() / 1000) + 60)); renameSync(statusFile + '.tmp', statusFile) } catch (err) { out.line(`ERROR: cannot write the node status file ${statusFile}: ${errorMessage(err)}`) }
    }
    writeStatus(null)

    // ---- running what the engine says ----------------------------------------------
    const running = new Map<number, AbortController>()
    let wake: () => void = () => {}
    let cluster = 0
    /** each submit file read once for the DAG (again when it changes), not once per node */
    const submitFiles: SubmitFileCache = new Map()
    const clusterOf = new Map<number, string>()
    let statusDirty = true
    const nodeAbort = (i: number): AbortController => {
      const ac = new AbortController()
      running.set(i, ac)
      return ac
    }
    // an interrupt removes the DAG (condor_rm): nothing new but FINAL, what runs is stopped; a second one kills FINAL too
    const onInterrupt = (): void => { engine.interrupt('interrupted'); for (const i of engine.toStop()) running.get(i)?.abort(); wake() }
    const onKill = (): void => { engine.interrupt('killed'); for (const ac of running.values()) ac.abort(); wake() }
    if (o.signal.aborted) onInterrupt(); else o.signal.addEventListener('abort', onInterrupt, { once: true })
    if (o.kill?.aborted === true) onKill(); else o.kill?.addEventListener('abort', onKill, { once: true })
    // a file a worker sent never becomes something this machine runs or reads as instructions
    let grid: JobRunner | undefined
    const fromWorker = (file: string): boolean => grid?.broughtBack(path.resolve(file)) === true
    const refuseWorkerFile = (what: string, file: string): string => `${what} ${file} was brought back from a worker in this run: bgrid does not let a worker choose what runs on this machine (make it in a scheduler or local universe node)`
    let localRunning = 0
    const localWaiters: Array<() => void> = []
    const localSlot = async (): Promise<() => void> => {
      while (localRunning >= MAX_LOCAL_JOBS) await new Promise<void>(resolve => localWaiters.push(resolve))
      localRunning++
      return () => { localRunning--; localWaiters.shift()?.() }
    }
    const finish = (i: number, fn: () => void): void => {
      running.delete(i)
      fn()
      statusDirty = true
      wake()
    }

    const scriptArgs = (n: DagmanNode, i: number, command: string, a: Action): string[] => {
      const s = engine.state[i]
      const macros: Record<string, string> = {
        $JOB: n.name,
        $RETRY: String(a.retry),
        $MAX_RETRIES: String(n.retry?.count ?? 0),
        $DAG_STATUS: String(engine.dagStatus()),
        $FAILED_COUNT: String(engine.count('error')),
        $FUTILE_COUNT: String(engine.count('futile')),
        $DONE_COUNT: String(engine.count('done')),
        $QUEUED_COUNT: String(engine.count('submitted')),
        $NODE_COUNT: String(engine.nodes.length),
        $PRE_SCRIPT_RETURN: String(s.preReturn ?? -1)
      }
      if (a.kind === 'post') {
        macros.$RETURN = String(a.ret)
        macros.$JOBID = clusterOf.get(i) ?? '-1.-1'
      }
      // DAGMan splits a script's line on white space and replaces whole arguments only
      return command.trim().split(/\s+/).map(t => macros[t] ?? t)
    }

    const runScript = (a: Extract<Action, { kind: 'pre' | 'post' }>): void => {
      const n = dag.nodes[a.node]
      const sc = n.scripts.find(s => s.kind === (a.kind === 'pre' ? 'PRE' : 'POST'))
      if (sc === undefined) throw new Error(`node ${n.name} has no ${a.kind} script`)
      const argv = scriptArgs(n, a.node, sc.command, a)
      const what = a.kind === 'pre' ? 'PRE' : 'POST'
      const prog = program(argv[0], n.dir)
      if (fromWorker(prog)) {
        out.line(`ERROR: ${what} script of node ${n.name}: ${refuseWorkerFile('the script', prog)}`)
        finish(a.node, () => { if (a.kind === 'pre') engine.preDone(a.node, 1); else engine.postDone(a.node, 1) })
        return
      }
      out.line(`Running ${what} script of Node ${n.name}...`)
      // POST lines carry the job's id, as DAGMan's do
      const scriptId = a.kind === 'post' ? (clusterOf.get(a.node) ?? '-') : '-'
      jobstate.event(n.name, a.retry, `${what}_SCRIPT_STARTED`, scriptId)
      const ac = nodeAbort(a.node)
      const dbg = sc.debug !== null ? path.resolve(n.dir, sc.debug.file) : null
      const so = dbg !== null && /^(STDOUT|ALL)$/i.test(sc.debug?.stream ?? '') ? dbg : null
      const se = dbg !== null && /^(STDERR|ALL)$/i.test(sc.debug?.stream ?? '') ? dbg : null
      const done = (code: number): void => { finish(a.node, () => { if (a.kind === 'pre') engine.preDone(a.node, code); else engine.postDone(a.node, code) }) }
      const attempt = (): void => {
        runProcess(prog, argv.slice(1), { cwd: n.dir, env: { ...env } as Record<string, string>, stdout: so, stderr: se, append: true, signal: ac.signal })
          .then(r => {
            // SCRIPT DEFER status time: that exit means "not now": the script runs again later
            if (sc.defer !== null && r.code === sc.defer.status && !ac.signal.aborted) {
              out.line(`Deferring ${what} script of node ${n.name} for ${sc.defer.time} seconds (exit status ${r.code})`)
              const t = setTimeout(attempt, sc.defer.time * 1000)
              ac.signal.addEventListener('abort', () => { clearTimeout(t); done(-9) }, { once: true })
              return
            }
            const ok = r.code === 0
            out.line(`${what} Script of node ${n.name} ${ok ? 'completed successfully.' : `failed with status ${r.code}${r.why !== undefined ? ` (${r.why})` : ''}`}`)
            if (a.kind === 'post') jobstate.event(n.name, a.retry, 'POST_SCRIPT_TERMINATED', scriptId)
            jobstate.event(n.name, a.retry, `${what}_SCRIPT_${ok ? 'SUCCESS' : 'FAILURE'}`, scriptId)
            done(r.code)
          }, err => { out.line(`ERROR: ${what} script of ${n.name}: ${errorMessage(err)}`); done(1) })
      }
      attempt()
    }

    const runJob = async (n: DagmanNode, a: Action, signal: AbortSignal): Promise<{ code: number, why?: string }> => {
      if (n.noop) return { code: 0 }
      if (n.kind === 'SUBDAG') {
        const file = path.resolve(n.dir, n.submit)
        if (fromWorker(file)) return { code: 1, why: refuseWorkerFile('the sub-DAG', file) }
        // a sub-DAG that runs itself (directly or further down) would never end
        const above = [...(o.ancestors ?? []), path.resolve(o.dagFile)]
        if (above.includes(file)) return { code: 1, why: `SUBDAG EXTERNAL ${n.name}: ${path.basename(file)} is already running above it (${above.map(f => path.basename(f)).join(' -> ')})` }
        if (depth + 1 > MAX_SUBDAG_DEPTH) return { code: 1, why: `SUBDAG EXTERNAL ${n.name}: sub-DAGs nested more than ${MAX_SUBDAG_DEPTH} deep` }
        try {
          const sub = await runDagman({ ...o, dagFile: file, depth: depth + 1, ancestors: above, signal, outfileDir: o.outfileDir })
          return { code: sub.exitCode }
        } catch (err) {
          // a sub-DAG that cannot be read fails its node, as a condor_dagman that exits at once would
          return { code: 1, why: `SUBDAG EXTERNAL ${n.name}: ${errorMessage(err)}` }
        }
      }
      let jobs: NodeJob[]
      const submitFile = n.inline === null && !dag.descriptions.has(n.submit) ? path.resolve(n.dir, n.submit) : null
      if (submitFile !== null && fromWorker(submitFile)) return { code: 1, why: `Job submit failed: ${refuseWorkerFile('the submit file', submitFile)}` }
      try {
        jobs = dagmanNodeJobs(dag, a.node, { retry: a.retry, dagStatus: engine.dagStatus(), failedCount: engine.count('error') }, env, submitFiles)
      } catch (err) {
        return { code: 1, why: `Job submit failed: ${errorMessage(err)}` }
      }
      // the node's jobs (queue N) end together: the first that fails removes the others, as DAGMan does
      const siblings = new AbortController()
      const stopAll = (): void => { siblings.abort() }
      signal.addEventListener('abort', stopAll, { once: true })
      let first: { code: number, why?: string } | undefined
      const results = await Promise.all(jobs.map(async (j): Promise<{ code: number, why?: string }> => {
        const r = await runOne(j, n.dir, siblings.signal)
        if (r.code !== 0 && first === undefined && !siblings.signal.aborted) { first = r; siblings.abort() }
        return r
      })).finally(() => { signal.removeEventListener('abort', stopAll) })
      return first ?? results.find(r => r.code !== 0) ?? results[results.length - 1] ?? { code: 0 }
    }

    /** one job of a node: here (scheduler/local universe) or on a worker; `dir`: the node's, where condor_submit would run */
    const runOne = async (j: NodeJob, dir: string, signal: AbortSignal): Promise<{ code: number, why?: string }> => {
      if (j.universe === 'local') {
        const exe = program(j.exe, dir)
        if (fromWorker(exe)) return { code: 1, why: refuseWorkerFile('the executable', exe) }
        const release = await localSlot()
        try {
          if (signal.aborted) return { code: -9, why: 'removed' }
          return await runProcess(exe, j.args, { cwd: j.iwd, env: { ...baseEnv(env), ...j.env }, stdin: j.stdin, stdout: j.stdout, stderr: j.stderr, signal })
        } finally { release() }
      }
      grid ??= await o.grid()
      return await grid.run(j, signal)
    }

    const submit = (a: Extract<Action, { kind: 'submit' }>): void => {
      const n = dag.nodes[a.node]
      const id = `${++cluster}.0`
      clusterOf.set(a.node, id)
      out.line(`Submitting ${n.kind === 'SUBDAG' ? 'sub-DAG' : n.noop ? 'NOOP' : 'HTCondor'} Node ${n.name} job(s)...`)
      out.line(`	assigned HTCondor ID (${id.replace('.0', '.0.0')})`)
      jobstate.event(n.name, a.retry, 'SUBMIT', id)
      jobstate.event(n.name, a.retry, 'EXECUTE', id)
      const ac = nodeAbort(a.node)
      runJob(n, a, ac.signal).then(r => {
        jobstate.event(n.name, a.retry, 'JOB_TERMINATED', id)
        jobstate.event(n.name, a.retry, r.code === 0 ? 'JOB_SUCCESS' : 'JOB_FAILURE', String(r.code))
        out.line(`Node ${n.name} job proc (${id}.0) ${r.code === 0 ? 'completed successfully.' : `failed with status ${r.code}.${r.why !== undefined ? ` ${r.why}` : ''}`}`)
        finish(a.node, () => { engine.jobDone(a.node, r.code, r.why) })
      }, err => {
        finish(a.node, () => { engine.jobDone(a.node, 1, `Job submit failed: ${errorMessage(err)}`) })
      })
    }

    let lastCounts = ''
    let lastTable = 0
    let result: DagResult | null = null
    let lastStatusWrite = 0
    while (true) {
      for (const a of [...engine.next(), ...engine.nextPosts()]) {
        if (a.kind === 'submit') submit(a)
        else runScript(a)
      }
      for (const i of engine.toStop()) running.get(i)?.abort()
      for (const note of engine.notes.splice(0)) out.line(note)
      for (const t of engine.transitions.splice(0)) if (t.to === 'error' || t.to === 'futile') out.line(`Node ${t.node}: ${t.why}`)
      const counts = `${engine.count('done')}/${engine.count('prerun')}/${engine.count('submitted')}/${engine.count('postrun')}/${engine.count('ready')}/${engine.count('not_ready')}/${engine.count('error')}/${engine.count('futile')}`
      // the table on a tick, as DAGMan prints it (not after every event)
      if (counts !== lastCounts && Date.now() - lastTable >= 1000) {
        lastCounts = counts
        lastTable = Date.now()
        out.counts(engine.dagStatus(), engine.nodes.length, { done: engine.count('done'), pre: engine.count('prerun'), queued: engine.count('submitted'), post: engine.count('postrun'), ready: engine.count('ready'), unready: engine.count('not_ready'), failed: engine.count('error'), futile: engine.count('futile') })
      }
      if (statusDirty && Date.now() - lastStatusWrite > 1000) { statusDirty = false; lastStatusWrite = Date.now(); writeStatus(null) }
      result = engine.result()
      if (result !== null) break
      await new Promise<void>(resolve => { const t = setTimeout(resolve, 1000); wake = () => { clearTimeout(t); wake = () => {}; resolve() } })
    }
    o.signal.removeEventListener('abort', onInterrupt)
    o.kill?.removeEventListener('abort', onKill)

    out.counts(result.status, engine.nodes.length, { done: engine.count('done'), pre: 0, queued: 0, post: 0, ready: engine.count('ready'), unready: engine.count('not_ready'), failed: engine.count('error'), futile: engine.count('futile') })
    writeStatus(result)
    let rescue: string | null = null
    // as DAGMan: when the DAG failed before its FINAL node (whatever FINAL then did); none when
    // it succeeded (ABORT-DAG-ON ... RETURN 0 included)
    if ((engine.beforeFinal() ?? result).exitCode !== 0 || result.exitCode !== 0) {
      const num = lastRescue(outBase) + 1
      if (num <= maxRescue) {
        rescue = rescueName(outBase, num)
        const partial = bool(cfg.get('DAGMAN_WRITE_PARTIAL_RESCUE'), true)
        const reset = bool(cfg.get('DAGMAN_RESET_RETRIES_UPON_RESCUE'), true)
        const text = partial ? partialRescue(dag, engine, new Date(), reset) : fullRescue(dag, engine, new Date(), reset)
        writeFileSync(rescue, text)
        out.line(`Writing Rescue DAG file ${path.basename(rescue)}`)
      } else out.line(`Rescue DAG ${num} would be more than DAGMAN_MAX_RESCUE_NUM (${maxRescue}): none written`)
    }
    const nodeCount = engine.nodes.length
    const isSub = (i: number): boolean => dag.nodes[i].kind === 'SUBDAG'
    const tally = (sub: boolean, st: 'done' | 'error'): number => engine.state.filter((s, i) => isSub(i) === sub && s.status === st).length
    writeMetrics(outBase + '.metrics', {
      startTime: startedAt, endTime: Date.now(), result, rescueNum, dagmanId: String(process.pid), parentDagId: depth > 0 ? String(process.pid) : '',
      jobs: dag.nodes.length - dag.nodes.filter(n => n.kind === 'SUBDAG').length, jobsSucceeded: tally(false, 'done'), jobsFailed: tally(false, 'error'),
      dagJobs: dag.nodes.filter(n => n.kind === 'SUBDAG').length, dagJobsSucceeded: tally(true, 'done'), dagJobsFailed: tally(true, 'error')
    })
    out.line(`Wrote metrics file ${path.basename(outBase)}.metrics.`)
    jobstate.internal('DAGMAN_FINISHED', String(result.exitCode))
    out.line(`All jobs ${result.exitCode === 0 ? 'Completed!' : 'did not complete.'}`)
    out.exiting(result.exitCode)
    return { ...result, dagFile, rescue, nodes: nodeCount, done: engine.state.filter(st => st.status === 'done').length }
  }
}

/** FILE.dag.condor.sub: the submit description condor_submit_dag would have queued for condor_dagman */
export function writeCondorSub (dagFile: string, csdArgs: string[]): void {
  const base = path.basename(dagFile)
  const args = ['-p', '0', '-f', '-l', '.', '-Lockfile', `${base}.lock`, '-Dag', base, ...csdArgs]
  const quoted = args.map(a => /[\s'"]/.test(a) ? `'${a.replace(/'/g, "''").replace(/"/g, '""')}'` : a).join(' ')
  const text = [
    `# Filename: ${base}.condor.sub`,
    `# Generated by bgrid submit ${[base, ...csdArgs].join(' ')}`,
    '# bgrid ran this DAG itself; this is the job condor_submit_dag would queue on an HTCondor pool',
    'universe\t= scheduler',
    'executable\t= condor_dagman',
    'getenv\t\t= CONDOR_CONFIG,_CONDOR_*,PATH,PYTHONPATH,PERL*,PEGASUS_*,TZ,HOME,USER,LANG,LC_ALL',
    `output\t\t= ${base}.lib.out`,
    `error\t\t= ${base}.lib.err`,
    `log\t\t= ${base}.dagman.log`,
    'remove_kill_sig\t= SIGUSR1',
    `arguments\t= "${quoted}"`,
    'queue',
    ''
  ].join('\n')
  try { writeFileSync(`${dagFile}.condor.sub`, text) } catch {}
}
