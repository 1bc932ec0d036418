// Request/response streams between two real libp2p nodes on loopback: a client that
// asks for reuse sends many exchanges over one stream; a kept stream the server has
// closed is replaced; a bad request on a kept stream is refused and the server goes on.
import t from 'tap'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { lpStream } from '@libp2p/utils'
import { createBgridNode, type BgridNode } from '../protocol/node.ts'
import { ajv, call, serve, dropIdleStreams, type ProtocolSpec } from '../protocol/rpc.ts'
import { BgridError } from '../protocol/errors.ts'
import { silentLogger } from '../protocol/log.ts'

interface Req { n: number }
interface Res { ok: true, twice: number, stream: string }
const spec: ProtocolSpec<Req, Res> = {
  id: '/bgrid-test/echo/1.0.0',
  request: ajv.compile<Req>({ type: 'object', required: ['n'], additionalProperties: false, properties: { n: { type: 'integer', minimum: 0 } } }),
  reply: ajv.compile<Res>({ type: 'object', required: ['ok', 'twice', 'stream'], properties: { ok: { const: true }, twice: { type: 'integer' }, stream: { type: 'string' } } }),
  maxBytes: 1024,
  timeoutMs: 5000
}

const server = await createBgridNode({ privateKey: await generateKeyPair('Ed25519'), host: '127.0.0.1' })
const client = await createBgridNode({ privateKey: await generateKeyPair('Ed25519'), noListen: true })
t.teardown(async () => { await client.stop(); await server.stop() })
// the server names the stream each request arrived on: the test sees reuse from outside
await serve(server, spec, silentLogger, async (req, ctx) => ({ twice: req.n * 2, stream: ctx.streamId }))
await client.dial(server.getMultiaddrs()[0])
const target = server.peerId

const inbound = (node: BgridNode): number => node.getConnections().flatMap(c => c.streams).filter(s => s.protocol === spec.id && s.direction === 'inbound').length

t.test('with reuse, sequential exchanges share one stream; without, each has its own', async t => {
  const kept: string[] = []
  for (let n = 0; n < 5; n++) {
    const r = await call(client, target, spec, { n }, { reuse: true })
    t.equal(r.twice, n * 2)
    kept.push(r.stream)
  }
  t.equal(new Set(kept).size, 1, `five exchanges on one stream (${kept.join(',')})`)
  t.equal(inbound(server), 1, 'the server holds that one stream open between exchanges')
  const fresh = new Set<string>()
  for (let n = 0; n < 3; n++) fresh.add((await call(client, target, spec, { n })).stream)
  t.equal(fresh.size, 3, 'without reuse, a stream per exchange')
  dropIdleStreams(client, target.toString())
})

t.test('a kept stream closed by the server is replaced, once, without an error', async t => {
  const first = await call(client, target, spec, { n: 1 }, { reuse: true })
  // the server side goes away while the stream is idle
  for (const s of server.getConnections().flatMap(c => c.streams)) if (s.protocol === spec.id) s.abort(new Error('test: server drops the stream'))
  const second = await call(client, target, spec, { n: 2 }, { reuse: true })
  t.equal(second.twice, 4)
  t.not(second.stream, first.stream, 'a new stream carried it')
  dropIdleStreams(client, target.toString())
})

t.test('a bad request on a kept stream is refused; the next call works on a new stream', async t => {
  const ok = await call(client, target, spec, { n: 3 }, { reuse: true })
  const refused = await call(client, target, spec, { n: -1 } as Req, { reuse: true }).then(() => undefined, (err: unknown) => err)
  t.ok(refused instanceof BgridError && refused.code === 'BAD_REQUEST', `refused with BAD_REQUEST: ${String(refused)}`)
  const after = await call(client, target, spec, { n: 4 }, { reuse: true })
  t.equal(after.twice, 8, 'the server still serves')
  t.not(after.stream, ok.stream, 'the refused stream was closed, not reused')
  dropIdleStreams(client, target.toString())
})

t.test('on a kept stream, garbage and oversize messages still get their error reply', async t => {
  const stream = await client.dialProtocol(target, spec.id)
  const lp = lpStream(stream, { maxDataLength: 1 << 20 })
  const ask = async (bytes: Uint8Array): Promise<any> => {
    await lp.write(bytes, { signal: AbortSignal.timeout(5000) })
    return JSON.parse(new TextDecoder().decode((await lp.read({ signal: AbortSignal.timeout(5000) })).subarray()))
  }
  const first = await ask(new TextEncoder().encode(JSON.stringify({ n: 5 })))
  t.equal(first.twice, 10, 'a first exchange on the stream')
  const garbage = await ask(new TextEncoder().encode('{not json'))
  t.same([garbage.ok, garbage.error?.code], [false, 'BAD_REQUEST'], 'the second, malformed, is refused with a reason')
  await stream.close().catch(() => {})

  const again = await client.dialProtocol(target, spec.id)
  const lp2 = lpStream(again, { maxDataLength: 1 << 20 })
  await lp2.write(new TextEncoder().encode(JSON.stringify({ n: 1 })), { signal: AbortSignal.timeout(5000) })
  await lp2.read({ signal: AbortSignal.timeout(5000) })
  await lp2.write(new Uint8Array(4096).fill(32), { signal: AbortSignal.timeout(5000) })
  const big = JSON.parse(new TextDecoder().decode((await lp2.read({ signal: AbortSignal.timeout(5000) })).subarray()))
  t.same([big.ok, big.error?.code], [false, 'TOO_LARGE'], 'over the 1 KiB limit: refused')
  await again.close().catch(() => {})
  const after = await call(client, target, spec, { n: 21 })
  t.equal(after.twice, 42, 'the server still serves')
})
