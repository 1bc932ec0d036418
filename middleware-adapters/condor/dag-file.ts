// HTCondor DAGMan input files, read as condor_dagman reads them (src/condor_dagman/parse.cpp):
// two passes over each file, the first for the commands that make nodes (JOB, FINAL,
// SUBDAG, PROVISIONER, SERVICE, SPLICE, SUBMIT-DESCRIPTION), the second for the rest, so
// that PARENT or VARS may come before the JOB they name. Every error names file:line.
// Only reading happens here: what bgrid can run is decided by to-dag-json.ts.
import { readFileSync } from 'node:fs'
import path from 'node:path'
import { splitLines, isKeyword, Tokens, type Loc, type LogicalLine } from './lexer/lines.ts'
import { parseVarsLine } from './vars.ts'
import { Problems } from './problems.ts'

export type NodeKind = 'JOB' | 'FINAL' | 'SUBDAG' | 'PROVISIONER' | 'SERVICE'

export interface NodeVar { name: string, value: string, prepend: boolean | null, at: Loc }
export interface NodeScript {
  kind: 'PRE' | 'POST' | 'HOLD'
  /** the script and its arguments, as written */
  command: string
  defer: { status: number, time: number } | null
  debug: { file: string, stream: string } | null
  at: Loc
}

export interface DagmanNode {
  index: number
  /** the full name: splice scopes prefixed (`splice+node`) */
  name: string
  kind: NodeKind
  /** the submit file (the DAG file for SUBDAG) as written, or the name of a SUBMIT-DESCRIPTION */
  submit: string
  /** JOB name { ... }: the submit description written inline */
  inline: LogicalLine[] | null
  /** the node's directory (DIR, else the directory its DAG file is read from): relative names start here */
  dir: string
  noop: boolean
  done: Loc | null
  at: Loc
  /** which DAG file scope defined it (ALL_NODES means the nodes of one scope) */
  scope: number
  vars: NodeVar[]
  retry: { count: number, unlessExit: number | null, at: Loc } | null
  abortDagOn: { value: number, returnValue: number | null, at: Loc } | null
  priority: { value: number, at: Loc } | null
  category: { name: string, at: Loc } | null
  preSkip: { code: number, at: Loc } | null
  saveFile: { file: string, at: Loc } | null
  scripts: NodeScript[]
  /** parent node indexes, and the PARENT line of each edge */
  parents: number[]
  parentAt: Loc[]
  children: number
}

export interface Splice {
  name: string
  file: string
  dir: string
  /** nodes without parents (a CHILD splice means these) and without children (a PARENT splice means these) */
  initial: number[]
  final: number[]
  at: Loc
  /** a SUBDAG EXTERNAL read in as a splice (readDagmanFile's inlineSubdags) */
  subdag: boolean
}

/** A command that is read and kept but changes no node: CONFIG, NODE_STATUS_FILE, JOBSTATE_LOG... */
export interface DagCommand { keyword: string, args: string, at: Loc }

export interface DagmanDag {
  file: string
  dir: string
  nodes: DagmanNode[]
  byName: Map<string, number>
  splices: Map<string, Splice>
  edges: number
  maxJobs: Array<{ category: string, limit: number, at: Loc }>
  dot: { file: string, update: boolean, overwrite: boolean, include: string | null, at: Loc } | null
  commands: DagCommand[]
  descriptions: Map<string, { lines: LogicalLine[], at: Loc }>
  /** SUBDAG EXTERNAL nodes read in as splices, and what was said about them that no longer applies */
  inlined: Array<{ name: string, what: string, at: Loc }>
  /** every DAG file read (includes, splices) */
  files: string[]
}

export interface ReadOptions {
  /** read each SUBDAG EXTERNAL's DAG file into this one, as a SPLICE of the node's name (--lenient) */
  inlineSubdags?: boolean
  readFile?: (file: string) => string
  /** a full rescue DAG: node names keep their splice scopes (`splice+node`), as DAGMan writes them */
  rescue?: boolean
}

interface Scope { prefix: string, dir: string, id: number }
interface Rec { first: string, text: string, at: Loc, block: LogicalLine[] | null }

const RESERVED = ['PARENT', 'CHILD', 'ALL_NODES']
const NODE_KEYWORDS = new Set(['JOB', 'FINAL', 'SUBDAG', 'PROVISIONER', 'SERVICE', 'SPLICE', 'SUBMIT-DESCRIPTION'])
const KNOWN = 'JOB, SUBDAG, FINAL, SCRIPT, PARENT, RETRY, ABORT-DAG-ON, DOT, VARS, PRIORITY, CATEGORY, MAXJOBS, CONFIG, SET_JOB_ATTR, ENV, SPLICE, PROVISIONER, SERVICE, NODE_STATUS_FILE, REJECT, JOBSTATE_LOG, PRE_SKIP, DONE, CONNECT, PIN_IN, PIN_OUT, INCLUDE, SAVE_POINT_FILE or SUBMIT-DESCRIPTION'

class ParseError extends Error {}

/** keywords, upper-cased once each */
const UPPER = new Map<string, string>()
function upper (s: string): string {
  let u = UPPER.get(s)
  if (u === undefined) { u = s.toUpperCase(); if (UPPER.size < 1000) UPPER.set(s, u) }
  return u
}

/** strtol, but the whole token: DAGMan's values are integers */
function int (tok: string | null, what: string, opts: { min?: number, max?: number } = {}): number {
  if (tok === null) throw new ParseError(`missing ${what}`)
  if (!/^[-+]?\d+$/.test(tok)) throw new ParseError(`invalid ${what} "${tok}"`)
  const n = Number(tok)
  if (opts.min !== undefined && n < opts.min) throw new ParseError(`invalid ${what} "${tok}" (must be >= ${opts.min})`)
  if (opts.max !== undefined && n > opts.max) throw new ParseError(`invalid ${what} "${tok}" (must be <= ${opts.max})`)
  return n
}

/** `KEYWORD node number`, nothing after */
function nodeAndNumber (t: Tokens, keyword: string, what: string): { name: string, value: number } {
  const name = t.next()
  if (name === null) throw new ParseError(`missing node name (${keyword} node ${what.replace(/ /g, '-')})`)
  const value = int(t.next(), `${keyword} ${what}`)
  noMore(t, keyword)
  return { name, value }
}

/** an optional `DIR directory` (relative to `base`): the node's directory, and the token after it */
function dirOption (t: Tokens, base: string, syntax: string, quoted: boolean): { dir: string, tok: string | null } {
  const tok = t.next()
  if (!isKeyword(tok, 'DIR')) return { dir: base, tok }
  const d = quoted ? t.nextPossiblyQuoted() : t.next()
  if (d === null) throw new ParseError(`no directory after DIR (${syntax})`)
  return { dir: path.resolve(base, d), tok: t.next() }
}

function noMore (t: Tokens, keyword: string): void {
  const extra = t.next()
  if (extra !== null) throw new ParseError(`extra token (${extra}) on ${keyword} line`)
}

export function readDagmanFile (file: string, opts: ReadOptions = {}): DagmanDag {
  const abs = path.resolve(file)
  const dag: DagmanDag = {
    file: abs, dir: path.dirname(abs), nodes: [], byName: new Map(), splices: new Map(), edges: 0,
    maxJobs: [], dot: null, commands: [], descriptions: new Map(), inlined: [], files: []
  }
  const problems = new Problems(dag.dir)
  new Parser(dag, problems, opts).parseFile(abs, { prefix: '', dir: dag.dir, id: 0 }, [], null)
  problems.throwIfAny(`${file}: not a DAGMan file bgrid can read`)
  return dag
}

class Parser {
  private scopes = 0
  private readonly finals = new Map<string, string>()
  private readonly subdagScopes = new Set<string>()
  /** nodes that have a Set of parents (large fan-ins: PARENT lines checked for repeats in O(1)) */
  private readonly parentSets = new Map<number, Set<number>>()

  private readonly dag: DagmanDag
  private readonly problems: Problems
  private readonly opts: ReadOptions
  constructor (dag: DagmanDag, problems: Problems, opts: ReadOptions) { this.dag = dag; this.problems = problems; this.opts = opts }

  parseFile (file: string, scope: Scope, stack: string[], from: Loc | null): void {
    if (stack.includes(file)) { this.problems.error(from ?? { file, line: 0 }, `${path.basename(file)} includes itself (${[...stack, file].map(f => path.basename(f)).join(' -> ')})`); return }
    let text: string
    try { text = (this.opts.readFile ?? ((f: string) => readFileSync(f, 'utf8')))(file) } catch (err: any) {
      const why = err.code === 'ENOENT' ? 'no such file' : err.message
      if (from === null) this.problems.error({ file, line: 0 }, `cannot read the DAG file: ${why}`)
      else this.problems.error(from, `cannot read ${file}: ${why}`)
      return
    }
    this.dag.files.push(file)
    const recs = this.records(file, text)
    const inner = [...stack, file]
    for (const r of recs) if (NODE_KEYWORDS.has(r.first)) this.guard(r, () => { this.pass1(r, scope, inner) })
    for (const r of recs) if (!NODE_KEYWORDS.has(r.first)) this.guard(r, () => { this.pass2(r, scope, inner) })
  }

  private guard (r: Rec, fn: () => void): void {
    try { fn() } catch (err) {
      if (err instanceof ParseError) this.problems.error(r.at, err.message)
      else throw err
    }
  }

  /** logical lines to commands; inline submit descriptions ({ ... }) go with their command */
  private records (file: string, text: string): Rec[] {
    const lines = splitLines(text)
    const out: Rec[] = []
    const n = lines.text.length
    for (let i = 0; i < n; i++) {
      const l = lines.text[i]
      if (lines.comment[i] || l === '') continue
      const t = new Tokens(l)
      const first = upper(t.next() ?? '')
      const rec: Rec = { first, text: l, at: { file, line: lines.line[i] }, block: null }
      if (first === 'JOB' || first === 'FINAL' || first === 'SUBMIT-DESCRIPTION') {
        t.next()
        if ((t.nextPossiblyQuoted() ?? '').startsWith('{')) {
          let end = i + 1
          while (end < n && (lines.comment[end] || !lines.text[end].startsWith('}'))) end++
          if (end >= n) { this.problems.error(rec.at, `no closing brace for the submit description begun here (${first})`); return out }
          rec.block = []
          for (let k = i + 1; k < end; k++) rec.block.push({ text: lines.text[k], line: lines.line[k], comment: lines.comment[k] })
          i = end
        }
      }
      out.push(rec)
    }
    return out
  }

  // ---- pass 1: nodes and splices

  private pass1 (r: Rec, scope: Scope, stack: string[]): void {
    const t = new Tokens(r.text)
    t.next()
    switch (r.first) {
      case 'JOB': case 'FINAL': case 'PROVISIONER': case 'SERVICE': this.node(r.first, t, r, scope); return
      case 'SUBDAG': {
        const ext = t.next()
        if (ext === null) throw new ParseError('SUBDAG needs the EXTERNAL keyword')
        if (!isKeyword(ext, 'EXTERNAL')) throw new ParseError('only SUBDAG EXTERNAL is supported (SUBDAG EXTERNAL name file.dag [DIR dir] [NOOP] [DONE])')
        if (this.opts.inlineSubdags === true) { this.inlineSubdag(t, r, scope, stack); return }
        this.node('SUBDAG', t, r, scope)
        return
      }
      case 'SPLICE': this.splice(t, r, scope, stack); return
      case 'SUBMIT-DESCRIPTION': {
        const name = t.next()
        if (name === null) throw new ParseError('SUBMIT-DESCRIPTION needs a name: SUBMIT-DESCRIPTION name { ... }')
        if (r.block === null) throw new ParseError('SUBMIT-DESCRIPTION needs a { ... } block')
        if (this.dag.descriptions.has(name)) throw new ParseError(`a submit description named ${name} exists already`)
        this.dag.descriptions.set(name, { lines: r.block, at: r.at })
      }
    }
  }

  private node (kind: NodeKind, t: Tokens, r: Rec, scope: Scope): void {
    const syntax = `${kind === 'SUBDAG' ? 'SUBDAG EXTERNAL' : kind} name ${kind === 'SUBDAG' ? 'dagfile' : 'submitfile'} [DIR directory] [NOOP] [DONE]`
    const name = t.next()
    if (name === null) throw new ParseError(`no node name (${syntax})`)
    if (RESERVED.some(w => isKeyword(name, w))) throw new ParseError(`node name ${name} is a reserved word`)
    if (name.includes('+') && this.opts.rescue !== true) throw new ParseError(`node name ${name} contains one or more illegal characters ('+')`)
    const submit = t.nextPossiblyQuoted()
    if (submit === null) throw new ParseError(`no submit file or submit description for node ${name} (${syntax})`)
    let { dir, tok } = dirOption(t, scope.dir, syntax, true)
    let noop = false
    if (isKeyword(tok, 'NOOP')) { noop = true; tok = t.next() }
    let done = false
    if (isKeyword(tok, 'DONE')) { done = true; tok = t.next() }
    if (tok !== null) throw new ParseError(`invalid parameter "${tok}" (${syntax})`)
    if (kind === 'FINAL' && done) throw new ParseError(`FINAL node ${name} cannot be DONE`)
    if (kind !== 'SUBDAG' && submit.endsWith('.condor.sub')) throw new ParseError('a nested DAG cannot be a JOB: use SUBDAG EXTERNAL')
    const full = scope.prefix + name
    if (this.dag.byName.has(full)) throw new ParseError(`node ${name} is defined twice (first at ${this.problems.at(this.dag.nodes[this.dag.byName.get(full) ?? 0].at)})`)
    if (this.dag.splices.has(full)) throw new ParseError(`node name ${name} is also a splice name`)
    if (kind === 'FINAL') {
      if (scope.prefix !== '') throw new ParseError(`a splice cannot have a FINAL node (${name})`)
      const other = this.finals.get(scope.prefix)
      if (other !== undefined) throw new ParseError(`the DAG has a FINAL node already (${other}); a DAG has one at most`)
      this.finals.set(scope.prefix, name)
    }
    const index = this.dag.nodes.length
    this.dag.nodes.push({
      index, name: full, kind, submit, inline: submit.startsWith('{') ? (r.block ?? []) : null, dir, noop,
      done: done ? r.at : null, at: r.at, scope: scope.id, vars: [], retry: null, abortDagOn: null, priority: null,
      category: null, preSkip: null, saveFile: null, scripts: [], parents: [], parentAt: [], children: 0
    })
    this.dag.byName.set(full, index)
  }

  private splice (t: Tokens, r: Rec, scope: Scope, stack: string[]): void {
    const syntax = 'SPLICE name file.dag [DIR directory]'
    const name = t.next()
    if (name === null) throw new ParseError(`missing SPLICE name (${syntax})`)
    const file = t.next()
    if (file === null) throw new ParseError(`missing SPLICE file name (${syntax})`)
    const { dir, tok } = dirOption(t, scope.dir, syntax, false)
    if (tok !== null) throw new ParseError(`illegal token (${tok}) on SPLICE line (${syntax})`)
    this.readSplice(name, path.resolve(dir, file), dir, r.at, scope, stack, false)
  }

  /** SUBDAG EXTERNAL name file [DIR d] [NOOP] [DONE], read in as a splice of that name */
  private inlineSubdag (t: Tokens, r: Rec, scope: Scope, stack: string[]): void {
    const name = t.next()
    const file = t.nextPossiblyQuoted()
    if (name === null || file === null) throw new ParseError('SUBDAG EXTERNAL needs a node name and a DAG file')
    const { dir, tok: first } = dirOption(t, scope.dir, 'SUBDAG EXTERNAL name file.dag [DIR directory] [NOOP] [DONE]', true)
    for (let tok = first; tok !== null; tok = t.next()) {
      if (isKeyword(tok, 'NOOP') || isKeyword(tok, 'DONE')) this.dag.inlined.push({ name: scope.prefix + name, what: `${tok.toUpperCase()} on SUBDAG EXTERNAL ${name}`, at: r.at })
      else throw new ParseError(`invalid parameter "${tok}"`)
    }
    this.dag.inlined.push({ name: scope.prefix + name, what: `SUBDAG EXTERNAL ${name} (read in as a splice: its own rescue DAG, DAGMan process and whole-sub-DAG RETRY are gone)`, at: r.at })
    this.subdagScopes.add(scope.prefix + name)
    this.readSplice(name, path.resolve(dir, file), dir, r.at, scope, stack, true)
  }

  private readSplice (name: string, file: string, dir: string, at: Loc, scope: Scope, stack: string[], subdag: boolean): void {
    const full = scope.prefix + name
    if (this.dag.byName.has(full)) throw new ParseError(`splice name ${name} is also a node name`)
    if (this.dag.splices.has(full)) throw new ParseError(`splice name ${name} is used twice (splice names are unique per DAG file)`)
    const first = this.dag.nodes.length
    const inner: Scope = { prefix: `${full}+`, dir, id: ++this.scopes }
    this.parseFile(file, inner, stack, at)
    const mine = this.dag.nodes.slice(first)
    this.dag.splices.set(full, {
      name: full, file, dir, at, subdag,
      initial: mine.filter(n => n.parents.length === 0 && n.kind !== 'FINAL').map(n => n.index),
      final: mine.filter(n => n.children === 0 && n.kind !== 'FINAL').map(n => n.index)
    })
  }

  // ---- pass 2: everything else

  private pass2 (r: Rec, scope: Scope, stack: string[]): void {
    const t = new Tokens(r.text)
    t.next()
    switch (r.first) {
      case 'PARENT': this.parent(t, r, scope); return
      case 'VARS': {
        const name = t.next()
        if (name === null) throw new ParseError('missing node name (VARS node [PREPEND|APPEND] name="value" ...)')
        let line
        try { line = parseVarsLine(t.rest()) } catch (err: any) { throw new ParseError(`VARS ${name}: ${err.message}`) }
        for (const n of this.nodes(name, scope, r, 'VARS', true)) {
          for (const p of line.pairs) n.vars.push({ name: p.name, value: p.value, prepend: line.prepend, at: r.at })
        }
        return
      }
      case 'SCRIPT': this.script(t, r, scope); return
      case 'RETRY': {
        const name = t.next()
        if (name === null) throw new ParseError('missing node name (RETRY node count [UNLESS-EXIT value])')
        const count = int(t.next(), 'RETRY count', { min: 0 })
        let unlessExit: number | null = null
        const opt = t.next()
        if (opt !== null) {
          if (!isKeyword(opt, 'UNLESS-EXIT')) throw new ParseError(`invalid RETRY option ${opt} (RETRY node count [UNLESS-EXIT value])`)
          unlessExit = int(t.next(), 'UNLESS-EXIT value')
          noMore(t, 'RETRY')
        }
        for (const n of this.nodes(name, scope, r, 'RETRY', false, false)) n.retry = { count, unlessExit, at: r.at }
        return
      }
      case 'ABORT-DAG-ON': {
        const name = t.next()
        if (name === null) throw new ParseError('missing node name (ABORT-DAG-ON node exitvalue [RETURN dagreturn])')
        const value = int(t.next(), 'ABORT-DAG-ON node exit value')
        let returnValue: number | null = null
        const opt = t.next()
        if (opt !== null) {
          if (!isKeyword(opt, 'RETURN')) throw new ParseError(`invalid ABORT-DAG-ON option: ${opt}`)
          returnValue = int(t.next(), 'ABORT-DAG-ON RETURN value', { min: 0, max: 255 })
          noMore(t, 'ABORT-DAG-ON')
        }
        for (const n of this.nodes(name, scope, r, 'ABORT-DAG-ON', false)) n.abortDagOn = { value, returnValue, at: r.at }
        return
      }
      case 'PRIORITY': {
        const { name, value } = nodeAndNumber(t, 'PRIORITY', 'value')
        for (const n of this.nodes(name, scope, r, 'PRIORITY', false, false)) n.priority = { value, at: r.at }
        return
      }
      case 'CATEGORY': {
        const name = t.next()
        const cat = t.next()
        if (name === null || cat === null) throw new ParseError('CATEGORY node category: missing ' + (name === null ? 'node name' : 'category name'))
        noMore(t, 'CATEGORY')
        for (const n of this.nodes(name, scope, r, 'CATEGORY', false, false)) n.category = { name: cat.startsWith('+') ? cat.slice(1) : scope.prefix + cat, at: r.at }
        return
      }
      case 'MAXJOBS': {
        const cat = t.next()
        if (cat === null) throw new ParseError('missing MAXJOBS category name (MAXJOBS category limit)')
        const limit = int(t.next(), 'MAXJOBS value', { min: 0 })
        noMore(t, 'MAXJOBS')
        this.dag.maxJobs.push({ category: cat.startsWith('+') ? cat.slice(1) : scope.prefix + cat, limit, at: r.at })
        return
      }
      case 'PRE_SKIP': {
        const { name, value } = nodeAndNumber(t, 'PRE_SKIP', 'exit code')
        for (const n of this.nodes(name, scope, r, 'PRE_SKIP', true)) n.preSkip = { code: value, at: r.at }
        return
      }
      case 'DONE': {
        const name = t.next()
        if (name === null) throw new ParseError('missing node name (DONE node)')
        noMore(t, 'DONE')
        if (isKeyword(name, 'ALL_NODES')) throw new ParseError('DONE does not take ALL_NODES')
        for (const n of this.nodes(name, scope, r, 'DONE', false)) {
          if (n.kind === 'FINAL' || n.kind === 'SERVICE') throw new ParseError(`${n.kind} node ${n.name} cannot be DONE`)
          n.done = r.at
        }
        return
      }
      case 'DOT': {
        const file = t.next()
        if (file === null) throw new ParseError('missing dot file name (DOT file [UPDATE|DONT-UPDATE] [OVERWRITE|DONT-OVERWRITE] [INCLUDE header])')
        const dot = { file: path.resolve(scope.dir, file), update: false, overwrite: true, include: null as string | null, at: r.at }
        for (let tok = t.next(); tok !== null; tok = t.next()) {
          if (isKeyword(tok, 'UPDATE')) dot.update = true
          else if (isKeyword(tok, 'DONT-UPDATE')) dot.update = false
          else if (isKeyword(tok, 'OVERWRITE')) dot.overwrite = true
          else if (isKeyword(tok, 'DONT-OVERWRITE')) dot.overwrite = false
          else if (isKeyword(tok, 'INCLUDE')) {
            const inc = t.next()
            if (inc === null) throw new ParseError('missing DOT INCLUDE file name')
            dot.include = path.resolve(scope.dir, inc)
          }
          // DAGMan ignores any other word here
        }
        this.dag.dot = dot
        this.record(r)
        return
      }
      case 'NODE_STATUS_FILE': {
        if (t.next() === null) throw new ParseError('missing node status file name (NODE_STATUS_FILE file [min-update-time] [ALWAYS-UPDATE])')
        const min = t.next()
        if (min !== null) int(min, 'minimum update time')
        const always = t.next()
        if (always !== null && !isKeyword(always, 'ALWAYS-UPDATE')) throw new ParseError(`invalid parameter "${always}"`)
        noMore(t, 'NODE_STATUS_FILE')
        this.record(r)
        return
      }
      case 'JOBSTATE_LOG': case 'CONFIG': case 'INCLUDE': {
        const file = t.next()
        if (file === null) throw new ParseError(`missing ${r.first === 'JOBSTATE_LOG' ? 'jobstate log' : r.first === 'CONFIG' ? 'configuration' : 'include'} file name`)
        noMore(t, r.first)
        if (r.first === 'INCLUDE') { this.parseFile(path.resolve(scope.dir, file), scope, stack, r.at); return }
        this.record(r)
        return
      }
      case 'SAVE_POINT_FILE': {
        const name = t.next()
        if (name === null) throw new ParseError('no node for SAVE_POINT_FILE (SAVE_POINT_FILE node [file])')
        if (isKeyword(name, 'ALL_NODES')) throw new ParseError('SAVE_POINT_FILE does not take ALL_NODES')
        const file = t.next() ?? `${name}-${path.basename(r.at.file)}.save`
        noMore(t, 'SAVE_POINT_FILE')
        for (const n of this.nodes(name, scope, r, 'SAVE_POINT_FILE', false)) n.saveFile = { file, at: r.at }
        return
      }
      case 'REJECT': noMore(t, 'REJECT'); this.record(r); return
      case 'SET_JOB_ATTR': {
        if (!/^\S+\s*=/.test(t.rest())) throw new ParseError('SET_JOB_ATTR needs name = value')
        this.record(r)
        return
      }
      case 'ENV': {
        const how = t.next()
        if (!isKeyword(how, 'GET') && !isKeyword(how, 'SET')) throw new ParseError('ENV needs GET or SET (ENV GET VAR ... | ENV SET name=value;...)')
        if (t.rest() === '') throw new ParseError(`ENV ${how?.toUpperCase()} needs variables`)
        this.record(r)
        return
      }
      case 'CONNECT': {
        const a = t.next()
        const b = t.next()
        if (a === null || b === null) throw new ParseError('CONNECT needs two splice names (CONNECT splice1 splice2)')
        noMore(t, 'CONNECT')
        for (const s of [a, b]) if (!this.dag.splices.has(scope.prefix + s)) throw new ParseError(`splice ${s} not found`)
        this.record(r)
        return
      }
      case 'PIN_IN': case 'PIN_OUT': {
        const name = t.next()
        if (name === null) throw new ParseError(`missing node name (${r.first} node pin)`)
        int(t.next(), 'pin number', { min: 1 })
        noMore(t, r.first)
        this.nodes(name, scope, r, r.first, false)
        this.record(r)
        return
      }
      default:
        throw new ParseError(`expected ${KNOWN} (found ${new Tokens(r.text).next() ?? ''})`)
    }
  }

  private record (r: Rec): void {
    const t = new Tokens(r.text)
    t.next()
    this.dag.commands.push({ keyword: r.first, args: t.rest(), at: r.at })
  }

  /**
   * The nodes a command names: one node (its name in this file's scope, or a full
   * `splice+node` name), or ALL_NODES (this scope's nodes, FINAL ones aside).
   * A SUBDAG EXTERNAL read in as a splice has no node any more: what is said of it is kept as dropped.
   */
  private nodes (name: string, scope: Scope, r: Rec, what: string, allowFinal: boolean, allowService = true): DagmanNode[] {
    if (isKeyword(name, 'ALL_NODES')) return this.dag.nodes.filter(n => n.scope === scope.id && n.kind !== 'FINAL')
    const i = this.dag.byName.get(scope.prefix + name) ?? this.dag.byName.get(name)
    if (i === undefined) {
      if (this.subdagScopes.has(scope.prefix + name)) { this.dag.inlined.push({ name: scope.prefix + name, what: `${what} on SUBDAG EXTERNAL ${name}`, at: r.at }); return [] }
      throw new ParseError(`unknown node ${name}`)
    }
    const n = this.dag.nodes[i]
    if ((n.kind === 'FINAL' && !allowFinal) || (n.kind === 'SERVICE' && !allowService)) throw new ParseError(`${n.kind} node ${name} cannot have ${what}`)
    return [n]
  }

  private script (t: Tokens, r: Rec, scope: Scope): void {
    const syntax = 'SCRIPT [DEFER status time] [DEBUG file STDOUT|STDERR|ALL] PRE|POST|HOLD node script [arguments]'
    let kind = t.next()
    if (kind === null) throw new ParseError(`missing PRE, POST, HOLD or DEFER (${syntax})`)
    let defer: NodeScript['defer'] = null
    if (isKeyword(kind, 'DEFER')) {
      const status = int(t.next(), 'DEFER status', { min: 1 })
      const time = int(t.next(), 'DEFER time', { min: 0 })
      defer = { status, time }
      kind = t.next()
      if (kind === null) throw new ParseError(`missing PRE, POST or HOLD (${syntax})`)
    }
    let debug: NodeScript['debug'] = null
    if (isKeyword(kind, 'DEBUG')) {
      const file = t.next()
      const stream = t.next()
      if (file === null || stream === null) throw new ParseError(`SCRIPT DEBUG needs a file and STDOUT, STDERR or ALL (${syntax})`)
      if (!['STDOUT', 'STDERR', 'ALL'].includes(stream.toUpperCase())) throw new ParseError(`unknown script output stream ${stream} (STDOUT, STDERR or ALL)`)
      debug = { file, stream: stream.toUpperCase() }
      kind = t.next()
      if (kind === null) throw new ParseError(`missing PRE, POST or HOLD (${syntax})`)
    }
    const k = kind.toUpperCase()
    if (k !== 'PRE' && k !== 'POST' && k !== 'HOLD') throw new ParseError(`after SCRIPT comes PRE, POST or HOLD (or DEFER, DEBUG), not ${kind}`)
    const name = t.next()
    if (name === null) throw new ParseError(`missing node name (${syntax})`)
    const command = t.rest()
    if (command === '') throw new ParseError(`a ${k} script for node ${name} but no script file name`)
    for (const n of this.nodes(name, scope, r, 'SCRIPT', true)) {
      // a later SCRIPT (or an ALL_NODES one after a node's own) replaces the earlier one, as in DAGMan
      n.scripts = n.scripts.filter(s => s.kind !== k)
      n.scripts.push({ kind: k, command, defer, debug, at: r.at })
    }
  }

  private parent (t: Tokens, r: Rec, scope: Scope): void {
    const syntax = 'PARENT p1 [p2 ...] CHILD c1 [c2 ...]'
    const parents: number[] = []
    const children: number[] = []
    let sawChild = false
    for (let tok = t.next(); tok !== null; tok = t.next()) {
      if (!sawChild && isKeyword(tok, 'CHILD')) { sawChild = true; continue }
      const list = sawChild ? children : parents
      const splice = this.dag.splices.get(scope.prefix + tok)
      if (splice !== undefined) { list.push(...(sawChild ? splice.initial : splice.final)); continue }
      const i = this.dag.byName.get(scope.prefix + tok) ?? this.dag.byName.get(tok)
      if (i === undefined) throw new ParseError(`unknown node ${tok}`)
      if (this.dag.nodes[i].kind === 'FINAL') throw new ParseError(`FINAL node ${tok} cannot have parents or children`)
      list.push(i)
    }
    if (parents.length === 0) throw new ParseError(`missing parent node names (${syntax})`)
    if (!sawChild) throw new ParseError(`expected CHILD (${syntax})`)
    if (children.length === 0) throw new ParseError(`missing child node names (${syntax})`)
    for (const c of children.length > 1 ? new Set(children) : children) {
      const child = this.dag.nodes[c]
      for (const p of parents.length > 1 ? new Set(parents) : parents) {
        if (this.hasParent(child, p)) continue
        child.parents.push(p)
        child.parentAt.push(r.at)
        this.parentSets.get(c)?.add(p)
        this.dag.nodes[p].children++
        this.dag.edges++
      }
    }
  }

  private hasParent (child: DagmanNode, p: number): boolean {
    if (child.parents.length < 16) return child.parents.includes(p)
    let set = this.parentSets.get(child.index)
    if (set === undefined) { set = new Set(child.parents); this.parentSets.set(child.index, set) }
    return set.has(p)
  }
}
