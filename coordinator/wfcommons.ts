// WfCommons workflow instances (schema 1.4 and 1.5) to runnable bgrid DAGs: each
// task reads its recorded inputs, works for its recorded runtime (times a scale),
// and writes outputs of the recorded sizes (times a scale). Pure: returns the DAG
// and the external input files to create.
import { BgridError } from '../protocol/errors.ts'
import { unsafeRelPath } from '../protocol/paths.ts'

export interface ImportOptions { timeScale: number, sizeScale: number, sleep: boolean, name?: string }
export interface ExternalFile { name: string, size: number }
export interface Imported { dag: Record<string, unknown>, external: ExternalFile[], tasks: number, totalRuntime: number }

interface Task { id: string, name?: string, parents: string[], runtime: number, inputs: Array<{ name: string, size: number }>, outputs: Array<{ name: string, size: number }>, cores: number }

function fail (msg: string): never { throw new BgridError('INVALID_DAG', `WfCommons trace: ${msg}`) }

function tasksOf (trace: any): Task[] {
  const wf = trace?.workflow
  if (wf === undefined || wf === null) fail('no "workflow" object')
  if (Array.isArray(wf.tasks)) {
    // 1.4: tasks carry files and runtimes
    return wf.tasks.map((t: any): Task => ({
      id: String(t.id ?? t.name),
      name: t.name !== undefined ? String(t.name) : undefined,
      parents: (t.parents ?? []).map(String),
      runtime: Number(t.runtimeInSeconds ?? t.runtime ?? 0),
      inputs: (t.files ?? []).filter((f: any) => f.link === 'input').map((f: any) => ({ name: String(f.name ?? f.id), size: Number(f.sizeInBytes ?? f.size ?? 0) })),
      outputs: (t.files ?? []).filter((f: any) => f.link === 'output').map((f: any) => ({ name: String(f.name ?? f.id), size: Number(f.sizeInBytes ?? f.size ?? 0) })),
      cores: Math.max(1, Number(t.cores ?? 1))
    }))
  }
  const spec = wf.specification
  if (spec === undefined || !Array.isArray(spec.tasks)) fail('neither workflow.tasks (1.4) nor workflow.specification.tasks (1.5)')
  const sizes = new Map<string, number>((spec.files ?? []).map((f: any) => [String(f.id), Number(f.sizeInBytes ?? 0)]))
  const runtimes = new Map<string, number>((wf.execution?.tasks ?? []).map((t: any) => [String(t.id), Number(t.runtimeInSeconds ?? 0)]))
  return spec.tasks.map((t: any): Task => ({
    id: String(t.id),
    name: t.name !== undefined ? String(t.name) : undefined,
    parents: (t.parents ?? []).map(String),
    runtime: runtimes.get(String(t.id)) ?? 0,
    inputs: (t.inputFiles ?? []).map((f: string) => ({ name: f, size: sizes.get(f) ?? 0 })),
    outputs: (t.outputFiles ?? []).map((f: string) => ({ name: f, size: sizes.get(f) ?? 0 })),
    cores: 1
  }))
}

/** dag.json's job id rule (schema/dag.schema.json definitions.jobId) */
const JOB_ID = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/
const sanitise = (s: string): string => s.replace(/[^A-Za-z0-9_.-]/g, '_').replace(/^[.-]/, '_').slice(0, 128) || '_'

/**
 * Job ids: the tasks' names as the trace gives them (1.4: `mProject_ID0000001`, where
 * the id is only `ID0000001`), changed only as far as the job id rule asks; the ids
 * when names are missing or not unique (1.5 names a task by its program); a suffix
 * when two names become one once sanitised.
 */
function jobIds (tasks: Task[]): Map<Task, string> {
  const names = tasks.map(t => t.name)
  const useNames = names.every(n => n !== undefined && n !== '') && new Set(names).size === names.length
  const out = new Map<Task, string>()
  const taken = new Set<string>()
  for (const t of tasks) {
    const raw = useNames ? t.name as string : t.id
    let id = JOB_ID.test(raw) ? raw : sanitise(raw)
    for (let k = 2; taken.has(id); k++) id = `${sanitise(raw).slice(0, 120)}_${k}`
    taken.add(id)
    out.set(t, id)
  }
  return out
}
const q = (s: string): string => `'${s.replace(/'/g, "'\\''")}'`

export function importWfCommons (trace: unknown, o: ImportOptions): Imported {
  const tasks = tasksOf(trace)
  if (tasks.length === 0) fail('no tasks')
  const ids = jobIds(tasks)
  const nameOf = (t: Task): string => ids.get(t) as string
  const byTraceId = new Map<string, Task>()
  for (const t of tasks) byTraceId.set(t.id, t)
  // the trace names parents by id (1.5) or by name (1.4): accept both
  const byName = new Map<string, Task>()
  for (const t of (trace as any).workflow.tasks ?? []) if (t.name !== undefined) byName.set(String(t.name), byTraceId.get(String(t.id ?? t.name)) as Task)
  const producer = new Map<string, Task>()
  for (const t of tasks) for (const f of t.outputs) producer.set(f.name, t)
  const external = new Map<string, number>()
  let totalRuntime = 0
  const jobs = tasks.map(t => {
    for (const f of [...t.inputs, ...t.outputs]) {
      const why = unsafeRelPath(f.name)
      if (why !== null) fail(`task ${t.id}: file ${JSON.stringify(f.name)}: ${why}`)
    }
    const after = t.parents.map(p => byTraceId.get(p) ?? byName.get(p)).filter((p): p is Task => p !== undefined).map(nameOf)
    const inputs = t.inputs.map(f => {
      const p = producer.get(f.name)
      if (p !== undefined && p !== t) return { src: `job:${nameOf(p)}/${f.name}`, as: f.name }
      external.set(f.name, Math.round(f.size * o.sizeScale))
      return { src: `inputs/${f.name}`, as: f.name }
    })
    const seconds = Math.round(t.runtime * o.timeScale * 1000) / 1000
    totalRuntime += seconds
    const read = t.inputs.length > 0 ? `cat ${t.inputs.map(f => q(f.name)).join(' ')} > /dev/null; ` : ''
    // CPU-bound by default (a shell busy loop bounded by `timeout`), like the recorded task
    const work = seconds <= 0 ? '' : o.sleep ? `sleep ${seconds}; ` : `timeout ${seconds} sh -c 'while :; do :; done' || true; `
    const write = t.outputs.map(f => `head -c ${Math.round(f.size * o.sizeScale)} /dev/urandom > ${q(f.name)}`).join('; ')
    return {
      id: nameOf(t),
      cmd: `${read}${work}${write}`.replace(/;\s*$/, '') || 'true',
      after: [...new Set(after)],
      inputs,
      outputs: [...new Map(t.outputs.map(f => [f.name, { name: f.name, size: Math.round(f.size * o.sizeScale) }])).values()],
      runtime: seconds,
      cores: t.cores
    }
  })
  const name = o.name ?? String((trace as any).name ?? 'wfcommons').slice(0, 100)
  return {
    dag: { name, workers: { min: 1, max: 64 }, defaults: { retries: 2 }, jobs },
    external: [...external].map(([n, size]) => ({ name: n, size })),
    tasks: tasks.length,
    totalRuntime
  }
}
