// A stand-alone protocol client for tests and benchmarks: speaks the claim protocol
// as a coordinator would, or sends deliberately bad messages. Prints JSON results.
// usage: node testbed/probe.ts --addr /ip4/.../tcp/4001/p2p/<peer> --op claim|renew|release|raw|hold|blob|steal
//        [--run R] [--lease ms] [--count n] [--at epochMs] [--payload hex|--size n] [--grid-key f]
//        [--hash H --blob-size N] [--middleware NAME (claim and hold: the claim names it)]
// blob:  fetch a blob by hash (as a peer with no run on that node)
// steal: a hostile coordinator: claims the node, then hands it a job whose input is a
//        blob the node holds for another run (the probe does not have its bytes) and
//        whose command prints that input; prints the job's result
import { parseArgs } from 'node:util'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { multiaddr } from '@multiformats/multiaddr'
import { lpStream } from '@libp2p/utils'
import { createBgridNode } from '../protocol/node.ts'
import { call, openStream, readJson } from '../protocol/rpc.ts'
import { claimSpec, PROTOCOL_VERSION, CLAIM_PROTOCOL } from '../protocol/claim.ts'
import { jobsSpec, type PullReply } from '../protocol/jobs.ts'
import { serve } from '../protocol/rpc.ts'
import { readRange, serveBlobs } from '../cache/blob-protocol.ts'
import { silentLogger } from '../protocol/log.ts'
import { readGridKey } from '../protocol/grid-key.ts'
import { BgridError } from '../protocol/errors.ts'

const { values: o } = parseArgs({
  options: {
    addr: { type: 'string' }, op: { type: 'string' }, run: { type: 'string', default: 'probe-run' },
    lease: { type: 'string', default: '5000' }, count: { type: 'string', default: '1' }, at: { type: 'string' },
    payload: { type: 'string' }, size: { type: 'string' }, 'grid-key': { type: 'string' }, v: { type: 'string' },
    hold: { type: 'string', default: '0' }, timeout: { type: 'string', default: '5000' },
    hash: { type: 'string' }, 'blob-size': { type: 'string', default: '0' }, middleware: { type: 'string' }
  }
})

const out = (x: unknown): void => { process.stdout.write(JSON.stringify(x) + '\n') }

/** The hostile coordinator of --op steal: knows a hash, not the bytes. */
async function steal (run: string): Promise<void> {
  const hash = String(o.hash)
  const size = Number(o['blob-size'])
  const me = node.peerId.toString()
  // it claims to hold the blob, and answers any read with other bytes
  await serveBlobs(node, { sizeOf: (h) => h === hash ? size : undefined, openPath: async () => '/dev/zero' }, { canRead: () => true, log: silentLogger })
  let result: unknown
  let sent = false
  const got = new Promise<void>(resolve => {
    void serve(node, jobsSpec, silentLogger, async (req) => {
      for (const r of req.results) { result = r; resolve() }
      const jobs = sent ? [] : [{ attempt: 'steal-1', job: 'steal', cmd: ['/bin/cat', 'in.txt'], env: {}, timeoutMs: 10_000, cores: 1, ram: 0, disk: 0, network: true, inputs: [{ name: 'in.txt', hash, size, holders: [me] }], outputs: [] }]
      sent = true
      if (jobs.length === 0 && result === undefined) await new Promise(resolve => setTimeout(resolve, 200))
      return { ok: true, jobs, prefetch: [], peers: [], done: result !== undefined } satisfies PullReply
    })
  })
  const res = await call(node, target, claimSpec, { op: 'claim', v: PROTOCOL_VERSION, run, leaseMs: 6000, addrs: node.getMultiaddrs().map(String) })
  out({ op: 'claim', run, ...res })
  const renew = setInterval(() => { call(node, target, claimSpec, { op: 'renew', run }).catch(() => {}) }, 1000)
  try {
    await Promise.race([got, new Promise((_resolve, reject) => setTimeout(() => { reject(new Error('no result')) }, timeoutMs))])
    out({ op: 'steal', result })
  } finally {
    clearInterval(renew)
    await call(node, target, claimSpec, { op: 'release', run }).catch(() => {})
  }
}
const node = await createBgridNode({
  privateKey: await generateKeyPair('Ed25519'), noListen: o.op !== 'steal', host: '0.0.0.0',
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
        const res = await call(node, target, claimSpec, {
          op: 'claim', v: o.v !== undefined ? Number(o.v) : PROTOCOL_VERSION, run, leaseMs: Number(o.lease), ...(o.middleware !== undefined ? { middleware: o.middleware } : {})
        })
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
      } else if (o.op === 'blob') {
        const bytes = await readRange(node, String(o.addr).split('/p2p/')[1], String(o.hash), 0, Math.min(64, Number(o['blob-size'])), AbortSignal.timeout(timeoutMs))
        out({ op: 'blob', ok: true, bytes: Buffer.from(bytes).toString('utf8') })
      } else if (o.op === 'steal') {
        await steal(run)
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
