// The import direction of the product, checked on every file. Lower layers never import
// from higher ones:
//   protocol <- cache <- coordinator/core <- coordinator <- middleware-adapters <- bin
//   protocol, cache <- daemon <- bin
// protocol/ and cache/ are shared by the daemon and the coordinator, and the daemon runs
// without the coordinator's code. Inside the run core, the model and the contracts are
// leaves, the parts import only them (what they need of each other is declared in the
// contracts and handed to them), run-core.ts is the one facade that assembles them, and
// nothing does I/O. No file imports itself back through others (type-only imports
// count), and no file re-exports another's names.
import t from 'tap'
import path from 'node:path'
import { readdirSync, readFileSync } from 'node:fs'

const ROOT = path.resolve(import.meta.dirname, '..')

/** The layers of the product, most specific first: a file belongs to the first whose folder holds it. */
const LAYERS = [
  'coordinator/core', 'protocol', 'cache', 'coordinator', 'middleware-adapters', 'daemon', 'bin', 'testbed'
] as const
type Layer = typeof LAYERS[number]

/** layer -> the layers it may import from (itself included) */
const MAY_IMPORT: Record<Layer, readonly Layer[]> = {
  protocol: ['protocol'],
  cache: ['protocol', 'cache'],
  'coordinator/core': ['protocol', 'cache', 'coordinator/core'],
  coordinator: ['protocol', 'cache', 'coordinator/core', 'coordinator'],
  'middleware-adapters': ['protocol', 'cache', 'coordinator/core', 'coordinator', 'middleware-adapters'],
  daemon: ['protocol', 'cache', 'daemon'],
  // the demo starts a cluster of the testbed's
  bin: ['protocol', 'cache', 'coordinator/core', 'coordinator', 'middleware-adapters', 'daemon', 'bin', 'testbed'],
  // the testbed, the tests and the benchmarks may import anything (they are not scanned)
  testbed: []
}

function tsFiles (dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap(e => {
    const p = path.join(dir, e.name)
    if (e.isDirectory()) return e.name === 'node_modules' ? [] : tsFiles(p)
    return e.name.endsWith('.ts') ? [p] : []
  })
}

/** Comments out of the way (a specifier in a comment is no import); strings stay. */
function uncommented (source: string): string {
  return source.replace(/\/\*[\s\S]*?\*\//g, '').replace(/^\s*\/\/.*$/gm, '')
}

/** The specifiers of a file's static imports, `export … from`, side-effect imports and import(). */
function importSpecifiers (source: string): string[] {
  const code = uncommented(source)
  const out: string[] = []
  for (const re of [
    /\b(?:import|export)\s[^'"`;]*?\bfrom\s*['"]([^'"]+)['"]/g,
    /\bimport\s*['"]([^'"]+)['"]/g,
    /\bimport\s*\(\s*['"]([^'"]+)['"]\s*\)/g
  ]) for (const m of code.matchAll(re)) out.push(m[1])
  return out
}

/**
 * The re-exports of a file: `export … from`, `export *`, and `export { a }` of a name the file
 * imports. A barrel hides where a name lives.
 */
function reExports (source: string): string[] {
  const code = uncommented(source)
  const imported = new Set<string>()
  for (const m of code.matchAll(/\bimport\s+(?:type\s+)?([^'"`;]*?)\s*from\s*['"][^'"]+['"]/g)) {
    for (const name of m[1].replace(/[{}]/g, ',').split(',')) {
      const local = name.trim().replace(/^type\s+/, '').split(/\s+as\s+/).pop()?.replace(/^\*\s*/, '').trim()
      if (local !== undefined && local !== '') imported.add(local)
    }
  }
  const out = [...code.matchAll(/\bexport\s+(?:type\s+)?(?:\*|\{[^}]*\})(?:\s+as\s+\w+)?\s*from\s*['"][^'"]+['"]/g)].map(m => m[0].replace(/\s+/g, ' '))
  for (const m of code.matchAll(/\bexport\s+(?:type\s+)?\{([^}]*)\}(?!\s*from)/g)) {
    const names = m[1].split(',').map(n => n.trim().replace(/^type\s+/, '').split(/\s+as\s+/)[0].trim())
    if (names.some(n => imported.has(n))) out.push(m[0].replace(/\s+/g, ' '))
  }
  return out
}

/** The repository-relative path a relative specifier lands on (undefined: a package). */
function target (file: string, spec: string): string | undefined {
  if (!spec.startsWith('.')) return undefined
  return path.relative(ROOT, path.resolve(path.dirname(file), spec)).split(path.sep).join('/')
}

function layerOf (rel: string): Layer | undefined {
  return LAYERS.find(l => rel === l || rel.startsWith(`${l}/`))
}

const PRODUCT = ['protocol', 'cache', 'coordinator', 'middleware-adapters', 'daemon', 'bin']
const files = PRODUCT.flatMap(f => tsFiles(path.join(ROOT, f)))
const rel = (file: string): string => path.relative(ROOT, file).split(path.sep).join('/')
/** file -> the product files it imports */
const edges = new Map<string, string[]>(files.map(f => [
  rel(f),
  importSpecifiers(readFileSync(f, 'utf8')).map(s => target(f, s)).filter((x): x is string => x !== undefined)
]))

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
  t.same(reExports([
    "import { g } from './g.ts'",
    "import type { H, I as J } from './h.ts'",
    "export { a } from './a.ts'",
    "export type { B } from './b.ts'",
    "export * from './c.ts'",
    'export function f () {}',
    'const k = 1',
    'export { g, k }',
    'export type { J }',
    "// export { x } from './x.ts'"
  ].join('\n')), ["export { a } from './a.ts'", "export type { B } from './b.ts'", "export * from './c.ts'", 'export { g, k }', 'export type { J }'])
})

t.test('protocol/ and cache/ import nothing from above; daemon/ nothing from the coordinator or the CLI', async t => {
  const offending: string[] = []
  for (const [file, targets] of edges) {
    const layer = layerOf(file)
    if (layer === undefined) continue
    for (const to of targets) {
      const toLayer = to.startsWith('..') ? undefined : layerOf(to)
      if (toLayer !== undefined && MAY_IMPORT[layer].includes(toLayer)) continue
      offending.push(`${file} (${layer}) imports ${to}`)
    }
  }
  t.ok(files.length > 100, `${files.length} files scanned`)
  t.same(offending, [], 'every import goes down: protocol <- cache <- coordinator/core <- coordinator <- ' +
    'middleware-adapters <- bin; protocol, cache <- daemon <- bin')
})

t.test('the run core: the model and the contracts are leaves, the parts import only them, ' +
  'run-core.ts assembles the parts', async t => {
  const offending: string[] = []
  const core = 'coordinator/core/'
  const MODEL = `${core}model.ts`
  const CONTRACTS = `${core}contracts.ts`
  const FACADE = `${core}run-core.ts`
  t.ok(edges.has(MODEL), 'the model is a file of the run core')
  t.ok(edges.has(CONTRACTS), 'the contracts are a file of the run core')
  t.ok(edges.has(FACADE), 'the facade is a file of the run core')
  for (const [file, targets] of edges) {
    if (!file.startsWith(core)) continue
    for (const to of targets) {
      if (to.startsWith('protocol/')) continue
      const ok = file === MODEL
        ? false
        : file === CONTRACTS
          ? to === MODEL
          : file === FACADE
            ? to.startsWith(core)
            : to === MODEL || to === CONTRACTS
      if (!ok) offending.push(`${file} imports ${to}`)
    }
  }
  t.same(offending, [], 'the model imports only protocol/; the contracts only the model; ' +
    'a part only the model and the contracts (never another part, nor the facade)')
})

t.test('the run core does no I/O: none of its files imports the file system, the network or processes', async t => {
  const IO = /^(?:node:)?(?:fs|fs\/promises|net|dgram|dns|https?|http2|tls|child_process|worker_threads|cluster)$/
  const offending: string[] = []
  for (const f of files) {
    const file = rel(f)
    if (!file.startsWith('coordinator/core/')) continue
    for (const spec of importSpecifiers(readFileSync(f, 'utf8'))) {
      if (IO.test(spec)) offending.push(`${file} imports ${spec}`)
    }
  }
  t.same(offending, [], 'reading files (dag.json, its schema, the inputs it names) is the coordinator\'s, ' +
    'around the run core')
})

t.test('a middleware adapter reaches the coordinator only where its middleware does: condor through its grid pool', async t => {
  const offending: string[] = []
  for (const [file, targets] of edges) {
    if (!file.startsWith('middleware-adapters/condor/') || file === 'middleware-adapters/condor/grid-pool.ts') continue
    for (const to of targets) if (layerOf(to) === 'coordinator') offending.push(`${file} imports ${to}`)
  }
  t.ok([...edges.keys()].some(f => f.startsWith('middleware-adapters/condor/')), 'the Condor style has its folder')
  t.same(offending, [], 'only the grid pool imports the coordinator')
})

t.test('no import cycle between the files of the product (type-only imports count)', async t => {
  const cycles: string[] = []
  const state = new Map<string, 'open' | 'done'>()
  const stack: string[] = []
  const visit = (f: string): void => {
    state.set(f, 'open')
    stack.push(f)
    for (const to of edges.get(f) ?? []) {
      if (!edges.has(to)) continue
      const s = state.get(to)
      if (s === 'open') cycles.push([...stack.slice(stack.indexOf(to)), to].join(' -> '))
      else if (s === undefined) visit(to)
    }
    stack.pop()
    state.set(f, 'done')
  }
  for (const f of [...edges.keys()].sort()) if (!state.has(f)) visit(f)
  t.same(cycles, [], 'the file import graph is acyclic')
})

t.test('no file re-exports names from another (no barrel kept for compatibility)', async t => {
  const barrels: string[] = []
  for (const f of files) for (const r of reExports(readFileSync(f, 'utf8'))) barrels.push(`${rel(f)}: ${r}`)
  t.same(barrels, [], 'every name is imported from the file that declares it')
})
