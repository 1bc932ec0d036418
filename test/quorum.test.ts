// BOINC-style verified execution, pure: the quorum decision as a table, and the run
// core driving replicas (distinct hosts, validation, deadline, adaptive replication,
// credit) with no network.
import t from 'tap'
import { decide } from '../middleware-adapters/boinc/quorum.ts'
import { type Replica } from '../coordinator/core/contracts.ts'
import { QuorumPolicy, claimedCredit, TRUSTED_AFTER } from '../middleware-adapters/boinc/policy.ts'
import { TrustBook } from '../middleware-adapters/boinc/trust.ts'
import { parseDag } from '../coordinator/dag-json.ts'
import { RunCore } from '../coordinator/core/run-core.ts'
import type { AttemptResult } from '../protocol/jobs.ts'

const ok = (key: string, n: number): Replica => ({ attempt: `a${n}`, worker: `W${n}`, outcome: 'ok', key })
const err = (n: number): Replica => ({ attempt: `a${n}`, worker: `W${n}`, outcome: 'error' })
const out = (n: number): Replica => ({ attempt: `a${n}`, worker: `W${n}`, outcome: 'pending' })
const rules = { quorum: 2, maxErrors: 3, maxTotal: 6 }

t.test('the quorum decision, row by row', async t => {
  const rows: Array<[string, Replica[], Partial<typeof rules>, string]> = [
    ['one result in, one out: wait', [ok('A', 1), out(2)], {}, 'wait'],
    ['two agree: canonical', [ok('A', 1), ok('A', 2)], {}, 'canonical A valid a1,a2 invalid -'],
    ['two disagree: one more', [ok('A', 1), ok('B', 2)], {}, 'issue 1'],
    ['two against one: canonical, the odd one invalid', [ok('A', 1), ok('B', 2), ok('A', 3)], {}, 'canonical A valid a1,a3 invalid a2'],
    ['three different: one more', [ok('A', 1), ok('B', 2), ok('C', 3)], {}, 'issue 1'],
    ['2 of 4 is no strict majority: one more', [ok('A', 1), ok('B', 2), ok('C', 3), ok('A', 4)], {}, 'issue 1'],
    ['an error: replaced', [ok('A', 1), err(2)], {}, 'issue 1'],
    ['two errors, nothing in: two more', [err(1), err(2)], {}, 'issue 2'],
    ['errors over maxErrors: fail', [err(1), err(2), err(3), err(4)], {}, 'fail too many errors'],
    ['maxTotal reached without consensus: fail naming the sides', [ok('A', 1), ok('B', 2)], { maxTotal: 2 }, 'fail no consensus'],
    ['maxTotal reached, one still out: wait', [ok('A', 1), ok('B', 2), out(3)], { maxTotal: 3 }, 'wait'],
    ['quorum 1 (a spot-check-free job): one result is canonical', [ok('A', 1)], { quorum: 1 }, 'canonical A valid a1 invalid -'],
    ['quorum 3: two agree, one more', [ok('A', 1), ok('A', 2)], { quorum: 3 }, 'issue 1']
  ]
  for (const [what, replicas, r, want] of rows) {
    const d = decide(replicas, { ...rules, ...r })
    const got = d.kind === 'canonical' ? `canonical ${d.key} valid ${d.valid.join(',')} invalid ${d.invalid.join(',') || '-'}`
      : d.kind === 'issue' ? `issue ${d.n}` : d.kind === 'fail' ? `fail ${d.reason}` : 'wait'
    t.match(got, want.startsWith('fail') ? new RegExp(`^${want}`) : new RegExp(`^${want}$`), what)
  }
  const f = decide([ok('A', 1), ok('B', 2)], { ...rules, maxTotal: 2 })
  t.match(f.kind === 'fail' ? f.reason : '', /W1 vs W2/, 'the disagreeing workers are named')
})

const attrs = { ram: 8000, cores: 2, mhz: 2500, disk: 50000, load: 0, cost: 0, os: 'linux', arch: 'x64' }
const H = (c: string): string => c.repeat(64)
const result = (attempt: string, hash: string, status: AttemptResult['status'] = 'ok'): AttemptResult => ({
  attempt, status, exitCode: status === 'ok' ? 0 : 1, signal: null, outputs: status === 'ok' ? [{ name: 'o', hash, size: 1 }] : [],
  startedAt: 0, endedAt: 10_000, inputWaitMs: 0, bytesFetched: 0, cacheHits: 0, cpuMs: 8000
})

function replicated (verify: Record<string, unknown>, random = (): number => 0.99): { core: RunCore, trust: TrustBook, policy: QuorumPolicy } {
  const dag = parseDag({ middleware: 'boinc', defaults: verify, jobs: [{ id: 'j', cmd: ['x'], outputs: ['o'] }, { id: 'child', cmd: ['x'], inputs: ['job:j/o'] }] }, '/tmp/x.json', { checkFiles: false })
  const trust = new TrustBook('/nonexistent')
  const policy = new QuorumPolicy({ trust, gflopsOf: () => 2, nameOf: p => p, random })
  const core = new RunCore(dag, { coordinatorId: 'C', prefetch: false, nonce: 'n', replication: policy })
  // W1 and W1b share a machine
  for (const [id, host] of [['W1', 'h1'], ['W1b', 'h1'], ['W2', 'h2'], ['W3', 'h3']]) core.addWorker({ id, slots: 2, attrs, addrs: [], host })
  core.replan()
  core.promote()
  return { core, trust, policy }
}

t.test('replicas go to distinct hosts; a cheater is outvoted; children get the canonical bytes; credit and trust follow', async t => {
  const { core, trust } = replicated({ quorum: 2, replicas: 2 })
  const [first] = core.assign('W1', 2, 0)
  t.equal(first.job, 'j')
  t.same(core.assign('W1b', 2, 0), [], 'no second replica on the same machine')
  const [second] = core.assign('W2', 2, 0)
  t.equal(second?.job, 'j', 'the second replica on another host')
  t.same(core.assign('W3', 2, 0), [], 'two replicas wanted, two out')
  core.complete('W1', result(first.attempt, H('a')))
  t.equal(core.jobs.get('j')?.state, 'running', 'one result is not a quorum')
  core.complete('W2', result(second.attempt, H('b')))
  t.equal(core.jobs.get('j')?.state, 'running', 'two different results: no consensus yet')
  t.same(core.assign('W1b', 2, 0), [], 'the tie-breaker is not on a host that has a result')
  const [third] = core.assign('W3', 2, 0)
  t.equal(third?.job, 'j', 'a third replica breaks the tie')
  core.complete('W3', result(third.attempt, H('a')))
  const job = core.jobs.get('j')!
  t.equal(job.state, 'done')
  t.equal(job.outputs?.get('o')?.hash, H('a'), 'the canonical result is the majority\'s')
  t.same(job.attempts.map(a => a.validation), ['valid', 'invalid', 'valid'])
  t.equal(core.jobs.get('child')?.state, 'ready', 'the child runs on the canonical output')
  t.notOk(core.liveHolders(H('a')).includes('W2'), 'the cheater does not hold the canonical bytes')
  const credit = claimedCredit(job.attempts[0], 2, 1)
  t.equal(credit, 8 / 86400 * 2 * 200, 'credit: CPU seconds on a 2 GFLOPS core, in cobblestones')
  t.same([trust.get('W1').credit, trust.get('W3').credit, trust.get('W2').credit], [credit, credit, 0], 'the same credit for each agreeing result, none for the invalid one')
  t.same([trust.get('W2').invalid, trust.get('W2').consecutiveValid, trust.get('W1').consecutiveValid], [1, 0, 1])
})

t.test('a replica past its deadline counts as no reply: another is issued; its late result still counts', async t => {
  const { core, trust } = replicated({ quorum: 2, replicas: 2, deadline: 5 })
  const [a] = core.assign('W1', 2, 0)
  const [b] = core.assign('W2', 2, 0)
  core.complete('W1', result(a.attempt, H('a')))
  core.tick(4000)
  t.same(core.assign('W3', 2, 4000), [], 'before the deadline nothing more')
  core.tick(6000)
  t.equal(trust.get('W2').timeouts, 1, 'the silent worker\'s record says so')
  const [c] = core.assign('W3', 2, 6000)
  t.equal(c?.job, 'j', 'a replacement replica')
  core.complete('W2', result(b.attempt, H('a')))
  t.equal(core.jobs.get('j')?.state, 'done', 'the late result made the quorum')
})

t.test('too many errors fail the job; no consensus by maxTotal fails it naming the workers', async t => {
  const e = replicated({ quorum: 2, replicas: 2, maxErrors: 1 })
  const [a] = e.core.assign('W1', 2, 0)
  const [b] = e.core.assign('W2', 2, 0)
  e.core.complete('W1', result(a.attempt, '', 'failed'))
  e.core.complete('W2', result(b.attempt, '', 'failed'))
  t.equal(e.core.jobs.get('j')?.state, 'failed')
  t.match(e.core.jobs.get('j')?.reason, /too many errors/)
  t.equal(e.core.jobs.get('child')?.state, 'skipped')
  const n = replicated({ quorum: 2, replicas: 2, maxTotal: 2 })
  const [x] = n.core.assign('W1', 2, 0)
  const [y] = n.core.assign('W2', 2, 0)
  n.core.complete('W1', result(x.attempt, H('a')))
  n.core.complete('W2', result(y.attempt, H('b')))
  t.match(n.core.jobs.get('j')?.reason, /no consensus after 2 replica\(s\).*W1 vs W2/)
})

t.test('adaptive replication: a worker with a long streak of valid results gets unreplicated work, now and then checked', async t => {
  const { core, trust } = replicated({ quorum: 2, replicas: 2 }, () => 0.5)
  for (let i = 0; i < TRUSTED_AFTER; i++) trust.valid('W1', 'W1', 0)
  const [a] = core.assign('W1', 2, 0)
  t.same(core.assign('W2', 2, 0), [], 'no second replica for a trusted worker (1 - 1/n of the time)')
  core.complete('W1', result(a.attempt, H('a')))
  t.equal(core.jobs.get('j')?.state, 'done', 'its one result is canonical')
  const checked = replicated({ quorum: 2, replicas: 2 }, () => 0.95)
  for (let i = 0; i < TRUSTED_AFTER; i++) checked.trust.valid('W1', 'W1', 0)
  checked.core.assign('W1', 2, 0)
  t.equal(checked.core.assign('W2', 2, 0)[0]?.job, 'j', 'the spot check (1/n of the time) replicates as usual')
})

t.test('dag.json: boinc fields validated with BOINC\'s rules', async t => {
  t.throws(() => parseDag({ middleware: 'boinc', jobs: [{ id: 'j', cmd: ['x'], quorum: 3, replicas: 2 }] }, '/tmp/x.json', { checkFiles: false }), /replicas: 2 < quorum 3/)
  t.throws(() => parseDag({ jobs: [{ id: 'j', cmd: ['x'], quorum: 2 }] }, '/tmp/x.json', { checkFiles: false }), /quorum: only for "middleware": "boinc"/)
  const d = parseDag({ middleware: 'boinc', jobs: [{ id: 'j', cmd: ['x'] }, { id: 'k', cmd: ['x'], middleware: 'native' }] }, '/tmp/x.json', { checkFiles: false })
  t.same(d.byId.get('j')?.verify, { quorum: 2, replicas: 2, maxTotal: 6, maxErrors: 3, deadlineMs: 0, compare: null, adaptive: true }, 'BOINC-like defaults')
  t.equal(d.byId.get('k')?.verify, null, 'a job may stay native')
})

// what a hostile worker tried in review (each failed before its fix)
t.test('hostile workers: no quorum of one after a trusted worker\'s replica fails, one report per attempt, one replica per host, exact outputs, nothing earned late', async t => {
  // a trusted worker's unreplicated job fails there: whoever takes its place is checked by a second replica
  const a = replicated({ quorum: 2, replicas: 2 }, () => 0.5)
  for (let i = 0; i < TRUSTED_AFTER; i++) a.trust.valid('W1', 'W1', 0)
  const [first] = a.core.assign('W1', 2, 0)
  a.core.complete('W1', result(first.attempt, '', 'failed'))
  const [x] = a.core.assign('W2', 2, 0)
  a.core.complete('W2', result(x.attempt, H('e')))
  t.equal(a.core.jobs.get('j')?.state, 'running', 'one result after the trusted one failed is not a quorum')
  const [y] = a.core.assign('W3', 2, 0)
  t.equal(y?.job, 'j', 'a second replica checks it')

  // the same lost report sent over and over counts once; the worker that voided a replica does not get the job again
  const b = replicated({ quorum: 2, replicas: 2 })
  const [r1] = b.core.assign('W1', 2, 0)
  const lost = { ...result(r1.attempt, '', 'lost'), inputProblems: [{ hash: H('f'), holders: ['C'], code: 'NOT_FOUND' as const, message: 'gone' }] }
  b.core.complete('W1', lost)
  t.equal(b.core.complete('W1', lost), 'ignored', 'a second report of one attempt is ignored')
  t.equal(b.core.jobs.get('j')?.lost, 1)
  t.same(b.core.assign('W1', 2, 0), [], 'not the same worker again')
  // one replica per host, whatever became of it
  b.core.addWorker({ id: 'W2b', slots: 2, attrs, addrs: [], host: 'h2' })
  const [r2] = b.core.assign('W2', 2, 0)
  b.core.complete('W2', result(r2.attempt, '', 'failed'))
  t.same(b.core.assign('W2b', 2, 0), [], 'W2b shares the host of W2, whose replica failed')

  // outputs reported twice under one name (another declared one missing) are not a result
  const dag = parseDag({ middleware: 'boinc', jobs: [{ id: 'j', cmd: ['x'], outputs: ['o', 'p'] }] }, '/tmp/x.json', { checkFiles: false })
  const trust = new TrustBook('/nonexistent')
  const core = new RunCore(dag, { coordinatorId: 'C', prefetch: false, nonce: 'n', replication: new QuorumPolicy({ trust, gflopsOf: () => 1, nameOf: p => p }) })
  for (const [id, host] of [['W1', 'h1'], ['W2', 'h2']]) core.addWorker({ id, slots: 2, attrs, addrs: [], host })
  core.replan(); core.promote()
  const [d1] = core.assign('W1', 2, 0)
  core.complete('W1', { ...result(d1.attempt, H('a')), outputs: [{ name: 'o', hash: H('a'), size: 1 }, { name: 'o', hash: H('a'), size: 1 }] })
  t.equal(core.jobs.get('j')?.attempts[0].status, 'failed', 'duplicate output names: refused')

  // a result for a job already decided earns no credit, no trust, no place among the holders
  const c = replicated({ quorum: 2, replicas: 3 })
  const [p1] = c.core.assign('W1', 2, 0)
  const [p2] = c.core.assign('W2', 2, 0)
  const [p3] = c.core.assign('W3', 2, 0)
  c.core.complete('W1', result(p1.attempt, H('a')))
  c.core.complete('W2', result(p2.attempt, H('a')))
  t.equal(c.core.jobs.get('j')?.state, 'done')
  c.core.complete('W3', result(p3.attempt, H('a')))
  t.same([c.trust.get('W3').valid, c.trust.get('W3').credit, c.trust.get('W3').consecutiveValid], [0, 0, 0], 'the late result earns nothing')
  t.notOk(c.core.liveHolders(H('a')).includes('W3'), 'nor is its worker taken for a holder of bytes it may not have')
})

t.test('a worker\'s report never takes the submitter\'s own copy of an input off the holder list', async t => {
  const dag = parseDag({ jobs: [{ id: 'j', cmd: ['x'], inputs: ['in.txt'] }] }, '/tmp/x.json', { checkFiles: false })
  const core = new RunCore(dag, { coordinatorId: 'C', prefetch: false, nonce: 'n' })
  core.addWorker({ id: 'W1', slots: 2, attrs, addrs: [] })
  core.setFileInput('/tmp/in.txt', H('1'), 1)
  core.replan(); core.promote()
  const [a] = core.assign('W1', 2, 0)
  core.complete('W1', { ...result(a.attempt, '', 'lost'), inputProblems: [{ hash: H('1'), holders: ['C'], code: 'HASH_MISMATCH', message: 'says the liar' }] })
  core.reportCorrupt('W1', [{ hash: H('1'), holder: 'C' }])
  t.same(core.liveHolders(H('1')), ['C'], 'the submitter still serves it')
  t.equal(core.jobs.get('j')?.state, 'ready', 'the job can run again')
})
