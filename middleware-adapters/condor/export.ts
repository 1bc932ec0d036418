// dag.json (as the run core's DAG parser validated it) to an HTCondor DAGMan DAG that
// condor_submit_dag accepts and `bgrid import dagman` reads back (to-dag-json.ts).
//
// Layout: DIR/NAME.dag, and for each job a node directory DIR/<id>/ (`JOB id id.sub DIR id`)
// holding its submit file. DAGMan runs condor_submit in the node's directory, and a job's
// output files come back there, as bgrid's come back to --out/<job>/: jobs that write
// files of the same name (a bag of tasks each writing result.txt) do not overwrite each
// other, and a child reads its parent's output as ../<parent>/<file>. Inputs on disk are
// named relative to the node's directory: nothing is copied.
//
// HTCondor puts every transferred file at the top of the job's directory, by its base
// name: an input whose name in the job's directory is not the base name of the file it
// comes from (`as`, or a name with a directory) cannot be written, and is refused. So is
// what has no DAGMan form at all (BOINC-style verified execution). What HTCondor has no
// knob for (network: false, bgrid-only attributes in requirements) is left out with a
// warning. docs/condor.md says what maps to what.
import { existsSync, mkdirSync, writeFileSync, statSync } from 'node:fs'
import path from 'node:path'
import type jsep from 'jsep'
import { BgridError } from '../../protocol/errors.ts'
import { DEFAULT_RANK, type Expr } from '../../protocol/expr.ts'
import { type Dag, type JobSpec } from '../../coordinator/core/model.ts'
import { doubleQuoted } from './quote.ts'

export interface ExportedFile { path: string, text: string }

export interface Exported {
  /** the DAG's name: NAME.dag, NAME.log */
  name: string
  dir: string
  dagFile: string
  /** the .dag, then one submit file per job (absolute paths) */
  files: ExportedFile[]
  /** the node directories to make */
  dirs: string[]
  /** what HTCondor cannot be told, once per kind (the jobs it concerns listed) */
  warnings: string[]
  summary: { jobs: number, edges: number, retried: number }
}

const MAX_PROBLEMS = 25

// ---- submit-file values

/**
 * A value as condor_submit reads it literally: `$(`, `$NAME(` (its macros and functions)
 * and `$$` (HTCondor's match-time substitution) are written with `$(DOLLAR)` and
 * `$$(DOLLARDOLLAR)`; any other `$` is itself.
 */
export function macroSafe (s: string): string {
  if (!s.includes('$')) return s
  let out = ''
  for (let i = 0; i < s.length; i++) {
    const c = s[i]
    if (c !== '$') { out += c; continue }
    if (s[i + 1] === '$' && s[i + 2] === '(') { out += '$$(DOLLARDOLLAR)'; i++; continue }
    if (s[i + 1] === '(' || s[i + 1] === '$' || /^[A-Za-z_]+\(/.test(s.slice(i + 1, i + 42))) { out += '$(DOLLAR)'; continue }
    out += '$'
  }
  return out
}

/** one word of condor_submit's new syntax: single quotes group, '' is a quote inside them */
function newSyntaxWord (w: string): string {
  if (w !== '' && !/[ \t'"]/.test(w)) return w
  return `'${w.replace(/'/g, "''")}'`
}

/** words in the new syntax: the whole value in double quotes, "" for a double quote */
export function newSyntax (words: string[]): string {
  return `"${words.map(newSyntaxWord).join(' ').replace(/"/g, '""')}"`
}

/** an environment in the new syntax: name=value, the value quoted when it must be (one='a b') */
export function newSyntaxEnv (env: Record<string, string>): string {
  return `"${Object.entries(env).map(([k, v]) => `${k}=${newSyntaxWord(v)}`).join(' ').replace(/"/g, '""')}"`
}

/** why a text cannot be a submit-file value (one logical line), or null */
function lineProblem (s: string): string | null {
  if (/[\n\r]/.test(s)) return 'a line break cannot be written in a submit file'
  if (s.includes('\u0000')) return 'a NUL character cannot be written in a submit file'
  return null
}

/** why a path cannot be an entry of transfer_input_files / transfer_output_files, or null */
function listProblem (p: string): string | null {
  if (/[\s,]/.test(p)) return 'HTCondor\'s file lists are separated by commas and spaces: a name with either cannot be listed'
  if (p.includes('$$(')) return '$$( is HTCondor\'s match-time substitution, which bgrid import refuses in file names'
  if (p.includes('\\')) return 'a backslash in a file name is not written (HTCondor reads it as a path separator on Windows, and as a line continuation at the end of a line)'
  return lineProblem(p)
}

// ---- requirements: bgrid's expressions (protocol/expr.ts) to ClassAd

class Untranslatable extends Error {}

/** bgrid's os and arch values, as HTCondor's OpSys and Arch say them */
const OPSYS: Record<string, string> = { linux: 'LINUX', win32: 'WINDOWS', darwin: 'OSX', freebsd: 'FREEBSD' }
const ARCH: Record<string, string> = { x64: 'X86_64', ia32: 'INTEL', arm64: 'aarch64', arm: 'ARM', ppc64: 'PPC64LE' }
/** what bgrid's attributes are in a machine ClassAd; disk: KiB there, MiB here (a real division: ClassAd's / of integers truncates) */
/** gflops and mhz: the same mapping as import's (KFlops from the GFLOPS benchmark, Mips from the clock) */
const MACHINE: Record<string, string> = { ram: 'TARGET.Memory', cores: 'TARGET.Cpus', disk: '(TARGET.Disk / 1024.0)', gflops: '(TARGET.KFlops / 1000000.0)', mhz: 'TARGET.Mips' }
const NO_EQUIVALENT: Record<string, string> = {
  load: 'HTCondor\'s LoadAvg is not bgrid\'s owner load, 0..1',
  cost: 'HTCondor machines advertise no price'
}
/** custom attribute names that mean HTCondor's own attributes there (TARGET.Memory is the slot's memory) */
const CONDOR_OWN = new Set(['memory', 'cpus', 'disk', 'opsys', 'arch', 'kflops', 'mips', 'undefined', 'error'])
const PREC: Record<string, number> = {
  '||': 1, '&&': 2, '==': 6, '!=': 6, '===': 6, '!==': 6, '=?=': 6, '=!=': 6, '<': 7, '<=': 7, '>': 7, '>=': 7, '+': 9, '-': 9, '*': 10, '/': 10, '%': 10
}
const UNARY_PREC = 11
const ATOM = 100
const EQUALITY = new Set(['==', '!=', '===', '!==', '=?=', '=!='])

interface Printed { text: string, prec: number }

function stringLiteral (v: string): string {
  if (/[\u0000-\u001f\u007f]/.test(v)) throw new Untranslatable(`the string ${JSON.stringify(v)} has a control character`)
  return doubleQuoted(v)
}

/** a bgrid expression as a ClassAd expression; throws Untranslatable */
function classAd (e: jsep.Expression): Printed {
  switch (e.type) {
    case 'Literal': {
      const v = (e as jsep.Literal).value
      if (typeof v === 'string') return { text: stringLiteral(v), prec: ATOM }
      if (typeof v === 'boolean') return { text: String(v), prec: ATOM }
      if (typeof v === 'number' && Number.isFinite(v)) return { text: String(v), prec: ATOM }
      throw new Untranslatable(`the literal ${String((e as jsep.Literal).raw)}`)
    }
    case 'Identifier': {
      const name = (e as jsep.Identifier).name
      if (name === 'true' || name === 'false') return { text: name, prec: ATOM }
      const m = MACHINE[name]
      if (m !== undefined) return { text: m, prec: ATOM }
      if (name === 'os' || name === 'arch') throw new Untranslatable(`${name} is translated only when compared with a string (${name} == "${name === 'os' ? 'linux' : 'x64'}")`)
      const why = NO_EQUIVALENT[name]
      if (why !== undefined) throw new Untranslatable(`${name} has no ClassAd equivalent: ${why}`)
      if (CONDOR_OWN.has(name.toLowerCase())) throw new Untranslatable(`the custom attribute ${name} would mean HTCondor's own ${name} (TARGET.${name})`)
      return { text: `TARGET.${name}`, prec: ATOM }
    }
    case 'UnaryExpression': {
      const u = e as jsep.UnaryExpression
      const a = classAd(u.argument)
      return { text: `${u.operator}${a.prec < UNARY_PREC ? `(${a.text})` : a.text}`, prec: UNARY_PREC }
    }
    case 'BinaryExpression': {
      const b = e as jsep.BinaryExpression
      const p = PREC[b.operator]
      if (p === undefined) throw new Untranslatable(`the operator ${b.operator}`)
      if (EQUALITY.has(b.operator)) {
        const mapped = osArchComparison(b)
        if (mapped !== null) return { text: mapped, prec: p }
      }
      const l = classAd(b.left)
      const r = classAd(b.right)
      const op = b.operator === '===' ? '==' : b.operator === '!==' ? '!=' : b.operator
      const left = l.prec < p ? `(${l.text})` : l.text
      const right = r.prec <= p ? `(${r.text})` : r.text
      // ClassAd's / of two integers truncates; bgrid's does not
      if (op === '/') return { text: `1.0 * ${left} / ${right}`, prec: p }
      return { text: `${left} ${op} ${right}`, prec: p }
    }
    case 'ConditionalExpression': {
      const c = e as jsep.ConditionalExpression
      return { text: `(${classAd(c.test).text} ? ${classAd(c.consequent).text} : ${classAd(c.alternate).text})`, prec: ATOM }
    }
    case 'CallExpression': {
      const c = e as jsep.CallExpression
      const name = c.callee.type === 'Identifier' ? (c.callee as jsep.Identifier).name : '?'
      if ((name === 'min' || name === 'max') && c.arguments.length > 0) {
        // no two-argument min/max in ClassAds (theirs take a list): a conditional per argument
        const args = c.arguments.map(a => classAd(a).text)
        const cmp = name === 'min' ? '<' : '>'
        return { text: args.reduce((acc, x) => `(${acc} ${cmp} ${x} ? ${acc} : ${x})`), prec: ATOM }
      }
      throw new Untranslatable(`the function ${name}() has no translation (bgrid translates min and max)`)
    }
    default:
      throw new Untranslatable(e.type)
  }
}

/** `os == "linux"` and `arch != "x64"` (either side): OpSys and Arch with HTCondor's values; null when it is not such a comparison */
function osArchComparison (b: jsep.BinaryExpression): string | null {
  const isAttr = (x: jsep.Expression): x is jsep.Identifier => x.type === 'Identifier' && ((x as jsep.Identifier).name === 'os' || (x as jsep.Identifier).name === 'arch')
  const isStr = (x: jsep.Expression): x is jsep.Literal => x.type === 'Literal' && typeof (x as jsep.Literal).value === 'string'
  let attr: jsep.Identifier, lit: jsep.Literal, attrFirst: boolean
  if (isAttr(b.left) && isStr(b.right)) { attr = b.left; lit = b.right; attrFirst = true } else if (isAttr(b.right) && isStr(b.left)) { attr = b.right; lit = b.left; attrFirst = false } else return null
  const map = attr.name === 'os' ? OPSYS : ARCH
  const v = lit.value as string
  // == ignores case (in bgrid and in ClassAds); =?= does not
  const caseless = b.operator !== '=?=' && b.operator !== '=!='
  const key = caseless ? Object.keys(map).find(k => k === v.toLowerCase()) : Object.keys(map).find(k => k === v)
  if (key === undefined) throw new Untranslatable(`${attr.name} ${JSON.stringify(v)} has no HTCondor ${attr.name === 'os' ? 'OpSys' : 'Arch'} value (bgrid's: ${Object.keys(map).join(', ')})`)
  const a = attr.name === 'os' ? 'TARGET.OpSys' : 'TARGET.Arch'
  const s = `"${map[key]}"`
  const op = b.operator === '===' ? '==' : b.operator === '!==' ? '!=' : b.operator
  return attrFirst ? `${a} ${op} ${s}` : `${s} ${op} ${a}`
}

/** a bgrid expression printed back in bgrid's syntax (for a `# bgrid:` comment) */
function bgridText (e: jsep.Expression): Printed {
  switch (e.type) {
    case 'Literal': return { text: typeof (e as jsep.Literal).value === 'string' ? JSON.stringify((e as jsep.Literal).value) : String((e as jsep.Literal).raw), prec: ATOM }
    case 'Identifier': return { text: (e as jsep.Identifier).name, prec: ATOM }
    case 'UnaryExpression': { const u = e as jsep.UnaryExpression; const a = bgridText(u.argument); return { text: `${u.operator}${a.prec < UNARY_PREC ? `(${a.text})` : a.text}`, prec: UNARY_PREC } }
    case 'BinaryExpression': {
      const b = e as jsep.BinaryExpression
      const p = PREC[b.operator] ?? 0
      const l = bgridText(b.left)
      const r = bgridText(b.right)
      return { text: `${l.prec < p ? `(${l.text})` : l.text} ${b.operator} ${r.prec <= p ? `(${r.text})` : r.text}`, prec: p }
    }
    case 'ConditionalExpression': { const c = e as jsep.ConditionalExpression; return { text: `(${bgridText(c.test).text} ? ${bgridText(c.consequent).text} : ${bgridText(c.alternate).text})`, prec: ATOM } }
    case 'CallExpression': { const c = e as jsep.CallExpression; return { text: `${bgridText(c.callee).text}(${c.arguments.map(a => bgridText(a).text).join(', ')})`, prec: ATOM } }
    default: return { text: e.type, prec: ATOM }
  }
}

/** the top-level && terms */
function conjuncts (e: jsep.Expression, out: jsep.Expression[] = []): jsep.Expression[] {
  if (e.type === 'BinaryExpression' && (e as jsep.BinaryExpression).operator === '&&') {
    conjuncts((e as jsep.BinaryExpression).left, out)
    conjuncts((e as jsep.BinaryExpression).right, out)
  } else out.push(e)
  return out
}

export interface TranslatedRequirements {
  /** the ClassAd expression of the terms that translate; null: none does */
  classad: string | null
  /** the terms left out, in bgrid's syntax, each with why */
  left: Array<{ text: string, why: string }>
}

/**
 * A requirement (the DAG's and the job's, all of which must hold) as a ClassAd. Each
 * top-level && term translates or is left out: what is written is implied by the
 * requirement (never stricter), and what is left out is said.
 */
export function requirementsToClassAd (exprs: Array<Expr | null>): TranslatedRequirements {
  const kept: string[] = []
  const left: TranslatedRequirements['left'] = []
  const seen = new Set<string>()
  for (const e of exprs) {
    if (e === null) continue
    for (const term of conjuncts(e.ast)) {
      try {
        const p = classAd(term)
        const text = p.prec <= PREC['&&'] ? `(${p.text})` : p.text
        if (!seen.has(text)) { seen.add(text); kept.push(text) }
      } catch (err) {
        if (!(err instanceof Untranslatable)) throw err
        left.push({ text: bgridText(term).text, why: err.message })
      }
    }
  }
  return { classad: kept.length > 0 ? kept.join(' && ') : null, left }
}

/** a rank: all of it or nothing */
export function rankToClassAd (e: Expr): string {
  return classAd(e.ast).text
}

// ---- the DAG

const SYSTEM_DIRS = ['/bin/', '/usr/bin/', '/usr/local/bin/', '/sbin/', '/usr/sbin/']
/** DAGMan's reserved node names (parse.cpp) */
const RESERVED = new Set(['PARENT', 'CHILD', 'ALL_NODES'])

/** the DAG's name as a file name */
function fileName (name: string): string {
  const n = name.replace(/[^A-Za-z0-9_.-]/g, '_').replace(/^[.-]+/, '')
  return n === '' ? 'dag' : n
}

class Warnings {
  private readonly byKind = new Map<string, string[]>()
  add (kind: string, job?: string): void {
    let l = this.byKind.get(kind)
    if (l === undefined) { l = []; this.byKind.set(kind, l) }
    if (job !== undefined) l.push(job)
  }

  list (): string[] {
    return [...this.byKind].map(([kind, jobs]) => jobs.length === 0
      ? kind
      : `${kind} (job${jobs.length > 1 ? 's' : ''} ${jobs.slice(0, 5).join(', ')}${jobs.length > 5 ? ` and ${jobs.length - 5} more` : ''})`)
  }
}

/**
 * The DAGMan files for a parsed dag.json, written nowhere yet. `dir`: where they go
 * (NAME.dag, and DIR/<id>/<id>.sub). Throws INVALID_DAG with every job and field that
 * has no DAGMan form.
 */
export function dagToDagman (dag: Dag, opts: { dir: string, source?: string }): Exported {
  const dir = path.resolve(opts.dir)
  const name = fileName(dag.name)
  const problems: string[] = []
  const problem = (msg: string): void => { if (problems.length < MAX_PROBLEMS) problems.push(msg) }
  const warnings = new Warnings()
  const nodeDir = (id: string): string => path.join(dir, id)
  const rel = (from: string, abs: string): string => path.relative(from, abs).split(path.sep).join('/')

  // the name in the parent's directory each job's output comes back as
  const ownFiles = (id: string): Set<string> => new Set([`${id}.sub`, `${id}.out`, `${id}.err`])
  for (const j of dag.jobs) {
    const label = `job ${JSON.stringify(j.id)}`
    if (RESERVED.has(j.id.toUpperCase())) problem(`${label} field id: ${j.id} is a word DAGMan reserves (PARENT, CHILD, ALL_NODES): rename the job`)
    if (j.id === `${name}.dag` || j.id === `${name}.log` || j.id.startsWith(`${name}.dag.`)) problem(`${label} field id: its directory ${j.id}/ would take the name of the DAG's own file ${j.id} in ${dir}: rename the job or the DAG`)
    const back = new Map<string, string>()
    for (const o of j.outputs) {
      const base = path.posix.basename(o)
      const lp = listProblem(o)
      if (lp !== null) { problem(`${label} field outputs: ${JSON.stringify(o)}: ${lp}`); continue }
      if (ownFiles(j.id).has(base)) { problem(`${label} field outputs: ${JSON.stringify(o)} would come back over the job's own ${base} (its submit file, stdout or stderr) in ${j.id}/`); continue }
      const other = back.get(base)
      if (other !== undefined) { problem(`${label} field outputs: ${JSON.stringify(other)} and ${JSON.stringify(o)} would both come back as ${base} (HTCondor brings outputs back by their base name)`); continue }
      back.set(base, o)
    }
  }
  // an input file kept in a node's directory would be mixed with (or overwritten by) what comes back there
  for (const j of dag.jobs) {
    for (const inp of j.inputs) {
      if (inp.source.kind !== 'file') continue
      const r = path.relative(dir, inp.source.path)
      const top = r.split(path.sep)[0]
      if (!r.startsWith('..') && !path.isAbsolute(r) && dag.byId.has(top) && r !== top) {
        problem(`job ${JSON.stringify(j.id)} field inputs: ${JSON.stringify(inp.source.rel)} is in ${nodeDir(top)}, the node directory of job ${JSON.stringify(top)}, where its outputs come back: export to another directory (-o)`)
      }
    }
  }

  const logName = `${name}.log`
  const files: ExportedFile[] = []
  let edges = 0
  let retried = 0
  const dagLines: string[] = [
    `# Written by bgrid export from ${(opts.source ?? dag.dir).replace(/[\r\n]/g, ' ')} (dag "${dag.name.replace(/[\r\n]/g, ' ')}"): ${dag.jobs.length} job(s).`,
    `# Run it with: cd ${dir} && condor_submit_dag ${name}.dag`,
    '# Each node runs in its own directory (DIR), where its submit file is and its output files come back.'
  ]
  // the DAG's rank: dag.json has one for all jobs; the default (cores * mhz / (1 + cost)) has no ClassAd form
  let rank: string | null = null
  if (dag.rank.source !== DEFAULT_RANK) {
    try { rank = rankToClassAd(dag.rank) } catch (err) {
      if (!(err instanceof Untranslatable)) throw err
      const text = dag.rank.source.replace(/\s+/g, ' ')
      dagLines.push(`# bgrid: rank = ${text}`)
      warnings.add(`dag field rank: ${text} left out (written as a # bgrid: comment in the .dag): ${err.message}`)
    }
  }
  if (dag.requirements !== null) {
    const r = requirementsToClassAd([dag.requirements])
    for (const l of r.left) warnings.add(`dag field requirements: ${l.text} left out of every job's requirements (written as a # bgrid: comment): ${l.why}`)
  }
  dagLines.push(`# bgrid workers: min ${dag.workers.min}, max ${dag.workers.max} (machines to claim: no DAGMan equivalent)`, '')

  // generated DAGs repeat one requirement on every job (parseDag parses each text once: one Expr)
  const translated = [new Map<Expr | null, TranslatedRequirements>(), new Map<Expr | null, TranslatedRequirements>()]
  const translate = (e: Expr | null, alone = false): TranslatedRequirements => {
    const cache = translated[alone ? 1 : 0]
    let r = cache.get(e)
    if (r === undefined) { r = requirementsToClassAd(alone ? [e] : [dag.requirements, e]); cache.set(e, r) }
    return r
  }
  for (const j of dag.jobs) {
    const sub = submitFile(j, { dag, dir, nodeDir: nodeDir(j.id), logName, rank, rel, translate, problem, warnings })
    if (sub === null) continue
    files.push({ path: path.join(nodeDir(j.id), `${j.id}.sub`), text: sub })
    dagLines.push(`JOB ${j.id} ${j.id}.sub DIR ${j.id}`)
  }
  if (problems.length > 0) throw new BgridError('INVALID_DAG', `${opts.source ?? dag.name}: cannot be written as a DAGMan DAG\n  ${problems.join('\n  ')}`)
  const parentLines: string[] = []
  const retryLines: string[] = []
  for (const j of dag.jobs) {
    if (j.after.length > 0) { parentLines.push(`PARENT ${j.after.join(' ')} CHILD ${j.id}`); edges += j.after.length }
    if (j.retries > 0) { retryLines.push(`RETRY ${j.id} ${j.retries}`); retried++ }
  }
  if (parentLines.length > 0) dagLines.push('', ...parentLines)
  if (retryLines.length > 0) dagLines.push('', ...retryLines)
  const dagFile = path.join(dir, `${name}.dag`)
  return {
    name,
    dir,
    dagFile,
    files: [{ path: dagFile, text: dagLines.join('\n') + '\n' }, ...files],
    dirs: dag.jobs.map(j => nodeDir(j.id)),
    warnings: warnings.list(),
    summary: { jobs: dag.jobs.length, edges, retried }
  }
}

interface SubmitContext {
  dag: Dag
  dir: string
  nodeDir: string
  logName: string
  rank: string | null
  rel: (from: string, abs: string) => string
  /** a job's requirement with the DAG's (alone: the job's own), translated once per expression */
  translate: (e: Expr | null, alone?: boolean) => TranslatedRequirements
  problem: (msg: string) => void
  warnings: Warnings
}

/** one job's submit description; null when it has problems (reported through ctx.problem) */
function submitFile (j: JobSpec, ctx: SubmitContext): string | null {
  const label = `job ${JSON.stringify(j.id)}`
  let bad = false
  const problem = (msg: string): void => { bad = true; ctx.problem(`${label} ${msg}`) }
  if (j.verify !== null) {
    problem(`field middleware: "boinc" (verified execution: ${j.verify.replicas} replicas, quorum ${j.verify.quorum}) has no DAGMan form: HTCondor runs a job once and takes its result`)
  }

  // the command: argv[0] is the executable
  const lines: string[] = [`# bgrid export: job ${j.id}`, 'universe = vanilla']
  const argv = j.cmd
  const exe = argv[0]
  let args = argv.slice(1)
  // an input that is the program itself (cmd ["./run.sh"]): transferred as the executable, not again as an input
  let exeInput: string | null = null
  for (const [k, a] of argv.entries()) {
    const why = lineProblem(a)
    if (why !== null) problem(`field cmd: ${k === 0 ? 'the program' : `argument ${k}`} ${JSON.stringify(a.length > 40 ? a.slice(0, 40) + '...' : a)}: ${why}${j.cmd[0] === '/bin/sh' && j.cmd[1] === '-c' ? ' (write a multi-line shell command on one line, with ; or &&, or as a script input)' : ''}`)
  }
  if (path.posix.isAbsolute(exe)) {
    // runs where it is on the machine, as on a bgrid worker
    lines.push(`executable = ${macroSafe(exe)}`, 'transfer_executable = false')
  } else if (!exe.includes('/')) {
    // a program looked up in PATH: condor_submit would take a bare name as a file of the submit directory
    lines.push('executable = /usr/bin/env', 'transfer_executable = false')
    args = argv
  } else {
    const name = path.posix.normalize(exe)
    const inp = j.inputs.find(i => i.name === name)
    if (inp === undefined) problem(`field cmd: the program ${exe} is a relative path but no input of the job is named ${name}`)
    else {
      exeInput = inp.name
      lines.push(`executable = ${macroSafe(inputPath(inp, ctx))}`)
    }
  }
  if (args.length > 0) lines.push(`arguments = ${macroSafe(newSyntax(args))}`)
  const env = Object.entries(j.env)
  if (env.length > 0) {
    for (const [k, v] of env) {
      if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(k)) problem(`field env: ${JSON.stringify(k)} is not a name HTCondor's environment takes (letters, digits, _)`)
      const why = lineProblem(v)
      if (why !== null) problem(`field env: ${k}: ${why}`)
    }
    lines.push(`environment = ${macroSafe(newSyntaxEnv(j.env))}`)
  }

  // files
  lines.push('should_transfer_files = YES', 'when_to_transfer_output = ON_EXIT')
  const tif: string[] = []
  const renamed: string[] = []
  let hint = ''
  for (const inp of j.inputs) {
    if (inp.name === exeInput) continue
    const from = inp.source.kind === 'file' ? inp.source.rel : `job:${inp.source.job}/${inp.source.file}`
    const base = inp.source.kind === 'file' ? path.posix.basename(inp.source.rel) : path.posix.basename(inp.source.file)
    if (inp.name !== base) {
      renamed.push(`${from} as ${inp.name}`)
      if (hint === '' && inp.name.includes('/') && path.posix.basename(inp.name) === base) hint = `; {"src": ${JSON.stringify(from)}, "as": ${JSON.stringify(base)}} would do, if the job can read it there`
      continue
    }
    const p = inputPath(inp, ctx)
    const why = listProblem(p)
    if (why !== null) { problem(`field inputs: ${JSON.stringify(from)} (${p} from the node's directory): ${why}`); continue }
    tif.push(macroSafe(p))
  }
  if (renamed.length > 0) {
    problem(`field inputs: ${renamed.length === 1 ? 'an input' : `${renamed.length} inputs`} named otherwise in the job's directory than the file ${renamed.length === 1 ? 'it comes' : 'they come'} from (${renamed.slice(0, 3).join(', ')}${renamed.length > 3 ? ', ...' : ''}): HTCondor puts a transferred file at the top of the job's directory under its own base name and cannot rename it${hint}`)
  }
  if (tif.length > 0) lines.push(`transfer_input_files = ${tif.join(', ')}`)
  if (j.outputs.length > 0) lines.push(`transfer_output_files = ${j.outputs.map(macroSafe).join(', ')}`)

  // resources and matching
  const cpus = Math.ceil(j.cores)
  if (cpus !== j.cores) ctx.warnings.add('field cores: HTCondor\'s request_cpus is a whole number: a fraction of a core is rounded up', j.id)
  lines.push(`request_cpus = ${cpus}`)
  if (j.ram > 0) lines.push(`request_memory = ${j.ram}`)
  if (j.disk > 0) lines.push(`request_disk = ${j.disk * 1024}`)
  const req = ctx.translate(j.requirements)
  for (const l of req.left) lines.push(`# bgrid: requirements: ${l.text.replace(/\s+/g, ' ')} (left out: ${l.why.replace(/\s+/g, ' ')})`)
  if (j.requirements !== null) {
    for (const l of ctx.translate(j.requirements, true).left) ctx.warnings.add(`field requirements: ${l.text} left out of the submit file (written as a # bgrid: comment): ${l.why}`, j.id)
  }
  if (req.classad !== null) lines.push(`requirements = ${macroSafe(req.classad)}`)
  if (ctx.rank !== null) lines.push(`rank = ${macroSafe(ctx.rank)}`)
  if (j.timeoutMs > 0) {
    lines.push(`allowed_execute_duration = ${j.timeoutMs / 1000}`)
    ctx.warnings.add('field timeout: HTCondor puts a job that runs past allowed_execute_duration on hold, where bgrid kills it and retries it: condor_release or condor_rm it', j.id)
  }
  if (!j.network) ctx.warnings.add('field network: false: HTCondor has no submit command for a job without network; the job gets the machine\'s', j.id)

  lines.push(`output = ${j.id}.out`, `error = ${j.id}.err`, `log = ../${ctx.logName}`, 'queue')
  return bad ? null : lines.join('\n') + '\n'
}

/** where an input is, from the node's directory: a file beside the dag.json, or a parent's output in the parent's node directory */
function inputPath (inp: JobSpec['inputs'][number], ctx: SubmitContext): string {
  if (inp.source.kind === 'file') return ctx.rel(ctx.nodeDir, inp.source.path)
  return `../${inp.source.job}/${path.posix.basename(inp.source.file)}`
}

/** Write a DAG's DAGMan form (dagToDagman's) into its directory. */
export function writeDagman (r: Exported, opts: { force?: boolean } = {}): void {
  if (!opts.force && existsSync(r.dagFile)) throw new BgridError('INVALID_CONFIG', `${r.dagFile} exists (--force replaces it, and the submit files beside it)`)
  try {
    if (existsSync(r.dir) && !statSync(r.dir).isDirectory()) throw new BgridError('INVALID_CONFIG', `${r.dir} is not a directory`)
    mkdirSync(r.dir, { recursive: true })
    for (const d of r.dirs) mkdirSync(d, { recursive: true })
    // the .dag last: it never names submit files that are not there
    for (const f of [...r.files.slice(1), r.files[0]]) writeFileSync(f.path, f.text)
  } catch (err: any) {
    if (err instanceof BgridError) throw err
    throw new BgridError('INVALID_CONFIG', `cannot write the DAGMan files in ${r.dir}: ${err.message}`)
  }
}
