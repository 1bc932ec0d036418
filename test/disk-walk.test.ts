// The disk walk a daemon falls back on where an attempt cannot have a file system of its
// own (daemon/sandbox.ts diskUsage, diskUsageSync): it walks by directory descriptors, so
// a tree nested deeper than a path can name is counted like any other, and what it cannot
// count (more entries than its cap, a tree deeper than it goes) puts the job over its limit.
import t from 'tap'
import { mkdtempSync, mkdirSync, writeFileSync, rmSync, openSync, closeSync, constants as fsConst } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { diskUsage, diskUsageSync } from '../daemon/sandbox.ts'

const root = mkdtempSync(path.join(os.tmpdir(), 'bgrid-walk-'))
t.teardown(() => { rmSync(root, { recursive: true, force: true }) })

/** a tree `levels` deep of `name`, made relative to each parent's descriptor; returns the deepest's fd path */
function deepTree (top: string, levels: number, name: string): string {
  mkdirSync(top)
  let fd = openSync(top, fsConst.O_RDONLY | fsConst.O_DIRECTORY)
  for (let i = 0; i < levels; i++) {
    mkdirSync(`/proc/self/fd/${fd}/${name}`)
    const next = openSync(`/proc/self/fd/${fd}/${name}`, fsConst.O_RDONLY | fsConst.O_DIRECTORY)
    closeSync(fd)
    fd = next
  }
  // the file at the bottom, written through the descriptor of its directory
  writeFileSync(`/proc/self/fd/${fd}/data`, Buffer.alloc(4 << 20, 1))
  closeSync(fd)
  return top
}

t.test('a file nested past PATH_MAX (4,096 bytes of path) is counted', async t => {
  const top = deepTree(path.join(root, 'deep'), 30, 'x'.repeat(200))
  for (const u of [diskUsageSync([top]), await diskUsage([top])]) {
    t.ok(u.bytes >= 4 << 20, `${u.bytes} bytes: the 4 MiB at the bottom of 6,000 bytes of path`)
    t.equal(u.over, undefined, 'and nothing it could not count')
  }
})

t.test('a tree deeper than the walk goes is over the limit, whatever its bytes', async t => {
  const top = deepTree(path.join(root, 'deeper'), 1100, 'd')
  for (const u of [diskUsageSync([top]), await diskUsage([top])]) t.match(u.over, /nested more than 1000 deep/)
})

t.test('more entries than the cap are over the limit (they were only not counted)', async t => {
  const top = path.join(root, 'many')
  mkdirSync(top)
  for (let i = 0; i < 300; i++) writeFileSync(path.join(top, `f${i}`), '')
  const walked = [diskUsageSync([top], undefined, 200), await diskUsage([top], undefined, 200)]
  for (const u of walked) t.match(u.over, /more than 200 files/)
  t.equal(diskUsageSync([top], undefined, 1000).over, undefined, 'under the cap: fine')
})
