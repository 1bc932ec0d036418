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
  const m = /# \{ total: (\d+)(?:, pass: (\d+))?(?:, fail: (\d+))?/.exec(tail)
  const total = Number(m?.[1] ?? 0)
  const passed = Number(m?.[2] ?? 0)
  const failed = m === null ? 1 : Number(m[3] ?? Math.max(0, total - passed - 0))
  const skipped = /skip: (\d+)/.exec(tail)?.[1]
  process.stdout.write(`\n${passed} passed, ${failed} failed${skipped !== undefined ? `, ${skipped} skipped` : ''}\n`)
  process.exit(code ?? 1)
})
