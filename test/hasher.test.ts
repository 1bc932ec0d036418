// The hashing thread (cache/hasher.ts): whole files, files hashed while they are written,
// and the errors a read on the calling thread would give.
import t from 'tap'
import { mkdtempSync, writeFileSync, appendFileSync, rmSync } from 'node:fs'
import { randomBytes, createHash } from 'node:crypto'
import os from 'node:os'
import { execFileSync } from 'node:child_process'
import path from 'node:path'
import { hashFile, TrailingHash, INLINE_MAX } from '../cache/hasher.ts'

const dir = mkdtempSync(path.join(os.tmpdir(), 'bgrid-hasher-'))
t.teardown(() => { rmSync(dir, { recursive: true, force: true }) })
const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex')

/** Hash a file, noting whether this process held the hashing thread's port meanwhile. */
async function hashWatched (file: string): Promise<{ result: { hash: string, size: number }, onThread: boolean }> {
  const port = (): boolean => process.getActiveResourcesInfo().includes('MessagePort')
  if (port()) throw new Error('a message port is open already: the check below would mean nothing')
  let settled = false
  let onThread = false
  const p = hashFile(file).finally(() => { settled = true })
  while (!settled && !onThread) {
    onThread = port()
    await new Promise(resolve => setImmediate(resolve))
  }
  return { result: await p, onThread }
}

t.test('whole files: small ones inline, big ones on the hashing thread', async t => {
  for (const size of [0, 1000, INLINE_MAX + 1, 3 * INLINE_MAX + 17]) {
    const bytes = randomBytes(size)
    const file = path.join(dir, `whole-${size}`)
    writeFileSync(file, bytes)
    const { result, onThread } = await hashWatched(file)
    t.same(result, { hash: sha(bytes), size }, `${size} bytes`)
    t.equal(onThread, size >= INLINE_MAX, size >= INLINE_MAX ? 'hashed on the thread' : 'hashed inline')
  }
})

t.test('a file hashed while it is written, two at once', async t => {
  const parts = [randomBytes(3_000_000), randomBytes(5_000_000), randomBytes(1)]
  const files = [path.join(dir, 'trail-a'), path.join(dir, 'trail-b')]
  for (const f of files) writeFileSync(f, '')
  const hashes = files.map(f => new TrailingHash(f))
  let written = 0
  for (const part of parts) {
    for (const f of files) appendFileSync(f, part)
    written += part.length
    for (const h of hashes) h.advance(written)
  }
  const whole = Buffer.concat(parts)
  t.equal(await hashes[0].digest(whole.length), sha(whole))
  t.equal(await hashes[1].digest(whole.length), sha(whole))
  await t.rejects(hashes[0].digest(whole.length), /already taken/, 'a digest is taken once')
})

t.test('only the first `size` bytes count; a file shorter than promised is an error', async t => {
  const bytes = randomBytes(INLINE_MAX)
  const file = path.join(dir, 'short')
  writeFileSync(file, bytes)
  t.equal(await new TrailingHash(file).digest(1000), sha(bytes.subarray(0, 1000)))
  await t.rejects(new TrailingHash(file).digest(bytes.length + 1), /ends at/)
})

t.test('errors are those of a read here: a missing file is ENOENT', async t => {
  await t.rejects(hashFile(path.join(dir, 'nope')), { code: 'ENOENT' })
  await t.rejects(new TrailingHash(path.join(dir, 'nope')).digest(10), { code: 'ENOENT' })
  // a cancelled job leaves the thread serving others
  const file = path.join(dir, 'after-cancel')
  const bytes = randomBytes(INLINE_MAX + 5)
  writeFileSync(file, bytes)
  const dropped = new TrailingHash(file)
  dropped.advance(100)
  dropped.cancel()
  t.same(await hashFile(file), { hash: sha(bytes), size: bytes.length })
})

t.test('a process waiting only on a hash stays alive until it has it', async t => {
  // nothing else keeps this child's event loop alive: the hashing thread must
  const bytes = randomBytes(INLINE_MAX * 2)
  const file = path.join(dir, 'lonely')
  writeFileSync(file, bytes)
  const hasher = new URL('../cache/hasher.ts', import.meta.url).href
  const script = `const { hashFile } = await import(${JSON.stringify(hasher)}); process.stdout.write((await hashFile(${JSON.stringify(file)})).hash)`
  const scriptFile = path.join(dir, 'lonely.mjs')
  writeFileSync(scriptFile, script)
  const out = execFileSync(process.execPath, [scriptFile], { encoding: 'utf8' })
  t.equal(out, sha(bytes))
})
