// What a file system of its own per job attempt costs (daemon/sandbox-fs.ts): the time to
// make one (sparse image, mkfs.ext4, mount) and to remove one (umount, which frees the
// loop device, and the image deleted), done off the hot path; and the hot path itself,
// a ready one taken for an attempt and given back as new. Needs root and loop devices.
// Usage: node bench/sandbox-fs.ts [sizeMiB=1024] [rounds=20]
import { mkdtempSync, rmSync, mkdirSync } from 'node:fs'
import path from 'node:path'
import { SandboxFilesystems } from '../daemon/sandbox-fs.ts'
import { median } from './measure.ts'

const size = Number(process.argv[2] ?? 1024)
const rounds = Number(process.argv[3] ?? 20)
const say = (s: string): void => { process.stdout.write(s + '\n') }
if (process.getuid?.() !== 0) { say('bench/sandbox-fs.ts needs root (loop devices, mount)'); process.exit(1) }
mkdirSync('/var/lib/bgrid-labs', { recursive: true })
const data = mkdtempSync(path.join('/var/lib/bgrid-labs', 'fsbench-'))
const pool = await SandboxFilesystems.open(data, {
  sizeMiB: size, perSize: 2, onError: (what, err) => { say(`${what}: ${String(err)}`) }
})
try {
  if (!(pool instanceof SandboxFilesystems)) throw new Error(`no sandbox file systems here: ${pool.why}`)
  const create: number[] = []
  const remove: number[] = []
  for (let i = 0; i < rounds; i++) {
    const t0 = performance.now()
    const fs = await pool.make(size)
    const t1 = performance.now()
    await pool.remove(fs)
    remove.push(performance.now() - t1)
    create.push(t1 - t0)
  }
  // the hot path: a ready one taken and given back (a job that left nothing)
  const reuse: number[] = []
  const used = new Set<number>()
  for (let i = 0; i < 2000; i++) {
    const t0 = performance.now()
    const fs = await pool.take(size)
    used.add(fs.id)
    mkdirSync(path.join(fs.dir, 'work'))
    rmSync(path.join(fs.dir, 'work'), { recursive: true })
    pool.give(fs)
    reuse.push(performance.now() - t0)
  }
  const f = (xs: number[]): string =>
    `median ${median(xs).toFixed(1)} ms, min ${Math.min(...xs).toFixed(1)}, max ${Math.max(...xs).toFixed(1)}`
  say(`sandbox file system of ${size} MiB, ${rounds} rounds: create (image, mkfs.ext4, mount) ${f(create)}; ` +
    `remove (umount, loop device freed, image deleted) ${f(remove)}`)
  const us = (median(reuse) * 1000).toFixed(0)
  say(`reuse of a ready one (take, mkdir work/, rm, give back as new), 2000 times: median ${us} us, ` +
    `${used.size} file system(s) used in all`)
} finally {
  if (pool instanceof SandboxFilesystems) pool.closeSync()
  rmSync(data, { recursive: true, force: true })
}
