// VARS values as DAGMan reads them, and the $(macro) language of submit descriptions
// (condor_submit's, which DAGMan's VARS feed).
//
// VARS: `VARS node [PREPEND|APPEND] name="value" ...`; names of letters, digits, `_` and
// `.` (a leading `+` means a job ClassAd attribute, DAGMan's `My.`); values in double
// quotes, where `\"` is a quote and `\\` a backslash (any other escape is an error); a
// name may not start with `queue`.
//
// Macros: `$(name)`, `$(name:default)` (an undefined macro without a default expands to
// nothing, as condor_submit does), `$(DOLLAR)`, and the function macros `$ENV()`,
// `$CHOICE()`, `$F[pdnxbqaf...]()`, `$DIRNAME()`, `$BASENAME()`, `$INT()`, `$REAL()`,
// `$SUBSTR()`, `$RANDOM_CHOICE()`, `$RANDOM_INTEGER()`. `$$(...)` is left as it is (HTCondor
// substitutes it when the job is matched); an unknown `$NAME(` is ordinary text.
import path from 'node:path'

export interface VarPair { name: string, value: string }
export interface VarsLine { prepend: boolean | null, pairs: VarPair[] }

/** `$(RETRY)`: not known until the job runs; to-dag-json turns it into the job's $BGRID_RETRY */
export const RETRY_MARK = '\u{F8FF}RETRY\u{F8FF}'

/** Parse what follows the node name on a VARS line. Throws an Error whose message says what is wrong. */
export function parseVarsLine (text: string): VarsLine {
  let s = text.replace(/^[ \t]+/, '')
  let prepend: boolean | null = null
  const mode = /^(PREPEND|APPEND)(?=[ \t]|$)/i.exec(s)
  if (mode !== null) { prepend = mode[1].toUpperCase() === 'PREPEND'; s = s.slice(mode[0].length) }
  const pairs: VarPair[] = []
  let i = 0
  const isSpace = (c: string | undefined): boolean => c === ' ' || c === '\t' || c === '\n' || c === '\r' || c === '\f' || c === '\v'
  const isNameChar = (c: number): boolean => (c >= 48 && c <= 57) || (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || c === 95 || c === 43 || c === 46
  for (;;) {
    while (isSpace(s[i])) i++
    if (i >= s.length) break
    let name = ''
    while (i < s.length && isNameChar(s.charCodeAt(i))) {
      if (s[i] === '+' && name !== '') throw new Error(`'+' can only be the first character of a macro name (${name}+)`)
      name += s[i++]
    }
    if (name === '') throw new Error(`unexpected symbol "${s[i]}"`)
    if (name === '+') throw new Error('macro name "+" must contain at least one letter or digit')
    while (isSpace(s[i])) i++
    if (s[i] !== '=') {
      if (/^(PREPEND|APPEND)$/i.test(name)) throw new Error(`${name} must come before all the variables`)
      throw new Error(i >= s.length ? `no "=" after macro name ${name}` : `illegal character (${s[i]}) in or after macro name ${name}`)
    }
    i++
    while (isSpace(s[i])) i++
    if (s[i] !== '"') throw new Error(`${name}'s value must be quoted`)
    i++
    let value = ''
    for (;;) {
      // the run up to the next quote or backslash, in one piece
      let k = i
      while (k < s.length && s[k] !== '"' && s[k] !== '\\') k++
      value += s.slice(i, k)
      i = k
      if (i >= s.length) throw new Error(`${name}'s value: missing end quote`)
      const c = s[i++]
      if (c === '"') break
      const e = s[i++]
      if (e !== '\\' && e !== '"') throw new Error(`${name}'s value: unknown escape sequence "\\${e ?? ''}" (only \\" and \\\\)`)
      value += e
    }
    if (name.toLowerCase().startsWith('queue')) throw new Error(`illegal macro name ${name}: names cannot begin with "queue"`)
    pairs.push({ name: name.startsWith('+') ? `My.${name.slice(1)}` : name, value })
  }
  if (pairs.length === 0) throw new Error('no name="value" pairs')
  return { prepend, pairs }
}

/** What macro expansion needs from its caller. */
export interface MacroScope {
  /** a macro's unexpanded value (names are case-insensitive: the caller's table decides) */
  lookup: (name: string) => string | undefined
  /** the environment `$ENV()` reads */
  env: Record<string, string | undefined>
  /** the directory relative names are taken from (`$Ff()`) */
  cwd: string
}

const MAX_DEPTH = 40

/** The index of the `)` that closes the `(` at `open`, or -1. */
function closing (s: string, open: number): number {
  let depth = 0
  for (let i = open; i < s.length; i++) {
    if (s[i] === '(') depth++
    else if (s[i] === ')' && --depth === 0) return i
  }
  return -1
}

/** Top-level comma-separated arguments of a function macro, trimmed. */
function splitArgs (body: string): string[] {
  const out: string[] = []
  let depth = 0
  let cur = ''
  for (const c of body) {
    if (c === '(') depth++
    if (c === ')') depth--
    if (c === ',' && depth === 0) { out.push(cur.trim()); cur = '' } else cur += c
  }
  out.push(cur.trim())
  return out
}

/** Expand every macro in a text. Throws an Error naming the macro when it cannot. */
export function expandMacros (text: string, scope: MacroScope, depth = 0): string {
  if (!text.includes('$')) return text
  if (depth > MAX_DEPTH) throw new Error('macros nested too deep (a macro defined by itself?)')
  let out = ''
  let i = 0
  while (i < text.length) {
    const j = text.indexOf('$', i)
    if (j < 0) { out += text.slice(i); break }
    out += text.slice(i, j)
    // $$(...) is substituted when the job is matched: leave it, parentheses and all
    if (text[j + 1] === '$') {
      if (text[j + 2] === '(') {
        const end = closing(text, j + 2)
        if (end < 0) throw new Error(`no ")" closes "${text.slice(j, j + 20)}"`)
        out += text.slice(j, end + 1)
        i = end + 1
      } else { out += '$$'; i = j + 2 }
      continue
    }
    if (text[j + 1] === '(') {
      const end = closing(text, j + 1)
      if (end < 0) throw new Error(`no ")" closes "${text.slice(j, j + 20)}"`)
      out += macro(text.slice(j + 2, end), scope, depth)
      i = end + 1
      continue
    }
    const fn = /^[A-Za-z_]+(?=\()/.exec(text.slice(j + 1, j + 40))
    if (fn !== null && isFunction(fn[0])) {
      const open = j + 1 + fn[0].length
      const end = closing(text, open)
      if (end < 0) throw new Error(`no ")" closes "$${fn[0]}("`)
      out += callFunction(fn[0], text.slice(open + 1, end), scope, depth)
      i = end + 1
      continue
    }
    out += '$'
    i = j + 1
  }
  return out
}

function macro (body: string, scope: MacroScope, depth: number): string {
  const colon = body.indexOf(':')
  const name = (colon < 0 ? body : body.slice(0, colon)).trim()
  if (name.toUpperCase() === 'DOLLAR') return '$'
  const value = scope.lookup(name)
  if (value !== undefined) return expandMacros(value, scope, depth + 1)
  return colon < 0 ? '' : expandMacros(body.slice(colon + 1), scope, depth + 1)
}

const FUNCTIONS = new Set(['ENV', 'CHOICE', 'DIRNAME', 'BASENAME', 'INT', 'REAL', 'SUBSTR', 'RANDOM_CHOICE', 'RANDOM_INTEGER'])
function isFunction (name: string): boolean { return FUNCTIONS.has(name) || /^F[fpduwnxbqa]*$/.test(name) }

/** A function argument naming a macro means its value; anything else is itself. */
function valueOf (arg: string, scope: MacroScope, depth: number): string {
  const v = /^[A-Za-z0-9_.]+$/.test(arg) ? scope.lookup(arg) : undefined
  return expandMacros(v ?? arg, scope, depth + 1)
}

function callFunction (name: string, body: string, scope: MacroScope, depth: number): string {
  const args = splitArgs(body)
  switch (name) {
    case 'ENV': {
      const colon = body.indexOf(':')
      const v = scope.env[(colon < 0 ? body : body.slice(0, colon)).trim()]
      return v ?? (colon < 0 ? '' : expandMacros(body.slice(colon + 1), scope, depth + 1))
    }
    case 'CHOICE': {
      const raw = valueOf(args[0], scope, depth).trim()
      const index = /^true$/i.test(raw) ? 1 : /^false$/i.test(raw) ? 0 : Number(raw)
      const items = args.length === 2 ? valueOf(args[1], scope, depth).split(',').map(s => s.trim()) : args.slice(1).map(a => expandMacros(a, scope, depth + 1))
      if (!Number.isInteger(index) || index < 0 || index >= items.length) throw new Error(`$CHOICE(${body}): index ${JSON.stringify(raw)} is not 0..${items.length - 1}`)
      return items[index]
    }
    case 'DIRNAME': return fileParts('p', valueOf(args[0], scope, depth), scope.cwd)
    case 'BASENAME': return fileParts('nx', valueOf(args[0], scope, depth), scope.cwd)
    case 'INT': return formatNumber(arith(valueOf(args[0], scope, depth), body), args[1] ?? '%d', true, body)
    case 'REAL': return formatNumber(arith(valueOf(args[0], scope, depth), body), args[1] ?? '%16G', false, body)
    case 'SUBSTR': {
      const s = valueOf(args[0], scope, depth)
      let start = Number(args[1] ?? '0')
      if (!Number.isInteger(start)) throw new Error(`$SUBSTR(${body}): start must be a whole number`)
      if (start < 0) start = Math.max(0, s.length + start)
      let rest = s.slice(start)
      if (args[2] !== undefined) {
        const len = Number(args[2])
        if (!Number.isInteger(len)) throw new Error(`$SUBSTR(${body}): length must be a whole number`)
        rest = len >= 0 ? rest.slice(0, len) : rest.slice(0, Math.max(0, rest.length + len))
      }
      return rest
    }
    case 'RANDOM_CHOICE': return expandMacros(args[Math.floor(Math.random() * args.length)], scope, depth + 1)
    case 'RANDOM_INTEGER': {
      const [lo, hi, step = 1] = args.map(a => Number(valueOf(a, scope, depth)))
      if (![lo, hi, step].every(Number.isInteger) || step < 1 || lo > hi) throw new Error(`$RANDOM_INTEGER(${body}): needs whole numbers min <= max and step >= 1`)
      return String(lo + Math.floor(Math.random() * (Math.floor((hi - lo) / step) + 1)) * step)
    }
    default: return fileParts(name.slice(1), valueOf(args[0], scope, depth), scope.cwd)
  }
}

/** $F flags over a file name (HTCondor's: f full path, p directory, d last directory, n name, x extension, b bare, u/w slashes, q/a quotes). */
function fileParts (flags: string, file: string, cwd: string): string {
  let f = file
  if (flags.includes('f')) f = path.resolve(cwd, f)
  const slash = f.lastIndexOf('/')
  const dir = slash < 0 ? '' : f.slice(0, slash + 1)
  const base = f.slice(slash + 1)
  const dot = base.lastIndexOf('.')
  const stem = dot <= 0 ? base : base.slice(0, dot)
  const ext = dot <= 0 ? '' : base.slice(dot)
  const bare = flags.includes('b')
  let out = ''
  if (flags.includes('p')) out += dir
  else if (flags.includes('d')) {
    const last = dir.replace(/\/$/, '').split('/').pop() ?? ''
    out += last === '' ? '' : bare ? last : `${last}/`
  }
  if (flags.includes('n')) out += stem
  if (flags.includes('x')) out += bare ? ext.slice(1) : ext
  if (!/[pdnx]/.test(flags)) out = f
  if (flags.includes('w')) out = out.replace(/\//g, '\\')
  if (flags.includes('u')) out = out.replace(/\\/g, '/')
  if (flags.includes('q')) out = flags.includes('a') ? `'${out}'` : `"${out}"`
  return out
}

/** + - * / % and parentheses over numbers (what $INT and $REAL evaluate), never eval. */
function arith (src: string, body: string): number {
  const toks = src.match(/\d+\.?\d*(?:[eE][+-]?\d+)?|\.\d+|[-+*/%()]|\S+/g) ?? []
  let k = 0
  const bad = (): never => { throw new Error(`$INT/$REAL(${body}): cannot evaluate ${JSON.stringify(src)} (numbers and + - * / % only)`) }
  const primary = (): number => {
    const t = toks[k++]
    if (t === '(') { const v = sum(); if (toks[k++] !== ')') bad(); return v }
    if (t === '-') return -primary()
    if (t === '+') return primary()
    if (t === undefined) return bad()
    if (/^true$/i.test(t)) return 1
    if (/^false$/i.test(t)) return 0
    const n = Number(t)
    return Number.isFinite(n) ? n : bad()
  }
  const product = (): number => {
    let v = primary()
    while (toks[k] === '*' || toks[k] === '/' || toks[k] === '%') {
      const op = toks[k++]
      const r = primary()
      v = op === '*' ? v * r : op === '/' ? v / r : v % r
    }
    return v
  }
  const sum = (): number => {
    let v = product()
    while (toks[k] === '+' || toks[k] === '-') { const op = toks[k++]; const r = product(); v = op === '+' ? v + r : v - r }
    return v
  }
  const v = sum()
  if (k !== toks.length) bad()
  return v
}

/** printf for one number: %d %i %x %X %o (integers) and %f %e %g (reals), with flags, width and precision. */
function formatNumber (n: number, spec: string, integer: boolean, body: string): string {
  const m = /^(.*?)%([-0+ ]*)(\d*)(?:\.(\d+))?([dixXofFeEgG])(.*)$/s.exec(spec)
  if (m === null) throw new Error(`$INT/$REAL(${body}): format ${JSON.stringify(spec)} is not a printf number format`)
  const [, pre, flags, width, prec, conv, post] = m
  const v = integer || /[dixXo]/.test(conv) ? Math.trunc(n) : n
  let s: string
  switch (conv) {
    case 'x': s = v.toString(16); break
    case 'X': s = v.toString(16).toUpperCase(); break
    case 'o': s = v.toString(8); break
    case 'd': case 'i': s = String(v); break
    case 'f': case 'F': s = v.toFixed(prec === undefined ? 6 : Number(prec)); break
    case 'e': case 'E': s = v.toExponential(prec === undefined ? 6 : Number(prec)).replace(/e([+-])(\d)$/, 'e$10$2'); break
    default: {
      const p = prec === undefined ? 6 : Math.max(1, Number(prec))
      const exp = v === 0 ? 0 : Math.floor(Math.log10(Math.abs(v)))
      s = exp < -4 || exp >= p
        ? v.toExponential(p - 1).replace(/\.?0+e/, 'e').replace(/e([+-])(\d)$/, 'e$10$2')
        : v.toFixed(Math.max(0, p - 1 - exp)).replace(/(\.\d*?)0+$/, '$1').replace(/\.$/, '')
    }
  }
  if (conv === 'E' || conv === 'G') s = s.toUpperCase()
  if (flags.includes('+') && v >= 0) s = `+${s}`
  const w = Number(width || 0)
  if (s.length < w) s = flags.includes('-') ? s.padEnd(w) : flags.includes('0') ? (s.startsWith('-') ? `-${s.slice(1).padStart(w - 1, '0')}` : s.padStart(w, '0')) : s.padStart(w)
  return pre + s + post
}
