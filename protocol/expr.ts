// Requirement and rank expressions over node attributes, e.g.
// `ram >= 2048 && cores >= 2` or `cores * mhz / (1 + cost)`. Parsed with jsep
// (never eval), checked against a whitelist, evaluated by a small interpreter.
// Shared by the coordinator (requirements, rank) and the daemon (its START policy).
//
// Besides the built-in attributes (lower case), a name starting with a capital letter
// is a custom attribute (`bgrid daemon --attr HasMatlab=true`, or the job's
// RequestMemory in a START policy), looked up case-insensitively, as ClassAds do. One a
// node lacks is UNDEFINED, with ClassAd's semantics: comparisons and arithmetic on it
// are UNDEFINED, `false && UNDEFINED` is false, `true || UNDEFINED` true, and an
// UNDEFINED requirement does not hold; `=?=` and `=!=` (meta-equals) never are
// UNDEFINED: `X =?= true` is false when X is undefined. String `==` ignores case
// (`=?=` does not).
import jsep from 'jsep'
import { BgridError } from './errors.ts'

export const ATTRIBUTES = ['ram', 'cores', 'mhz', 'disk', 'load', 'cost', 'os', 'arch', 'gflops'] as const
export type Attribute = typeof ATTRIBUTES[number]
export type AttrValue = number | string | boolean
/** a node's attributes; `extra`: its custom ones, keyed by lower-case name */
export type Attrs = Record<Exclude<Attribute, 'gflops'>, number | string> & { gflops?: number, extra?: Readonly<Record<string, AttrValue>> }

/** a custom attribute's name: a capital letter first (built-in ones are lower case) */
export const CUSTOM_NAME = /^[A-Z][A-Za-z0-9_]{0,31}$/
export function isCustomName (name: string): boolean { return CUSTOM_NAME.test(name) }

// ClassAd's meta-equals, at the precedence of ==
jsep.addBinaryOp('=?=', 6)
jsep.addBinaryOp('=!=', 6)

const BINARY = new Set(['+', '-', '*', '/', '%', '<', '<=', '>', '>=', '==', '!=', '===', '!==', '=?=', '=!=', '&&', '||'])
const UNARY = new Set(['!', '-', '+'])
// no prototype: an expression from a peer (a START policy) must not reach `constructor` or `__proto__`
const FUNCTIONS: Record<string, (...a: number[]) => number> = Object.assign(Object.create(null), { min: Math.min, max: Math.max, log: Math.log, sqrt: Math.sqrt })

export interface Expr { source: string, ast: jsep.Expression }

function fail (source: string, index: number, message: string, what: string): never {
  const caret = `${source}\n${' '.repeat(Math.max(0, index))}^`
  throw new BgridError('INVALID_DAG', `${what}: ${message} at column ${index + 1}\n${caret}`)
}

function indexOfWord (source: string, word: string): number {
  const m = new RegExp(`\\b${word.replace(/[^A-Za-z0-9_$]/g, '')}\\b`).exec(source)
  return m?.index ?? 0
}

function check (e: jsep.Expression, source: string, what: string): void {
  switch (e.type) {
    case 'Literal': {
      const v = (e as jsep.Literal).value
      if (typeof v !== 'number' && typeof v !== 'string' && typeof v !== 'boolean') fail(source, indexOfWord(source, String((e as jsep.Literal).raw)), `unsupported literal ${(e as jsep.Literal).raw}`, what)
      return
    }
    case 'Identifier': {
      const name = (e as jsep.Identifier).name
      if (name === 'true' || name === 'false') return
      if (!(ATTRIBUTES as readonly string[]).includes(name) && !isCustomName(name)) fail(source, indexOfWord(source, name), `unknown attribute "${name}" (known: ${ATTRIBUTES.join(', ')}; custom ones, from \`bgrid daemon --attr\`, start with a capital letter)`, what)
      return
    }
    case 'BinaryExpression': {
      const b = e as jsep.BinaryExpression
      if (!BINARY.has(b.operator)) fail(source, source.indexOf(b.operator), `operator ${b.operator} not allowed`, what)
      check(b.left, source, what); check(b.right, source, what); return
    }
    case 'UnaryExpression': {
      const u = e as jsep.UnaryExpression
      if (!UNARY.has(u.operator)) fail(source, source.indexOf(u.operator), `operator ${u.operator} not allowed`, what)
      check(u.argument, source, what); return
    }
    case 'ConditionalExpression': {
      const c = e as jsep.ConditionalExpression
      check(c.test, source, what); check(c.consequent, source, what); check(c.alternate, source, what); return
    }
    case 'CallExpression': {
      const c = e as jsep.CallExpression
      const name = c.callee.type === 'Identifier' ? (c.callee as jsep.Identifier).name : ''
      if (FUNCTIONS[name] === undefined) fail(source, indexOfWord(source, name), `unknown function ${name || '?'} (known: ${Object.keys(FUNCTIONS).join(', ')})`, what)
      for (const a of c.arguments) check(a, source, what)
      return
    }
    default:
      fail(source, 0, `${e.type} not allowed`, what)
  }
}

/** binary prefixes people write after sizes, in MiB (ram and disk are MiB) */
const UNIT_MIB: Record<string, number> = { k: 1 / 1024, m: 1, g: 1024, t: 1024 * 1024 }
const WITH_UNIT = /(?<![\w.$])(\d+(?:\.\d+)?)\s*([kmgt])(i?b?)(?![\w$])/gi

/** `ram >= 2GB` does not parse: say that numbers have no units, and what to write instead. */
function unitHint (source: string, what: string): void {
  const m = new RegExp(WITH_UNIT.source, 'i').exec(source)
  if (m === null) return
  const mib = (_all: string, n: string, u: string): string => String(Math.round(Number(n) * (UNIT_MIB[u.toLowerCase()] ?? 1)))
  const fixed = source.replace(WITH_UNIT, mib)
  fail(source, m.index, `"${m[0]}": numbers have no units here (ram and disk are in MiB: write \`${fixed}\`)`, what)
}

export function parseExpr (source: string, what = 'expression'): Expr {
  if (source.trim() === '') fail(source, 0, 'empty expression', what)
  let ast: jsep.Expression
  try {
    ast = jsep(source)
  } catch (err: any) {
    unitHint(source, what)
    fail(source, typeof err.index === 'number' ? err.index : 0, String(err.description ?? err.message), what)
  }
  if (ast.type === 'Compound') { unitHint(source, what); fail(source, 0, 'one expression expected', what) }
  check(ast, source, what)
  return { source, ast }
}

/** an attribute's value; undefined: the node does not have it (ClassAd's UNDEFINED) */
export function lookup (a: Attrs, name: string): AttrValue | undefined {
  // gflops: UNDEFINED on a node that has not measured it
  if ((ATTRIBUTES as readonly string[]).includes(name)) return a[name as Attribute] ?? undefined
  const key = name.toLowerCase()
  return a.extra !== undefined && Object.hasOwn(a.extra, key) ? a.extra[key] : undefined
}

type Value = AttrValue | undefined

function equal (l: AttrValue, r: AttrValue, caseless: boolean): boolean {
  if (caseless && typeof l === 'string' && typeof r === 'string') return l.toLowerCase() === r.toLowerCase()
  return l === r
}

function evalNode (e: jsep.Expression, a: Attrs): Value {
  switch (e.type) {
    case 'Literal': return (e as jsep.Literal).value as AttrValue
    case 'Identifier': {
      const name = (e as jsep.Identifier).name
      if (name === 'true') return true
      if (name === 'false') return false
      return lookup(a, name)
    }
    case 'UnaryExpression': {
      const u = e as jsep.UnaryExpression
      const v = evalNode(u.argument, a)
      if (v === undefined) return undefined
      return u.operator === '!' ? !v : u.operator === '-' ? -Number(v) : Number(v)
    }
    case 'BinaryExpression': {
      const b = e as jsep.BinaryExpression
      if (b.operator === '&&') {
        const l = evalNode(b.left, a)
        if (l !== undefined && !Boolean(l)) return false
        const r = evalNode(b.right, a)
        if (r !== undefined && !Boolean(r)) return false
        return l === undefined || r === undefined ? undefined : true
      }
      if (b.operator === '||') {
        const l = evalNode(b.left, a)
        if (l !== undefined && Boolean(l)) return true
        const r = evalNode(b.right, a)
        if (r !== undefined && Boolean(r)) return true
        return l === undefined || r === undefined ? undefined : false
      }
      const l = evalNode(b.left, a)
      const r = evalNode(b.right, a)
      if (b.operator === '=?=') return l === undefined || r === undefined ? l === r : equal(l, r, false)
      if (b.operator === '=!=') return l === undefined || r === undefined ? l !== r : !equal(l, r, false)
      if (l === undefined || r === undefined) return undefined
      switch (b.operator) {
        case '+': return Number(l) + Number(r)
        case '-': return Number(l) - Number(r)
        case '*': return Number(l) * Number(r)
        case '/': return Number(r) === 0 ? Infinity : Number(l) / Number(r)
        case '%': return Number(l) % Number(r)
        case '<': return l < r
        case '<=': return l <= r
        case '>': return l > r
        case '>=': return l >= r
        case '==': case '===': return equal(l, r, true)
        default: return !equal(l, r, true)
      }
    }
    case 'ConditionalExpression': {
      const c = e as jsep.ConditionalExpression
      const t = evalNode(c.test, a)
      if (t === undefined) return undefined
      return Boolean(t) ? evalNode(c.consequent, a) : evalNode(c.alternate, a)
    }
    case 'CallExpression': {
      const c = e as jsep.CallExpression
      const args = c.arguments.map(x => evalNode(x, a))
      if (args.some(x => x === undefined)) return undefined
      return FUNCTIONS[(c.callee as jsep.Identifier).name](...args.map(Number))
    }
    default: return false
  }
}

export function evalBool (e: Expr, a: Attrs): boolean { return Boolean(evalNode(e.ast, a)) }
export function evalNumber (e: Expr, a: Attrs): number {
  const raw = evalNode(e.ast, a)
  // an UNDEFINED rank ranks last
  if (raw === undefined) return -Number.MAX_VALUE
  const v = Number(raw)
  return Number.isFinite(v) ? v : (v > 0 ? Number.MAX_VALUE : -Number.MAX_VALUE)
}

/** The top-level && terms of a requirement that fail for these attributes, with the values seen. */
export function explainFailure (e: Expr, a: Attrs): string[] {
  const terms: jsep.Expression[] = []
  const split = (n: jsep.Expression): void => {
    if (n.type === 'BinaryExpression' && (n as jsep.BinaryExpression).operator === '&&') {
      split((n as jsep.BinaryExpression).left); split((n as jsep.BinaryExpression).right)
    } else terms.push(n)
  }
  split(e.ast)
  const out: string[] = []
  for (const t of terms) {
    if (Boolean(evalNode(t, a))) continue
    const ids = new Set<string>()
    const walk = (n: any): void => {
      if (n === null || typeof n !== 'object') return
      if (n.type === 'Identifier') ids.add(n.name)
      for (const v of Object.values(n)) if (typeof v === 'object') walk(v)
    }
    walk(t)
    const seen = [...ids].filter(i => i !== 'true' && i !== 'false' && (i in a || isCustomName(i))).map(i => { const v = lookup(a, i); return `${i}=${v === undefined ? 'undefined' : typeof v === 'string' && isCustomName(i) ? JSON.stringify(v) : String(v)}` }).join(', ')
    out.push(`${render(t)} (${seen})`)
  }
  return out
}

function render (n: jsep.Expression): string {
  switch (n.type) {
    case 'Literal': return String((n as jsep.Literal).raw)
    case 'Identifier': return (n as jsep.Identifier).name
    case 'UnaryExpression': return `${(n as jsep.UnaryExpression).operator}${render((n as jsep.UnaryExpression).argument)}`
    case 'BinaryExpression': { const b = n as jsep.BinaryExpression; return `${render(b.left)} ${b.operator} ${render(b.right)}` }
    case 'CallExpression': { const c = n as jsep.CallExpression; return `${render(c.callee)}(${c.arguments.map(render).join(', ')})` }
    case 'ConditionalExpression': { const c = n as jsep.ConditionalExpression; return `${render(c.test)} ? ${render(c.consequent)} : ${render(c.alternate)}` }
    default: return n.type
  }
}

export const DEFAULT_RANK = 'cores * mhz / (1 + cost)'
