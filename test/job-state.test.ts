// The job state table, driven through canJobTransition: every change from every state,
// legal or refused, for a live run and for a resume. The expectations are written here.
import t from 'tap'
import { canJobTransition, TERMINAL, type JobState } from '../coordinator/core/model.ts'
import { parseDag } from '../coordinator/dag-json.ts'
import { RunCore } from '../coordinator/core/run-core.ts'

const STATES: JobState[] = ['pending', 'ready', 'running', 'done', 'failed', 'skipped', 'cancelled']

/** from -> the states a live run may move it to, and why each */
const LIVE: Record<JobState, Partial<Record<JobState, string>>> = {
  pending: {
    ready: 'its parents are done and its inputs reachable',
    skipped: 'an ancestor failed for good',
    cancelled: 'the run is cancelled'
  },
  ready: {
    running: 'assigned to a worker',
    pending: 'a parent\'s outputs were lost before it started',
    failed: 'no node could ever run it (unplaceable)',
    cancelled: 'the run is cancelled',
    skipped: 'an ancestor failed for good',
    done: 'a late result of an attempt thought lost'
  },
  running: {
    done: 'its attempt succeeded',
    ready: 'retry, lost worker, preempted',
    pending: 'its inputs were lost while it started',
    failed: 'out of retries',
    cancelled: 'the run is cancelled'
  },
  done: {
    ready: 'its outputs were lost with their only holder and a consumer needs them',
    pending: 'the same, its own inputs lost too'
  },
  failed: {},
  skipped: {},
  cancelled: {}
}

/** from -> the outcomes a resume may restore from the journal */
const RESTORE: Record<JobState, Partial<Record<JobState, string>>> = {
  pending: {
    done: 'the journal has it done, with its outputs',
    failed: 'the journal has it failed for good',
    skipped: 'the journal has it skipped'
  },
  ready: {},
  running: {},
  done: {},
  failed: {},
  skipped: {},
  cancelled: {}
}

for (const from of STATES) {
  t.test(`live, from ${from}`, async t => {
    for (const to of STATES) {
      const why = LIVE[from][to]
      t.equal(canJobTransition(from, to), why !== undefined, `${from} -> ${to}: ${why ?? 'refused'}`)
      t.equal(canJobTransition(from, to, 'live'), why !== undefined, 'live is the default')
    }
  })
  t.test(`restore, from ${from}`, async t => {
    for (const to of STATES) {
      const why = RESTORE[from][to]
      t.equal(canJobTransition(from, to, 'restore'), why !== undefined, `${from} -> ${to}: ${why ?? 'refused'}`)
    }
  })
}

t.test('a live run never finishes a pending job without running it', async t => {
  t.notOk(canJobTransition('pending', 'done'))
  t.notOk(canJobTransition('pending', 'failed'))
  t.notOk(canJobTransition('pending', 'running'), 'ready first')
})

t.test('terminal states: no way out but a lost output bringing a done job back', async t => {
  t.same([...TERMINAL].sort(), ['cancelled', 'done', 'failed', 'skipped'])
  for (const from of TERMINAL) {
    for (const to of STATES) {
      if (from === 'done' && (to === 'ready' || to === 'pending')) continue
      t.notOk(canJobTransition(from, to), `${from} -> ${to}`)
      t.notOk(canJobTransition(from, to, 'restore'), `${from} -> ${to} (restore)`)
    }
  }
})

// The resume path through the declared restore changes (coordinator/core/run-core.ts): a job
// that is not pending any more is not restored over, and the counts follow the states.
t.test('RunCore restores the journal through declared transitions', async t => {
  const dag = parseDag({ jobs: [{ id: 'a', cmd: ['x'], outputs: ['o'] }, { id: 'b', cmd: ['x'], inputs: ['job:a/o'] }, { id: 'c', cmd: ['x'] }] }, '/tmp/x.json', { checkFiles: false })
  const illegal: string[] = []
  const core = new RunCore(dag, { coordinatorId: 'C', prefetch: true, nonce: 'n', hooks: { onIllegal: (job, from, to) => { illegal.push(`${job} ${from}->${to}`) } } })
  core.restoreDone('a', [{ name: 'o', hash: 'a'.repeat(64), size: 1, holders: ['C'] }], [], false)
  core.restoreFinal('c', 'failed', 'boom', [])
  t.equal(core.jobs.get('a')?.state, 'done')
  t.equal(core.jobs.get('c')?.state, 'failed')
  core.promote()
  t.equal(core.jobs.get('b')?.state, 'ready', 'b can start: its parent was restored done')
  // a journal entry for a job that already moved on is refused, not applied over it
  core.restoreDone('b', [], [], false)
  core.restoreFinal('a', 'skipped', 'late', [])
  t.equal(core.jobs.get('b')?.state, 'ready')
  t.equal(core.jobs.get('a')?.state, 'done')
  t.same(illegal, ['b ready->done', 'a done->skipped'])
  t.same(core.counts(), { pending: 0, ready: 1, running: 0, done: 1, failed: 1, skipped: 0, cancelled: 0 })
})
