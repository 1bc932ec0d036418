// dag.json as a value: validate (JSON Schema with ajv, then the graph), normalise.
// Every error names the job and the field; all errors are reported at once. No I/O: the
// JSON, the schema and the word on each input file the DAG names (is it there?) are
// handed in by whoever read them.
import path from 'node:path'
import { Ajv, type ValidateFunction } from 'ajv'
import { BgridError } from '../../protocol/errors.ts'
import { unsafeRelPath } from '../../protocol/paths.ts'
import { parseExpr, DEFAULT_RANK, type Expr } from '../../protocol/expr.ts'
import type { Dag, InputSource, InputSpec, JobSpec, Middleware, VerifySpec } from './model.ts'

/** dag.schema.json, compiled (once: every DAG is validated against it) */
export type DagSchema = ValidateFunction

export function compileDagSchema (schema: object): DagSchema {
  // verbose: errors carry their schema (for an unknown field, the fields known there)
  return new Ajv({ allErrors: true, strict: false, verbose: true }).compile(schema)
}

/** What parsing a DAG is handed besides its JSON. */
export interface DagChecks {
  schema: DagSchema
  /** what is wrong with an input file the DAG names (null: a regular file); none: files are not checked */
  fileProblem?: (abs: string) => string | null
}

const MAX_ERRORS = 25

class Problems {
  readonly list: string[] = []
  add (msg: string): void { if (this.list.length < MAX_ERRORS) this.list.push(msg) }
  get any (): boolean { return this.list.length > 0 }
}

function where (raw: any, instancePath: string): string {
  const m = /^\/jobs\/(\d+)(\/.*)?$/.exec(instancePath)
  if (m === null) return instancePath === '' ? 'dag' : instancePath.slice(1).replace(/\//g, '.')
  const i = Number(m[1])
  const id = raw?.jobs?.[i]?.id
  const field = (m[2] ?? '').slice(1).replace(/\//g, '.')
  return `job ${typeof id === 'string' ? JSON.stringify(id) : `#${i}`} (jobs[${i}])${field !== '' ? ` field ${field}` : ''}`
}

/** other tools' names for bgrid's fields (HTCondor, Slurm, Nextflow, CWL, DAGMan...) */
const ALIASES: Record<string, string> = {
  cpu: 'cores', cpus: 'cores', ncpus: 'cores', requestcpus: 'cores', threads: 'cores', slots: 'cores',
  command: 'cmd', executable: 'cmd', arguments: 'cmd', args: 'cmd', script: 'cmd', run: 'cmd', basecommand: 'cmd',
  memory: 'ram', mem: 'ram', requestmemory: 'ram',
  requestdisk: 'disk', storage: 'disk',
  depends: 'after', dependson: 'after', dependencies: 'after', parents: 'after', needs: 'after', requires: 'after',
  environment: 'env', retry: 'retries', maxretries: 'retries', walltime: 'timeout', timelimit: 'timeout',
  input: 'inputs', files: 'inputs', output: 'outputs', name: 'id'
}

/** Edit distance with adjacent transpositions counted once (`preapre`, `retires`). */
function editDistance (a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) => [i, ...Array(b.length).fill(0)])
  for (let j = 1; j <= b.length; j++) d[0][j] = j
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1
      d[i][j] = Math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost)
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) d[i][j] = Math.min(d[i][j], d[i - 2][j - 2] + 1)
    }
  }
  return d[a.length][b.length]
}

/** What an unknown field probably meant: bgrid's name for another tool's, or the closest known one. */
export function unknownField (key: string, known: string[]): string {
  const alias = ALIASES[key.toLowerCase().replace(/[_-]/g, '')]
  if (alias !== undefined && known.includes(alias)) return `unknown field "${key}": bgrid calls it "${alias}"`
  const best = known.map(k => ({ k, d: editDistance(key.toLowerCase(), k.toLowerCase()) })).sort((x, y) => x.d - y.d)[0]
  if (best !== undefined && best.d <= Math.max(1, Math.floor(key.length / 3))) return `unknown field "${key}": did you mean "${best.k}"?`
  return `unknown field "${key}" (known: ${known.join(', ')})`
}

export function parseDagValue (raw: unknown, file: string, checks: DagChecks): Dag {
  const validateSchema = checks.schema
  const problems = new Problems()
  if (!validateSchema(raw)) {
    const seen = new Set<string>()
    for (const e of validateSchema.errors ?? []) {
      // oneOf branches repeat themselves: keep the most useful line per place
      if (e.keyword === 'oneOf' || e.keyword === 'if') continue
      const extra = e.keyword === 'enum' ? ` (${((e.params as any).allowedValues as unknown[]).join(', ')})` : ''
      const line = e.keyword === 'additionalProperties'
        ? `${where(raw, e.instancePath)}: ${unknownField(String((e.params as any).additionalProperty), Object.keys(e.parentSchema?.properties ?? {}).filter(k => k !== '$schema'))}`
        : `${where(raw, e.instancePath)}: ${e.message ?? 'invalid'}${extra}`
      if (!seen.has(line)) { seen.add(line); problems.add(line) }
    }
    throw new BgridError('INVALID_DAG', `${file}: invalid DAG\n  ${problems.list.join('\n  ')}`)
  }
  const d = raw as any
  const dir = path.dirname(path.resolve(file))
  const defaults = d.defaults ?? {}
  const byId = new Map<string, JobSpec>()
  // one parse per distinct expression: generated DAGs repeat the same requirements on every job
  const parsed = new Map<string, Expr>()
  const exprOf = (src: string | undefined, what: string): Expr | null => {
    if (src === undefined) return null
    const known = parsed.get(src)
    if (known !== undefined) return known
    try { const e = parseExpr(src, what); parsed.set(src, e); return e } catch (err: any) { problems.add(err.message); return null }
  }
  const checkFile = (abs: string): string | null => checks.fileProblem?.(abs) ?? null

  const rawJobs = d.jobs as any[]
  for (const j of rawJobs) {
    const label = `job ${JSON.stringify(j.id)}`
    if (byId.has(j.id)) { problems.add(`${label}: duplicate id`); continue }
    const cmd: string[] = typeof j.cmd === 'string' ? ['/bin/sh', '-c', j.cmd] : j.cmd
    const outputs: string[] = (j.outputs ?? []).map((o: string | { name: string }) => typeof o === 'string' ? o : o.name)
    const sizeHints: Record<string, number> = {}
    for (const o of (j.outputs ?? []) as Array<string | { name: string, size?: number }>) if (typeof o !== 'string' && o.size !== undefined) sizeHints[o.name] = o.size
    const seenOut = new Set<string>()
    for (const o of outputs) {
      const why = unsafeRelPath(o)
      if (why !== null) problems.add(`${label} field outputs: ${JSON.stringify(o)}: ${why}`)
      if (seenOut.has(o)) problems.add(`${label} field outputs: ${JSON.stringify(o)} declared twice`)
      seenOut.add(o)
    }
    const inputs: InputSpec[] = []
    const names = new Set<string>()
    for (const inp of (j.inputs ?? []) as Array<string | { src: string, as?: string }>) {
      const src = typeof inp === 'string' ? inp : inp.src
      let spec: InputSpec | undefined
      const jm = /^job:([^/]+)\/(.+)$/.exec(src)
      if (jm !== null) {
        const name = typeof inp === 'string' ? jm[2] : (inp.as ?? jm[2])
        spec = { name, source: { kind: 'job', job: jm[1], file: jm[2] } }
      } else if (src.startsWith('job:')) {
        problems.add(`${label} field inputs: ${JSON.stringify(src)}: expected job:<id>/<file>`)
        continue
      } else {
        const why = unsafeRelPath(src)
        if (why !== null) { problems.add(`${label} field inputs: ${JSON.stringify(src)}: ${why} (inputs are relative to the DAG file)`); continue }
        const abs = path.join(dir, src)
        const missing = checkFile(abs)
        if (missing !== null) problems.add(`${label} field inputs: ${JSON.stringify(src)}: ${missing} (looked for ${abs})`)
        spec = { name: typeof inp === 'string' ? src : (inp.as ?? src), source: { kind: 'file', path: abs, rel: src } }
      }
      const whyName = unsafeRelPath(spec.name)
      if (whyName !== null) problems.add(`${label} field inputs: name ${JSON.stringify(spec.name)}: ${whyName}`)
      if (names.has(spec.name)) problems.add(`${label} field inputs: two inputs named ${JSON.stringify(spec.name)} (use {"src": ..., "as": ...})`)
      names.add(spec.name)
      inputs.push(spec)
    }
    const job: JobSpec = {
      id: j.id,
      cmd,
      after: [...new Set<string>(j.after ?? [])],
      inputs,
      outputs,
      env: { ...(defaults.env ?? {}), ...(j.env ?? {}) },
      retries: j.retries ?? defaults.retries ?? 2,
      timeoutMs: Math.round((j.timeout ?? defaults.timeout ?? 0) * 1000),
      requirements: exprOf(j.requirements, `${label} field requirements`),
      cores: j.cores ?? defaults.cores ?? 1,
      ram: j.ram ?? defaults.ram ?? 0,
      disk: j.disk ?? defaults.disk ?? 0,
      network: j.network ?? defaults.network ?? true,
      runtime: j.runtime ?? 1,
      sizeHints,
      verify: verifyOf(j, defaults, d.middleware ?? 'native', label, problems)
    }
    byId.set(job.id, job)
  }
  // edges: explicit `after` plus every job:<id>/ input
  for (const job of byId.values()) {
    const label = `job ${JSON.stringify(job.id)}`
    for (const a of job.after) {
      if (!byId.has(a)) problems.add(`${label} field after: unknown job ${JSON.stringify(a)}`)
      if (a === job.id) problems.add(`${label} field after: depends on itself`)
    }
    for (const inp of job.inputs) {
      if (inp.source.kind !== 'job') continue
      const parent = byId.get(inp.source.job)
      if (parent === undefined) { problems.add(`${label} field inputs: job:${inp.source.job}/${inp.source.file}: unknown job ${JSON.stringify(inp.source.job)}`); continue }
      if (!parent.outputs.includes(inp.source.file)) problems.add(`${label} field inputs: job:${inp.source.job}/${inp.source.file}: job ${JSON.stringify(parent.id)} declares no output ${JSON.stringify(inp.source.file)}`)
      if (!job.after.includes(parent.id) && parent.id !== job.id) job.after.push(parent.id)
    }
  }
  const requirements = exprOf(d.requirements, 'dag field requirements')
  const rank = exprOf(d.rank ?? DEFAULT_RANK, 'dag field rank') ?? parseExpr(DEFAULT_RANK)
  const workers = { min: d.workers?.min ?? 1, max: d.workers?.max ?? 16 }
  if (workers.min > workers.max) problems.add(`dag field workers: min ${workers.min} > max ${workers.max}`)
  if (problems.any) throw new BgridError('INVALID_DAG', `${file}: invalid DAG\n  ${problems.list.join('\n  ')}`)

  const children = new Map<string, string[]>()
  for (const id of byId.keys()) children.set(id, [])
  for (const job of byId.values()) for (const a of job.after) children.get(a)?.push(job.id)
  const order = topoOrder(byId, children)
  if (order.length !== byId.size) {
    const cycle = findCycle(byId, new Set(order))
    throw new BgridError('INVALID_DAG', `${file}: invalid DAG\n  the jobs form a cycle: ${cycle.join(' -> ')}`)
  }
  return {
    name: d.name ?? path.basename(file, '.json'),
    dir,
    workers,
    requirements,
    rank,
    middleware: d.middleware ?? 'native',
    ...(d.priority !== undefined && d.priority !== 0 ? { priority: d.priority } : {}),
    collect: d.collect ?? 'sinks',
    jobs: [...byId.values()],
    byId,
    children,
    order
  }
}

/** A job's verification settings: its own, else the DAG's defaults, else BOINC's usual ones. */
function verifyOf (j: any, defaults: any, dagMiddleware: Middleware, label: string, problems: Problems): VerifySpec | null {
  const middleware: Middleware = j.middleware ?? defaults.middleware ?? dagMiddleware
  const pick = <T>(k: string, dflt: T): T => j[k] ?? defaults[k] ?? dflt
  if (middleware !== 'boinc') {
    const stray = ['quorum', 'replicas', 'maxErrors', 'maxTotal', 'deadline', 'compare', 'adaptive'].filter(k => j[k] !== undefined)
    if (stray.length > 0) problems.add(`${label} field ${stray[0]}: only for "middleware": "boinc" (this job is ${middleware})`)
    return null
  }
  const quorum: number = pick('quorum', 2)
  const replicas: number = pick('replicas', Math.max(2, quorum))
  if (replicas < quorum) problems.add(`${label} field replicas: ${replicas} < quorum ${quorum} (BOINC's target_nresults must be at least min_quorum)`)
  const maxTotal: number = pick('maxTotal', 2 * replicas + 2)
  if (maxTotal < replicas) problems.add(`${label} field maxTotal: ${maxTotal} < replicas ${replicas}`)
  return {
    quorum, replicas, maxTotal,
    maxErrors: pick('maxErrors', 3),
    deadlineMs: Math.round(pick('deadline', 0) * 1000),
    compare: pick<string[] | null>('compare', null),
    adaptive: pick('adaptive', true)
  }
}

function topoOrder (byId: Map<string, JobSpec>, children: Map<string, string[]>): string[] {
  const indeg = new Map<string, number>()
  for (const j of byId.values()) indeg.set(j.id, j.after.length)
  const queue = [...byId.values()].filter(j => j.after.length === 0).map(j => j.id)
  const order: string[] = []
  for (let i = 0; i < queue.length; i++) {
    const id = queue[i]
    order.push(id)
    for (const c of children.get(id) ?? []) {
      const n = (indeg.get(c) ?? 0) - 1
      indeg.set(c, n)
      if (n === 0) queue.push(c)
    }
  }
  return order
}

/** A cycle among the jobs that topological sorting could not place, as a path a -> b -> a. */
function findCycle (byId: Map<string, JobSpec>, placed: Set<string>): string[] {
  const left = [...byId.keys()].filter(id => !placed.has(id))
  const color = new Map<string, number>()
  const stack: string[] = []
  const visit = (id: string): string[] | null => {
    color.set(id, 1)
    stack.push(id)
    for (const p of byId.get(id)?.after ?? []) {
      if (placed.has(p)) continue
      if (color.get(p) === 1) return [...stack.slice(stack.indexOf(p)), p].reverse()
      if (color.get(p) === undefined) { const c = visit(p); if (c !== null) return c }
    }
    stack.pop()
    color.set(id, 2)
    return null
  }
  for (const id of left) {
    if (color.get(id) === undefined) { const c = visit(id); if (c !== null) return c }
  }
  return left.slice(0, 5)
}
