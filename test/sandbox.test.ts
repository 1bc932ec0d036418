// The attempt boxes of a run (daemon/sandbox.ts), on real files: a box is used again only
// as new (no work/ left, an empty root-made sticky tmp/), whatever the last job did to it.
import t from 'tap'
import { mkdtempSync, writeFileSync, mkdirSync, rmSync, readdirSync, statSync, lstatSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { RunSandboxes } from '../daemon/sandbox.ts'

const root = mkdtempSync(path.join(os.tmpdir(), 'bgrid-sandbox-'))
t.teardown(() => { rmSync(root, { recursive: true, force: true }) })

t.test('a released box comes back with a fresh work/ and an empty sticky tmp/, whatever the job left in them', async t => {
  const boxes = new RunSandboxes(path.join(root, 'run1'), { privateTree: true })
  const a = boxes.create([], ['out.txt'])
  for (let i = 0; i < 50; i++) writeFileSync(path.join(a.tmp, `left-${i}`), 'x')
  mkdirSync(path.join(a.tmp, 'deep', 'er'), { recursive: true })
  writeFileSync(path.join(a.work, 'out.txt'), 'result')
  boxes.release(a)
  const b = boxes.create([], [])
  t.equal(b.dir, a.dir, 'the same box')
  t.same(readdirSync(b.tmp), [], 'tmp/ is empty')
  t.equal(statSync(b.tmp).mode & 0o7777, 0o1777, 'sticky and world-writable, as /tmp')
  t.same(readdirSync(b.work), [], 'work/ is new')
  boxes.release(b)
})

t.test('a box whose tmp/ went missing gets a new one before it is used again', async t => {
  const boxes = new RunSandboxes(path.join(root, 'run2'), { privateTree: true })
  const a = boxes.create([], [])
  rmSync(a.tmp, { recursive: true })
  boxes.release(a)
  const b = boxes.create([], [])
  t.ok(lstatSync(b.tmp).isDirectory(), 'tmp/ is there')
  t.equal(statSync(b.tmp).mode & 0o7777, 0o1777)
})
