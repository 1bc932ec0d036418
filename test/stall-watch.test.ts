// The stall watch over a real run core, on a clock of the test's own (pure logic: the
// run's context reduced to what the watch uses). When nothing moves for the stated time
// it says which job waits for what, and gives up what workers hold without running it;
// a command that runs, or input bytes landing, is progress; a worker that lets a command
// run past its timeout is not waited for.
import t from 'tap'
import { parseDag } from '../coordinator/dag-json.ts'
import { RunCore } from '../coordinator/core/run-core.ts'
import { StallWatch } from '../coordinator/stall-watch.ts'
import { silentLogger } from '../protocol/log.ts'
import { attrs, H, ok, diamond } from './helpers/core-fixtures.ts'

function watch (core: RunCore, stallSec = 60, now = 0): { w: StallWatch, said: Array<Record<string, unknown>>, lines: string[] } {
  const said: Array<Record<string, unknown>> = []
  const lines: string[] = []
  const ctx = { core, log: silentLogger, emit: (ev: Record<string, unknown>, human?: string) => { said.push(ev); if (human !== undefined) lines.push(human) }, wake: () => {}, notify: () => {} }
  return { w: new StallWatch(ctx, stallSec, peer => `node-${peer}`, now), said, lines }
}

t.test('nothing moving for the stated time: the run says which job waits for what, and gives up a queued attempt', async t => {
  const core = diamond()
  const { w, said, lines } = watch(core)
  const [a] = core.assign('W1', 1, 0)
  core.heldBy('W1', [{ attempt: a.attempt, phase: 'queued', forMs: 0 }], 0, 0, 3000)
  w.check(30_000)
  t.equal(said.length, 0, 'not before the stated time')
  w.check(60_000)
  t.equal(said.length, 1, 'said once at 60 s')
  t.same(said[0].waiting, [{ job: 'a', why: `attempt ${a.attempt}: queued, not started on node-W1 for 60 s` }], 'the job, what it waits for, where, how long')
  t.same(said[0].givenUp, ['a (queued, not started on node-W1 for 60 s)'])
  t.match(lines[0], /^no progress for 60 s:\n {2}job a: attempt \S+: queued, not started on node-W1 for 60 s\n {2}given up and re-queued: a/)
  t.equal(core.jobs.get('a')!.state, 'ready', 'its job back in the queue')
  t.equal(core.assign('W2', 1, 60_000)[0]?.job, 'a', 'for another worker')
  w.check(90_000)
  t.equal(said.length, 1, 'a new attempt is progress enough for now')
})

t.test('a command running is progress however long it takes; so are input bytes landing', async t => {
  const core = diamond()
  const { w, said } = watch(core)
  const [a] = core.assign('W1', 1, 0)
  core.heldBy('W1', [{ attempt: a.attempt, phase: 'running', forMs: 0 }], 0, 0, 3000)
  for (let s = 10; s <= 600; s += 10) w.check(s * 1000)
  t.equal(said.length, 0, 'ten minutes of a running command (no timeout) is not a stall')
  core.heldBy('W1', [{ attempt: a.attempt, phase: 'inputs', forMs: 5000 }], 600_000, 600_000, 3000)
  w.check(630_000)
  w.check(660_000)
  t.equal(said.length, 0, 'inputs with a byte 5 s ago: still moving')
  core.heldBy('W1', [{ attempt: a.attempt, phase: 'inputs', forMs: 65_000 }], 660_000, 660_000, 3000)
  w.check(725_000)
  t.equal(said.length, 1, 'no byte since 595 s, nothing else moving since 660 s: stalled at 725 s')
  t.same(said[0].waiting, [{ job: 'a', why: `attempt ${a.attempt}: getting its inputs, no byte arriving on node-W1 for 130 s` }])
  t.same(said[0].givenUp, [], 'getting inputs may be local work: not given up yet')
  for (const s of [785, 845, 905]) w.check(s * 1000)
  t.same(said.at(-1)!.givenUp, ['a (getting its inputs, no byte arriving on node-W1 for 310 s)'], 'given up after five stated times')
})

t.test('a worker that lets a command run past its timeout is not waited for', async t => {
  const dag = parseDag({ jobs: [{ id: 'slow', cmd: ['x'], timeout: 5, retries: 1 }] }, '/tmp/x.json', { checkFiles: false })
  const core = new RunCore(dag, { coordinatorId: 'C', prefetch: true, nonce: 'n' })
  core.addWorker({ id: 'W1', slots: 1, attrs, addrs: [] })
  core.addWorker({ id: 'W2', slots: 1, attrs, addrs: [] })
  core.replan()
  core.promote()
  const { w, said } = watch(core, 0)
  const [a] = core.assign('W1', 1, 0)
  core.heldBy('W1', [{ attempt: a.attempt, phase: 'running', forMs: 0 }], 0, 0, 3000)
  w.check(14_000)
  t.equal(core.jobs.get('slow')!.state, 'running', 'within its timeout and the margin')
  w.check(16_000)
  t.equal(core.jobs.get('slow')!.state, 'ready', 'past both: given up (even with the stall watch off)')
  t.equal(core.jobs.get('slow')!.failures, 1, 'a failure of the job (its retries count), not a lost attempt')
  core.heldBy('W1', [{ attempt: a.attempt, phase: 'running', forMs: 0 }], 16_000, 16_000, 3000)
  t.equal(core.attempts.get(a.attempt)!.status, 'failed', 'the worker saying it runs it changes nothing now')
  t.match(String(said[0]?.message), /still running on node-W1 11 s past its timeout: given up/)
  const [b] = core.assign('W2', 1, 16_000)
  t.equal(core.complete('W2', ok(b.attempt)), 'done')
})

t.test('nothing waits: nothing is said', async t => {
  const core = diamond()
  const { w, said } = watch(core, 1)
  for (const id of ['a']) {
    const [x] = core.assign('W1', 1, 0)
    core.complete('W1', ok(x.attempt, [{ name: 'o', hash: H(id), size: 1 }]))
  }
  const [b, c] = core.assign('W1', 2, 0)
  core.complete('W1', ok(b.attempt, [{ name: 'o', hash: H('b'), size: 1 }]))
  core.complete('W1', ok(c.attempt, [{ name: 'o', hash: H('c'), size: 1 }]))
  const [d] = core.assign('W1', 1, 0)
  core.complete('W1', ok(d.attempt, [{ name: 'o', hash: H('d'), size: 1 }]))
  w.check(0)
  w.check(5000)
  t.ok(core.finished())
  t.equal(said.length, 0, 'a finished run never stalls')
})
