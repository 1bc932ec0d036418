// Machines have a say (HTCondor's two-sided matching): a node's custom attributes
// (`bgrid daemon --attr HasMatlab=true`), which job requirements and rank may use, and
// its START policy (`--start 'RequestMemory <= 512'`), an expression over the job and
// its submitter that must hold for the node to run the job. Pure: the daemon checks
// START on each job it is handed, the coordinator before it hands one out, both with
// these functions.
import { parseExpr, evalBool, explainFailure, isCustomName, ATTRIBUTES, type Attrs, type AttrValue, type Expr } from './expr.ts'
import { BgridError } from './errors.ts'

/** at most this many custom attributes, each value at most this many characters */
export const MAX_ATTRS = 32
export const MAX_ATTR_VALUE = 64
/** a START policy's source, at most this long (it travels in the claim offer, and in TXT when it fits) */
export const MAX_START_SOURCE = 512

/** what a node refusing a job by its START policy reports (a lost attempt's error starts with it) */
export const START_REFUSED = 'refused by the node\'s START policy'

/** the job's attributes a START policy sees, besides the node's own */
export const START_NAMES = ['RequestMemory', 'RequestCpus', 'RequestDisk', 'Owner', 'ClockHour', 'ClockMin'] as const

/**
 * One `--attr KEY=VALUE`: KEY a capitalised identifier (built-in attributes are lower
 * case), VALUE a number, true/false, or a string ("quoted" or bare).
 */
export function parseAttr (arg: string): [string, AttrValue] {
  const eq = arg.indexOf('=')
  if (eq < 0) throw new BgridError('INVALID_CONFIG', `--attr ${arg}: KEY=VALUE expected`)
  const key = arg.slice(0, eq).trim()
  let raw = arg.slice(eq + 1).trim()
  if (!isCustomName(key)) {
    const hint = (ATTRIBUTES as readonly string[]).includes(key) ? ` (${key} is built in: it is measured, not set)` : ' (a capital letter first, then letters, digits or _, at most 32)'
    throw new BgridError('INVALID_CONFIG', `--attr ${arg}: "${key}" is not an attribute name${hint}`)
  }
  if ((START_NAMES as readonly string[]).some(n => n.toLowerCase() === key.toLowerCase())) throw new BgridError('INVALID_CONFIG', `--attr ${arg}: ${key} is the job's, not the machine's`)
  let value: AttrValue
  if (/^"(.*)"$/s.test(raw) || /^'(.*)'$/s.test(raw)) value = raw.slice(1, -1)
  else if (/^(true|false)$/i.test(raw)) value = raw.toLowerCase() === 'true'
  else if (raw !== '' && /^[+-]?(\d+\.?\d*|\.\d+)(e[+-]?\d+)?$/i.test(raw) && Number.isFinite(Number(raw))) value = Number(raw)
  else value = raw
  if (typeof value === 'string') {
    raw = value
    if (raw.length > MAX_ATTR_VALUE) throw new BgridError('INVALID_CONFIG', `--attr ${key}: the value is ${raw.length} characters (at most ${MAX_ATTR_VALUE})`)
    if (/[\u0000-\u001f\u007f]/.test(raw)) throw new BgridError('INVALID_CONFIG', `--attr ${key}: control characters are not allowed in a value`)
  }
  return [key, value]
}

/** Every `--attr`, checked together (no name twice, case aside; at most MAX_ATTRS). */
export function parseAttrs (args: readonly string[]): Record<string, AttrValue> {
  if (args.length > MAX_ATTRS) throw new BgridError('INVALID_CONFIG', `--attr: at most ${MAX_ATTRS} attributes (${args.length} given)`)
  const out: Record<string, AttrValue> = {}
  const seen = new Map<string, string>()
  for (const a of args) {
    const [k, v] = parseAttr(a)
    const prev = seen.get(k.toLowerCase())
    if (prev !== undefined) throw new BgridError('INVALID_CONFIG', `--attr ${k} given twice (as ${prev} first; names ignore case)`)
    seen.set(k.toLowerCase(), k)
    out[k] = v
  }
  return out
}

/** custom attributes keyed for lookup (lower case), as expr.ts's Attrs.extra wants them */
export function extraOf (attrs: Readonly<Record<string, AttrValue>> | undefined): Record<string, AttrValue> | undefined {
  if (attrs === undefined) return undefined
  const out: Record<string, AttrValue> = {}
  for (const [k, v] of Object.entries(attrs)) if (isCustomName(k)) out[k.toLowerCase()] = v
  return Object.keys(out).length > 0 ? out : undefined
}

/** what a node says of itself (an advertisement, a claim offer) */
/** gflops: the daemon's measured floating-point speed (0 when it has not measured it) */
export interface NodeFacts { ram: number, cores: number, mhz: number, disk: number, load: number, cost: number, os: string, arch: string, gflops?: number, attrs?: Readonly<Record<string, AttrValue>> }

/** a node's attributes as expressions see them: the built-in ones, and its custom ones (`--attr`) */
export function nodeAttrs (n: NodeFacts): Attrs {
  const extra = extraOf(n.attrs)
  return { ram: n.ram, cores: n.cores, mhz: n.mhz, disk: n.disk, load: n.load, cost: n.cost, os: n.os, arch: n.arch, ...(n.gflops !== undefined && n.gflops > 0 ? { gflops: n.gflops } : {}), ...(extra !== undefined ? { extra } : {}) }
}

/** Parse a START policy (`--start`); throws INVALID_CONFIG with the column. */
export function parseStart (source: string): Expr {
  if (source.length > MAX_START_SOURCE) throw new BgridError('INVALID_CONFIG', `--start: at most ${MAX_START_SOURCE} characters (${source.length} given)`)
  try { return parseExpr(source, '--start') } catch (err: any) {
    throw new BgridError('INVALID_CONFIG', String(err.message))
  }
}

/** What START is judged on about a job: its request and who submitted it. */
export interface JobRequest {
  /** MiB (0: none declared), cores, MiB */
  ram: number
  cores: number
  disk: number
  /** the submitter's `bgrid id` (from the claim's signed proof); undefined when unsigned */
  owner?: string
}

/** The attributes a START policy is evaluated over: the node's own, and the job's. */
export function startAttrs (node: Attrs, job: JobRequest, now: Date = new Date()): Attrs {
  const extra: Record<string, AttrValue> = { ...(node.extra ?? {}) }
  extra.requestmemory = job.ram
  extra.requestcpus = Math.max(1, job.cores)
  extra.requestdisk = job.disk
  if (job.owner !== undefined) extra.owner = job.owner
  else delete extra.owner
  extra.clockhour = now.getHours()
  extra.clockmin = now.getHours() * 60 + now.getMinutes()
  return { ...node, extra }
}

export type StartVerdict = { ok: true } | { ok: false, why: string, clauses: string[] }

/** a node's START as the coordinator holds it: parsed, and bound to the run's submitter */
export interface NodeStart { expr: Expr, owner?: string }

/**
 * Does the node's START policy let it run this job? `why` names the clauses that fail,
 * with the values seen: "`RequestMemory <= 512` (RequestMemory=1024)". An UNDEFINED
 * START (it names something the job lacks) refuses, as HTCondor's does.
 */
export function checkStart (start: Expr | undefined, node: Attrs, job: JobRequest, now?: Date): StartVerdict {
  if (start === undefined) return { ok: true }
  const attrs = startAttrs(node, job, now)
  if (evalBool(start, attrs)) return { ok: true }
  const clauses = explainFailure(start, attrs).map(c => {
    const cut = c.lastIndexOf(' (')
    return cut > 0 ? `\`${c.slice(0, cut)}\`${c.slice(cut)}` : `\`${c}\``
  })
  return { ok: false, why: clauses.join('; '), clauses }
}

/** the error of an attempt a node refused: START_REFUSED first, so the coordinator knows it */
export function refusalMessage (start: Expr, why: string): string {
  return `${START_REFUSED}: ${start.source}: ${why}`
}

export function isStartRefusal (error: string | undefined): boolean {
  return error?.startsWith(START_REFUSED) === true
}
