// The job table (coordinator/core/job-table.ts), pure: jobs change state only through the
// declared transitions, and what follows from a change (promotion, skipped descendants,
// lost outputs made again). Through the run core, then through its own interface.
import t from 'tap'
import { parseDag } from '../coordinator/dag-json.ts'
import { JobTable } from '../coordinator/core/job-table.ts'
import type { JobRec } from '../coordinator/core/model.ts'
import { H, ok, attrs, diamond } from './helpers/core-fixtures.ts'

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

// ---- the table on its own -----------------------------------------------------

/** a -> b -> c (each reads its parent's output) and x alone; `live`: the blobs some node holds */
function chain (): { table: JobTable, live: Set<string>, log: string[], finish: (id: string, hash: string) => void } {
  const dag = parseDag({ jobs: [
    { id: 'a', cmd: ['x'], outputs: ['o'] },
    { id: 'b', cmd: ['x'], inputs: ['job:a/o'], outputs: ['o'] },
    { id: 'c', cmd: ['x'], inputs: ['job:b/o'] },
    { id: 'x', cmd: ['x'] }
  ] }, '/tmp/x.json', { checkFiles: false })
  const live = new Set<string>()
  const log: string[] = []
  const table = new JobTable(dag, { hasLiveHolder: (hash) => live.has(hash), addHolder: (hash) => { live.add(hash) } }, {
    onTransition: (job, from, to, reason) => { log.push(`${job.spec.id} ${from}->${to}: ${reason}`) },
    onIllegal: (job, from, to) => { log.push(`ILLEGAL ${job} ${from}->${to}`) }
  })
  /** one attempt of a job that ends well, its output `o` held under `hash` */
  const finish = (id: string, hash: string): void => {
    const job = table.jobs.get(id) as JobRec
    table.move(job, 'running', 'attempt')
    job.outputs = new Map([['o', { hash, size: 1 }]])
    live.add(hash)
    table.succeed(job, 'ok')
  }
  return { table, live, log, finish }
}

t.test('the table moves jobs only through declared transitions, its counts and ready set in step; success promotes children, failure skips descendants', async t => {
  const { table, live, log } = chain()
  const job = (id: string): JobRec => table.jobs.get(id) as JobRec
  table.promote()
  t.same([...table.ready], ['a', 'x'], 'the jobs without parents are ready')
  t.notOk(table.move(job('b'), 'done', 'no'), 'pending -> done is no declared change')
  t.equal(job('b').state, 'pending')
  t.same(log.at(-1), 'ILLEGAL b pending->done', 'and it is said')
  t.ok(table.move(job('a'), 'running', 'attempt 1'))
  t.same([...table.ready], ['x'], 'a running job is not ready')
  job('a').outputs = new Map([['o', { hash: H('a'), size: 1 }]])
  live.add(H('a'))
  table.succeed(job('a'), 'attempt 1 ok')
  t.equal(job('b').state, 'ready', 'its child can start: its input is held')
  t.same(log.slice(-2), ['a running->done: attempt 1 ok', 'b pending->ready: parent a done'])
  table.move(job('b'), 'running', 'attempt 2')
  live.delete(H('a'))
  table.requeue(job('b'), 'retry 1/1')
  t.equal(job('b').state, 'pending', 'run again while its input has no holder: pending, not ready')
  t.equal(job('a').state, 'done', 'the producer keeps its output: its holder may be back (a resume claims it again)')
  live.add(H('a'))
  table.promote()
  t.equal(job('b').state, 'ready', 'its input is back: ready')
  table.move(job('b'), 'running', 'attempt 3')
  table.fail(job('b'), 'exit code 1')
  t.equal(job('b').reason, 'exit code 1')
  t.equal(job('c').state, 'skipped')
  t.equal(job('c').reason, 'ancestor b failed')
  t.notOk(table.finished(), 'x is still ready')
  table.cancelAll('stop')
  t.equal(job('x').state, 'cancelled')
  t.ok(table.finished())
  t.same(table.counts(), { pending: 0, ready: 0, running: 0, done: 1, failed: 1, skipped: 1, cancelled: 1 })
})

t.test('reconcile: a done job whose needed output no node holds any more runs again; a ready job whose input went waits for it', async t => {
  const { table, live, log, finish } = chain()
  const job = (id: string): JobRec => table.jobs.get(id) as JobRec
  table.promote()
  finish('a', H('a'))
  t.equal(job('b').state, 'ready')
  table.reconcile('nothing lost')
  t.equal(job('a').state, 'done', 'its output is still held: nothing to do')
  live.delete(H('a'))
  table.reconcile('holder gone')
  t.equal(job('a').outputs, null, 'its outputs are forgotten')
  t.equal(job('a').state, 'ready', 'the producer runs again')
  t.equal(job('b').state, 'pending', 'its consumer waits for it')
  t.ok(log.includes('a done->pending: outputs lost: holder gone'))
  t.ok(log.includes('b ready->pending: inputs lost: holder gone'))
})

t.test('a lost output whose remaking needs a parent\'s output lost earlier: the parent runs again too, so the run can still end', async t => {
  // a -> b -> c. a's output went while nobody needed it (b was done); then b's output goes
  // while c still needs it. b must run again, so a must run again first.
  const { table, live, finish } = chain()
  const job = (id: string): JobRec => table.jobs.get(id) as JobRec
  table.promote()
  finish('a', H('a'))
  finish('b', H('b'))
  live.delete(H('a'))
  table.reconcile('a\'s holder gone')
  t.equal(job('a').state, 'done', 'nobody needs a\'s output now: a stays done')
  live.delete(H('b'))
  table.reconcile('b\'s holder gone')
  t.equal(job('b').state, 'pending', 'b must run again and waits for its input')
  t.equal(job('a').state, 'ready', 'a runs again for b (before: done with no output, and b waited forever)')
  finish('a', H('a'))
  t.equal(job('b').state, 'ready')
  finish('b', H('b'))
  t.equal(job('c').state, 'ready', 'the run goes on')
})

t.test('a job sent back while its input\'s holder is away waits for it; once the holder is lost, its producer runs again', async t => {
  const { table, live, finish } = chain()
  const job = (id: string): JobRec => table.jobs.get(id) as JobRec
  table.promote()
  finish('a', H('a'))
  table.move(job('b'), 'running', 'attempt')
  live.delete(H('a'))
  table.requeue(job('b'), 'its worker could not fetch a/o')
  t.equal(job('b').state, 'pending')
  t.equal(job('a').state, 'done', 'a holder not live yet is not lost: a finished job is not run again (a resume re-ran one)')
  t.not(job('a').outputs, null, 'and a keeps its outputs')
  table.reconcile('its holder is lost')
  t.equal(job('a').state, 'ready', 'lost for good: a runs again for b')
})
