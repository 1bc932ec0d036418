// DAGMan's PRE and POST scripts: run on the submit machine, in the node's directory, with
// DAGMan's macros ($JOB, $RETRY, $RETURN...) in their arguments; SCRIPT DEFER runs one
// again later; DEBUG keeps its output. A script's exit goes to the node's lifecycle.
import path from 'node:path'
import { errorMessage } from '../../protocol/errors.ts'
import type { DagmanNode } from './dag-file.ts'
import type { Action } from './engine.ts'
import type { DagRun } from './dag-run.ts'
import { program, runProcess } from './processes.ts'

/** A script's argument list: its line split on white space, DAGMan's macros replaced whole. */
export function scriptArgs (run: DagRun, n: DagmanNode, i: number, command: string, a: Action): string[] {
  const { engine, clusterOf } = run
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

/** Run a node's PRE or POST script here, in the node's directory; its exit goes to the engine. */
export function runScript (run: DagRun, a: Extract<Action, { kind: 'pre' | 'post' }>): void {
  const { dag, engine, out, jobstate, clusterOf, env, finish } = run
  const n = dag.nodes[a.node]
  const sc = n.scripts.find(s => s.kind === (a.kind === 'pre' ? 'PRE' : 'POST'))
  if (sc === undefined) throw new Error(`node ${n.name} has no ${a.kind} script`)
  const argv = scriptArgs(run, n, a.node, sc.command, a)
  const what = a.kind === 'pre' ? 'PRE' : 'POST'
  const prog = program(argv[0], n.dir)
  if (run.fromWorker(prog)) {
    out.line(`ERROR: ${what} script of node ${n.name}: ${run.refuseWorkerFile('the script', prog)}`)
    finish(a.node, () => { if (a.kind === 'pre') engine.preDone(a.node, 1); else engine.postDone(a.node, 1) })
    return
  }
  out.line(`Running ${what} script of Node ${n.name}...`)
  // POST lines carry the job's id, as DAGMan's do
  const scriptId = a.kind === 'post' ? (clusterOf.get(a.node) ?? '-') : '-'
  jobstate.event(n.name, a.retry, `${what}_SCRIPT_STARTED`, scriptId)
  const ac = run.nodeAbort(a.node)
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
