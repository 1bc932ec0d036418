// Runs the tap suite and ends with the one line CI reads: "N passed, N failed".
import { spawn } from 'node:child_process'
import path from 'node:path'

const root = path.resolve(import.meta.dirname, '..')
const tap = path.join(root, 'node_modules', '.bin', 'tap')
const child = spawn(tap, ['--reporter=tap', ...process.argv.slice(2)], {
  cwd: root,
  stdio: ['ignore', 'pipe', 'inherit'],
  // npm scripts put node_modules/.bin (Node 24) first on PATH; keep it so for direct runs
  env: { ...process.env, PATH: `${path.join(root, 'node_modules', '.bin')}:${process.env.PATH ?? ''}` }
})
let tail = ''
child.stdout.on('data', (b: Buffer) => { process.stdout.write(b); tail = (tail + b.toString()).slice(-4000) })
child.on('close', (code) => {
  // tap's summary line, e.g. "# { total: 408, pass: 407, skip: 1 }" (absent keys are 0)
  const summary = /# \{ (total: \d+[^}]*)\}/.exec(tail)?.[1]
  const count = (key: string): number => Number(new RegExp(`\\b${key}: (\\d+)`).exec(summary ?? '')?.[1] ?? 0)
  const passed = count('pass')
  // no summary at all means tap itself failed
  const failed = summary === undefined ? 1 : count('fail')
  const skipped = count('skip')
  process.stdout.write(`\n${passed} passed, ${failed} failed${skipped > 0 ? `, ${skipped} skipped` : ''}\n`)
  process.exit(code ?? 1)
})
