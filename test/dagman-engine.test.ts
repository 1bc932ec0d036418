// DAGMan's node life (middleware-adapters/condor/engine.ts), pure: PRE, job, POST, RETRY
// [UNLESS-EXIT], ABORT-DAG-ON before RETRY, PRE_SKIP, futile descendants, cycles found
// at run time, FINAL nodes and their say on the DAG's exit, PRIORITY under
// DAGMAN_MAX_JOBS_SUBMITTED, MAXJOBS per CATEGORY.
import t from 'tap'
import { DagmanEngine, DEFAULT_ENGINE_OPTIONS, DAG_STATUS, PRE_FAILED_RETURN, NODE_STATUS, type EngineNode, type EngineOptions, type Action } from '../middleware-adapters/condor/engine.ts'

function node (name: string, o: Partial<EngineNode> = {}): EngineNode {
  return { name, parents: [], final: false, pre: false, post: false, retryMax: 0, unlessExit: null, abortOn: null, priority: 0, category: null, preSkip: null, done: false, ...o }
}

/**
 * Drive an engine to its end: each started action ends (in start order, one at a time)
 * with the value `exit(kind, node, retry, ret)` gives. Returns what was started, in order.
 */
function drive (e: DagmanEngine, exit: (a: Action, name: string) => number, opts: { concurrency?: (running: Action[]) => void } = {}): Array<{ kind: string, node: string, retry: number, ret?: number }> {
  const log: Array<{ kind: string, node: string, retry: number, ret?: number }> = []
  const running: Action[] = []
  for (let step = 0; step < 10_000; step++) {
    for (const a of [...e.next(), ...e.nextPosts()]) { running.push(a); log.push({ kind: a.kind, node: e.nodes[a.node].name, retry: a.retry, ...(a.kind === 'post' ? { ret: a.ret } : {}) }) }
    opts.concurrency?.(running)
    // the counts kept as nodes move are those a recount gives
    for (const st of NODE_STATUS) {
      const recount = e.state.filter((x, i) => x.status === st && !e.nodes[i].final).length
      if (e.count(st) !== recount) throw new Error(`count(${st}) is ${e.count(st)}, a recount says ${recount}`)
    }
    if (e.result() !== null) return log
    const a = running.shift()
    if (a === undefined) throw new Error('nothing runs and the DAG is not over')
    const v = exit(a, e.nodes[a.node].name)
    if (a.kind === 'pre') e.preDone(a.node, v)
    else if (a.kind === 'submit') e.jobDone(a.node, v)
    else e.postDone(a.node, v)
  }
  throw new Error('did not end')
}

const opts = (o: Partial<EngineOptions>): EngineOptions => ({ ...DEFAULT_ENGINE_OPTIONS, ...o })

t.test('ready nodes start by PRIORITY, higher first, under DAGMAN_MAX_JOBS_SUBMITTED = 1', async t => {
  const prios = [5, 3, 8, 6, 10, 1, 9, 2, 7, 4]
  const nodes = [node('A'), ...prios.map((p, i) => node(`B${i + 1}`, { parents: [0], priority: p })), node('C', { parents: prios.map((_, i) => i + 1) })]
  const e = new DagmanEngine(nodes, opts({ maxJobs: 1 }))
  const log = drive(e, () => 0, { concurrency: running => { if (running.filter(a => a.kind === 'submit').length > 1) throw new Error('two jobs at once') } })
  t.same(log.map(l => l.node).join(' '), 'A B5 B7 B3 B9 B4 B1 B10 B2 B8 B6 C')
  t.same(e.result(), { exitCode: 0, status: DAG_STATUS.ok, failed: 0 })
})

t.test('many ready nodes start in PRIORITY order, then in the order they became ready; a category at its MAXJOBS keeps its nodes in that order too', async t => {
  // a fixed pseudo-random sequence of priorities
  let x = 7
  const rnd = (): number => { x = (x * 1103515245 + 12345) % 2147483648; return x % 9 }
  const nodes = Array.from({ length: 300 }, (_, i) => node(`N${i}`, { priority: rnd(), category: i % 3 === 0 ? 'c' : null }))
  const expected = nodes.map((n, i) => ({ n, i })).sort((a, b) => b.n.priority - a.n.priority || a.i - b.i).map(o => o.n.name)
  const e = new DagmanEngine(nodes, opts({ maxJobs: 1 }))
  t.same(drive(e, () => 0).map(l => l.node), expected, 'maxjobs 1: one at a time, in order')
  // a category of one: its nodes in order among themselves, the others not held up by it
  const e2 = new DagmanEngine(nodes, opts({ maxJobs: 2, categoryLimits: new Map([['c', 1]]) }))
  const order = drive(e2, () => 0).map(l => l.node)
  t.same(order.filter(n => Number(n.slice(1)) % 3 === 0), expected.filter(n => Number(n.slice(1)) % 3 === 0))
  t.equal(order.length, 300)
})

t.test('ABORT-DAG-ON is looked at before RETRY; RETURN is the DAG\'s exit; descendants stay not ready', async t => {
  const e = new DagmanEngine([node('A'), node('C', { parents: [0], retryMax: 3, abortOn: { value: 5, returnValue: 0 } }), node('D', { parents: [1] })])
  const log = drive(e, (a, n) => n === 'C' ? 5 : 0)
  t.equal(log.filter(l => l.node === 'C').length, 1, 'C ran once: no retry after the abort value')
  t.same(e.result(), { exitCode: 0, status: DAG_STATUS.ok, failed: 1 }, 'RETURN 0: the DAG ends as a success (DAGMan: DAG_STATUS_OK)')
  t.same(e.state.map(s => s.status), ['done', 'error', 'not_ready'])
  // without RETURN the node's value is the exit code
  const e2 = new DagmanEngine([node('C', { abortOn: { value: 7, returnValue: null } })])
  drive(e2, () => 7)
  t.same(e2.result(), { exitCode: 7, status: DAG_STATUS.abort, failed: 1 })
})

t.test('RETRY n UNLESS-EXIT v: retried up to n times, not at all when the value is v; POST decides', async t => {
  const mk = (): DagmanEngine => new DagmanEngine([node('N', { post: true, retryMax: 2, unlessExit: 3 })])
  const e = mk()
  const log = drive(e, (a) => a.kind === 'post' ? a.ret : 3)
  t.same(log.map(l => `${l.kind}${l.retry}`), ['submit0', 'post0'], 'exit 3: no retry')
  t.equal(e.state[0].retryStopped, true)
  t.same(e.result(), { exitCode: 1, status: DAG_STATUS.nodeFailed, failed: 1 })
  const e2 = mk()
  const log2 = drive(e2, (a) => a.kind === 'post' ? a.ret : 4)
  t.same(log2.map(l => `${l.kind}${l.retry}`), ['submit0', 'post0', 'submit1', 'post1', 'submit2', 'post2'], 'exit 4: two retries')
  t.equal(e2.state[0].retries, 2)
  // a POST script that succeeds makes a failed job a done node
  const e3 = new DagmanEngine([node('N', { post: true })])
  const log3 = drive(e3, a => a.kind === 'post' ? 0 : 9)
  t.same(log3.at(-1), { kind: 'post', node: 'N', retry: 0, ret: 9 }, 'POST is told the job\'s value')
  t.equal(e3.result()?.exitCode, 0)
})

t.test('a PRE script that fails: no job, no POST (unless DAGMAN_ALWAYS_RUN_POST, told -1004); PRE_SKIP', async t => {
  const e = new DagmanEngine([node('N', { pre: true, post: true })])
  const log = drive(e, a => a.kind === 'pre' ? 2 : 0)
  t.same(log.map(l => l.kind), ['pre'])
  t.equal(e.state[0].status, 'error')
  t.equal(e.result()?.exitCode, 1)
  const e2 = new DagmanEngine([node('N', { pre: true, post: true })], opts({ alwaysRunPost: true }))
  const log2 = drive(e2, a => a.kind === 'pre' ? 2 : 0)
  t.same(log2.map(l => l.kind), ['pre', 'post'])
  t.equal(log2[1].ret, PRE_FAILED_RETURN)
  const e3 = new DagmanEngine([node('N', { pre: true, post: true, preSkip: 7 }), node('K', { parents: [0] })])
  const log3 = drive(e3, a => a.kind === 'pre' ? 7 : 0)
  t.same(log3.map(l => `${l.kind}:${l.node}`), ['pre:N', 'submit:K'], 'PRE_SKIP: N done without job or POST; its child runs')
})

t.test('a failed node\'s descendants are futile; other branches go on', async t => {
  const e = new DagmanEngine([node('A'), node('B', { parents: [0] }), node('C', { parents: [1] }), node('X')])
  const log = drive(e, (a, n) => n === 'A' ? 1 : 0)
  t.same(log.map(l => l.node).sort(), ['A', 'X'])
  t.same(e.state.map(s => s.status), ['error', 'futile', 'futile', 'done'])
  t.same(e.result(), { exitCode: 1, status: DAG_STATUS.nodeFailed, failed: 1 })
})

t.test('a cycle is found when nothing more can start: DAG status 5, exit 1', async t => {
  const e = new DagmanEngine([node('A'), node('B', { parents: [0, 2] }), node('C', { parents: [1] })])
  const log = drive(e, () => 0)
  t.same(log.map(l => l.node), ['A'])
  t.same(e.result(), { exitCode: 1, status: DAG_STATUS.cycle, failed: 0 })
  t.same(e.state.map(s => s.status), ['done', 'not_ready', 'not_ready'])
})

t.test('FINAL runs once the rest is over, told $DAG_STATUS; its result is the DAG\'s', async t => {
  const e = new DagmanEngine([node('A'), node('F', { final: true })])
  let statusSeen = -1
  const log = drive(e, (a, n) => { if (n === 'F') statusSeen = e.dagStatus(); return n === 'A' ? 1 : 0 })
  t.same(log.map(l => l.node), ['A', 'F'])
  t.equal(statusSeen, DAG_STATUS.nodeFailed)
  t.equal(e.result()?.exitCode, 0, 'a FINAL node that succeeds makes the DAG succeed')
  const e2 = new DagmanEngine([node('A'), node('F', { final: true })])
  drive(e2, (a, n) => n === 'F' ? 1 : 0)
  t.equal(e2.result()?.exitCode, 1, 'a FINAL node that fails makes it fail')
  // after an abort too
  const e3 = new DagmanEngine([node('A', { abortOn: { value: 4, returnValue: null } }), node('B', { parents: [0] }), node('F', { final: true })])
  const log3 = drive(e3, (a, n) => n === 'A' ? 4 : 0)
  t.same(log3.map(l => l.node), ['A', 'F'])
})

t.test('MAXJOBS per CATEGORY: never more of a category at once', async t => {
  const nodes = Array.from({ length: 6 }, (_, i) => node(`N${i}`, { category: i < 4 ? 'slow' : null }))
  const e = new DagmanEngine(nodes, opts({ categoryLimits: new Map([['slow', 1]]) }))
  let most = 0
  drive(e, () => 0, { concurrency: running => { most = Math.max(most, running.filter(a => e.nodes[a.node].category === 'slow').length) } })
  t.equal(most, 1)
  t.equal(e.count('done'), 6)
})

t.test('an undeclared state change is refused loudly', async t => {
  const e = new DagmanEngine([node('A')])
  drive(e, () => 0)
  t.throws(() => { e.jobDone(0, 0) }, /cannot go from done/)
})

t.test('interrupt (condor_rm): nothing new starts, what runs ends without POST or retry, FINAL still runs; exit 2, status removed', async t => {
  const e = new DagmanEngine([node('A', { post: true, retryMax: 3 }), node('B', { parents: [0] }), node('F', { final: true })])
  const started = e.next()
  t.same(started.map(a => `${a.kind}:${e.nodes[a.node].name}`), ['submit:A'])
  e.interrupt('interrupted')
  t.same(e.toStop(), [0], 'A, which runs, is to be stopped')
  e.jobDone(0, -9)
  t.same(e.nextPosts(), [], 'no POST script for a removed job')
  const fin = e.next()
  t.same(fin.map(a => `${a.kind}:${e.nodes[a.node].name}`), ['submit:F'], 'FINAL runs, nothing else')
  t.equal(e.dagStatus(), DAG_STATUS.removed, 'FINAL is told the DAG was removed')
  e.jobDone(2, 0)
  t.same(e.result(), { exitCode: 2, status: DAG_STATUS.removed, failed: 1 }, 'a removed DAG stays removed, whatever FINAL did')
  t.same(e.beforeFinal(), { exitCode: 2, status: DAG_STATUS.removed, failed: 1 }, 'before FINAL: removed, exit 2 (the rescue DAG is judged on it)')
  t.equal(e.state[0].retries, 0, 'no retry')
  t.equal(e.state[1].status, 'not_ready')
})

t.test('the outcome before FINAL is kept: a failed DAG whose FINAL succeeds still failed before it', async t => {
  const e = new DagmanEngine([node('A'), node('F', { final: true })])
  drive(e, (a, n) => n === 'A' ? 1 : 0)
  t.equal(e.result()?.exitCode, 0)
  t.equal(e.beforeFinal()?.exitCode, 1)
})
