// Compiles the containment helper (bgrid-contain.c) into dist/libexec. Run by
// `npm run build` (so by `npm install`). Without a C compiler it says so and stops
// there: a root daemon then refuses to start unless told --isolation none.
import { spawnSync } from 'node:child_process'
import { mkdirSync } from 'node:fs'
import path from 'node:path'

const root = path.resolve(import.meta.dirname, '..', '..')
const src = path.join(root, 'daemon', 'contain', 'bgrid-contain.c')
const out = path.join(root, 'dist', 'libexec', 'bgrid-contain')
mkdirSync(path.dirname(out), { recursive: true })
const flags = ['-O2', '-Wall', '-Wextra', '-D_FORTIFY_SOURCE=2', '-fstack-protector-strong', '-o', out, src]
for (const cc of [process.env.CC, 'cc', 'gcc', 'clang'].filter((c): c is string => c !== undefined && c !== '')) {
  // static where the C library allows it: no dynamic loader in a process that runs as root
  for (const extra of [['-static'], []]) {
    const r = spawnSync(cc, [...extra, ...flags], { stdio: ['ignore', 'ignore', 'pipe'], encoding: 'utf8' })
    if (r.error !== undefined) break
    if (r.status === 0) { process.stdout.write(`built ${path.relative(root, out)} with ${cc}${extra.length > 0 ? ' (static)' : ''}\n`); process.exit(0) }
    if (extra.length === 0) { process.stderr.write(r.stderr); process.exit(1) }
  }
}
process.stderr.write('bgrid: no C compiler (cc, gcc or clang): the containment helper was not built; a root daemon will refuse to run jobs until it is (install gcc and run `npm run build`)\n')
