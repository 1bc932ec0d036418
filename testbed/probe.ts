// A stand-alone protocol client for tests and benchmarks: speaks /bgrid/claim/1.0.0
// as a coordinator would, or sends deliberately bad messages. Prints JSON results.
// usage: node testbed/probe.ts --addr /ip4/.../tcp/4001/p2p/<peer> --op claim|renew|release|raw|hold
//        [--run R] [--lease ms] [--count n] [--at epochMs] [--payload hex|--size n] [--grid-key f]
import { parseArgs } from 'node:util'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { multiaddr } from '@multiformats/multiaddr'
import { lpStream } from '@libp2p/utils'
import { createBgridNode } from '../protocol/node.ts'
import { call, openStream, readJson } from '../protocol/rpc.ts'
import { claimSpec, PROTOCOL_VERSION, CLAIM_PROTOCOL } from '../protocol/claim.ts'
import { readGridKey } from '../daemon/grid-key.ts'
import { BgridError } from '../protocol/errors.ts'

const { values: o } = parseArgs({
  options: {
    addr: { type: 'string' }, op: { type: 'string' }, run: { type: 'string', default: 'probe-run' },
    lease: { type: 'string', default: '5000' }, count: { type: 'string', default: '1' }, at: { type: 'string' },
    payload: { type: 'string' }, size: { type: 'string' }, 'grid-key': { type: 'string' }, v: { type: 'string' },
    hold: { type: 'string', default: '0' }, timeout: { type: 'string', default: '5000' }
  }
})

const out = (x: unknown): void => { process.stdout.write(JSON.stringify(x) + '\n') }
const node = await createBgridNode({
  privateKey: await generateKeyPair('Ed25519'), noListen: true,
  gridKey: o['grid-key'] !== undefined ? readGridKey(o['grid-key']) : undefined
})
const target = multiaddr(String(o.addr))
const timeoutMs = Number(o.timeout)
try {
  // connect first so that a race (--at) measures the claim, not the handshake
  try { await node.dial(target, { signal: AbortSignal.timeout(timeoutMs) }) } catch (err: any) {
    throw new BgridError('UNREACHABLE', `cannot connect to ${String(target)}: ${err.message}`)
  }
  out({ event: 'connected', peer: node.peerId.toString() })
  if (o.at !== undefined) await new Promise(resolve => setTimeout(resolve, Math.max(0, Number(o.at) - Date.now())))
  const count = Number(o.count)
  for (let i = 0; i < count; i++) {
    const run = count > 1 ? `${o.run}-${i}` : String(o.run)
    try {
      if (o.op === 'claim' || o.op === 'hold') {
        const res = await call(node, target, claimSpec, { op: 'claim', v: o.v !== undefined ? Number(o.v) : PROTOCOL_VERSION, run, leaseMs: Number(o.lease) })
        out({ op: 'claim', run, ...res })
        if (o.op === 'hold') {
          const until = Date.now() + Number(o.hold)
          while (Date.now() < until) {
            await new Promise(resolve => setTimeout(resolve, Number(o.lease) / 3))
            await call(node, target, claimSpec, { op: 'renew', run })
          }
          out({ op: 'held', run })
        }
      } else if (o.op === 'renew' || o.op === 'release') {
        const res = await call(node, target, claimSpec, { op: o.op, run })
        out({ op: o.op, run, ...res })
      } else if (o.op === 'raw') {
        // bytes of our choosing, length-prefixed, then read whatever comes back
        const signal = AbortSignal.timeout(timeoutMs)
        const stream = await openStream(node, target, CLAIM_PROTOCOL, signal)
        const lp = lpStream(stream, { maxDataLength: 1 << 24 })
        const body = o.payload !== undefined ? Buffer.from(o.payload, 'hex') : Buffer.alloc(Number(o.size ?? 0), 0x7b)
        await lp.write(body, { signal })
        const reply = await readJson(lp, signal)
        out({ op: 'raw', reply })
      } else {
        throw new Error(`unknown --op ${o.op}`)
      }
    } catch (err: any) {
      out({ op: o.op, run, ok: false, code: err?.code ?? 'ERROR', message: err?.message })
    }
  }
} catch (err: any) {
  out({ op: o.op, ok: false, code: err?.code ?? 'ERROR', message: err?.message })
} finally {
  await node.stop()
}
