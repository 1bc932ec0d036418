// A node's job through its life, as DAGMan submits it: given an HTCondor id (cluster.proc),
// run (a NOOP node at once, a SUBDAG EXTERNAL as a DAG run of its own, a scheduler or local
// universe job here, a vanilla job on a bgrid worker), terminated; each step a job event in
// jobstate.log and a line in dagman.out. The node's exit goes to its lifecycle (the engine).
import path from 'node:path'
import { errorMessage } from '../../protocol/errors.ts'
import type { DagmanNode } from './dag-file.ts'
import { dagmanNodeJobs, type NodeJob } from './to-dag-json.ts'
import type { Action } from './engine.ts'
import type { DagRun } from './dag-run.ts'
import { baseEnv, program, runProcess } from './processes.ts'

/** sub-DAGs nested deeper than this fail their node */
const MAX_SUBDAG_DEPTH = 32

/** scheduler/local universe jobs running at once at most (HTCondor's schedd: START_LOCAL_UNIVERSE) */
export const MAX_LOCAL_JOBS = 200

type Exit = { code: number, why?: string }

/** The jobs of one DAG's run: its HTCondor ids, and its share of local universe slots. */
export class NodeJobs {
  private readonly run: DagRun
  private cluster = 0
  private localRunning = 0
  private readonly localWaiters: Array<() => void> = []

  constructor (run: DagRun) {
    this.run = run
  }

  /** Submit a node's job(s): they run in the background; their end is told to the engine. */
  submit (a: Extract<Action, { kind: 'submit' }>): void {
    const { dag, out, jobstate, clusterOf, engine, finish } = this.run
    const n = dag.nodes[a.node]
    const id = `${++this.cluster}.0`
    clusterOf.set(a.node, id)
    out.line(`Submitting ${n.kind === 'SUBDAG' ? 'sub-DAG' : n.noop ? 'NOOP' : 'HTCondor'} Node ${n.name} job(s)...`)
    out.line(`	assigned HTCondor ID (${id.replace('.0', '.0.0')})`)
    jobstate.event(n.name, a.retry, 'SUBMIT', id)
    jobstate.event(n.name, a.retry, 'EXECUTE', id)
    const ac = this.run.nodeAbort(a.node)
    this.runJob(n, a, ac.signal).then(r => {
      jobstate.event(n.name, a.retry, 'JOB_TERMINATED', id)
      jobstate.event(n.name, a.retry, r.code === 0 ? 'JOB_SUCCESS' : 'JOB_FAILURE', String(r.code))
      out.line(`Node ${n.name} job proc (${id}.0) ${r.code === 0 ? 'completed successfully.' : `failed with status ${r.code}.${r.why !== undefined ? ` ${r.why}` : ''}`}`)
      finish(a.node, () => { engine.jobDone(a.node, r.code, r.why) })
    }, err => {
      finish(a.node, () => { engine.jobDone(a.node, 1, `Job submit failed: ${errorMessage(err)}`) })
    })
  }

  private async runJob (n: DagmanNode, a: Action, signal: AbortSignal): Promise<Exit> {
    const { o, depth, dag, engine, env, submitFiles } = this.run
    const { fromWorker, refuseWorkerFile } = this.run
    if (n.noop) return { code: 0 }
    if (n.kind === 'SUBDAG') {
      const file = path.resolve(n.dir, n.submit)
      if (fromWorker(file)) return { code: 1, why: refuseWorkerFile('the sub-DAG', file) }
      // a sub-DAG that runs itself (directly or further down) would never end
      const above = [...(o.ancestors ?? []), path.resolve(o.dagFile)]
      if (above.includes(file)) return { code: 1, why: `SUBDAG EXTERNAL ${n.name}: ${path.basename(file)} is already running above it (${above.map(f => path.basename(f)).join(' -> ')})` }
      if (depth + 1 > MAX_SUBDAG_DEPTH) return { code: 1, why: `SUBDAG EXTERNAL ${n.name}: sub-DAGs nested more than ${MAX_SUBDAG_DEPTH} deep` }
      try {
        const sub = await this.run.runSubDag({ ...o, dagFile: file, depth: depth + 1, ancestors: above, signal, outfileDir: o.outfileDir })
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
    let first: Exit | undefined
    const results = await Promise.all(jobs.map(async (j): Promise<Exit> => {
      const r = await this.runOne(j, n.dir, siblings.signal)
      if (r.code !== 0 && first === undefined && !siblings.signal.aborted) { first = r; siblings.abort() }
      return r
    })).finally(() => { signal.removeEventListener('abort', stopAll) })
    return first ?? results.find(r => r.code !== 0) ?? results[results.length - 1] ?? { code: 0 }
  }

  /** one job of a node: here (scheduler/local universe) or on a worker; `dir`: the node's, where condor_submit would run */
  private async runOne (j: NodeJob, dir: string, signal: AbortSignal): Promise<Exit> {
    if (j.universe === 'local') {
      const exe = program(j.exe, dir)
      if (this.run.fromWorker(exe)) return { code: 1, why: this.run.refuseWorkerFile('the executable', exe) }
      const release = await this.localSlot()
      try {
        if (signal.aborted) return { code: -9, why: 'removed' }
        return await runProcess(exe, j.args, { cwd: j.iwd, env: { ...baseEnv(this.run.env), ...j.env }, stdin: j.stdin, stdout: j.stdout, stderr: j.stderr, signal })
      } finally { release() }
    }
    const grid = await this.run.grid()
    return await grid.run(j, signal)
  }

  private async localSlot (): Promise<() => void> {
    while (this.localRunning >= MAX_LOCAL_JOBS) await new Promise<void>(resolve => this.localWaiters.push(resolve))
    this.localRunning++
    return () => { this.localRunning--; this.localWaiters.shift()?.() }
  }
}
