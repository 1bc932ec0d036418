// The run core and the planner, pure: no network, no processes. The core's parts have
// their own tests (job-table, dispatch, prefetch); here the planner, selection,
// expressions, and what the facade itself does (holders and their re-hash requests).
import t from 'tap'
import { planPlacement, upwardRank, edgeBytes, makespanLowerBound } from '../coordinator/core/plan.ts'
import { parseDag } from '../coordinator/dag-json.ts'
import { selectWorkers } from '../coordinator/core/select.ts'
import { accountNodes, summariseAccounts } from '../coordinator/why.ts'
import { parseExpr, evalBool, evalNumber, explainFailure } from '../protocol/expr.ts'
import type { NodeAd } from '../protocol/txt.ts'
import type { RunPort } from '../coordinator/core/contracts.ts'
import { attrs, H, ok, diamond } from './helpers/core-fixtures.ts'

t.test('HEFT keeps a chain with heavy edges on one worker and spreads independent jobs', async t => {
  const chain = parseDag({ jobs: [
    { id: 'a', cmd: ['x'], outputs: [{ name: 'o', size: 500_000_000 }], runtime: 1 },
    { id: 'b', cmd: ['x'], inputs: ['job:a/o'], outputs: [{ name: 'o', size: 500_000_000 }], runtime: 1 },
    { id: 'c', cmd: ['x'], inputs: ['job:b/o'], runtime: 1 }
  ] }, '/tmp/x.json', { checkFiles: false })
  const workers = [{ id: 'W1', slots: 1, speed: 1 }, { id: 'W2', slots: 1, speed: 1 }]
  const edges = edgeBytes(chain, (j, f) => chain.byId.get(j)!.sizeHints[f] ?? 0)
  const plan = planPlacement(chain, workers, edges, upwardRank(chain, edges))
  t.equal(new Set(plan.worker.values()).size, 1, 'one worker: moving 500 MB costs more than waiting')
  t.equal(plan.makespan, 3)
  const bag = parseDag({ jobs: [0, 1, 2, 3].map(i => ({ id: `j${i}`, cmd: ['x'], runtime: 2 })) }, '/tmp/x.json', { checkFiles: false })
  const p2 = planPlacement(bag, workers, new Map(), upwardRank(bag, new Map()))
  t.equal(p2.makespan, 4, 'four 2 s jobs on two workers: 4 s')
  t.equal(makespanLowerBound(bag, 2), 4)
})

t.test('HEFT keeps data in place: siblings feeding one child share a worker; a child runs where its inputs are', async t => {
  // four producers, two fan-in children: {p0,p1} -> c0, {p2,p3} -> c1, one slot per worker
  const mb = 12_500_000 // 1 s at the planning bandwidth
  const dag = parseDag({ jobs: [
    ...[0, 1, 2, 3].map(i => ({ id: `p${i}`, cmd: ['x'], outputs: [{ name: 'o', size: mb }], runtime: 1 })),
    { id: 'c0', cmd: ['x'], inputs: [{ src: 'job:p0/o', as: 'a' }, { src: 'job:p1/o', as: 'b' }], runtime: 1 },
    { id: 'c1', cmd: ['x'], inputs: [{ src: 'job:p2/o', as: 'a' }, { src: 'job:p3/o', as: 'b' }], runtime: 1 }
  ] }, '/tmp/x.json', { checkFiles: false })
  const workers = [{ id: 'W1', slots: 1, speed: 1 }, { id: 'W2', slots: 1, speed: 1 }]
  const edges = edgeBytes(dag, (j, f) => dag.byId.get(j)!.sizeHints[f] ?? 0)
  const plan = planPlacement(dag, workers, edges, upwardRank(dag, edges))
  const w = (id: string): string | undefined => plan.worker.get(id)
  t.equal(w('p0'), w('p1'), 'p0 and p1 on one worker (plain HEFT splits them)')
  t.equal(w('p2'), w('p3'), 'p2 and p3 on one worker')
  t.not(w('p0'), w('p2'), 'the pairs on different workers')
  t.equal(w('c0'), w('p0'), 'c0 runs where both its inputs are')
  t.equal(w('c1'), w('p2'), 'c1 too')
  t.equal(plan.makespan, 3, 'no transfer in the plan: 3 s (plain HEFT: 4 s)')

  // a child whose parent's worker frees its slot 0.1 s later than the other worker still
  // runs there: its input could move early, but 1 s of link time costs more than it saves
  const fan = parseDag({ jobs: [
    { id: 'a', cmd: ['x'], outputs: [{ name: 'o', size: mb }], runtime: 1 },
    { id: 'x', cmd: ['x'], runtime: 2.9 },
    { id: 'y', cmd: ['x'], runtime: 2 },
    { id: 'c', cmd: ['x'], inputs: ['job:a/o'], runtime: 1 }
  ] }, '/tmp/x.json', { checkFiles: false })
  const fe = edgeBytes(fan, (j, f) => fan.byId.get(j)!.sizeHints[f] ?? 0)
  const fp = planPlacement(fan, workers, fe, upwardRank(fan, fe))
  t.equal(fp.worker.get('c'), fp.worker.get('a'), 'c stays with a\'s output')
})

t.test('selection: feasible then ranked, with reasons for every rejection', async t => {
  const ad = (name: string, o: Partial<NodeAd>): { name: string, ad: NodeAd, addresses: string[] } => ({
    name, addresses: ['10.0.0.1'],
    ad: { v: 1, state: 'idle', peer: '12D3KooWP9mSr9pKDnrgzrDbkurTw2VZVaUULsmXfs99pqJc3nk' + name, port: 1, cores: 2, mhz: 2000, ram: 4000, disk: 1000, load: 0, cost: 0, arch: 'x64', os: 'linux', ...o }
  })
  const nodes = [ad('A', { cores: 8 }), ad('B', { ram: 1000 }), ad('C', { cores: 16, cost: 10 }), ad('D', { state: 'worker', coord: '12D3KooWP9mSr9pKDnrgzrDbkurTw2VZVaUULsmXfs99pqJc3nkR' }), ad('E', {})]
  const sel = selectWorkers(nodes, parseExpr('ram >= 2048 && cores >= 2'), parseExpr('cores * mhz / (1 + cost)'))
  t.same(sel.ranked.map(c => c.name), ['A', 'E', 'C'], 'by cores x MHz per cost: A (8 cores) > E (2 cores, free) > C (16 cores at cost 10)')
  t.same(sel.rejected.map(r => r.name).sort(), ['B', 'D'])
  t.match(sel.rejected.find(r => r.name === 'B')!.reasons[0], /ram >= 2048 \(ram=1000\)/)
  const why = summariseAccounts(accountNodes({ nodes, claimed: new Set(), refusals: new Map(), requirements: parseExpr('ram >= 2048 && cores >= 2'), self: 'none' })).join('\n')
  t.match(why, /1 node\(s\) fail `ram >= 2048`: B \(ram=1000\)/)
  t.match(why, /1 node\(s\) busy with run \? \(coordinator …/)
})

t.test('expressions: evaluated without eval, errors point at the column', async t => {
  t.ok(evalBool(parseExpr('os == "linux" && (ram > 100 || cores >= 64)'), attrs))
  t.equal(evalNumber(parseExpr('max(cores, 4) * 2'), attrs), 8)
  t.equal(evalNumber(parseExpr('ram / 0'), attrs), Number.MAX_VALUE, 'division by zero ranks high, not NaN')
  t.same(explainFailure(parseExpr('ram >= 100 && cores >= 4 && disk > 1'), attrs), ['cores >= 4 (cores=2)'])
  t.throws(() => parseExpr('ram >= '), /column 8/)
  t.throws(() => parseExpr('constructor.constructor("x")()'), /not allowed|unknown/)
  t.throws(() => parseExpr('this.x'), /not allowed/)
  t.throws(() => parseExpr('ram = 5'), { code: 'INVALID_DAG', message: /^expression: Unexpected "=" at column 5\nram = 5\n {4}\^$/ }, 'an assignment is not an expression: the column of its `=`')
})

t.test('a holder said to have sent bad bytes is dropped and asked, once, to re-hash its copy; a good copy comes back with `have`', async t => {
  const core = diamond()
  const [a] = core.assign('W1', 1, 0)
  core.complete('W1', ok(a.attempt, [{ name: 'o', hash: H('a'), size: 10 }]))
  core.announce('W2', [H('a')])
  t.same([...core.blobs.get(H('a'))!.holders].sort(), ['W1', 'W2'])
  core.reportCorrupt('W2', [{ hash: H('a'), holder: 'W1' }])
  t.same([...core.blobs.get(H('a'))!.holders], ['W2'], 'W1 dropped')
  t.same(core.takeVerify('W1'), [H('a')], 'W1 must re-hash')
  t.same(core.takeVerify('W1'), [], 'once')
  t.equal(core.jobs.get('a')!.state, 'done', 'W2 still holds a good copy: nothing to re-run')
  core.reportCorrupt('W2', [{ hash: H('a'), holder: 'W2' }])
  t.same(core.takeVerify('W2'), [], 'a worker reporting its own bad copy is not asked to re-hash it')
  t.equal(core.jobs.get('a')!.state, 'ready', 'no copy left: the producer runs again')
  core.announce('W1', [H('a')])
  t.ok(core.blobs.get(H('a'))!.holders.has('W1'), 'W1\'s re-verified copy is announced again')
})

t.test('the run as adapters see it (RunPort): prefetched bytes counted, the peer list worth resending only when the workers changed', async t => {
  const core = diamond()
  const port: RunPort = core
  port.addPrefetchedBytes(100)
  port.addPrefetchedBytes(20)
  t.equal(core.stats.prefetchedBytes, 120)
  const v = port.workersVersion
  t.same(port.peers().map(p => p.id), ['W1', 'W2'])
  core.removeWorker('W2', 'gone')
  t.ok(port.workersVersion > v, 'a worker lost: the version moves')
  t.same(port.peers().map(p => p.id), ['W1'])
  const [a] = port.assign('W1', 1, 0)
  port.reconcileRunning('W1', [a.attempt], new Set(), 60_000)
  t.equal(core.jobs.get('a')!.state, 'running', 'a heartbeat listing the attempt keeps it')
  t.equal(port.complete('W1', ok(a.attempt, [{ name: 'o', hash: H('a'), size: 1 }])), 'done')
  t.notOk(port.finished())
})
