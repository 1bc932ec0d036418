// `bgrid submit DAG`: a run of a dag.json with a coordinator made here (or, for a DAGMan
// file, submit-dagman.ts), in the foreground or --detach'ed. What its jobs and workers say
// (a failed job's stderr, a refusal, a node's name) reaches the terminal through
// protocol/printable.ts: in the progress lines (coordinator/progress.ts), in the error
// that ends a run (bin/cli.ts), and in the lines written here.
import { spawn } from 'node:child_process'
import { mkdirSync, openSync, closeSync, readFileSync } from 'node:fs'
import path from 'node:path'
import { Coordinator } from '../../coordinator/coordinator.ts'
import { adapterFor } from '../../middleware-adapters/registry.ts'
import { newRunId, runDirOf } from '../../coordinator/run-dir.ts'
import { parseDag, readDagJson } from '../../coordinator/dag-json.ts'
import { Progress } from '../../coordinator/progress.ts'
import { createLogger } from '../../protocol/log.ts'
import { controlRequest } from '../../protocol/control.ts'
import { BgridError } from '../../protocol/errors.ts'
import { resolveRunId } from '../../coordinator/runs.ts'
import { printable, printableLines } from '../../protocol/printable.ts'
import { bestEffort, setBestEffortLog } from '../../protocol/best-effort.ts'
import { sleep } from '../../protocol/sleep.ts'

/** a DAGMan file: FILE.dag, a rescue DAG, or any file whose first word is not JSON's `{` */
export function isDagmanFile (file: string): boolean {
  if (/\.dag$/i.test(file) || /\.rescue\d{3}$/i.test(file)) return true
  if (/\.json$/i.test(file)) return false
  try {
    const head = readFileSync(file, 'utf8').slice(0, 4096).replace(/^\s*(#[^\n]*\n\s*)*/, '')
    return head !== '' && !head.startsWith('{')
  } catch { return false }
}

export async function submitCommand (dag: string | undefined, o: any): Promise<number> {
  // HTCondor DAGMan files run as condor_dagman runs them (middleware-adapters/condor/run-dagman.ts)
  if (dag !== undefined && isDagmanFile(dag)) {
    if (o.resume !== undefined) throw new BgridError('INVALID_CONFIG', `--resume is for dag.json runs: a DAGMan file picks up where it failed through its rescue DAG (\`bgrid submit ${dag}\` again runs what is left)`)
    const { dagmanSubmit } = await import('./submit-dagman.ts')
    return await dagmanSubmit(dag, o)
  }
  if (o.condorArgs !== undefined) throw new BgridError('INVALID_CONFIG', `${JSON.parse(o.condorArgs).join(' ')}: condor_submit_dag options are for DAGMan files (.dag)`)
  if (o.resume !== undefined) o.resume = resolveRunId(o.dataDir, o.resume)
  if (o.detach === true) return await detach(dag, o)
  const mode = Progress.pick(o)
  const log = createLogger({ json: o.json, scope: 'coordinator', level: process.env.BGRID_LOG_LEVEL as any ?? (mode === 'json' ? 'warn' : 'warn') })
  setBestEffortLog(log)
  const c = new Coordinator({
    dagFile: dag,
    resume: o.resume,
    runId: o.runId,
    dataDir: o.dataDir,
    outDir: o.out,
    waitSec: o.wait,
    gridKeyFile: o.gridKey,
    mdnsInterface: o.mdnsInterface,
    leaseSec: o.lease,
    stallSec: o.stallAfter,
    ...(o.priority !== undefined ? { priority: o.priority } : {}),
    prefetch: o.prefetch !== false,
    streamOutputs: o.streamOutputs === true,
    progress: mode,
    log,
    // the DAG's middleware picks its adapter
    adapter: adapterFor
  })
  let interrupted = false
  const onSignal = (): void => { interrupted = true; c.cancel('interrupted') }
  process.once('SIGINT', onSignal)
  process.once('SIGTERM', onSignal)
  const s = await c.run()
  process.off('SIGINT', onSignal)
  process.off('SIGTERM', onSignal)
  if (mode !== 'json') {
    const k = s.counts
    const outcome = s.ok ? 'succeeded' : s.cancelled ? 'CANCELLED' : 'FAILED'
    const cancelled = k.cancelled > 0 ? `, ${k.cancelled} cancelled` : ''
    const counts = `${k.done} done, ${k.failed} failed, ${k.skipped} skipped${cancelled}`
    const moved = `${((s.bytesFetched + s.prefetchedBytes) / 1048576).toFixed(2)} MiB moved between nodes ` +
      `(${(s.prefetchedBytes / 1048576).toFixed(2)} prefetched), ` +
      `${s.cacheHits} input(s) already in place`
    const took = `${(s.makespanMs / 1000).toFixed(1)}s on ${s.workers} worker(s)`
    process.stderr.write(printableLines(`run ${s.runId}: ${outcome}: ${counts} in ${took}; ${moved}`) + '\n')
    process.stderr.write(`outputs, run.json and report.html in ${printableLines(s.outDir)}\n`)
    if (interrupted) {
      process.stderr.write(`interrupted: the ${k.done} job(s) done are kept; ` +
        `continue with \`bgrid submit --resume ${printable(s.runId)}\`` +
        ' (`bgrid submit --detach` runs a DAG in the background, beyond this terminal)\n')
    }
  }
  // exit codes: 0 every job done, 1 a job failed, 5 cancelled (errors: see protocol/errors.ts)
  const code = s.ok ? 0 : s.cancelled ? 5 : 1
  // everything is closed and written; do not wait for stray library timers (mDNS, libp2p)
  setTimeout(() => { process.exit(code) }, 20).unref()
  return code
}

/** How long `--detach` waits for the background coordinator to answer before it returns anyway. */
const DETACH_START_MS = 20_000

/**
 * `bgrid submit --detach`: the same submit, in a process of its own session (it outlives
 * the terminal), its output in <run dir>/submit.log. The DAG is checked here first, so
 * that a bad DAG is said at once; the run id goes to stdout once the coordinator answers.
 */
async function detach (dag: string | undefined, o: any): Promise<number> {
  let runId: string
  if (o.resume !== undefined) runId = o.resume
  else {
    if (dag === undefined) throw new BgridError('INVALID_CONFIG', 'submit needs a DAG file (or --resume RUN_ID)')
    const file = path.resolve(dag)
    runId = o.runId ?? newRunId(parseDag(readDagJson(file), file).name)
  }
  const runDir = runDirOf(o.dataDir, runId)
  mkdirSync(runDir, { recursive: true, mode: 0o700 })
  const logFile = path.join(runDir, 'submit.log')
  const args = process.argv.slice(2).filter(a => a !== '--detach')
  if (o.resume === undefined && o.runId === undefined) args.push('--run-id', runId)
  const fd = openSync(logFile, 'a', 0o600)
  const child = spawn(process.execPath, [...process.execArgv, process.argv[1], ...args], {
    detached: true, stdio: ['ignore', fd, fd], env: { ...process.env, BGRID_DETACHED: '1' }
  })
  closeSync(fd)
  let exited: number | null | undefined
  child.once('exit', (code, signal) => { exited = code ?? (signal !== null ? 1 : 0) })
  child.unref()
  // wait (bounded) until the coordinator answers on its control socket, or gives up early
  const deadline = Date.now() + DETACH_START_MS
  let answering = false
  while (Date.now() < deadline && exited === undefined) {
    const r = await controlRequest(path.join(runDir, 'control.sock'), { op: 'status' }, false, 500)
    if (r?.reply?.ok === true) { answering = true; break }
    await sleep(200)
  }
  if (exited !== undefined && !answering) {
    let tail = ''
    try { tail = readFileSync(logFile, 'utf8').split('\n').slice(-20).join('\n') } catch (err) { bestEffort('readFileSync(logFile, \'utf8\').split(\'\\n\').slice(-20).join()', err) }
    process.stderr.write(printableLines(tail.endsWith('\n') || tail === '' ? tail : tail + '\n'))
    process.stderr.write(printableLines(`bgrid: the background run ${runId} ended at once (exit ${String(exited)}); ` +
      `its log: ${logFile}`) + '\n')
    return exited === 0 ? 0 : exited ?? 1
  }
  process.stdout.write(`${printable(runId)}\n`)
  process.stderr.write(printableLines(`run ${runId} goes on in the background ` +
    `(pid ${String(child.pid)}${answering ? '' : ', not answering yet'}); its log: ${logFile}\n` +
    `  bgrid status ${runId} --watch    bgrid report ${runId}    bgrid logs ${runId} JOB    bgrid cancel ${runId}\n`))
  return 0
}
