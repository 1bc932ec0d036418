// Every print path of bin/ and coordinator/ goes through protocol/printable.ts (issue 19):
// a source scan, with the TypeScript checker, of every call that writes to a terminal
// (console.*, process.stdout/stderr.write, .write on a tty or stream, Progress's out).
// The rule: each value a print call interpolates must be
//  - a literal, or of a type that cannot carry a control character (number, boolean,
//    bigint, a string literal type such as a constant's, null, undefined), or a number
//    formatted (String(n), n.toFixed(), a Date's toISOString(), and slices/pads of those);
//  - or passed through printable / printableLines / printableJson / printableFor;
//  - or on ALLOW below, with the reason it is produced locally.
// A + b, `${a}`, a ? b : c are judged by their parts. Logger calls (debug/info/warn/error
// on a Logger) are not print calls here: protocol/log.ts prints every message and field
// through printable (test/printable.test.ts checks it).
import t from 'tap'
import path from 'node:path'
import { readdirSync } from 'node:fs'
import ts from 'typescript'

const ROOT = path.resolve(import.meta.dirname, '..')

/** the functions that make text printable (protocol/printable.ts) */
const CLEANERS = new Set(['printable', 'printableLines', 'printableJson', 'printableFor'])

/**
 * file (from the root) -> why its print calls may interpolate as they do. Short on purpose:
 * a new entry needs a reason the value cannot come from a job, a worker or the network.
 */
const ALLOW: Record<string, string> = {
  // the launcher runs before any module is loaded, on whatever Node is installed (it checks
  // the version): it names the local Node binary and its own load error
  'bin/bgrid.ts': 'the local Node version and path, before anything else runs',
  // `npm run demo` prints what its own bgrid processes print (they escape remote text themselves)
  // and its own words about its local daemons
  'bin/demo.ts': 'the output of the bgrid CLI it runs, and its own messages'
}

function tsFiles (dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap(e => {
    const p = path.join(dir, e.name)
    if (e.isDirectory()) return tsFiles(p)
    return e.name.endsWith('.ts') ? [p] : []
  })
}

// the middleware adapters too: the Condor style (DAGMan) prints, as it did from coordinator/ before the redesign
const files = [...tsFiles(path.join(ROOT, 'bin')), ...tsFiles(path.join(ROOT, 'coordinator')), ...tsFiles(path.join(ROOT, 'middleware-adapters'))]
const parsed = ts.getParsedCommandLineOfConfigFile(path.join(ROOT, 'tsconfig.json'), {}, {
  ...ts.sys, onUnRecoverableConfigFileDiagnostic: d => { throw new Error(String(d.messageText)) }
})
if (parsed === undefined) throw new Error('tsconfig.json not read')
const options = { ...parsed.options, noEmit: true }

/** a type whose values print as no control character */
function harmlessType (type: ts.Type): boolean {
  if (type.isUnion()) return type.types.every(harmlessType)
  const f = type.flags
  return (f & (ts.TypeFlags.NumberLike | ts.TypeFlags.BooleanLike | ts.TypeFlags.BigIntLike |
    ts.TypeFlags.StringLiteral | ts.TypeFlags.Undefined | ts.TypeFlags.Null | ts.TypeFlags.Void |
    ts.TypeFlags.Never)) !== 0
}

/** methods that format a harmless value into a harmless string (or cut and pad one) */
const FORMATS = new Set(['toFixed', 'toPrecision', 'toISOString', 'toLocaleTimeString', 'toLocaleString',
  'slice', 'padEnd', 'padStart', 'trimEnd', 'trim', 'toUpperCase', 'toLowerCase', 'repeat'])

function calleeName (e: ts.CallExpression): string | undefined {
  const c = e.expression
  if (ts.isIdentifier(c)) return c.text
  if (ts.isPropertyAccessExpression(c)) return c.name.text
  return undefined
}

/** the parts of an interpolated value that are not safe to print (empty: safe) */
function unsafeParts (e: ts.Expression, checker: ts.TypeChecker): ts.Expression[] {
  if (ts.isStringLiteral(e) || ts.isNoSubstitutionTemplateLiteral(e) || ts.isNumericLiteral(e)) return []
  if (ts.isParenthesizedExpression(e) || ts.isAsExpression(e) || ts.isNonNullExpression(e)) {
    return unsafeParts(e.expression, checker)
  }
  if (ts.isTemplateExpression(e)) return e.templateSpans.flatMap(s => unsafeParts(s.expression, checker))
  if (ts.isConditionalExpression(e)) return [...unsafeParts(e.whenTrue, checker), ...unsafeParts(e.whenFalse, checker)]
  // a + b, a ?? b, a || b print their parts (other operators make numbers or booleans: judged by type below)
  const joins = [ts.SyntaxKind.PlusToken, ts.SyntaxKind.QuestionQuestionToken, ts.SyntaxKind.BarBarToken]
  if (ts.isBinaryExpression(e) && joins.includes(e.operatorToken.kind)) {
    return [...unsafeParts(e.left, checker), ...unsafeParts(e.right, checker)]
  }
  if (ts.isCallExpression(e)) {
    const name = calleeName(e)
    if (name !== undefined && CLEANERS.has(name)) return []
    // String(n) of a harmless n; n.toFixed(2), s.slice(0, 8) of a harmless receiver
    if (name === 'String' && e.arguments.length === 1) return unsafeParts(e.arguments[0], checker)
    if (name !== undefined && FORMATS.has(name) && ts.isPropertyAccessExpression(e.expression)) {
      const receiver = e.expression.expression
      if (ts.isNewExpression(receiver) && receiver.expression.getText() === 'Date') return []
      return unsafeParts(receiver, checker)
    }
  }
  return harmlessType(checker.getTypeAtLocation(e)) ? [] : [e]
}

interface Finding { file: string, line: number, call: string, value: string }

/** a call that writes to a terminal (or to a stream that may be one) */
function isPrintCall (e: ts.CallExpression, checker: ts.TypeChecker): boolean {
  const c = e.expression
  if (!ts.isPropertyAccessExpression(c)) return false
  const method = c.name.text
  const on = c.expression.getText()
  if (on === 'console') return ['log', 'error', 'warn', 'info', 'debug'].includes(method)
  if (method !== 'write') return false
  if (on === 'process.stdout' || on === 'process.stderr') return true
  // a stream handed around: NodeJS.WriteStream / WritableStream / Writable (Progress's out, logs' `to`)
  const type = checker.getTypeAtLocation(c.expression)
  const name = type.getSymbol()?.getName() ?? type.aliasSymbol?.getName() ?? ''
  return /^(WriteStream|WritableStream|Writable)$/.test(name)
}

function scan (program: ts.Program, files: string[]): { findings: Finding[], calls: number } {
  const checker = program.getTypeChecker()
  const findings: Finding[] = []
  let calls = 0
  for (const file of files) {
    const rel = path.relative(ROOT, file)
    if (ALLOW[rel] !== undefined) continue
    const sf = program.getSourceFile(file)
    if (sf === undefined) throw new Error(`${rel} not in the program`)
    const visit = (n: ts.Node): void => {
      if (ts.isCallExpression(n) && isPrintCall(n, checker)) {
        calls++
        for (const arg of n.arguments) {
          for (const bad of unsafeParts(arg, checker)) {
            findings.push({
              file: rel,
              line: sf.getLineAndCharacterOfPosition(bad.getStart()).line + 1,
              call: n.expression.getText(),
              value: bad.getText().slice(0, 80)
            })
          }
        }
      }
      ts.forEachChild(n, visit)
    }
    visit(sf)
  }
  return { findings, calls }
}

t.test('every print call in bin/ and coordinator/ interpolates only printable values', async t => {
  const { findings, calls } = scan(ts.createProgram(files, options), files)
  t.ok(calls > 40, `${calls} print calls found (the scan sees them)`)
  for (const f of findings) {
    t.fail(`${f.file}:${f.line}: ${f.call}(… ${f.value} …) prints a value not made printable`)
  }
  t.equal(findings.length, 0, 'no print call interpolates a raw value')
})

t.test('the rule itself: a raw value is caught, a cleaned, numeric or constant one is not', async t => {
  const src = [
    "import { printable } from '../protocol/printable.ts'",
    'declare const name: string',
    'declare const n: number',
    "const HINT = 'a constant'",
    "process.stderr.write(`bad ${name}\\n`)",
    "process.stderr.write(`good ${printable(name)} ${n} ${n.toFixed(1)} ${String(n)} ${HINT} ${n > 1 ? 'x' : ''}\\n`)",
    "console.log('a' + name)",
    "declare const out: NodeJS.WriteStream",
    "out.write(name.slice(0, 3))"
  ].join('\n')
  const fake = path.join(ROOT, 'coordinator', '__probe__.ts')
  const host = ts.createCompilerHost(options)
  const orig = host.getSourceFile.bind(host)
  host.getSourceFile = (f, lang, ...rest) =>
    f === fake ? ts.createSourceFile(f, src, lang, true) : orig(f, lang, ...rest)
  const { findings, calls } = scan(ts.createProgram([fake], options, host), [fake])
  t.equal(calls, 4)
  t.same(findings.map(f => [f.line, f.value]), [[5, 'name'], [7, 'name'], [9, 'name']])
})
