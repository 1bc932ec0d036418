// The run core and the planner, pure: no network, no processes.
import t from 'tap'
import { parseDag } from '../coordinator/dag.ts'
import { RunCore } from '../coordinator/run-core.ts'
import { planPlacement, upwardRank, edgeBytes, makespanLowerBound } from '../coordinator/plan.ts'
import { selectWorkers } from '../coordinator/select.ts'
import { accountNodes, summariseAccounts } from '../coordinator/why.ts'
import { parseExpr, evalBool, evalNumber, explainFailure } from '../coordinator/expr.ts'
import type { AttemptResult } from '../protocol/jobs.ts'
import type { NodeAd } from '../protocol/txt.ts'

const attrs = { ram: 8000, cores: 2, mhz: 2500, disk: 50000, load: 0, cost: 0, os: 'linux', arch: 'x64' }
const H = (c: string): string => c.repeat(64)
const ok = (attempt: string, outputs: Array<{ name: string, hash: string, size: number }> = []): AttemptResult => ({
  attempt, status: 'ok', exitCode: 0, signal: null, outputs, startedAt: 1, endedAt: 2, inputWaitMs: 0, bytesFetched: 0, cacheHits: 0
})
const failed = (attempt: string, code = 1): AttemptResult => ({ ...ok(attempt), status: 'failed', exitCode: code })

function diamond (): RunCore {
  const dag = parseDag({
    jobs: [
      { id: 'a', cmd: ['x'], outputs: ['o'] },
      { id: 'b', cmd: ['x'], inputs: ['job:a/o'], outputs: ['o'] },
      { id: 'c', cmd: ['x'], inputs: ['job:a/o'], outputs: ['o'], retries: 1 },
      { id: 'd', cmd: ['x'], inputs: [{ src: 'job:b/o', as: 'b' }, { src: 'job:c/o', as: 'c' }], outputs: ['o'] }
    ]
  }, '/tmp/x.json', { checkFiles: false })
  const core = new RunCore(dag, { coordinatorId: 'C', prefetch: true, nonce: 'n' })
  core.addWorker({ id: 'W1', slots: 2, attrs, addrs: [] })
  core.addWorker({ id: 'W2', slots: 2, attrs, addrs: [] })
  core.replan()
  core.promote()
  return core
}

t.test('a diamond runs in order; children get their parents\' outputs with holders', async t => {
  const core = diamond()
  t.same([...core.ready], ['a'])
  const [a] = core.assign('W1', 4, 0)
  t.equal(a.job, 'a')
  t.equal(core.assign('W2', 4, 0).length, 0, 'nothing else is ready')
  t.equal(core.complete('W1', ok(a.attempt, [{ name: 'o', hash: H('a'), size: 10 }])), 'done')
  t.same([...core.ready].sort(), ['b', 'c'])
  t.same(core.assign('W2', 4, 0), [], 'their input is on W1, which has free slots: they stay with their data')
  const got = core.assign('W1', 4, 0)
  t.same(got.map(x => x.job).sort(), ['b', 'c'])
  t.same(got[0].inputs[0], { name: 'o', hash: H('a'), size: 10, holders: ['W1'] })
  t.equal(core.complete('W1', ok(got[0].attempt, [{ name: 'o', hash: H('b'), size: 1 }])), 'done')
  t.equal(core.complete('W1', ok(got[0].attempt, [{ name: 'o', hash: H('b'), size: 1 }])), 'ignored', 'a duplicate report changes nothing')
  t.equal(core.complete('W2', ok(got[1].attempt)), 'ignored', 'a report from a worker that did not run it is ignored')
  core.complete('W1', ok(got[1].attempt, [{ name: 'o', hash: H('c'), size: 1 }]))
  const [d] = core.assign('W1', 1, 0)
  t.equal(d.job, 'd')
  t.same(d.inputs.map(i => i.name), ['b', 'c'])
  core.complete('W1', ok(d.attempt, [{ name: 'o', hash: H('d'), size: 1 }]))
  t.ok(core.finished())
  t.equal(core.counts().done, 4)
})

t.test('retries go to another worker; exhausted retries fail the descendants only', async t => {
  const core = diamond()
  const [a] = core.assign('W1', 1, 0)
  core.complete('W1', ok(a.attempt, [{ name: 'o', hash: H('a'), size: 10 }]))
  const jobs = core.assign('W1', 2, 0)
  const c = jobs.find(j => j.job === 'c')!
  const b = jobs.find(j => j.job === 'b')!
  t.equal(core.complete('W1', failed(c.attempt)), 'ready', 'first failure: retry')
  t.equal(core.assign('W1', 2, 0).length, 0, 'the failed worker is avoided while another can run it')
  const [c2] = core.assign('W2', 2, 0)
  t.equal(c2.job, 'c')
  t.equal(core.complete('W2', failed(c2.attempt, 9)), 'failed', 'retries: 1 means two attempts')
  t.equal(core.jobs.get('d')!.state, 'skipped', 'descendant skipped')
  core.complete('W1', ok(b.attempt, [{ name: 'o', hash: H('b'), size: 1 }]))
  t.ok(core.finished())
  t.match(core.jobs.get('c')!.reason!, /exit code 9/)
})

t.test('a lost worker: its running jobs rerun, and finished jobs whose only copy it held rerun too', async t => {
  const core = diamond()
  const [a] = core.assign('W1', 1, 0)
  core.complete('W1', ok(a.attempt, [{ name: 'o', hash: H('a'), size: 10 }]))
  // b waited past the steal delay on W1: W2 may take it (and fetch a's output from W1)
  const [b] = core.assign('W2', 1, Date.now() + core.stealAfterMs)
  t.equal(b.job, 'b')
  const lost = core.removeWorker('W1', 'kill -9')
  t.same(lost, [], 'W1 ran nothing at that moment')
  t.equal(core.jobs.get('a')!.state, 'ready', 'a\'s output existed only on W1 and c still needs it: a runs again')
  t.equal(core.jobs.get('c')!.state, 'pending', 'c waits for a again')
  t.equal(core.jobs.get('b')!.state, 'running', 'b fetched its input already and keeps running')
  const lost2 = core.removeWorker('W2', 'gone')
  t.same(lost2, ['b'])
  core.addWorker({ id: 'W3', slots: 2, attrs, addrs: [] })
  core.replan()
  const again = core.assign('W3', 2, 0)
  t.same(again.map(x => x.job), ['a'])
  t.equal(core.jobs.get('b')!.lost, 1)
})

t.test('a late result of an attempt thought lost is accepted', async t => {
  const core = diamond()
  const [a] = core.assign('W1', 1, 0)
  core.reconcileRunning('W1', [], new Set(), 10_000)
  t.equal(core.jobs.get('a')!.state, 'ready', 'the worker no longer listed it: lost')
  t.equal(core.complete('W1', ok(a.attempt, [{ name: 'o', hash: H('a'), size: 1 }])), 'done', 'but its result still counts')
})

/** four jobs reading one 5 MB staged input, two 1-slot workers, planned */
function sharedInput (): { core: RunCore, dag: ReturnType<typeof parseDag> } {
  const dag = parseDag({ workers: { min: 2, max: 2 }, jobs: [0, 1, 2, 3].map(i => ({ id: `j${i}`, cmd: ['x'], inputs: ['in.dat'] })) }, '/tmp/x.json', { checkFiles: false })
  const core = new RunCore(dag, { coordinatorId: 'C', prefetch: true, nonce: 'n' })
  core.setFileInput('/tmp/in.dat', H('f'), 5_000_000)
  core.addWorker({ id: 'W1', slots: 1, attrs, addrs: [] })
  core.addWorker({ id: 'W2', slots: 1, attrs, addrs: [] })
  core.replan()
  return { core, dag }
}

t.test('prefetch hints: staged inputs to planned workers once; other workers wait for the first copy', async t => {
  const { core, dag } = sharedInput()
  const h1 = core.hintsFor('W1')
  const h2 = core.hintsFor('W2')
  t.equal(h1.length + h2.length, 1, 'only one worker takes it from the submitter')
  const first = h1.length === 1 ? 'W1' : 'W2'
  const second = first === 'W1' ? 'W2' : 'W1'
  t.same((h1[0] ?? h2[0]).holders, ['C'])
  core.blobs.get(H('f'))!.holders.add(first) // the first worker announced it
  const later = core.hintsFor(second)
  t.equal(later.length, 1)
  t.same(later[0].holders, [first, 'C'], 'the second fetches from the first worker, the submitter last')
  t.equal(core.stagingBytes(first), 0, 'a worker that holds the input needs no room for it')
  t.equal(core.stagingBytes(second), 5_000_000, 'the other one does, once however many jobs read it')
  const noPrefetch = new RunCore(dag, { coordinatorId: 'C', prefetch: false, nonce: 'n' })
  noPrefetch.setFileInput('/tmp/in.dat', H('f'), 5)
  noPrefetch.addWorker({ id: 'W1', slots: 1, attrs, addrs: [] })
  noPrefetch.replan()
  t.same(noPrefetch.hintsFor('W1'), [], '--no-prefetch sends no hints')
})

t.test('a staged input travelling to one worker: the others wait for that copy, a few seconds at most', async t => {
  const make = (): { core: RunCore, first: string, second: string } => {
    const { core } = sharedInput()
    core.promote()
    const first = core.hintsFor('W1').length === 1 ? 'W1' : (core.hintsFor('W2').length === 1 ? 'W2' : '')
    return { core, first, second: first === 'W1' ? 'W2' : 'W1' }
  }
  const a = make()
  t.not(a.first, '', 'one worker was sent to the submitter for it')
  const now = Date.now()
  t.same(a.core.assign(a.second, 1, now), [], 'the other gets no job that reads it while the copy travels')
  t.equal(a.core.assign(a.first, 1, now).length, 1, 'the first worker does')
  a.core.blobs.get(H('f'))!.holders.add(a.first) // it announced its copy
  const got = a.core.assign(a.second, 1, now)
  t.equal(got.length, 1, 'once the copy is there, the other runs it too')
  t.same(got[0].inputs[0].holders, [a.first, 'C'], 'reading it from the first worker')
  const b = make()
  t.equal(b.core.assign(b.second, 1, Date.now() + 3_001).length, 1, 'a copy that never arrives holds nobody back past 3 s')
})

t.test('prefetch hints reach further for data on workers than for data only the submitter holds', async t => {
  // 30 independent jobs, each with its own staged input and a 1-slot worker: all planned there
  const dag = parseDag({ workers: { min: 1, max: 1 }, jobs: Array.from({ length: 30 }, (_, i) => ({ id: `j${i}`, cmd: ['x'], inputs: [`in${i}.dat`], runtime: 1 })) }, '/tmp/x.json', { checkFiles: false })
  const core = new RunCore(dag, { coordinatorId: 'C', prefetch: true, nonce: 'n' })
  for (let i = 0; i < 30; i++) core.setFileInput(`/tmp/in${i}.dat`, H((i % 16).toString(16)).slice(0, 62) + String(i).padStart(2, '0'), 1_000_000)
  core.addWorker({ id: 'W1', slots: 1, attrs, addrs: [] })
  core.replan()
  const staged = core.hintsFor('W1')
  t.equal(staged.length, 2 * 1 + 2, 'inputs only the submitter holds: those of the next 2 x slots + 2 jobs')
  t.same(staged.map(h => h.order), [...staged.map(h => h.order)].sort((a, b) => (a ?? 0) - (b ?? 0)), 'in plan order')
  // once those inputs are on another worker of the run, the wide window applies
  core.addWorker({ id: 'W2', slots: 1, attrs, addrs: [] })
  for (const b of core.blobs.values()) b.holders.add('W2')
  core.replan()
  const spread = core.hintsFor('W1').length + core.hintsFor('W2').length
  t.ok(spread > staged.length, `data held by workers is hinted further ahead (${spread} hints)`)
})

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

t.test('missing or bad inputs are not the job\'s failure: the holders leave, the producer runs again, the job backs off and waits', async t => {
  const core = diamond()
  const [a] = core.assign('W1', 1, 0)
  core.complete('W1', ok(a.attempt, [{ name: 'o', hash: H('a'), size: 10 }]))
  // W1 has not taken b for a while: W2 steals it (a's output must travel)
  const [b] = core.assign('W2', 1, Date.now() + 10_000)
  t.equal(b.job, 'b')
  // W2 could not get a's output from W1: W1 is the only holder
  const lost: AttemptResult = {
    ...ok(b.attempt), status: 'lost', exitCode: null, error: 'inputs: every holder failed', endedAt: Date.now(),
    inputProblems: [{ hash: H('a'), code: 'UNREACHABLE', holders: ['W1'], message: 'every holder failed' }]
  }
  core.complete('W2', lost)
  const bj = core.jobs.get('b')!
  t.equal(bj.lost, 0, 'not counted against the job')
  t.equal(bj.failures, 0)
  t.equal(bj.inputWaits, 1)
  t.equal(bj.state, 'pending', 'no holder left for its input: it waits')
  t.equal(core.jobs.get('a')!.state, 'ready', 'the producer runs again (its only copy is gone)')
  t.notOk(core.blobs.get(H('a'))!.holders.has('W1'), 'the failing holder left the list')
  t.equal(core.stats.holdersDropped, 1)
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

t.test('a job that keeps missing its inputs backs off exponentially, then fails with the reason', async t => {
  const dag = parseDag({ jobs: [{ id: 'x', cmd: ['x'], inputs: ['in.txt'] }] }, '/tmp/x.json', { checkFiles: false })
  const core = new RunCore(dag, { coordinatorId: 'C', prefetch: true, nonce: 'n' })
  core.setFileInput('/tmp/in.txt', H('f'), 5)
  core.addWorker({ id: 'W1', slots: 1, attrs, addrs: [] })
  core.replan()
  core.promote()
  let now = 0
  const waits: number[] = []
  for (let i = 0; i < 30 && core.jobs.get('x')!.state !== 'failed'; i++) {
    const got = core.assign('W1', 1, now)
    if (got.length === 0) { now += 500; continue }
    // the submitter (coordinator) is the holder; a problem that names nobody keeps it
    core.complete('W1', { ...ok(got[0].attempt), status: 'lost', exitCode: null, endedAt: now, error: 'inputs: connection reset', inputProblems: [{ hash: H('f'), code: 'UNREACHABLE', holders: [], message: 'connection reset' }] })
    const j = core.jobs.get('x')!
    if (j.notBefore !== undefined) waits.push(j.notBefore - now)
    now = j.notBefore ?? now
  }
  t.same(waits.slice(0, 6), [1000, 2000, 4000, 8000, 16000, 30000], 'backoff doubles, capped at 30 s')
  t.equal(core.jobs.get('x')!.state, 'failed')
  t.match(core.jobs.get('x')!.reason!, /inputs unavailable after 21 tries: inputs: connection reset/)
})

t.test('no room for its inputs (a worker\'s quota): the job goes to another worker at once, and fails naming the quota when none has room', async t => {
  const dag = parseDag({ jobs: [{ id: 'x', cmd: ['x'], inputs: ['in.txt'] }] }, '/tmp/x.json', { checkFiles: false })
  const core = new RunCore(dag, { coordinatorId: 'C', prefetch: false, nonce: 'n' })
  core.setFileInput('/tmp/in.txt', H('f'), 5)
  core.addWorker({ id: 'W1', slots: 1, attrs, addrs: [] })
  core.addWorker({ id: 'W2', slots: 1, attrs, addrs: [] })
  core.replan()
  core.promote()
  const full = (attempt: string): AttemptResult => ({ ...ok(attempt), status: 'lost', exitCode: null, endedAt: 0, error: 'inputs: quota', inputProblems: [{ hash: H('f'), code: 'DISK_FULL', holders: [], message: 'blob store quota of 50 MiB on this node: need 10 MiB more' }] })
  const [first] = [...core.assign('W1', 1, 0), ...core.assign('W2', 1, 0)]
  const firstWorker = core.attempts.get(first.attempt)!.worker
  const other = firstWorker === 'W1' ? 'W2' : 'W1'
  core.complete(firstWorker, full(first.attempt))
  t.equal(core.jobs.get('x')!.state, 'ready')
  t.same(core.assign(firstWorker, 1, 0), [], 'not back to the full worker')
  const [second] = core.assign(other, 1, 0)
  t.ok(second !== undefined, 'the other worker takes it at once, no backoff')
  t.ok(core.blobs.get(H('f'))!.holders.has('C'), 'the holder was not blamed')
  core.complete(other, full(second.attempt))
  t.equal(core.jobs.get('x')!.state, 'failed')
  t.match(core.jobs.get('x')!.reason!, /no worker has room for its inputs: blob store quota of 50 MiB/)
})
