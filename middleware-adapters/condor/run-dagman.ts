// The Condor style (HTCondor DAGMan): `bgrid submit FILE.dag` runs a DAGMan file as
// condor_dagman runs it, on the submitter's machine. The story: read the DAG (and the
// rescue DAG a failed run left) -> the node lifecycle (the engine) says what starts -> PRE
// and POST scripts run here, in the node's directory; a node's job runs here (scheduler or
// local universe) or on bgrid workers through one run of the coordinator kept open for the
// DAG (the grid pool); a SUBDAG EXTERNAL is this same run on its DAG file -> the node status
// file, the job events (jobstate.log), dagman.out and metrics as it goes -> a rescue DAG
// when the DAG did not succeed.
// Contract: the folder reads and writes HTCondor's files (DAGMan, submit descriptions,
// ClassAds, rescue DAGs) and converts them to dag.json; only its grid pool imports the
// coordinator (as condor_dagman reaches the schedd only through condor_submit). Imports
// protocol/, the run core's DAG model and parser, and (the grid pool) coordinator/.
import { writeFileSync, existsSync, renameSync, statSync } from 'node:fs'
import path from 'node:path'
import { BgridError, errorMessage } from '../../protocol/errors.ts'
import { DagmanEngine, DEFAULT_ENGINE_OPTIONS, DAG_STATUS, type EngineNode, type EngineOptions, type DagResult } from './engine.ts'
import { nodeStatusFile } from './status-file.ts'
import { rescueName, lastRescue, fullRescue, startFromRescue, writeRescue } from './rescue.ts'
import { DagmanOut, JobstateLog, writeMetrics } from './dagman-logs.ts'
import { bool, int } from './config.ts'
import type { DagRun, DagmanRunOptions, DagmanRunResult, JobRunner } from './dag-run.ts'
import { NodeJobs } from './node-jobs.ts'
import { runScript } from './scripts.ts'
import { Alarm } from '../../protocol/sleep.ts'
import { bestEffort } from '../../protocol/best-effort.ts'

/** Run a DAGMan file as condor_dagman runs it (a SUBDAG EXTERNAL: this again, on its file). */
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
    const start = startFromRescue(dagFile, o, env, out)
    const { cfg, rescueNum, maxRescue, done, retriesLeft } = start
    dagFile = start.dagFile
    const dag = start.dag
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
    // the loop's tick, woken early by a node's end or an interrupt
    const alarm = new Alarm()
    let statusDirty = true
    // an interrupt removes the DAG (condor_rm): nothing new but FINAL, what runs is stopped; a second one kills FINAL too
    const onInterrupt = (): void => { engine.interrupt('interrupted'); for (const i of engine.toStop()) running.get(i)?.abort(); alarm.wake() }
    const onKill = (): void => { engine.interrupt('killed'); for (const ac of running.values()) ac.abort(); alarm.wake() }
    if (o.signal.aborted) onInterrupt(); else o.signal.addEventListener('abort', onInterrupt, { once: true })
    if (o.kill?.aborted === true) onKill(); else o.kill?.addEventListener('abort', onKill, { once: true })
    // a file a worker sent never becomes something this machine runs or reads as instructions
    let grid: JobRunner | undefined
    const run: DagRun = {
      o, env, depth, dag, engine, out, jobstate, clusterOf: new Map(), submitFiles: new Map(),
      nodeAbort: (i) => {
        const ac = new AbortController()
        running.set(i, ac)
        return ac
      },
      finish: (i, fn) => {
        running.delete(i)
        fn()
        statusDirty = true
        alarm.wake()
      },
      fromWorker: (file) => grid?.broughtBack(path.resolve(file)) === true,
      refuseWorkerFile: (what, file) => `${what} ${file} was brought back from a worker in this run: bgrid does not let a worker choose what runs on this machine (make it in a scheduler or local universe node)`,
      grid: async () => (grid ??= await o.grid()),
      runSubDag: runDagman
    }
    const nodeJobs = new NodeJobs(run)

    let lastCounts = ''
    let lastTable = 0
    let result: DagResult | null = null
    let lastStatusWrite = 0
    while (true) {
      for (const a of [...engine.next(), ...engine.nextPosts()]) {
        if (a.kind === 'submit') nodeJobs.submit(a)
        else runScript(run, a)
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
      await alarm.sleep(1000)
    }
    o.signal.removeEventListener('abort', onInterrupt)
    o.kill?.removeEventListener('abort', onKill)

    out.counts(result.status, engine.nodes.length, { done: engine.count('done'), pre: 0, queued: 0, post: 0, ready: engine.count('ready'), unready: engine.count('not_ready'), failed: engine.count('error'), futile: engine.count('futile') })
    writeStatus(result)
    const rescue = writeRescue(dag, engine, result, outBase, cfg, maxRescue, out)
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
  try { writeFileSync(`${dagFile}.condor.sub`, text) } catch (err) { bestEffort('writeFileSync()', err) }
}
