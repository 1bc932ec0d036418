// Dispatch (coordinator/core/dispatch.ts), pure: which attempts go to which worker, and what
// their results do to their jobs. Through the run core, then through its own interface.
import t from 'tap'
import { parseDag } from '../coordinator/dag-json.ts'
import { RunCore } from '../coordinator/core/run-core.ts'
import { Dispatch } from '../coordinator/core/dispatch.ts'
import type { AttemptResult } from '../protocol/jobs.ts'
import { attrs, H, ok, failed, diamond, workerRec, coreParts } from './helpers/core-fixtures.ts'

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

t.test('a late result of an attempt thought lost is accepted', async t => {
  const core = diamond()
  const [a] = core.assign('W1', 1, 0)
  core.reconcileRunning('W1', [], new Set(), 10_000)
  t.equal(core.jobs.get('a')!.state, 'ready', 'the worker no longer listed it: lost')
  t.equal(core.complete('W1', ok(a.attempt, [{ name: 'o', hash: H('a'), size: 1 }])), 'done', 'but its result still counts')
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

// ---- dispatch on its own ------------------------------------------------------

t.test('dispatch on its own: nothing while held, a worker\'s slots without prefetch, attempts named by the nonce, results move jobs, bad inputs go to the host, a lost worker\'s jobs go back', async t => {
  const dag = parseDag({ jobs: [0, 1, 2].map(i => ({ id: `j${i}`, cmd: ['x'], inputs: ['in.dat'], outputs: ['o'] })) }, '/tmp/x.json', { checkFiles: false })
  const parts = coreParts(dag, { prefetch: false, held: true })
  const { workers, stats, schedule, holders, table } = parts
  const dropped: string[] = []
  const dispatch = new Dispatch({
    ...parts,
    host: { aliveWorkers: () => [...workers.values()].filter(w => w.alive), dropHolders: (hash, hs, why, o) => { dropped.push(`${hash.slice(0, 2)} ${hs.join(',')} verify=${String(o.verify)} by ${o.reporter ?? '-'}: ${why}`) } }
  }, { coordinatorId: 'C', prefetch: false, nonce: 'z' })
  table.inputs.set('/tmp/in.dat', { hash: H('f'), size: 5 })
  holders.addHolder(H('f'), 5, 'C')
  workers.set('W1', workerRec('W1', 2))
  table.promote()
  t.same(dispatch.assign('W1', 3, 0), [], 'nothing is handed out while the run is held')
  schedule.held = false
  const got = dispatch.assign('W1', 3, 0)
  t.same(got.map(a => a.attempt), ['az-1', 'az-2'], 'without prefetch, at most its 2 slots; attempt ids carry the nonce')
  t.same(got[0].inputs, [{ name: 'in.dat', hash: H('f'), size: 5, holders: ['C'] }])
  t.equal(workers.get('W1')!.usedCores, 2)
  t.same(dispatch.assign('W1', 1, 0), [], 'its slots are full')
  t.equal(dispatch.complete('W1', ok(got[0].attempt, [{ name: 'o', hash: H('1'), size: 1 }])), 'done')
  t.equal(dispatch.complete('W1', ok(got[0].attempt, [{ name: 'o', hash: H('1'), size: 1 }])), 'ignored', 'a duplicate changes nothing')
  t.equal(workers.get('W1')!.usedCores, 1)
  t.ok(holders.holds(H('1'), 'W1'), 'its worker holds the output')
  // its input had bad bytes: the holder named goes to the host, the job waits and backs off
  const second = got[1].job
  t.equal(dispatch.complete('W1', { ...ok(got[1].attempt), status: 'lost', exitCode: null, endedAt: 100, error: 'inputs: bad bytes', inputProblems: [{ hash: H('f'), code: 'HASH_MISMATCH', holders: ['C'], message: 'bad bytes' }] }), 'ready')
  t.same(dropped, ['ff C verify=true by W1: HASH_MISMATCH: bad bytes'])
  const j = table.jobs.get(second)!
  t.equal(j.inputWaits, 1)
  t.equal(j.notBefore, 1100, 'tried again 1 s after it ended')
  t.equal(stats.inputWaits, 1)
  const [third] = dispatch.assign('W1', 2, 500)
  t.not(third.job, second, 'the job backing off is not handed out before its time')
  const w1 = workers.get('W1')!
  w1.alive = false
  t.same(dispatch.workerLost(w1, 'lease lapsed'), [third.job], 'the job it ran is lost with it')
  t.equal(table.jobs.get(third.job)!.state, 'ready', 'and ready to run elsewhere')
  t.equal(table.jobs.get(third.job)!.lost, 1)
  t.equal(dispatch.attempts.get(third.attempt)!.error, 'lease lapsed')
  t.equal(w1.usedCores, 0)
})

t.test('a lease renewal\'s answer: an attempt given before it left and not held twice in a row is lost; a younger one is left alone; phases are kept', async t => {
  const core = diamond()
  const [a] = core.assign('W1', 1, 1000)
  // the renewal left at 2000 (1 s after the assignment: they may have crossed), the worker holds nothing
  core.heldBy('W1', [], 2000, 2100, 3000)
  t.equal(core.jobs.get('a')!.state, 'running', 'an attempt younger than the grace is not judged')
  core.heldBy('W1', [{ attempt: a.attempt, phase: 'inputs', forMs: 500 }], 5000, 5100, 3000)
  t.same(core.attempts.get(a.attempt)!.phase, { name: 'inputs', since: 4600 }, 'the phase, dated on the coordinator\'s clock')
  t.equal(core.jobs.get('a')!.state, 'running', 'held: still running')
  t.same(core.attemptsOn('W1'), [a.attempt], 'what the next renewal names')
  core.heldBy('W1', [], 9000, 9100, 3000)
  t.equal(core.jobs.get('a')!.state, 'running', 'one renewal without it may have been overtaken by the assignment')
  core.heldBy('W1', [], 10_500, 10_600, 3000)
  t.equal(core.jobs.get('a')!.state, 'ready', 'two in a row: lost, the job back in the queue')
  t.equal(core.attempts.get(a.attempt)!.status, 'lost')
  t.same(core.attemptsOn('W1'), [], 'the worker is told it no longer owns it')
  t.equal(core.complete('W1', ok(a.attempt, [{ name: 'o', hash: H('a'), size: 1 }])), 'done', 'a late result still counts')
})

t.test('an attempt given up (a stall) goes to another worker and is no longer counted on its own', async t => {
  const core = diamond()
  const [a] = core.assign('W1', 1, 0)
  core.giveUp(a.attempt, 'no progress for 60 s: queued, not started on W1 for 61 s', 61_000)
  t.equal(core.jobs.get('a')!.state, 'ready')
  t.match(core.attempts.get(a.attempt)!.error!, /no progress for 60 s/)
  t.same(core.attemptsOn('W1'), [])
  t.same(core.assign('W1', 1, 62_000), [], 'not back to the worker that sat on it while another can run it')
  const [again] = core.assign('W2', 1, 62_000)
  t.equal(again.job, 'a', 'the other worker takes it')
  core.giveUp(a.attempt, 'twice', 63_000)
  t.equal(core.jobs.get('a')!.state, 'running', 'giving up an attempt already over changes nothing')
})

t.test('a worker cannot make an old phase young, nor date one before its assignment', async t => {
  const core = diamond()
  const [a] = core.assign('W1', 1, 10_000)
  core.heldBy('W1', [{ attempt: a.attempt, phase: 'queued', forMs: 99_000 }], 11_000, 11_000, 3000)
  t.same(core.attempts.get(a.attempt)!.phase, { name: 'queued', since: 10_000 }, 'no older than its assignment')
  core.heldBy('W1', [{ attempt: a.attempt, phase: 'queued', forMs: 0 }], 50_000, 50_000, 3000)
  t.same(core.attempts.get(a.attempt)!.phase, { name: 'queued', since: 10_000 }, 'queued since it was first seen queued, whatever it says now')
  core.heldBy('W1', [{ attempt: a.attempt, phase: 'inputs', forMs: 1000 }], 60_000, 60_000, 3000)
  core.heldBy('W1', [{ attempt: a.attempt, phase: 'inputs', forMs: 500 }], 62_000, 62_000, 3000)
  t.same(core.attempts.get(a.attempt)!.phase, { name: 'inputs', since: 61_500 }, 'inputs: dated from the last byte, as the worker says')
})
