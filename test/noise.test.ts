// Our noise set-up (protocol/noise.ts) against the stock @chainsafe/libp2p-noise, over
// real TCP on loopback: the bytes on the wire are the same, so a blob moves intact in
// both directions, and request/response exchanges work both ways.
import t from 'tap'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { randomBytes, createHash } from 'node:crypto'
import os from 'node:os'
import path from 'node:path'
import { createLibp2p } from 'libp2p'
import { tcp } from '@libp2p/tcp'
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { createBgridNode, type BgridNode } from '../protocol/node.ts'
import { openDb, type Db } from '../protocol/db.ts'
import { BlobStore } from '../cache/store.ts'
import { serveBlobs, fetchBlob } from '../cache/blob-protocol.ts'
import { silentLogger } from '../protocol/log.ts'

const root = mkdtempSync(path.join(os.tmpdir(), 'bgrid-noise-'))
const dbs: Db[] = []
async function storeAt (name: string): Promise<BlobStore> {
  const db = await openDb(path.join(root, name))
  dbs.push(db)
  const store = new BlobStore(path.join(root, name), db)
  await store.load()
  return store
}

const ours = await createBgridNode({ privateKey: await generateKeyPair('Ed25519'), host: '127.0.0.1' })
// the stock stack, with yamux's default frame size (our node uses larger frames)
const stock = await createLibp2p({
  privateKey: await generateKeyPair('Ed25519'),
  addresses: { listen: ['/ip4/127.0.0.1/tcp/0'] },
  transports: [tcp()],
  connectionEncrypters: [noise()],
  streamMuxers: [yamux()]
}) as unknown as BgridNode
t.teardown(async () => {
  await ours.stop(); await stock.stop()
  for (const db of dbs) await db.close()
  rmSync(root, { recursive: true, force: true })
})

const oursStore = await storeAt('ours')
const stockStore = await storeAt('stock')
await serveBlobs(ours, oursStore, { canRead: () => true, log: silentLogger })
await serveBlobs(stock, stockStore, { canRead: () => true, log: silentLogger })
await ours.peerStore.merge(stock.peerId, { multiaddrs: stock.getMultiaddrs() })
await stock.peerStore.merge(ours.peerId, { multiaddrs: ours.getMultiaddrs() })

// odd sizes: messages that end mid-frame and mid-read
const fromStock = randomBytes(24 * 1024 * 1024 + 4099)
const fromOurs = randomBytes(17 * 1024 * 1024 + 77)
const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex')

t.test('stock noise sends, ours receives: the blob arrives intact', async t => {
  await stockStore.putBuffer(fromStock)
  const stats = await fetchBlob(ours, oursStore, sha(fromStock), fromStock.length, [stock.peerId.toString()])
  t.equal(stats.bytes, fromStock.length)
  t.ok(readFileSync(oursStore.blobPath(sha(fromStock))).equals(fromStock), 'identical bytes')
})

t.test('ours sends, stock noise receives: the blob arrives intact', async t => {
  await oursStore.putBuffer(fromOurs)
  const stats = await fetchBlob(stock, stockStore, sha(fromOurs), fromOurs.length, [ours.peerId.toString()])
  t.equal(stats.bytes, fromOurs.length)
  t.ok(readFileSync(stockStore.blobPath(sha(fromOurs))).equals(fromOurs), 'identical bytes')
})

t.test('between two of our nodes, large frames both ways', async t => {
  const other = await createBgridNode({ privateKey: await generateKeyPair('Ed25519'), host: '127.0.0.1' })
  t.teardown(async () => { await other.stop() })
  const otherStore = await storeAt('other')
  await serveBlobs(other, otherStore, { canRead: () => true, log: silentLogger })
  await other.peerStore.merge(ours.peerId, { multiaddrs: ours.getMultiaddrs() })
  await other.peerStore.merge(stock.peerId, { multiaddrs: stock.getMultiaddrs() })
  const stats = await fetchBlob(other, otherStore, sha(fromOurs), fromOurs.length, [ours.peerId.toString()])
  t.equal(stats.bytes, fromOurs.length)
  t.ok(readFileSync(otherStore.blobPath(sha(fromOurs))).equals(fromOurs), 'identical bytes')
})

t.test("our side of a connection decrypts with its own step (noise's joining step is replaced)", async t => {
  // the replacement looks for noise 17's internals and steps aside if they change: this
  // says so, so that a noise upgrade that silently loses the saving is seen
  const encrypted = (node: BgridNode, peer: BgridNode): any => (node.getConnections(peer.peerId)[0] as any)?.muxer?.maConn
  const mine = encrypted(ours, stock)
  const theirs = encrypted(stock, ours)
  t.equal(mine?.constructor?.name, 'EncryptedMessageStream', 'found the noise stream under the muxer')
  t.ok(Object.hasOwn(mine, 'decrypt'), 'ours: replaced')
  t.notOk(Object.hasOwn(theirs, 'decrypt'), 'stock: noise\'s own')
})
