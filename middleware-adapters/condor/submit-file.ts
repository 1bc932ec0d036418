// HTCondor submit descriptions (condor_submit's language, as DAGMan hands a node's file
// to it): `key = value` lines (keys case-insensitive; every key is also a macro),
// `+Attr = value` and `MY.Attr = value` job ClassAd attributes, `if`/`elif`/`else`/`endif`,
// and `queue [N] [vars in|from (items)]`. Values are kept as written and expanded when a
// job is made, with the node's VARS (PREPEND: before the file, so the file may override
// them; APPEND: after it), DAGMan's $(JOB) and $(RETRY), and $(Process), $(Cluster)...
import { readFileSync } from 'node:fs'
import path from 'node:path'
import { logicalLines, type Loc, type LogicalLine } from './lexer/lines.ts'
import { expandMacros, type MacroScope } from './vars.ts'

export interface QueueSpec {
  /** the count as written ('' = 1) */
  count: string
  vars: string[]
  /** items of `in` / `from`, each the values of `vars`; null: a plain `queue [N]` */
  items: string[][] | null
}

export type Statement =
  | { kind: 'set', key: string, canon: string, name: string, value: string, at: Loc }
  | { kind: 'attr', key: string, name: string, value: string, at: Loc }
  | { kind: 'queue', queue: QueueSpec, at: Loc, last: boolean }
  | { kind: 'if' | 'elif', cond: string, at: Loc }
  | { kind: 'else' | 'endif', at: Loc }

export interface SubmitDescription {
  /** the submit file (for an inline description: the DAG file it is written in) */
  file: string
  statements: Statement[]
  /** macro names used somewhere as $(name), lower case: keys that are macros, not unknown commands */
  referenced: Set<string>
}

/** An error in a submit description: where, and what. */
export class SubmitError extends Error {
  readonly at: Loc
  constructor (at: Loc, message: string) { super(message); this.at = at }
}

/** other spellings condor_submit accepts for the commands bgrid reads (job attribute names) */
const ALIASES: Record<string, string> = {
  initial_dir: 'initialdir', iwd: 'initialdir', cmd: 'executable', requestcpus: 'request_cpus', requestmemory: 'request_memory',
  requestdisk: 'request_disk', transferinputfiles: 'transfer_input_files', transferoutputfiles: 'transfer_output_files',
  shouldtransferfiles: 'should_transfer_files', whentotransferoutput: 'when_to_transfer_output', jobuniverse: 'universe'
}
const canon = new Map<string, string>()
export function canonicalKey (key: string): string {
  let c = canon.get(key)
  if (c === undefined) { const k = key.toLowerCase(); c = ALIASES[k] ?? k; canon.set(key, c) }
  return c
}

export function readSubmitFile (file: string): SubmitDescription {
  let text: string
  try { text = readFileSync(file, 'utf8') } catch (err: any) {
    throw new SubmitError({ file, line: 0 }, `cannot read the submit file: ${err.code === 'ENOENT' ? 'no such file' : err.message}`)
  }
  return parseSubmitLines(logicalLines(text), file)
}

/** `inline`: a description written in the DAG (JOB name { ... }, SUBMIT-DESCRIPTION), which queues one job without a queue line */
export function parseSubmitLines (lines: LogicalLine[], file: string, inline = false): SubmitDescription {
  const statements: Statement[] = []
  const referenced = new Set<string>()
  let depth = 0
  for (let i = 0; i < lines.length; i++) {
    const l = lines[i]
    if (l.comment || l.text === '') continue
    const at = { file, line: l.line }
    const text = l.text
    for (const m of text.matchAll(/\$\(([A-Za-z0-9_.]+)/g)) referenced.add(m[1].toLowerCase())
    const word = /^([A-Za-z_]+)(?=[ \t]|$)/.exec(text)?.[1].toLowerCase()
    if (word === 'queue') {
      const { queue, used } = parseQueue(text.slice(5).trim(), lines, i, at)
      statements.push({ kind: 'queue', queue, at, last: false })
      i += used
      continue
    }
    if (word === 'if' || word === 'elif') {
      if (word === 'elif' && depth === 0) throw new SubmitError(at, 'elif without if')
      if (word === 'if') depth++
      statements.push({ kind: word, cond: text.slice(word.length).trim(), at })
      continue
    }
    if (word === 'else' || word === 'endif') {
      if (depth === 0) throw new SubmitError(at, `${word} without if`)
      if (word === 'endif') depth--
      statements.push({ kind: word, at })
      continue
    }
    if (word === 'include' || word === 'use') throw new SubmitError(at, `not supported by bgrid: ${word} in a submit file`)
    const eq = text.indexOf('=')
    if (eq <= 0) throw new SubmitError(at, `expected key = value, queue, or if/else/endif (found ${JSON.stringify(text.length > 60 ? text.slice(0, 60) + '...' : text)})`)
    const name = text.slice(0, eq).trim()
    let value = text.slice(eq + 1).trim()
    if (name.endsWith('@')) throw new SubmitError(at, 'not supported by bgrid: multi-line values (key @= tag)')
    if (!/^\+?[A-Za-z_][A-Za-z0-9_.]*$/.test(name)) throw new SubmitError(at, `${JSON.stringify(name)} is not a submit command or macro name`)
    const attr = name.startsWith('+') ? name.slice(1) : /^my\./i.test(name) ? name.slice(3) : null
    if (attr !== null) { statements.push({ kind: 'attr', key: attr.toLowerCase(), name: attr, value, at }); continue }
    // `foo = snap $(foo)`: the old value of foo, now (condor_submit's recursive definitions)
    if (new RegExp(`\\$\\(${name.replace(/\./g, '\\.')}[:)]`, 'i').test(value)) value = `\u0000SELF\u0000${value}`
    statements.push({ kind: 'set', key: name.toLowerCase(), canon: canonicalKey(name), name, value, at })
  }
  if (inline && !statements.some(s => s.kind === 'queue')) statements.push({ kind: 'queue', queue: { count: '', vars: [], items: null }, at: { file, line: lines[lines.length - 1]?.line ?? 0 }, last: false })
  // a queue after which nothing is set again can hand its macro table to its job as it is
  const lastChange = statements.findLastIndex(s => s.kind !== 'queue')
  for (let k = lastChange + 1; k < statements.length; k++) { const s = statements[k]; if (s.kind === 'queue') s.last = true }
  if (depth !== 0) throw new SubmitError({ file, line: lines[lines.length - 1]?.line ?? 0 }, 'if without endif')
  return { file, statements, referenced }
}

/** `queue [count] [var[,var...] in|from|matching [slice] items]`, with ( ... ) lists over several lines */
function parseQueue (rest: string, lines: LogicalLine[], i: number, at: Loc): { queue: QueueSpec, used: number } {
  const m = /^(.*?)(?:^|[ \t,])(in|from|matching)(?=[ \t(]|$)(.*)$/is.exec(rest)
  if (m === null) return { queue: { count: rest, vars: [], items: null }, used: 0 }
  const how = m[2].toLowerCase()
  if (how === 'matching') throw new SubmitError(at, 'not supported by bgrid: queue ... matching (list the items with queue ... in)')
  const head = m[1].trim().split(/[ \t,]+/).filter(s => s !== '')
  const count = head.length > 0 && /^(\d+|\$\(.*\))$/.test(head[0]) ? head.shift() ?? '' : ''
  const vars = head.length > 0 ? head : ['Item']
  let body = m[3].trim()
  if (body.startsWith('[')) throw new SubmitError(at, 'not supported by bgrid: a slice in queue')
  let used = 0
  let itemLines: string[]
  if (body.startsWith('(')) {
    const close = body.indexOf(')')
    if (close >= 0) itemLines = [body.slice(1, close)]
    else {
      itemLines = body.slice(1).trim() === '' ? [] : [body.slice(1)]
      for (;;) {
        used++
        const l = lines[i + used]
        if (l === undefined) throw new SubmitError(at, 'the queue item list has no closing ")"')
        if (l.text.startsWith(')')) break
        if (!l.comment && l.text !== '') itemLines.push(l.text)
      }
    }
  } else if (how === 'from') {
    if (body.endsWith('|')) throw new SubmitError(at, 'not supported by bgrid: queue ... from a command (|)')
    const file = path.resolve(path.dirname(at.file), body)
    try { itemLines = readFileSync(file, 'utf8').split('\n').map(s => s.trim()).filter(s => s !== '' && !s.startsWith('#')) } catch (err: any) {
      throw new SubmitError(at, `queue ... from ${body}: ${err.code === 'ENOENT' ? 'no such file' : err.message}`)
    }
  } else itemLines = [body]
  const items: string[][] = []
  if (how === 'in') {
    if (vars.length > 1) throw new SubmitError(at, 'queue ... in takes one variable (use from for several)')
    for (const l of itemLines) for (const s of l.split(/[ \t,]+/)) if (s !== '') items.push([s])
  } else {
    for (const l of itemLines) {
      const parts: string[] = []
      let s = l.trim()
      for (let v = 0; v < vars.length - 1; v++) {
        const mm = /^([^ \t,]*)[ \t,]*(.*)$/.exec(s) ?? ['', s, '']
        parts.push(mm[1]); s = mm[2]
      }
      parts.push(s)
      items.push(parts)
    }
  }
  return { queue: { count, vars, items }, used }
}

/** What a node brings to its submit description. */
export interface NodeMacros {
  /** VARS (not My.): prepend true = before the file (the file may override), false = after it */
  vars: Array<{ name: string, value: string, prepend: boolean, at: Loc }>
  /** VARS My.name = ClassAd attributes of the job */
  attrs: Array<{ name: string, value: string }>
  /** DAGMan's own macros, lower-case names: job, retry, dag_status, failed_count (the file may override them) */
  dagman: Record<string, string>
  /** condor_submit's automatic ones that do not vary, lower-case names (opsys, arch, islinux, submit_file...) */
  automatic: Record<string, string>
  cluster: number
  env: Record<string, string | undefined>
  /** condor_submit's working directory: the node's directory */
  cwd: string
}

type Entry = { value: string, at: Loc }
type Table = Map<string, Entry>
const EMPTY: Table = new Map()
/** $(Process) and the like of a node's only job */
const FIRST: Record<string, string> = { process: '0', procid: '0', step: '0', itemindex: '0', row: '0', node: '' }
const DAGMAN_AT: Loc = { file: '(DAGMan)', line: 0 }
/** what varies from one job to the next (never taken from a shared cache) */
const PER_JOB = new Set(['process', 'procid', 'cluster', 'clusterid', 'step', 'itemindex', 'row', 'node'])

/**
 * Expanded values shared by the jobs of one description, for a description with no
 * conditions and one final queue: a key's value then depends on the file's own lines and
 * on the few outside names (VARS, $(JOB), $(Process)...) it refers to, directly or not.
 */
interface Shared {
  /** directory -> key -> value */
  cache: Map<string, Map<string, string>>
  /** per key: the names its value reaches through the file's macros, and those the file does not define */
  closures: Map<string, { inside: string[], outside: string[] } | null>
}
const shared = new WeakMap<SubmitDescription, Shared>()

/** One job (a "proc") of a node: its commands, expanded on demand. */
export class SubmitProc {
  private readonly scope: MacroScope
  readonly process: number
  readonly attrs: Table
  private readonly file: Table
  private readonly before: Table
  private readonly after: Table
  private readonly node: NodeMacros
  private readonly auto: Record<string, string>
  private readonly share: Shared | null

  /** file: the description's lines; before: PREPEND VARS; after: APPEND VARS; auto: $(Process) and the like */
  constructor (process: number, file: Table, before: Table, after: Table, attrs: Table, node: NodeMacros, auto: Record<string, string>, share: Shared | null) {
    this.process = process; this.file = file; this.before = before; this.after = after; this.attrs = attrs; this.node = node; this.auto = auto; this.share = share
    this.scope = { lookup: (name) => this.raw(name.toLowerCase()), env: node.env, cwd: node.cwd }
  }

  private entry (k: string): Entry | undefined {
    const e = this.after.get(k) ?? this.file.get(k) ?? this.before.get(k)
    if (e !== undefined) return e
    const d = this.node.dagman[k]
    return d === undefined ? undefined : { value: d, at: DAGMAN_AT }
  }

  private raw (k: string): string | undefined {
    if (k === 'cluster' || k === 'clusterid') return String(this.node.cluster)
    return this.auto[k] ?? this.entry(k)?.value ?? this.node.automatic[k]
  }

  /** where a command was set (the last assignment), or undefined */
  at (key: string): Loc | undefined { return this.entry(canonicalKey(key))?.at }

  /** a command's value with macros expanded; undefined if not set */
  get (key: string): string | undefined {
    const k = canonicalKey(key)
    const e = this.entry(k)
    if (e === undefined) return undefined
    const share = this.shareable(k) ? this.shared() : null
    let v = share?.get(k)
    if (v === undefined) {
      v = this.expand(e.value, e.at)
      share?.set(k, v)
    }
    return v
  }

  /** the values the description's jobs in this directory share */
  private shared (): Map<string, string> | null {
    const share = this.share
    if (share === null) return null
    let m = share.cache.get(this.node.cwd)
    if (m === undefined) { m = new Map(); share.cache.set(this.node.cwd, m) }
    return m
  }

  /** whether this key's value is the same for every job here: it reaches no name this job defines from outside the file */
  private shareable (k: string): boolean {
    const share = this.share
    if (share === null) return false
    let c = share.closures.get(k)
    if (c === undefined) { c = closure(this.file, k); share.closures.set(k, c) }
    if (c === null) return false
    if (this.after.size > 0) for (const n of c.inside) if (this.after.has(n)) return false
    for (const n of c.outside) if (this.raw(n) !== undefined) return false
    return true
  }

  /** expand a text in this job's macros; errors name `at` */
  expand (text: string, at: Loc): string {
    try { return expandMacros(text, this.scope) } catch (err: any) { throw new SubmitError(at, err.message) }
  }
}

/** the names a file key's value reaches; null when it must be expanded for each job ($RANDOM_...) */
function closure (file: Table, k: string): { inside: string[], outside: string[] } | null {
  const inside = new Set<string>()
  const outside = new Set<string>()
  const visit = (name: string): boolean => {
    if (inside.has(name) || outside.has(name)) return true
    const e = file.get(name)
    if (e === undefined || PER_JOB.has(name)) { outside.add(name); return true }
    inside.add(name)
    if (e.value.includes('$RANDOM_')) return false
    // $(name), $(name:default), and names inside function macros ($CHOICE(IsWindows, ...))
    for (const m of e.value.matchAll(/\$(?:\(|[A-Za-z_]+\()([^()]*)/g)) {
      for (const w of m[1].match(/[A-Za-z_][A-Za-z0-9_.]*/g) ?? []) if (!visit(w.toLowerCase())) return false
    }
    return true
  }
  return visit(k) ? { inside: [...inside], outside: [...outside] } : null
}

/** The jobs a node's submit description makes. Throws SubmitError. */
export function evaluateSubmit (desc: SubmitDescription, node: NodeMacros): SubmitProc[] {
  let before: Table = EMPTY
  let after: Table = EMPTY
  for (const v of node.vars) {
    const t = v.prepend ? (before === EMPTY ? (before = new Map()) : before) : (after === EMPTY ? (after = new Map()) : after)
    t.set(v.name.toLowerCase(), { value: v.value, at: v.at })
  }
  const nodeAttrs: Table = node.attrs.length === 0 ? EMPTY : new Map()
  for (const a of node.attrs) nodeAttrs.set(a.name.toLowerCase(), { value: a.value, at: DAGMAN_AT })
  const fast = simple(desc)
  if (fast !== null) {
    // one queue, no conditions: the file's lines are the same for every node (built once)
    let attrs = fast.attrs
    if (nodeAttrs.size > 0) { attrs = new Map(fast.attrs); for (const [k, v] of nodeAttrs) attrs.set(k, v) }
    const share = shared.get(desc) ?? { cache: new Map(), closures: new Map() }
    shared.set(desc, share)
    return [new SubmitProc(0, fast.file, before, after, attrs, node, FIRST, share)]
  }
  const table: Table = new Map()
  const attrs: Table = new Map(nodeAttrs)
  const procs: SubmitProc[] = []
  // what an if/else chain is doing: taking this branch, and whether a branch was taken
  const conds: Array<{ on: boolean, taken: boolean, outer: boolean }> = []
  const active = (): boolean => conds.length === 0 || conds[conds.length - 1].on
  // a job as things stand now (for conditions and recursive definitions: nothing cached)
  const probe = (): SubmitProc => new SubmitProc(0, table, before, after, attrs, node, FIRST, null)
  for (const s of desc.statements) {
    switch (s.kind) {
      case 'if': { const outer = active(); const on = outer && condition(s.cond, probe(), s.at); conds.push({ on, taken: on, outer }); continue }
      case 'elif': { const c = conds[conds.length - 1]; c.on = c.outer && !c.taken && condition(s.cond, probe(), s.at); c.taken ||= c.on; continue }
      case 'else': { const c = conds[conds.length - 1]; c.on = c.outer && !c.taken; c.taken = true; continue }
      case 'endif': conds.pop(); continue
    }
    if (!active()) continue
    if (s.kind === 'set') {
      let value = s.value
      if (value.startsWith('\u0000SELF\u0000')) value = probe().expand(value.slice(6), s.at)
      setKey(table, s, value)
      continue
    }
    if (s.kind === 'attr') { attrs.set(s.key, { value: s.value, at: s.at }); continue }
    const q = s.queue
    const countText = q.count === '' ? '1' : probe().expand(q.count, s.at).trim()
    if (!/^\d+$/.test(countText)) throw new SubmitError(s.at, `queue count ${JSON.stringify(countText)} is not a number`)
    const count = Number(countText)
    const items = q.items ?? [[]]
    for (let item = 0; item < items.length; item++) {
      for (let step = 0; step < count; step++) {
        const snapshot: Table = new Map(table)
        if (q.items !== null) q.vars.forEach((v, k) => { snapshot.set(v.toLowerCase(), { value: items[item][k] ?? '', at: s.at }) })
        const p = String(procs.length)
        procs.push(new SubmitProc(procs.length, snapshot, before, after, new Map(attrs), node, {
          process: p, procid: p, step: String(step), itemindex: String(item), row: String(item), node: ''
        }, null))
      }
    }
  }
  return procs
}

/** the key as written (a macro name) and as the command it stands for (initial_dir is initialdir) */
function setKey (table: Table, s: { key: string, canon: string, at: Loc }, value: string): void {
  const entry = { value, at: s.at }
  table.set(s.key, entry)
  if (s.canon !== s.key) table.set(s.canon, entry)
}

const simpleCache = new WeakMap<SubmitDescription, { file: Table, attrs: Table } | null>()
/** the file's lines as one table, for a description with no conditions, no recursive definitions and one `queue` (or `queue 1`) at the end */
function simple (desc: SubmitDescription): { file: Table, attrs: Table } | null {
  let v = simpleCache.get(desc)
  if (v !== undefined) return v
  v = null
  const queues = desc.statements.filter(s => s.kind === 'queue')
  const q = queues[0]
  if (queues.length === 1 && q.kind === 'queue' && q.last && q.queue.items === null && (q.queue.count === '' || q.queue.count === '1') &&
    desc.statements.every(s => s.kind === 'set' || s.kind === 'attr' || s.kind === 'queue') &&
    desc.statements.every(s => s.kind !== 'set' || !s.value.startsWith('\u0000SELF\u0000'))) {
    const file: Table = new Map()
    const attrs: Table = new Map()
    for (const s of desc.statements) {
      if (s.kind === 'set') setKey(file, s, s.value)
      else if (s.kind === 'attr') attrs.set(s.key, { value: s.value, at: s.at })
    }
    v = { file, attrs }
  }
  simpleCache.set(desc, v)
  return v
}

/** `if defined NAME`, `if ! defined NAME`, or a value that is true/false/yes/no/a number once expanded */
function condition (cond: string, probe: SubmitProc, at: Loc): boolean {
  const d = /^(!\s*)?defined\s+(\S+)$/i.exec(cond)
  if (d !== null) {
    const name = d[2].replace(/^\$\((.*)\)$/, '$1')
    const defined = probe.get(name) !== undefined && probe.get(name) !== ''
    return d[1] === undefined ? defined : !defined
  }
  const v = probe.expand(cond, at).trim()
  if (/^(true|yes)$/i.test(v)) return true
  if (/^(false|no)$/i.test(v)) return false
  if (/^[-+]?\d+(\.\d+)?$/.test(v)) return Number(v) !== 0
  throw new SubmitError(at, `not supported by bgrid: the condition ${JSON.stringify(cond)} (bgrid reads if defined NAME, and true/false/numbers)`)
}

const UNIT: Record<string, number> = { '': 0, K: 1, M: 2, G: 3, T: 4 }

/**
 * request_memory (MiB unless a unit says otherwise) and request_disk (KiB unless...):
 * a number and an optional K/KB, M/MB, G/GB, T/TB (powers of 1024, case-insensitive),
 * returned in MiB, rounded up. Throws an Error for anything else (expressions included).
 */
export function parseQuantityMiB (value: string, defaultUnit: 'K' | 'M'): number {
  const m = /^\s*(\d+(?:\.\d*)?|\.\d+)\s*([KMGT]?)(?:i?B)?\s*$/i.exec(value)
  if (m === null) throw new Error(`${JSON.stringify(value)} is not a quantity bgrid reads (a number with an optional K, M, G or T unit)`)
  const unit = m[2].toUpperCase() === '' ? defaultUnit : m[2].toUpperCase()
  return Math.ceil(Number(m[1]) * 1024 ** (UNIT[unit] - 2) - 1e-9)
}
