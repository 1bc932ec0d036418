// A coordinator that does not play fair, for tests: it claims the nodes it is given for
// one run and renews them for as long as it runs, whatever their renewals say (it never
// lets a `retiring` node go, never releases); or, with --ask, a run short of workers
// that asks those nodes (a claim with `held: 0`) until one is granted. One JSON line per
// outcome on stdout. Bounded: --seconds, then it stops without releasing anything.
// usage: node testbed/greedy-holder.ts --target MULTIADDR... [--run R] [--lease MS] [--ask] [--seconds S]
import { parseArgs } from 'node:util'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { multiaddr } from '@multiformats/multiaddr'
import { createBgridNode } from '../protocol/node.ts'
import { call } from '../protocol/rpc.ts'
import { claimSpec, PROTOCOL_VERSION } from '../protocol/claim.ts'
import { BgridError } from '../protocol/errors.ts'

const { values: o } = parseArgs({
  options: {
    target: { type: 'string', multiple: true, default: [] },
    run: { type: 'string', default: 'greedy-run' },
    lease: { type: 'string', default: '3000' },
    ask: { type: 'boolean', default: false },
    seconds: { type: 'string', default: '30' }
  }
})
const leaseMs = Number(o.lease)
const say = (ev: Record<string, unknown>): void => { process.stdout.write(JSON.stringify({ time: Date.now(), ...ev }) + '\n') }
const codeOf = (err: unknown): string => err instanceof BgridError ? err.code : 'ERROR'
const node = await createBgridNode({ privateKey: await generateKeyPair('Ed25519'), noListen: true })
const claim = async (target: string): Promise<void> => {
  await call(node, multiaddr(target), claimSpec, {
    op: 'claim', v: PROTOCOL_VERSION, run: String(o.run), leaseMs, ...(o.ask === true ? { held: 0 } : {})
  }, { timeoutMs: 5000 })
}
const timers: NodeJS.Timeout[] = []
const end = Date.now() + Number(o.seconds) * 1000

if (o.ask === true) {
  // ask every node in turn, every half second, until one comes
  let granted = false
  while (!granted && Date.now() < end) {
    for (const target of o.target ?? []) {
      try { await claim(target); say({ event: 'granted', target }); granted = true; break } catch (err) { say({ event: 'refused', target, code: codeOf(err) }) }
    }
    if (!granted) await new Promise(resolve => setTimeout(resolve, 500))
  }
} else {
  for (const target of o.target ?? []) {
    try { await claim(target); say({ event: 'claimed', target }) } catch (err) { say({ event: 'refused', target, code: codeOf(err) }); continue }
    // renew every quarter lease and never listen to what the node says
    timers.push(setInterval(() => {
      call(node, multiaddr(target), claimSpec, { op: 'renew', run: String(o.run) }, { timeoutMs: leaseMs })
        .then(r => { say({ event: 'renewed', target, retiring: r.retiring === true }) })
        .catch(err => { say({ event: 'lost', target, code: codeOf(err) }) })
    }, leaseMs / 4))
  }
  await new Promise(resolve => setTimeout(resolve, Math.max(0, end - Date.now())))
}
for (const t of timers) clearInterval(t)
await node.stop()
process.exit(0)
