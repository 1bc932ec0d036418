// N coordinators (separate libp2p identities and connections) race to claim one
// worker, R rounds. Prints grants per round; a round with two grants is a bug.
// usage: node bench/claim-race.ts --addr <multiaddr> [--rounds 1000] [--racers 5]
import { parseArgs } from 'node:util'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { multiaddr } from '@multiformats/multiaddr'
import { createBgridNode } from '../protocol/node.ts'
import { call } from '../protocol/rpc.ts'
import { claimSpec, PROTOCOL_VERSION } from '../protocol/claim.ts'

const { values: o } = parseArgs({ options: { addr: { type: 'string' }, rounds: { type: 'string', default: '1000' }, racers: { type: 'string', default: '5' } } })
const target = multiaddr(String(o.addr))
const racers = await Promise.all(Array.from({ length: Number(o.racers) }, async () => await createBgridNode({ privateKey: await generateKeyPair('Ed25519'), noListen: true })))
await Promise.all(racers.map(async n => await n.dial(target)))
let doubles = 0
let zero = 0
const t0 = performance.now()
for (let r = 0; r < Number(o.rounds); r++) {
  const run = `race-${r}`
  const res = await Promise.allSettled(racers.map(async n => await call(n, target, claimSpec, { op: 'claim', v: PROTOCOL_VERSION, run, leaseMs: 5000 })))
  const winners = res.map((x, i) => [x, i] as const).filter(([x]) => x.status === 'fulfilled')
  if (winners.length > 1) doubles++
  if (winners.length === 0) zero++
  for (const [, i] of winners) await call(racers[i], target, claimSpec, { op: 'release', run })
}
const ms = performance.now() - t0
process.stdout.write(JSON.stringify({ rounds: Number(o.rounds), racers: racers.length, doubleGrants: doubles, roundsWithoutWinner: zero, msPerRound: ms / Number(o.rounds) }) + '\n')
await Promise.all(racers.map(async n => { await n.stop() }))
