// Lower folders never import from higher ones: protocol/ and cache/ are shared by the
// daemon and the coordinator, and the daemon runs without the coordinator's code.
import t from 'tap'
import path from 'node:path'
import { readdirSync, readFileSync } from 'node:fs'

const ROOT = path.resolve(import.meta.dirname, '..')

/** folder -> the top-level folders it must not import from */
const FORBIDDEN: Record<string, readonly string[]> = {
  protocol: ['daemon', 'coordinator', 'middleware-adapters', 'bin'],
  cache: ['daemon', 'coordinator', 'middleware-adapters', 'bin'],
  daemon: ['coordinator', 'bin']
}

function tsFiles (dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap(e => {
    const p = path.join(dir, e.name)
    if (e.isDirectory()) return e.name === 'node_modules' ? [] : tsFiles(p)
    return e.name.endsWith('.ts') ? [p] : []
  })
}

/** The specifiers of a file's static imports, `export … from`, side-effect imports and import(). */
function importSpecifiers (source: string): string[] {
  // comments out of the way (a specifier in a comment is no import); strings stay
  const code = source.replace(/\/\*[\s\S]*?\*\//g, '').replace(/^\s*\/\/.*$/gm, '')
  const out: string[] = []
  for (const re of [
    /\b(?:import|export)\s[^'"`;]*?\bfrom\s*['"]([^'"]+)['"]/g,
    /\bimport\s*['"]([^'"]+)['"]/g,
    /\bimport\s*\(\s*['"]([^'"]+)['"]\s*\)/g
  ]) for (const m of code.matchAll(re)) out.push(m[1])
  return out
}

/** The top-level folder of the repository a relative specifier lands in (undefined: a package). */
function landsIn (file: string, spec: string): string | undefined {
  if (!spec.startsWith('.')) return undefined
  const rel = path.relative(ROOT, path.resolve(path.dirname(file), spec))
  return rel.startsWith('..') ? '(outside the repository)' : rel.split(path.sep)[0]
}

t.test('the import scanner sees every form of import', async t => {
  t.same(importSpecifiers([
    "import t from 'tap'",
    "import type { A } from '../daemon/a.ts'",
    'import {\n  b,\n  c\n} from "../coordinator/b.ts"',
    "export { d } from './d.ts'",
    "export * from '../bin/e.ts'",
    "import '../daemon/side.ts'",
    "const m = await import('../coordinator/lazy.ts')",
    "// import x from '../daemon/commented.ts'",
    "/* import y from '../daemon/also-commented.ts' */"
  ].join('\n')).sort(), ['../bin/e.ts', '../coordinator/b.ts', '../coordinator/lazy.ts', '../daemon/a.ts', '../daemon/side.ts', './d.ts', 'tap'])
})

t.test('protocol/ and cache/ import nothing from above; daemon/ nothing from the coordinator or the CLI', async t => {
  const offending: string[] = []
  let scanned = 0
  for (const [folder, forbidden] of Object.entries(FORBIDDEN)) {
    for (const file of tsFiles(path.join(ROOT, folder))) {
      scanned++
      for (const spec of importSpecifiers(readFileSync(file, 'utf8'))) {
        const top = landsIn(file, spec)
        if (top !== undefined && (forbidden.includes(top) || top === '(outside the repository)')) offending.push(`${path.relative(ROOT, file)} imports ${spec}`)
      }
    }
  }
  t.ok(scanned > 30, `${scanned} files scanned`)
  t.same(offending, [], 'no import from a higher folder')
})
