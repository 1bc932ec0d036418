// Fair sharing between concurrent runs, its pure parts: the rule each node applies, the
// claim book's retire-then-reserve, the census a node counts runs with, and which nodes a
// run short of workers asks. The lab test (fair-share-lab) runs it with real daemons.
import t from 'tap'
import { shouldMove, preferenceTag, DEFAULT_TENURE_MS, type RunShare } from '../protocol/fair-share.ts'
import { ClaimBook, RESERVATION_MS } from '../daemon/claim-book.ts'
import { RunCensus, runOfTxt, CENSUS_MAX_AGE_MS, CENSUS_MAX_NODES } from '../protocol/census.ts'
import { pickAsks, shareTarget, notToAsk, idleToTake, MAX_CLAIMS_IN_FLIGHT, type Asker } from '../coordinator/share-asks.ts'
import { retryAfterMs, BUSY_RETRY_MS } from '../coordinator/recruit.ts'
import { encodeTxt, decodeTxt, type NodeAd } from '../protocol/txt.ts'
import type { Candidate } from '../coordinator/core/select.ts'
import { parseDag } from '../coordinator/dag-json.ts'

const rules = { prefer: [] as string[], tenureMs: DEFAULT_TENURE_MS }
const run = (name: string, held: number, priority = 0, submitter?: string): RunShare =>
  ({ run: name, coordinator: `C-${name}`, priority, held, ...(submitter !== undefined ? { submitter } : {}) })

t.test('equal priority: a node moves only if its run keeps at least as many as the asker will have', async t => {
  t.ok(shouldMove(run('a', 6), run('b', 4), 0, 10_000, rules).move, '6 vs 4: moves (5 and 5)')
  t.notOk(shouldMove(run('a', 5), run('b', 4), 0, 10_000, rules).move, '5 vs 4: no fairer after a move')
  t.notOk(shouldMove(run('a', 5), run('b', 5), 0, 10_000, rules).move)
  t.ok(shouldMove(run('a', 2), run('b', 0), 0, 10_000, rules).move, 'a run with none gets one from a run with two')
  t.notOk(shouldMove(run('a', 1), run('b', 0), 0, 10_000, rules).move, 'a run\'s last worker never moves between strangers')
  t.notOk(shouldMove(run('a', 9), run('a', 0), 0, 10_000, rules).move, 'the same run')
})

t.test('a grant stands for a tenure: counts seen late cannot undo a move at once', async t => {
  const v = shouldMove(run('a', 10), run('b', 0), 5000, 5000 + DEFAULT_TENURE_MS - 1, rules)
  t.notOk(v.move)
  t.match(v.why, /tenure/)
  t.ok(shouldMove(run('a', 10), run('b', 0), 5000, 5000 + DEFAULT_TENURE_MS, rules).move)
})

t.test('priority: higher takes from lower down to one; lower takes only while it has none', async t => {
  t.ok(shouldMove(run('low', 3, 0), run('high', 8, 10), 0, 10_000, rules).move, 'higher priority takes though it holds more')
  t.notOk(shouldMove(run('low', 1, 0), run('high', 8, 10), 0, 10_000, rules).move, 'the lower run keeps its last worker')
  t.ok(shouldMove(run('high', 11, 10), run('low', 0, 0), 0, 10_000, rules).move, 'no run starves')
  t.notOk(shouldMove(run('high', 11, 10), run('low', 1, 0), 0, 10_000, rules).move, 'but one is all a lower run takes')
})

t.test('the owner\'s preference (RANK) wins over counts and priority, never the reverse', async t => {
  const prefer = { prefer: ['LAB'], tenureMs: 0 }
  t.ok(shouldMove(run('stranger', 1, 50), run('mine', 5, 0, 'LAB'), 0, 1, prefer).move, 'preferred takes even a stranger\'s last worker')
  t.notOk(shouldMove(run('mine', 9, 0, 'LAB'), run('stranger', 0, 50), 0, 1, prefer).move, 'a stranger never takes from the preferred')
  t.ok(shouldMove({ ...run('stranger', 1), coordinator: 'X' }, { ...run('mine', 3), coordinator: 'LAB' }, 0, 1, prefer).move, 'a preferred coordinator id counts too')
})

/**
 * Runs asking at random, each move applied with exact counts: moves end (no two runs
 * trade a node back and forth), and at the end equal-priority runs are within one of
 * each other and no run is without a worker.
 */
t.test('moves end: random asks over many grids reach a fair split with no livelock', async t => {
  // mulberry32: deterministic, and every bit of it random (an LCG's low bits are not)
  let seed = 7
  const rand = (n: number): number => {
    seed = (seed + 0x6D2B79F5) | 0
    let x = Math.imul(seed ^ (seed >>> 15), 1 | seed)
    x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x
    return (((x ^ (x >>> 14)) >>> 0) % n)
  }
  for (let grid = 0; grid < 200; grid++) {
    const runs = 2 + rand(8)
    const nodes = runs + rand(60)
    const prio = Array.from({ length: runs }, () => rand(3) === 0 ? 5 : 0)
    // every node starts with run 0 or a random run: the worst case is one run holding all
    const owner = Array.from({ length: nodes }, () => grid % 2 === 0 ? 0 : rand(runs))
    const count = (r: number): number => owner.filter(o => o === r).length
    const moves = (node: number, asker: number): boolean =>
      shouldMove(run(`r${owner[node]}`, count(owner[node]), prio[owner[node]]), run(`r${asker}`, count(asker), prio[asker]), 0, 1, { prefer: [], tenureMs: 0 }).move
    const anyMove = (): boolean => owner.some((_, n) => Array.from({ length: runs }, (_, a) => a).some(a => moves(n, a)))
    let made = 0
    let settled = false
    // at most one move per node and asker pair in a row would be a livelock; a bound well under that
    const bound = nodes * nodes
    for (let step = 0; step < 100_000 && !settled; step++) {
      const node = rand(nodes)
      const asker = rand(runs)
      if (moves(node, asker)) { owner[node] = asker; made++ }
      if (step % 500 === 499) settled = !anyMove()
    }
    t.ok(settled && made <= bound, `grid ${grid}: moves stopped at a point where no node would move (${made} moves, bound ${bound})`)
    const counts = Array.from({ length: runs }, (_, r) => count(r))
    t.ok(counts.every(c => c >= 1), `grid ${grid}: no run without a worker: ${counts.join(',')}`)
    for (const p of new Set(prio)) {
      const same = counts.filter((_, r) => prio[r] === p)
      const lowerRunsKeepOne = counts.every((c, r) => prio[r] >= p || c === 1)
      if (p === Math.max(...prio)) t.ok(Math.max(...same) - Math.min(...same) <= 1, `grid ${grid}: priority ${p} runs within one of each other: ${same.join(',')}`)
      else t.ok(lowerRunsKeepOne || same.every(c => c === 1), `grid ${grid}: lower-priority runs keep one each`)
    }
  }
})

const ctx = (now: number, extra = {}) => ({ now, state: 'worker' as const, allow: [], version: 2, supportedVersion: 2, ...extra })

t.test('claim book: a node retires for one asker, others are refused; then it is kept for that asker only', async t => {
  const b = new ClaimBook()
  const a = b.claim('A', 'ra', 60_000, [], { ...ctx(0), state: 'idle' })
  t.ok(a.ok)
  const asker = run('rb', 0)
  asker.coordinator = 'B'
  const first = b.contend(asker, 4, 10_000, rules)
  t.same([first.code, first.code === 'YIELDING' && first.fresh], ['YIELDING', true], 'the first ask moves it')
  const again = b.contend(asker, 4, 10_100, rules)
  t.same([again.code, again.code === 'YIELDING' && again.fresh], ['YIELDING', false], 'asked again: the same promise')
  const third = b.contend({ ...run('rc', 0), coordinator: 'C' }, 4, 10_200, rules)
  t.equal(third.code, 'BUSY', 'a third run is told it is leaving for another')
  t.ok(b.renew('A', 'ra', 10_300).ok, 'the holder keeps its lease while its jobs finish')
  const left = b.current
  if (left === undefined) throw new Error('no claim')
  t.ok(b.release('A', 'ra'))
  b.reserveFor(left, 11_000)
  const renew = b.renew('A', 'ra', 11_001)
  t.match(renew.ok ? '' : renew.message, /left it for run rb/, 'the holder is told why its renewal fails')
  const c = b.claim('C', 'rc', 6000, [], { ...ctx(11_100), state: 'idle' })
  t.same(c.ok ? 'ok' : c.code, 'BUSY', 'kept for the asker: nobody else gets it')
  t.ok(b.claim('B', 'rb', 6000, [], { ...ctx(11_200), state: 'idle' }).ok, 'the asker gets it')
  t.equal(b.reservation, undefined)
})

t.test('claim book: a reservation the asker never takes up ends', async t => {
  const b = new ClaimBook()
  t.ok(b.claim('A', 'ra', 60_000, [], { ...ctx(0), state: 'idle' }).ok)
  t.equal(b.contend({ ...run('rb', 0), coordinator: 'B' }, 3, 10_000, rules).code, 'YIELDING')
  const left = b.current
  if (left === undefined) throw new Error('no claim')
  b.release('A', 'ra')
  b.reserveFor(left, 20_000)
  t.notOk(b.claim('C', 'rc', 6000, [], { ...ctx(20_000 + RESERVATION_MS - 1), state: 'idle' }).ok)
  t.ok(b.claim('C', 'rc', 6000, [], { ...ctx(20_000 + RESERVATION_MS), state: 'idle' }).ok, 'free again once the reservation ends')
})

t.test('claim book: no move while a refusal says why (counts, tenure, an expired claim)', async t => {
  const b = new ClaimBook()
  t.equal(b.contend(run('rb', 0), 5, 0, rules).code, 'BUSY', 'no claim: nothing to leave')
  t.ok(b.claim('A', 'ra', 6000, [], { ...ctx(0), state: 'idle' }).ok)
  const young = b.contend({ ...run('rb', 0), coordinator: 'B' }, 5, 100, rules)
  t.match(young.message, /tenure/)
  const fair = b.contend({ ...run('rb', 3), coordinator: 'B' }, 4, 5000, rules)
  t.same([fair.code, fair.message.includes('no fairer')], ['BUSY', true])
  t.equal(b.contend({ ...run('rb', 0), coordinator: 'B' }, 5, 7000, rules).code, 'BUSY', 'the lease ran out: between claims')
})

t.test('census: counts runs from advertisements; goodbyes and silence end entries; bounded', async t => {
  const c = new RunCensus()
  c.observe('n1', 'ra', 0)
  c.observe('n2', 'ra', 0)
  c.observe('n3', 'rb', 0)
  c.observe('n4', undefined, 0)
  t.equal(c.count('ra', 1), 2)
  t.equal(c.count('ra', 1, 'n1'), 1, 'the asking node is left out (it counts itself)')
  c.observe('n2', 'rb', 10)
  t.same([c.count('ra', 11), c.count('rb', 11)], [1, 2], 'a node that moved counts for its new run')
  c.observe('n3', 'rb', 12, true)
  t.equal(c.count('rb', 13), 1, 'a goodbye ends it')
  t.equal(c.count('ra', CENSUS_MAX_AGE_MS + 1), 0, 'not heard of for long: forgotten')
  const flood = new RunCensus()
  for (let i = 0; i < CENSUS_MAX_NODES + 100; i++) flood.observe(`x${i}`, 'r', 0)
  t.equal(flood.size, CENSUS_MAX_NODES, 'made-up names cannot grow it past its bound')
  t.equal(runOfTxt([Buffer.from('state=worker'), Buffer.from('run=my-run.1')]), 'my-run.1')
  t.equal(runOfTxt([Buffer.from('run=../../etc')]), undefined, 'a bad run id is no run')
  t.equal(runOfTxt('run=x'), undefined)
})

const PEER = '12D3KooWQ6iWThrQvKjzW9ynQX7vz5bG9N9t8yUqVxsQ5kbGAPkJ'
function node (i: number, state: 'idle' | 'worker', runId?: string, prio?: number, pref?: string[]): Candidate {
  const ad: NodeAd = {
    v: 1, state, peer: PEER.slice(0, -4) + [...String(1000 + i)].map(d => 'ABCDEFGHJK'[Number(d)]).join(''), port: 4000 + i, cores: 1, mhz: 1000, ram: 1024, disk: 1024, load: 0, cost: 0, arch: 'x64', os: 'linux',
    ...(runId !== undefined ? { run: runId, coord: PEER } : {}), ...(prio !== undefined ? { prio } : {}), ...(pref !== undefined ? { pref } : {})
  }
  return { name: `n${i}`, ad, addresses: ['10.0.0.1'] }
}
const me = (held: number, extra: Partial<Asker> = {}): Asker => ({ run: 'mine', coordinator: 'ME', submitter: 'SUB', priority: 0, held, pending: 0, want: 100, ...extra })

t.test('asks: runs short at the same moment ask different nodes of the run that gives', async t => {
  const nodes = Array.from({ length: 12 }, (_, i) => node(i, 'worker', 'big'))
  const firsts = ['a', 'b', 'c', 'd', 'e'].map(run => pickAsks(nodes, me(0, { run, want: 1 }), new Set())[0]?.name)
  t.equal(firsts.filter(n => n !== undefined).length, 5, 'each asks one node')
  t.ok(new Set(firsts).size >= 3, `five askers, at least three different first asks (${firsts.join(' ')}): before, all five asked the same node`)
  t.same(pickAsks(nodes, me(0, { run: 'a', want: 1 }), new Set()).map(c => c.name), [firsts[0]], 'the same asker, the same order')
})

t.test('asks: a newcomer asks a big run for its share and no more', async t => {
  const nodes = Array.from({ length: 30 }, (_, i) => node(i, 'worker', 'big'))
  t.equal(shareTarget(nodes, me(0)), 15, 'two runs on 30 nodes: 15 each')
  t.equal(pickAsks(nodes, me(0), new Set()).length, 15)
  t.equal(pickAsks(nodes, me(0, { want: 4 }), new Set()).length, 4, 'no more than it can use')
  t.equal(pickAsks(nodes, me(10, { pending: 5 }), new Set()).length, 0, 'asks pending count')
  const five = [...Array.from({ length: 26 }, (_, i) => node(i, 'worker', 'big')), ...Array.from({ length: 4 }, (_, i) => node(26 + i, 'worker', `r${i}`))]
  t.equal(shareTarget(five, me(0)), 5, 'six runs on 30 nodes: 5 each')
  t.ok(pickAsks(five, me(0), new Set()).every(c => c.ad.run === 'big'), 'it asks the run that holds the most')
})

t.test('asks: priorities and preferences shape the share', async t => {
  const high = Array.from({ length: 12 }, (_, i) => node(i, 'worker', 'hi', 10))
  t.equal(pickAsks(high, me(0), new Set()).length, 1, 'a lower run asks a higher one for one node')
  t.equal(pickAsks(high, me(1), new Set()).length, 0, 'and no more')
  const low = Array.from({ length: 12 }, (_, i) => node(i, 'worker', 'lo', 0))
  t.equal(pickAsks(low, me(0, { priority: 10 }), new Set()).length, 11, 'a higher run takes all but one')
  const single = [node(0, 'worker', 'other')]
  t.equal(pickAsks(single, me(0), new Set()).length, 0, 'a stranger\'s only worker is not asked for')
  const prefers = [node(0, 'worker', 'other', 0, [preferenceTag('SUB')])]
  t.equal(pickAsks(prefers, me(0), new Set()).length, 1, 'but a node that prefers this submitter is')
})

t.test('TXT: a run\'s priority and a node\'s preferences travel, bad values are dropped', async t => {
  const ad = node(1, 'worker', 'r', 7, [preferenceTag('a'), preferenceTag('b')]).ad
  const back = decodeTxt(encodeTxt(ad))
  t.ok(back.ok)
  if (back.ok) t.same([back.ad.prio, back.ad.pref], [7, ad.pref])
  const bad = decodeTxt({ ...encodeTxt(ad), prio: '1e9', pref: 'zz,12345678' })
  t.ok(bad.ok)
  if (bad.ok) t.same([bad.ad.prio, bad.ad.pref], [undefined, ['12345678']])
})

t.test('a dag.json may give its run a priority (-1000..1000); out of range it is refused with the field named', async t => {
  const jobs = [{ id: 'a', cmd: 'true' }]
  t.equal(parseDag({ name: 'p', priority: 7, jobs }, 'p.json', { checkFiles: false }).priority, 7)
  t.equal(parseDag({ name: 'p', priority: -1000, jobs }, 'p.json', { checkFiles: false }).priority, -1000)
  t.equal(parseDag({ name: 'p', jobs }, 'p.json', { checkFiles: false }).priority, undefined, 'absent: the run has the default, 0')
  for (const bad of [5000, 1.5, 'high']) {
    t.throws(() => parseDag({ name: 'p', priority: bad, jobs }, 'p.json', { checkFiles: false }), { code: 'INVALID_DAG', message: /priority/ }, `priority ${String(bad)} refused`)
  }
})

t.test('a node promised to a run counts for it on the LAN (TXT next), from its promise to the end of its reservation', async t => {
  const b = new ClaimBook()
  t.ok(b.claim('A', 'ra', 60_000, [], { ...ctx(0), state: 'idle' }).ok)
  t.equal(b.promisedTo(5000), undefined, 'working for its run: promised to nobody')
  t.equal(b.contend({ ...run('rb', 0), coordinator: 'B' }, 3, 10_000, rules).code, 'YIELDING')
  t.equal(b.promisedTo(10_000), 'rb', 'retiring: promised to the asker')
  b.release('A', 'ra', 11_000)
  t.equal(b.promisedTo(11_000 + RESERVATION_MS - 1), 'rb', 'kept for it')
  t.equal(b.promisedTo(11_000 + RESERVATION_MS), undefined, 'the reservation over: nobody')
  const ad = { ...node(1, 'worker', 'ra').ad, next: 'rb' }
  const back = decodeTxt(encodeTxt(ad))
  t.same(back.ok ? back.ad.next : 'refused', 'rb', 'next travels in the TXT record')
  t.equal(runOfTxt([Buffer.from('run=ra'), Buffer.from('next=rb')]), 'rb', 'the census counts it for the run it goes to')
  t.equal(runOfTxt([Buffer.from('next=rb'), Buffer.from('run=ra')]), 'rb', 'in any order')
  t.equal(runOfTxt([Buffer.from('run=ra'), Buffer.from('next=../x')]), undefined, 'a bad next is no run')
  const census = new RunCensus()
  census.observe('n1', runOfTxt([Buffer.from('run=ra')]), 0, false)
  census.observe('n2', runOfTxt([Buffer.from('run=ra'), Buffer.from('next=rb')]), 0, false)
  t.same([census.count('ra', 1), census.count('rb', 1)], [1, 1], 'one ask moved one node in the counts')
})

t.test('idle nodes: up to the share at once, beyond it one a second while others work, never past the claim window', async t => {
  const idle = Array.from({ length: 10 }, (_, i) => node(i, 'idle'))
  const mine = (held: number, claiming = 0): Asker & { claiming: number } => ({ ...me(held), claiming })
  t.equal(idleToTake(idle, mine(0), 10, 0, 0), MAX_CLAIMS_IN_FLIGHT, 'alone on the LAN: as many as the claim window lets out')
  t.equal(idleToTake(idle, mine(0, 3), 10, 0, 0), MAX_CLAIMS_IN_FLIGHT - 3, 'claims in flight count')
  t.equal(idleToTake(idle, mine(0), 2, 0, 0), 2, 'no more than workers.max leaves')
  const shared = [...Array.from({ length: 6 }, (_, i) => node(i, 'worker', 'other')), ...Array.from({ length: 6 }, (_, i) => node(6 + i, 'idle'))]
  t.equal(shareTarget(shared, me(0)), 6)
  t.equal(idleToTake(shared, mine(2), 10, 0, 5000), 4, 'below its share of 6 with 2: four at once')
  t.equal(idleToTake(shared, mine(6), 10, 4500, 5000), 0, 'at its share: not within a second of the last')
  t.equal(idleToTake(shared, mine(6), 10, 4000, 5000), 1, 'at its share: one a second')
})

t.test('asking again: not a node asked, being claimed or that refused a moment ago; unreachable ones back off', async t => {
  const skip = notToAsk(['a'], ['b'], new Map([['c', 2000], ['d', 999]]), 1000)
  t.same([...skip].sort(), ['a', 'b', 'c'], 'd refused long enough ago to be asked again')
  t.equal(BUSY_RETRY_MS, DEFAULT_TENURE_MS)
  t.equal(retryAfterMs('BUSY'), DEFAULT_TENURE_MS, 'an ask refused, or an idle node another run took first: again after a tenure')
  t.equal(retryAfterMs('OWNER'), 3000)
  t.same([1, 2, 3, 4, 5, 9].map(n => retryAfterMs('UNREACHABLE', n)), [1000, 2000, 4000, 8000, 10_000, 10_000], 'unreachable: 1, 2, 4, 8 s, then 10 s')
  t.equal(retryAfterMs('POLICY'), 10_000)
})
