// The blob protocol between real libp2p nodes on loopback, with real stores on disk.
import t from 'tap'
import { mkdtempSync, writeFileSync, readFileSync, existsSync, readdirSync, rmSync, statSync } from 'node:fs'
import { execFileSync } from 'node:child_process'
import { randomBytes, createHash } from 'node:crypto'
import os from 'node:os'
import path from 'node:path'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { createBgridNode, type BgridNode } from '../protocol/node.ts'
import { openDb, type Db } from '../protocol/db.ts'
import { BlobStore } from '../cache/store.ts'
import { serveBlobs, fetchBlob, fetchBlobVerified, BLOB_PROTOCOL } from '../cache/blob-protocol.ts'
import { lpStream } from '@libp2p/utils'
import type { Stream } from '@libp2p/interface'
import { readJson, writeJson } from '../protocol/rpc.ts'
import { silentLogger } from '../protocol/log.ts'
import { BgridError } from '../protocol/errors.ts'
import { INLINE_MAX } from '../cache/hasher.ts'

interface Peer { node: BgridNode, store: BlobStore, db: Db, dir: string }
const root = mkdtempSync(path.join(os.tmpdir(), 'bgrid-blob-'))
const peers: Peer[] = []
let allow = true

async function peer (quotaBytes?: number): Promise<Peer> {
  const dir = path.join(root, `p${peers.length}`)
  const db = await openDb(dir)
  const store = new BlobStore(dir, db, { quotaBytes })
  await store.load()
  const node = await createBgridNode({ privateKey: await generateKeyPair('Ed25519'), host: '127.0.0.1' })
  await serveBlobs(node, store, { canRead: () => allow, log: silentLogger })
  const p = { node, store, db, dir }
  peers.push(p)
  return p
}

async function connect (a: Peer, b: Peer): Promise<void> {
  await a.node.peerStore.merge(b.node.peerId, { multiaddrs: b.node.getMultiaddrs() })
}

t.teardown(async () => {
  for (const p of peers) { try { await p.node.stop() } catch {} try { await p.db.close() } catch {} }
  rmSync(root, { recursive: true, force: true })
})

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex')

/** a disk flipping bits: new bytes in the same inode, times put back to the nanosecond (no seal can see it) */
function flipSilently (file: string, bytes: Buffer): void {
  const ns = statSync(file, { bigint: true }).mtimeNs
  writeFileSync(file, bytes)
  execFileSync('touch', ['-d', `@${ns / 1_000_000_000n}.${String(ns % 1_000_000_000n).padStart(9, '0')}`, file])
}
const data = randomBytes(48 * 1024 * 1024 + 12345)
const hash = createHash('sha256').update(data).digest('hex')

t.test('fetch a blob from two holders in ranges; verified, stored atomically', async t => {
  const [a, b, c] = [await peer(), await peer(), await peer()]
  await a.store.putBuffer(data)
  await b.store.putBuffer(data)
  await connect(c, a); await connect(c, b)
  const stats = await fetchBlob(c.node, c.store, hash, data.length, [a.node.peerId.toString(), b.node.peerId.toString()], { rangeBytes: 8 * 1024 * 1024 })
  t.equal(stats.bytes, data.length)
  t.equal(stats.holdersUsed, 2, 'both holders served ranges')
  t.ok(c.store.has(hash))
  t.ok(readFileSync(c.store.blobPath(hash)).equals(data), 'bytes identical')
  t.same(readdirSync(path.join(c.dir, 'cas', 'tmp')), [], 'no partial file left')
  const again = await fetchBlob(c.node, c.store, hash, data.length, [a.node.peerId.toString()])
  t.equal(again.bytes, 0, 'already held: nothing moves')
})

t.test('a holder that dies mid-transfer: the fetch finishes from another holder', async t => {
  const [a, b, c] = [await peer(), await peer(), await peer()]
  await a.store.putBuffer(data)
  await b.store.putBuffer(data)
  await connect(c, a); await connect(c, b)
  const fetching = fetchBlob(c.node, c.store, hash, data.length, [a.node.peerId.toString(), b.node.peerId.toString()], { rangeBytes: 4 * 1024 * 1024 })
  // stop holder a as soon as it has started sending
  await new Promise<void>(resolve => {
    const check = setInterval(() => {
      const part = path.join(c.dir, 'cas', 'tmp', `${hash}.part`)
      if (existsSync(part)) { clearInterval(check); resolve() }
    }, 1)
  })
  await a.node.stop()
  const stats = await fetching
  t.ok(stats.failures.length >= 1, `holder a failed: ${stats.failures[0]}`)
  t.ok(readFileSync(c.store.blobPath(hash)).equals(data), 'complete and correct')
})

t.test('corrupt bytes from a holder are rejected and fetched again from another', async t => {
  const small = randomBytes(300_000)
  const h = createHash('sha256').update(small).digest('hex')
  const [a, b, c] = [await peer(), await peer(), await peer()]
  await a.store.putBuffer(small)
  await b.store.putBuffer(small)
  const bad = Buffer.from(small); bad[1000] ^= 0xff
  flipSilently(a.store.blobPath(h), bad) // a's disk went bad
  await connect(c, a); await connect(c, b)
  await t.rejects(fetchBlob(c.node, c.store, h, small.length, [a.node.peerId.toString()]), { code: 'HASH_MISMATCH' }, 'corrupt transfer refused')
  t.notOk(c.store.has(h), 'nothing stored from it')
  t.notOk(existsSync(c.store.partPath(h)), 'partial download discarded')
  const stats = await fetchBlobVerified(c.node, c.store, h, small.length, [a.node.peerId.toString(), b.node.peerId.toString()])
  t.match(stats.failures[0], /corrupt/)
  t.same(stats.badHolders, [a.node.peerId.toString()], 'the holder that sent bad bytes is named')
  t.ok(readFileSync(c.store.blobPath(h)).equals(small), 'good copy from b')
})

t.test('a big blob from one holder is hashed on the hashing thread as it lands; corrupt bytes are still caught', async t => {
  const big = randomBytes(INLINE_MAX * 2 + 777)
  const h = createHash('sha256').update(big).digest('hex')
  const [a, c] = [await peer(), await peer()]
  await a.store.putBuffer(big)
  await connect(c, a)
  // what the download hands the store: the hash it computed on the way, if any
  const onTheWay: Array<string | undefined> = []
  const commitPart = c.store.commitPart.bind(c.store)
  c.store.commitPart = async (hash, size, hashed) => { onTheWay.push(hashed); await commitPart(hash, size, hashed) }
  const bad = Buffer.from(big); bad[big.length - 5] ^= 0x01
  flipSilently(a.store.blobPath(h), bad)
  await t.rejects(fetchBlob(c.node, c.store, h, big.length, [a.node.peerId.toString()]), { code: 'HASH_MISMATCH' }, 'one flipped bit near the end is refused')
  t.equal(onTheWay[0], sha(bad), 'hashed as it landed: the corrupt bytes\' hash')
  t.notOk(c.store.has(h))
  flipSilently(a.store.blobPath(h), big)
  await fetchBlob(c.node, c.store, h, big.length, [a.node.peerId.toString()])
  t.equal(onTheWay[1], h, 'hashed as it landed')
  t.ok(readFileSync(c.store.blobPath(h)).equals(big), 'the good bytes are accepted')
})

t.test('a full store refuses with DISK_FULL before transferring and leaves no partial blob', async t => {
  const [a, c] = [await peer(), await peer(1024 * 1024)]
  await a.store.putBuffer(data)
  await connect(c, a)
  const err = await fetchBlob(c.node, c.store, hash, data.length, [a.node.peerId.toString()]).catch(e => e)
  t.ok(err instanceof BgridError && err.code === 'DISK_FULL', String(err))
  t.match(err.message, /quota/)
  t.notOk(c.store.has(hash))
  t.notOk(existsSync(c.store.partPath(hash)))
})

t.test('LRU eviction keeps the quota; pinned blobs stay', async t => {
  const p = await peer(3 * 1024 * 1024)
  const blobs = [randomBytes(1024 * 1024), randomBytes(1024 * 1024), randomBytes(1024 * 1024)]
  const ids = []
  for (const b of blobs) { ids.push((await p.store.putBuffer(b)).hash); await new Promise(resolve => setTimeout(resolve, 5)) }
  await p.store.pin(ids[0])
  p.store.touch(ids[2])
  await p.store.putBuffer(randomBytes(1024 * 1024))
  t.ok(p.store.has(ids[0]), 'pinned blob kept')
  t.notOk(p.store.has(ids[1]), 'least recently used unpinned blob evicted')
  t.ok(p.store.has(ids[2]))
  t.ok(p.store.used <= 3 * 1024 * 1024)
})

t.test('an unauthorised reader is refused', async t => {
  const [a, c] = [await peer(), await peer()]
  const { hash: h, size } = await a.store.putBuffer(randomBytes(1000))
  await connect(c, a)
  allow = false
  await t.rejects(fetchBlob(c.node, c.store, h, size, [a.node.peerId.toString()]), /UNAUTHORISED|every holder failed/)
  allow = true
  t.notOk(c.store.has(h))
})

/**
 * A hostile holder over real libp2p, its own handler: it answers a request's header as an
 * honest one would, then `send` decides what bytes follow (and when).
 */
async function hostileHolder (bytes: Buffer, send: (stream: Stream, from: number, to: number) => Promise<void>): Promise<BgridNode> {
  const node = await createBgridNode({ privateKey: await generateKeyPair('Ed25519'), host: '127.0.0.1' })
  await node.handle(BLOB_PROTOCOL, async (stream) => {
    const lp = lpStream(stream)
    const req = await readJson(lp, AbortSignal.timeout(5000)) as { offset: number, length?: number }
    const length = req.length ?? bytes.length - req.offset
    await writeJson(lp, { ok: true, size: bytes.length, offset: req.offset, length }, AbortSignal.timeout(5000))
    await send(stream, req.offset, req.offset + length)
  })
  peers.push({ node, store: undefined as unknown as BlobStore, db: { close: async () => {} } as unknown as Db, dir: '' })
  return node
}

/** sends its first `sendFirst` bytes, then goes quiet without closing: a stopped process, a saturated link */
async function stallingHolder (bytes: Buffer, sendFirst: number): Promise<BgridNode> {
  return await hostileHolder(bytes, async (stream, from, to) => { stream.send(bytes.subarray(from, Math.min(to, from + sendFirst))) })
}

/** sends `chunk` bytes every `everyMs`: never silent for long, never done */
async function tricklingHolder (bytes: Buffer, chunk: number, everyMs: number): Promise<BgridNode> {
  return await hostileHolder(bytes, async (stream, from, to) => {
    for (let at = from, n = 0; at < to && n < 200 && stream.status === 'open'; at += chunk, n++) {
      stream.send(bytes.subarray(at, Math.min(at + chunk, to)))
      await new Promise(resolve => setTimeout(resolve, everyMs))
    }
  })
}

t.test('a holder that stalls mid-transfer is abandoned after the stall deadline; the blob comes from another', async t => {
  const bytes = randomBytes(4 * 1024 * 1024)
  const h = sha(bytes)
  const staller = await stallingHolder(bytes, 1024 * 1024)
  const [good, c] = [await peer(), await peer()]
  await good.store.putBuffer(bytes)
  await c.node.peerStore.merge(staller.peerId, { multiaddrs: staller.getMultiaddrs() })
  await connect(c, good)
  const t0 = Date.now()
  const stats = await fetchBlob(c.node, c.store, h, bytes.length, [staller.peerId.toString(), good.node.peerId.toString()], { stallMs: 1000 })
  const ms = Date.now() - t0
  t.ok(c.store.has(h), 'the blob arrived')
  t.equal(sha(readFileSync(c.store.blobPath(h))), h, 'its bytes are the right ones')
  t.match(stats.failures.join('\n'), /stalled: nothing for 1 s after 1048576 of 4194304 bytes/, 'the stall is named, with how far it got')
  // one stall (1 s) and the rest from the good holder; not three strikes of the staller
  t.ok(ms < 5000, `done in ${ms} ms`)
})

t.test('a lone holder that stalls fails the fetch in bounded time, naming it', async t => {
  const bytes = randomBytes(2 * 1024 * 1024)
  const h = sha(bytes)
  const staller = await stallingHolder(bytes, 64 * 1024)
  const c = await peer()
  await c.node.peerStore.merge(staller.peerId, { multiaddrs: staller.getMultiaddrs() })
  const t0 = Date.now()
  const err = await fetchBlob(c.node, c.store, h, bytes.length, [staller.peerId.toString()], { stallMs: 1000 }).catch(e => e)
  t.ok(err instanceof BgridError && err.code === 'UNREACHABLE', String(err))
  t.match(String(err?.message), /stalled/)
  t.same((err as BgridError).details, { holders: [staller.peerId.toString()] }, 'the stalled holder is named, so the coordinator drops it')
  t.ok(Date.now() - t0 < 4000, `gave up after ${Date.now() - t0} ms`)
  t.notOk(c.store.has(h))
})

t.test('a holder that trickles (never silent, far too slow) is abandoned too', async t => {
  const bytes = randomBytes(1024 * 1024)
  const h = sha(bytes)
  const trickler = await tricklingHolder(bytes, 1024, 200)
  const [good, c] = [await peer(), await peer()]
  await good.store.putBuffer(bytes)
  await c.node.peerStore.merge(trickler.peerId, { multiaddrs: trickler.getMultiaddrs() })
  await connect(c, good)
  const t0 = Date.now()
  // 1 MiB at 256 KiB/s at least: 1 s of grace and 4 s for the bytes
  const stats = await fetchBlob(c.node, c.store, h, bytes.length, [trickler.peerId.toString(), good.node.peerId.toString()], { stallMs: 1000, minRate: 256 * 1024 })
  const ms = Date.now() - t0
  t.equal(sha(readFileSync(c.store.blobPath(h))), h, 'the blob came, whole, from the other holder')
  t.match(stats.failures.join('\n'), /stalled: under 256 KiB\/s/, 'the trickle is named')
  t.ok(ms < 9000, `done in ${ms} ms`)
})
