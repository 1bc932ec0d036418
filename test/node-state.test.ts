// The node state table, driven through next(): every event from every state, the state
// it leads to or its refusal. The expectations are written here, not read from the table.
import t from 'tap'
import { NODE_STATES, isNodeState, type NodeState } from '../protocol/node-states.ts'
import { NODE_EVENTS, next, type NodeEvent } from '../daemon/node-state.ts'

const ROWS: Array<[NodeEvent, NodeState, NodeState | undefined, string]> = [
  ['claimed', 'idle', 'worker', 'an offered node accepts a claim'],
  ['claimed', 'worker', 'worker', 'a new claim while the previous run\'s session still ends: still a worker'],
  ['claimed', 'owner', undefined, 'the owner uses the machine: no claim'],
  ['claimed', 'coordinator', undefined, 'a coordinating node is not claimed'],

  ['released', 'worker', 'idle', 'its coordinator let it go: offered again'],
  ['released', 'idle', undefined, 'nothing to release'],
  ['released', 'owner', undefined, 'a suspended worker handed back stays its owner\'s'],
  ['released', 'coordinator', undefined, 'a coordinator holds no claim'],

  ['lease-expired', 'worker', 'idle', 'a silent coordinator loses its worker'],
  ['lease-expired', 'idle', undefined, 'no lease'],
  ['lease-expired', 'owner', undefined, 'stays its owner\'s'],
  ['lease-expired', 'coordinator', undefined, 'a coordinator holds no lease'],

  ['owner-back', 'idle', 'owner', 'withdrawn from the grid'],
  ['owner-back', 'worker', 'owner', 'withdrawn, tasks suspended'],
  ['owner-back', 'owner', undefined, 'already the owner\'s'],
  ['owner-back', 'coordinator', undefined, 'a local run goes on whoever types'],

  ['owner-away', 'owner', 'idle', 'offered once the owner left'],
  ['owner-away', 'idle', undefined, 'already offered'],
  ['owner-away', 'worker', undefined, 'a worker\'s owner is already away'],
  ['owner-away', 'coordinator', undefined, 'coordinating: not offered'],

  ['owner-away-claimed', 'owner', 'worker', 'the claim still held: its tasks resume'],
  ['owner-away-claimed', 'idle', undefined, 'no claim to resume'],
  ['owner-away-claimed', 'worker', undefined, 'already working'],
  ['owner-away-claimed', 'coordinator', undefined, 'a coordinator holds no claim'],

  ['coordinate', 'idle', 'coordinator', 'a local submit'],
  ['coordinate', 'owner', 'coordinator', 'the owner\'s own submit'],
  ['coordinate', 'coordinator', 'coordinator', 'a second local submit coordinates too'],
  ['coordinate', 'worker', undefined, 'a worker serves its coordinator only'],

  ['coordinate-end', 'coordinator', 'idle', 'the local run over: offered'],
  ['coordinate-end', 'idle', undefined, 'not coordinating'],
  ['coordinate-end', 'worker', undefined, 'not coordinating'],
  ['coordinate-end', 'owner', undefined, 'not coordinating'],

  ['coordinate-end-owner-here', 'coordinator', 'owner', 'the local run over, the owner at the keyboard'],
  ['coordinate-end-owner-here', 'idle', undefined, 'not coordinating'],
  ['coordinate-end-owner-here', 'worker', undefined, 'not coordinating'],
  ['coordinate-end-owner-here', 'owner', undefined, 'not coordinating'],

  ...NODE_STATES.map(s => ['restart', s, 'owner', 'not offered before the idle policy sampled the owner'] as [NodeEvent, NodeState, NodeState, string]),
  ...NODE_STATES.map(s => ['restart-always-available', s, 'idle', 'a dedicated machine is offered at once'] as [NodeEvent, NodeState, NodeState, string])
]

for (const [event, from, to, why] of ROWS) {
  t.test(`${event} from ${from}: ${to ?? 'refused'}`, async t => {
    t.equal(next(from, event), to, why)
  })
}

t.test('the rows above cover every event from every state, once', async t => {
  const seen = ROWS.map(([e, s]) => `${e} ${s}`)
  t.equal(new Set(seen).size, seen.length, 'no row twice')
  t.same(new Set(seen), new Set(NODE_EVENTS.flatMap(e => NODE_STATES.map(s => `${e} ${s}`))))
})

t.test('an event the table does not know is refused, not a crash', async t => {
  t.equal(next('idle', 'constructor' as NodeEvent), undefined)
  t.equal(next('idle', 'toString' as NodeEvent), undefined)
})

t.test('state names', async t => {
  t.ok(isNodeState('owner'))
  t.notOk(isNodeState('busy'))
  t.notOk(isNodeState(3))
})
