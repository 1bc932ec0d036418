// Prefetch (coordinator/core/prefetch.ts), pure: which blobs a worker is told to fetch ahead,
// and staged inputs sent into the grid once. Through the run core, then through its own interface.
import t from 'tap'
import { parseDag } from '../coordinator/dag-json.ts'
import { RunCore } from '../coordinator/core/run-core.ts'
import { STAGING_WAIT_MS } from '../coordinator/core/prefetch.ts'
import { attrs, H, sharedInput, workerRec, coreParts } from './helpers/core-fixtures.ts'

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

// ---- prefetch on its own ------------------------------------------------------

t.test('prefetch on its own: the plan\'s next jobs in order, each input once, a narrower window for what only the submitter holds', async t => {
  // six jobs on a 1-slot W1, each reading its own staged input of 10 bytes; the odd ones' already on W2
  const dag = parseDag({ jobs: [0, 1, 2, 3, 4, 5].map(i => ({ id: `j${i}`, cmd: ['x'], inputs: [`in${i}.dat`] })) }, '/tmp/x.json', { checkFiles: false })
  const { workers, stats, schedule, holders, table, prefetch } = coreParts(dag, { prefetch: true, held: false })
  workers.set('W1', workerRec('W1', 1))
  workers.set('W2', workerRec('W2', 1))
  for (let i = 0; i < 6; i++) {
    table.inputs.set(`/tmp/in${i}.dat`, { hash: H(String(i)), size: 10 })
    holders.addHolder(H(String(i)), 10, i % 2 === 1 ? 'W2' : 'C')
  }
  t.same(prefetch.hintsFor('W1'), [], 'no plan, no hints')
  // planned in reverse: j5 first
  schedule.plan = { worker: new Map(dag.jobs.map(j => [j.id, 'W1'])), start: new Map(dag.jobs.map((j, i) => [j.id, 5 - i])), makespan: 6 }
  prefetch.rehintAll()
  schedule.held = true
  t.same(prefetch.hintsFor('W1'), [], 'nothing moves while the run is held')
  schedule.held = false
  t.equal(prefetch.stagingBytes('W1'), 60, 'six staged inputs planned for W1, none held there')
  const hints = prefetch.hintsFor('W1')
  t.same(hints.map(h => [h.hash[0], h.order, h.holders.join(',')]), [['5', 0, 'W2'], ['4', 1, 'C'], ['3', 2, 'W2'], ['2', 3, 'C'], ['1', 4, 'W2']],
    'in plan order; what only the submitter holds, for the next 2 x slots + 2 jobs only (in0 is left for later)')
  t.equal(stats.prefetchHints, 5)
  t.same(prefetch.hintsFor('W1'), [], 'each blob is hinted once')
  const now = Date.now()
  t.ok(prefetch.stagedElsewhere(H('4'), 'W2', now), 'in4 is on its way from the submitter to W1: W2 waits for that copy')
  t.notOk(prefetch.stagedElsewhere(H('4'), 'W1', now), 'not for W1 itself')
  t.notOk(prefetch.stagedElsewhere(H('4'), 'W2', now + STAGING_WAIT_MS), 'nor past STAGING_WAIT_MS')
  holders.announce('W1', [H('4')])
  t.notOk(prefetch.stagedElsewhere(H('4'), 'W2', now), 'nor once W1 holds it')
  t.equal(prefetch.stagingBytes('W1'), 50, 'a staged input W1 holds needs no room there')
  t.same([...prefetch.missingStaged(['j4', 'j5'], 'W1')], [[H('5'), 10]], 'of j4 and j5\'s inputs, W1 misses in5')
})
