// The blob store as a flipping disk and a hostile job would try it: real files, real
// LevelDB. A changed blob is caught before use, a silent flip by the scrub; a job's
// file is copied in without its inode ever being touched; links are never followed.
import t from 'tap'
import { writeFileSync, readFileSync, statSync, utimesSync, symlinkSync, mkdirSync, rmSync, existsSync, readdirSync, chownSync, linkSync, closeSync } from 'node:fs'
import { execFileSync } from 'node:child_process'
import { createHash } from 'node:crypto'
import path from 'node:path'
import { openDb } from '../protocol/db.ts'
import { BlobStore } from '../cache/store.ts'
import { openOutput, diskUsage } from '../daemon/sandbox.ts'
import { scratchDir } from '../testbed/cluster.ts'

const root = scratchDir('store-')
const db = await openDb(path.join(root, 'node'))
const corrupt: Array<[string, string]> = []
const store = new BlobStore(path.join(root, 'node'), db, { onCorrupt: (h, why) => { corrupt.push([h, why]) } })
await store.load()
t.teardown(async () => { await db.close(); rmSync(root, { recursive: true, force: true }) })

const sha = (s: string | Buffer): string => createHash('sha256').update(s).digest('hex')

/** a disk flipping bits: new bytes in the same inode, times put back to the nanosecond (no seal can see it) */
function flipSilently (file: string, bytes: Buffer): void {
  const ns = statSync(file, { bigint: true }).mtimeNs
  writeFileSync(file, bytes)
  execFileSync('touch', ['-d', `@${ns / 1_000_000_000n}.${String(ns % 1_000_000_000n).padStart(9, '0')}`, file])
}

t.test('a blob whose file changed is re-hashed before use: corrupt, it is quarantined and reported, never linked', async t => {
  const { hash } = await store.putBuffer(Buffer.from('GOOD\n'))
  const file = store.blobPath(hash)
  t.equal(statSync(file).mode & 0o777, 0o444, 'stored read-only')
  writeFileSync(file, 'EVIL\n')
  const dest = path.join(root, 'in.txt')
  await t.rejects(store.linkTo(hash, dest), { code: 'HASH_MISMATCH' })
  t.notOk(existsSync(dest), 'nothing linked')
  t.notOk(store.has(hash), 'forgotten')
  t.same(corrupt.map(c => c[0]), [hash], 'reported once')
  t.ok(readdirSync(path.join(root, 'node', 'cas', 'quarantine')).some(f => f.startsWith(hash)), 'kept aside for a look')
  corrupt.length = 0
})

t.test('a touched but intact blob is sealed again and used', async t => {
  const { hash } = await store.putBuffer(Buffer.from('TOUCHED\n'))
  utimesSync(store.blobPath(hash), new Date(), new Date(Date.now() + 5000))
  t.equal(await store.intact(hash), true)
  t.same(corrupt, [])
})

t.test('a bit flipped under an unchanged seal: the scrub finds it; a fresh good copy repairs the blob', async t => {
  const good = Buffer.from('0123456789abcdef')
  const { hash } = await store.putBuffer(good)
  const file = store.blobPath(hash)
  flipSilently(file, Buffer.from('0123456789abcdeF'))
  t.equal(await store.intact(hash), true, 'the seal cannot see it')
  const report = await store.verifyAll()
  t.same(report.corrupt, [hash], 'the scrub does')
  t.notOk(store.has(hash))
  corrupt.length = 0
  // and when the same bytes are produced again, they replace whatever was there
  const again = await store.putBuffer(good)
  t.equal(again.hash, hash)
  t.ok(readFileSync(store.blobPath(hash)).equals(good))
  flipSilently(file, Buffer.from('xxxxxxxxxxxxxxxx'))
  await store.putBuffer(good)
  t.ok(readFileSync(store.blobPath(hash)).equals(good), 'a good copy replaced the silently corrupt one')
})

t.test('a job\'s output is copied in: its inode keeps its owner, mode and place; the store\'s copy is root\'s and read-only', async t => {
  const work = path.join(root, 'work')
  mkdirSync(work)
  const out = path.join(work, 'out.txt')
  writeFileSync(out, 'result\n', { mode: 0o600 })
  chownSync(out, 2130706433, 2130706433)
  const before = statSync(out)
  const fd = openOutput(work, 'out.txt')
  const { hash } = await store.importFile(fd, 'run-a')
  closeSync(fd)
  const after = statSync(out)
  t.same([after.ino, after.uid, after.mode, after.nlink], [before.ino, before.uid, before.mode, before.nlink], 'the job\'s file is untouched')
  const blob = statSync(store.blobPath(hash))
  t.not(blob.ino, before.ino, 'the store holds its own inode')
  t.same([blob.uid, blob.mode & 0o777], [0, 0o444])
  t.equal(hash, sha('result\n'))
  t.ok(store.allows(hash, 'run-a'), 'readable by the run that made it')
  t.notOk(store.allows(hash, 'run-b'), 'not by another')
  await store.grant(hash, 'run-b')
  t.ok(store.allows(hash, 'run-b'), 'until it is granted')
})

t.test('outputs are opened without following links: symlinks, symlinked parents, FIFOs and hard-linked store files', async t => {
  const work = path.join(root, 'work2')
  mkdirSync(path.join(work, 'sub'), { recursive: true })
  const decoy = path.join(root, 'decoy')
  mkdirSync(decoy)
  writeFileSync(path.join(decoy, 'secret'), 'secret\n', { mode: 0o600 })
  symlinkSync(path.join(decoy, 'secret'), path.join(work, 'link.txt'))
  symlinkSync(decoy, path.join(work, 'd'))
  execFileSync('mkfifo', [path.join(work, 'fifo')])
  writeFileSync(path.join(work, 'sub', 'ok.txt'), 'ok\n')
  t.throws(() => openOutput(work, 'link.txt'), /link\.txt: it is a symbolic link/)
  t.throws(() => openOutput(work, 'd/secret'), /d\/secret: d\/ is a symbolic link/)
  t.throws(() => openOutput(work, 'fifo'), /not a regular file/)
  t.throws(() => openOutput(work, 'missing.txt'), { code: 'ENOENT' })
  t.throws(() => openOutput(work, '../decoy/secret'), /"\.\." in path/)
  const fd = openOutput(work, 'sub/ok.txt')
  t.equal(readFileSync(fd, 'utf8'), 'ok\n')
  closeSync(fd)
  t.equal(statSync(path.join(decoy, 'secret')).mode & 0o777, 0o600, 'the decoy is as it was')
})

t.test('disk usage counts what the job wrote, once per inode, and not the daemon\'s input links', async t => {
  const work = path.join(root, 'work3')
  mkdirSync(work)
  writeFileSync(path.join(work, 'a'), Buffer.alloc(1 << 20))
  linkSync(path.join(work, 'a'), path.join(work, 'b'))
  chownSync(path.join(work, 'a'), 2130706433, 2130706433)
  const { hash } = await store.putBuffer(Buffer.alloc(3 << 20, 1))
  await store.linkTo(hash, path.join(work, 'input'))
  const u = await diskUsage([work], 0)
  t.ok(u.bytes >= 1 << 20 && u.bytes < 2 << 20, `${u.bytes} bytes: the 1 MiB file once, the 3 MiB input not at all`)
  t.equal(u.entries, 3)
})

t.test('the store survives a restart: the index and seals come back; a blob deleted meanwhile is forgotten', async t => {
  const { hash } = await store.putBuffer(Buffer.from('persist\n'))
  const { hash: gone } = await store.putBuffer(Buffer.from('gone\n'))
  rmSync(store.blobPath(gone))
  const again = new BlobStore(path.join(root, 'node'), db, {})
  await again.load()
  t.ok(again.has(hash))
  t.equal(await again.intact(hash), true)
  t.notOk(again.has(gone))
})
