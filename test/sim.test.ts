// The simulation (bench/sim.ts, testbed/sim/): the real claim book, node state table,
// run core and fair-share asks over an in-process transport and a virtual clock. Checked
// here: no double grant and every run finished at 200 nodes and 50 coordinators; the same
// result for the same seed, another for another; the double-grant detector does catch
// one; and the in-process transport answers claim messages as the real libp2p one does.
import t from 'tap'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { simulate, DEFAULT_SIM } from '../testbed/sim/world.ts'
import { GrantLog } from '../testbed/sim/grants.ts'
import { VirtualClock } from '../testbed/sim/clock.ts'
import { Lan } from '../testbed/sim/lan.ts'
import { SimNode } from '../testbed/sim/node.ts'
import { SimClaimTransport } from '../testbed/sim/transport.ts'
import type { SimWorld, PullTarget } from '../testbed/sim/types.ts'
import type { Assignment } from '../protocol/jobs.ts'
import { exchange, type ClaimHandler, type CallOutcome } from '../testbed/sim/transport.ts'
import { createBgridNode } from '../protocol/node.ts'
import { call, serve } from '../protocol/rpc.ts'
import { claimSpec, PROTOCOL_VERSION, type ClaimRequest } from '../protocol/claim.ts'
import { BgridError } from '../protocol/errors.ts'
import { silentLogger } from '../protocol/log.ts'
import { ClaimBook, answerClaim } from '../daemon/claim-book.ts'
import { DEFAULT_TENURE_MS } from '../protocol/fair-share.ts'

// a lighter load than the bench's (half the work per slot): the same protocol, half the events
const small = (seed: number) => simulate({ ...DEFAULT_SIM, nodes: 200, coordinators: 50, seed, loadSec: 120 })

t.test('without the shared workloads beside the checkout the runs are bags of tasks, and the result says why', async t => {
  const r = simulate({ ...DEFAULT_SIM, nodes: 20, coordinators: 4, seed: 1, loadSec: 30, workloads: '/nonexistent/workloads' })
  t.equal(r.completed, 4)
  t.equal(r.doubleGrants, 0)
  t.match(r.tracesRefused.join('\n'), /\/nonexistent\/workloads: no such directory/)
})

t.test('200 nodes, 50 coordinators: no double grant, every run finishes, deterministic by seed', async t => {
  const a = small(1)
  t.equal(a.doubleGrants, 0, 'no node granted to two coordinators at once')
  t.equal(a.completed, 50, `every run finished with every job done (${JSON.stringify(a.failed)})`)
  t.equal(a.illegalTransitions, 0, 'no state change the node state table refuses')
  t.ok(a.virtualMakespanSeconds >= a.boundSeconds, 'the makespan is no less than its lower bound')
  t.same(small(1), a, 'the same seed, the same result')
  const b = small(2)
  t.not(JSON.stringify(b), JSON.stringify(a), 'another seed, another result')
  t.equal(b.doubleGrants, 0)
})

t.test('the double-grant detector catches a node held by two coordinators', async t => {
  const g = new GrantLog()
  g.granted('n1', 'A', 1)
  g.ended('n1', 'A')
  g.granted('n1', 'B', 2)
  t.equal(g.doubleGrants, 0, 'one after the other: none')
  g.granted('n1', 'C', 3)
  t.equal(g.doubleGrants, 1, 'granted to C while B held it: caught')
  t.same(g.overlaps[0], { node: 'n1', holder: 'B', granted: 'C', at: 3 })
})

t.test('the in-process transport answers claim messages as the real one does', async t => {
  const server = await createBgridNode({ privateKey: await generateKeyPair('Ed25519'), host: '127.0.0.1' })
  const client = await createBgridNode({ privateKey: await generateKeyPair('Ed25519'), noListen: true })
  t.teardown(async () => { await client.stop(); await server.stop() })
  const peer = client.peerId.toString()
  // one daemon's claim logic, answered on both paths; its clock fixed so both see the same
  const handlerOver = (book: ClaimBook): ClaimHandler => (req, from) => {
    if (req.op !== 'claim') {
      const d = req.op === 'renew' ? book.renew(from, req.run, 1000) : { ok: book.release(from, req.run, 1000) !== undefined, code: 'NOT_CLAIMED' as const, message: 'no claim' }
      if (!d.ok) throw new BgridError(d.code, d.message)
      return { leaseMs: 6000, state: 'worker' }
    }
    const d = answerClaim(book, from, req, { now: 1000, state: 'idle', allow: [], version: req.v, supportedVersion: PROTOCOL_VERSION }, () => 0, { prefer: [], tenureMs: DEFAULT_TENURE_MS })
    if (!d.ok) throw new BgridError(d.code, d.message)
    return { leaseMs: d.claim.leaseMs, state: 'worker', offer: { cores: 2, mhz: 2000, ram: 1024, disk: 1024, load: 0, cost: 0, arch: 'x64', os: 'linux' } }
  }
  const realBook = new ClaimBook()
  const realHandler = handlerOver(realBook)
  await serve(server, claimSpec, silentLogger, async (req, ctx) => realHandler(req, ctx.peer))
  const real = async (req: unknown): Promise<CallOutcome> => {
    try { return { ok: true, reply: await call(client, server.getMultiaddrs(), claimSpec, req as ClaimRequest) } } catch (err) {
      return { ok: false, error: err as BgridError }
    }
  }
  const simHandler = handlerOver(new ClaimBook())
  const sim = (req: unknown): CallOutcome => exchange(req as ClaimRequest, simHandler, peer)
  const shape = (o: CallOutcome): unknown => o.ok ? o.reply : { code: o.error.code, message: o.error.message }
  const requests: unknown[] = [
    { op: 'claim', v: PROTOCOL_VERSION, run: 'r1', leaseMs: 6000, middleware: 'native' },
    { op: 'claim', v: PROTOCOL_VERSION, run: 'r1', leaseMs: 6000, middleware: 'native' },
    { op: 'renew', run: 'r1', attempts: ['a1-1'] },
    { op: 'claim', v: PROTOCOL_VERSION, run: 'r2', leaseMs: 6000, held: 0 },
    { op: 'claim', v: PROTOCOL_VERSION, run: 'r1', leaseMs: 10 },
    { op: 'claim', v: PROTOCOL_VERSION, run: '../etc', leaseMs: 6000 },
    { op: 'renew', run: 'r1', extra: true },
    { op: 'release', run: 'r1' },
    { op: 'release', run: 'r1' }
  ]
  for (const req of requests) {
    const [r, s] = [await real(req), sim(req)]
    t.same(shape(s), shape(r), `${JSON.stringify(req)}: ${r.ok ? 'ok' : r.error.code} on both paths`)
  }
  t.equal(realBook.current, undefined, 'the real path released its claim too')
})

t.test('a simulated worker whose first pull is refused tries again, as the real one does, and runs its job', async t => {
  // a coordinator that has not yet taken in the claim's reply refuses the first pull
  // (UNAUTHORISED); the real worker backs off and pulls again, so must the simulated one
  const clock = new VirtualClock()
  const world: SimWorld = {
    clock, transport: new SimClaimTransport(clock, () => 1), lan: new Lan(), grants: new GrantLog(), latency: () => 1,
    coordinator: () => target
  }
  const pulls: string[] = []
  const results: string[] = []
  const assignment: Assignment = { attempt: 'j1#1', job: 'j1', cmd: ['x'], env: {}, timeoutMs: 0, cores: 1, ram: 0, disk: 0, network: false, inputs: [], outputs: ['o'] }
  let handedOut = false
  const target: PullTarget = {
    runtimeOf: () => 1,
    pull: (_worker, req, reply) => {
      for (const r of req.results) results.push(`${r.attempt} ${r.status}`)
      if (pulls.push(req.run) === 1) { reply(new BgridError('UNAUTHORISED', 'not a claimed worker of this run (yet)')); return }
      const jobs = handedOut ? [] : [assignment]
      handedOut = true
      reply({ jobs, done: results.length > 0 })
    }
  }
  const n = new SimNode('n1', 1, world)
  let claimed: CallOutcome | undefined
  world.transport.call('C', 'n1', { op: 'claim', v: PROTOCOL_VERSION, run: 'r1', leaseMs: 60_000, middleware: 'native' }, o => { claimed = o })
  clock.run(() => results.length > 0, clock.now() + 10_000)
  t.ok(claimed?.ok, 'the node is claimed')
  t.ok(pulls.length >= 2, `it pulled again after the refusal (${pulls.length} pulls)`)
  t.same(results, ['j1#1 ok'], 'and ran the job it was given: before, its session ended at the first refusal')
  t.equal(n.illegal, 0)
})

t.test('a simulated worker refused at every pull stops pulling when its lease runs out', async t => {
  // what ends the retries: the claim's lease (a coordinator that refuses for good renews nothing)
  const clock = new VirtualClock()
  let pulls = 0
  const target: PullTarget = { runtimeOf: () => 1, pull: (_w, _req, reply) => { pulls++; reply(new BgridError('UNAUTHORISED', 'never')) } }
  const world: SimWorld = { clock, transport: new SimClaimTransport(clock, () => 1), lan: new Lan(), grants: new GrantLog(), latency: () => 1, coordinator: () => target }
  const n = new SimNode('n1', 1, world)
  world.transport.call('C', 'n1', { op: 'claim', v: PROTOCOL_VERSION, run: 'r1', leaseMs: 6000, middleware: 'native' }, () => {})
  const start = clock.now()
  clock.run(() => false, start + 600_000)
  t.equal(clock.pending, 0, 'nothing left to do: no retry goes on')
  t.ok(clock.now() - start <= 6000 + 2100, `the last pull within a retry of the lease's end (${clock.now() - start} ms)`)
  t.ok(pulls >= 4 && pulls <= 10, `backed off: ${pulls} pulls in 6 s (100 ms doubling to 2 s)`)
  t.equal(n.state, 'idle', 'the node is idle again')
})
