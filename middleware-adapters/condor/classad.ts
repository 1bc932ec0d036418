// HTCondor `requirements` and `rank` (ClassAd expressions) to bgrid's expression syntax
// (coordinator/expr.ts), for the common cases: the machine attributes Memory (MiB) ->
// ram, Cpus -> cores, Disk (KiB) -> disk * 1024, OpSys -> os and Arch -> arch (with their
// values: "LINUX" -> "linux", "X86_64" -> "x64"...), the job's own RequestMemory,
// RequestCpus and RequestDisk as numbers, TARGET./MY. scopes, the operators C has plus
// =?= and =!= (is, isnt; kept: bgrid's expressions have them), and ifThenElse(). Other
// names are the machines' custom attributes (`bgrid daemon --attr`), UNDEFINED on a
// machine that lacks them. Anything else is refused with its column:
// nothing is evaluated here, and the result is checked by bgrid's own parser.
import { parseExpr } from '../../protocol/expr.ts'

export interface JobValues {
  /** MiB, cores, KiB: what RequestMemory, RequestCpus and RequestDisk mean in the job's ad */
  requestMemory?: number
  requestCpus?: number
  requestDisk?: number
}

/** An untranslatable expression: the message says what and where (0-based column). */
export class ClassAdError extends Error {
  readonly column: number
  constructor (message: string, column: number) { super(message); this.column = column }
}

interface Tok { kind: 'num' | 'str' | 'id' | 'op', text: string, pos: number }

const OPERATORS = ['=?=', '=!=', '==', '!=', '<=', '>=', '&&', '||', '<', '>', '!', '+', '-', '*', '/', '%', '(', ')', '?', ':', ',']

function tokenize (src: string): Tok[] {
  const out: Tok[] = []
  let i = 0
  while (i < src.length) {
    const c = src[i]
    if (/\s/.test(c)) { i++; continue }
    const num = /^(?:\d+\.?\d*(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?)/.exec(src.slice(i))
    if (num !== null) { out.push({ kind: 'num', text: num[0], pos: i }); i += num[0].length; continue }
    if (c === '"') {
      let j = i + 1
      let s = ''
      while (j < src.length && src[j] !== '"') { if (src[j] === '\\' && j + 1 < src.length) j++; s += src[j++] }
      if (j >= src.length) throw new ClassAdError('unterminated string', i)
      out.push({ kind: 'str', text: s, pos: i })
      i = j + 1
      continue
    }
    const id = /^[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*/.exec(src.slice(i))
    if (id !== null) { out.push({ kind: 'id', text: id[0], pos: i }); i += id[0].length; continue }
    const op = OPERATORS.find(o => src.startsWith(o, i))
    if (op === undefined) throw new ClassAdError(`"${c}" is not something bgrid translates (lists, records, bit operators and quoted attribute names are not)`, i)
    out.push({ kind: 'op', text: op, pos: i })
    i += op.length
  }
  return out
}

const OPSYS: Record<string, string> = { LINUX: 'linux', WINDOWS: 'win32', OSX: 'darwin', MACOS: 'darwin', FREEBSD: 'freebsd' }
const ARCH: Record<string, string> = { X86_64: 'x64', INTEL: 'ia32', X86: 'ia32', AARCH64: 'arm64', ARM64: 'arm64', ARM: 'arm', PPC64LE: 'ppc64', PPC64: 'ppc64' }
const EQUALITY = new Set(['==', '!=', '=?=', '=!='])

/** Translate one ClassAd expression; `what` names it in messages. Throws ClassAdError. */
export function translateClassAd (src: string, job: JobValues = {}): string {
  const toks = tokenize(src)
  if (toks.length === 0) throw new ClassAdError('empty expression', 0)
  // is / isnt are =?= / =!=
  for (const t of toks) if (t.kind === 'id' && /^(is|isnt)$/i.test(t.text)) { t.kind = 'op'; t.text = t.text.toLowerCase() === 'is' ? '=?=' : '=!=' }
  const out = translate(toks, 0, toks.length, job)
  try { parseExpr(out, 'translated') } catch (err: any) {
    throw new ClassAdError(`bgrid cannot use the translation \`${out}\`: ${String(err.message).split('\n')[0]}`, 0)
  }
  return out
}

function attribute (t: Tok, job: JobValues): { text: string, valueMap?: Record<string, string> } {
  const parts = t.text.split('.')
  const scope = parts.length > 1 ? parts[0].toUpperCase() : ''
  if (parts.length > 2 || (scope !== '' && scope !== 'TARGET' && scope !== 'MY')) throw new ClassAdError(`"${t.text}": bgrid knows the scopes TARGET. and MY. only`, t.pos)
  const name = parts[parts.length - 1].toLowerCase()
  const need = (v: number | undefined, what: string): string => {
    if (v === undefined) throw new ClassAdError(`${t.text}: the job sets no ${what}`, t.pos)
    return String(v)
  }
  if (scope !== 'TARGET') {
    if (name === 'requestmemory') return { text: need(job.requestMemory, 'request_memory') }
    if (name === 'requestcpus') return { text: String(job.requestCpus ?? 1) }
    if (name === 'requestdisk') return { text: need(job.requestDisk, 'request_disk') }
    if (scope === 'MY') throw new ClassAdError(`${t.text}: bgrid knows the job's RequestMemory, RequestCpus and RequestDisk only`, t.pos)
  }
  switch (name) {
    case 'memory': return { text: 'ram' }
    case 'cpus': return { text: 'cores' }
    case 'disk': return { text: '(disk * 1024)' }
    case 'opsys': return { text: 'os', valueMap: OPSYS }
    // HTCondor's benchmarks, from what the daemon measures: KFlops from its GFLOPS
    // benchmark, Mips from its clock (an instruction per cycle: Dhrystone MIPS are of that order)
    case 'kflops': return { text: '(gflops * 1000000)' }
    case 'mips': return { text: 'mhz' }
    case 'arch': return { text: 'arch', valueMap: ARCH }
    case 'true': case 'false': if (scope === '') return { text: name }
  }
  if (name === 'undefined' || name === 'error') throw new ClassAdError(`${t.text}: bgrid's expressions have no UNDEFINED or ERROR values`, t.pos)
  // a machine's custom attribute (`bgrid daemon --attr HasMatlab=true`): names ignore
  // case, as in ClassAds; bgrid spells custom ones with a capital first
  const own = parts[parts.length - 1]
  if (/^[A-Za-z][A-Za-z0-9_]{0,31}$/.test(own)) return { text: own[0].toUpperCase() + own.slice(1) }
  throw new ClassAdError(`unknown attribute "${t.text}" (bgrid translates Memory, Cpus, Disk, OpSys, Arch, KFlops, Mips, and the job's RequestMemory, RequestCpus, RequestDisk; its own attributes are ram, cores, mhz, disk, load, cost, os, arch, gflops)`, t.pos)
}

/** the index of the `)` closing the `(` at k, within [k, end) */
function closeParen (toks: Tok[], k: number, end: number): number {
  let depth = 0
  for (let i = k; i < end; i++) {
    if (toks[i].kind !== 'op') continue
    if (toks[i].text === '(') depth++
    else if (toks[i].text === ')' && --depth === 0) return i
  }
  throw new ClassAdError('unbalanced parentheses', toks[k].pos)
}

function translate (toks: Tok[], from: number, end: number, job: JobValues): string {
  const out: string[] = []
  // the value map of an os/arch attribute just compared with ==, or about to be
  const mapFor = (i: number): Record<string, string> | undefined => {
    const near = (j: number): Record<string, string> | undefined => {
      const t = toks[j]
      return t !== undefined && j >= from && j < end && t.kind === 'id' && /^((target|my)\.)?(opsys|arch)$/i.test(t.text)
        ? (/arch$/i.test(t.text) ? ARCH : OPSYS) : undefined
    }
    if (toks[i - 1]?.kind === 'op' && EQUALITY.has(toks[i - 1].text) && i - 1 > from) return near(i - 2)
    if (toks[i + 1]?.kind === 'op' && EQUALITY.has(toks[i + 1].text)) return near(i + 2)
    return undefined
  }
  for (let i = from; i < end; i++) {
    const t = toks[i]
    if (t.kind === 'num') { out.push(t.text); continue }
    if (t.kind === 'str') {
      const map = mapFor(i)
      if (map !== undefined) {
        const v = map[t.text.toUpperCase()]
        if (v === undefined) throw new ClassAdError(`"${t.text}" has no bgrid equivalent (known: ${Object.keys(map).join(', ')})`, t.pos)
        out.push(JSON.stringify(v))
      } else out.push(JSON.stringify(t.text))
      continue
    }
    if (t.kind === 'id') {
      if (toks[i + 1]?.kind === 'op' && toks[i + 1].text === '(' && i + 1 < end) {
        if (t.text.toLowerCase() !== 'ifthenelse') throw new ClassAdError(`function ${t.text}() is not translated (bgrid translates ifThenElse only)`, t.pos)
        const close = closeParen(toks, i + 1, end)
        const args: Array<[number, number]> = []
        let depth = 0
        let start = i + 2
        for (let k = i + 2; k < close; k++) {
          const x = toks[k]
          if (x.kind !== 'op') continue
          if (x.text === '(') depth++
          else if (x.text === ')') depth--
          else if (x.text === ',' && depth === 0) { args.push([start, k]); start = k + 1 }
        }
        args.push([start, close])
        if (args.length !== 3 || args.some(([a, b]) => a >= b)) throw new ClassAdError('ifThenElse takes three arguments', t.pos)
        const [c, a, b] = args.map(([x, y]) => translate(toks, x, y, job))
        out.push(`(${c} ? ${a} : ${b})`)
        i = close
        continue
      }
      out.push(attribute(t, job).text)
      continue
    }
    if (t.text === ',') throw new ClassAdError('"," outside a function call', t.pos)
    out.push(t.text)
  }
  return out.join(' ').replace(/\( /g, '(').replace(/ \)/g, ')').replace(/! /g, '!')
}
