import t from 'tap'
import { NODE_STATES, NODE_TRANSITIONS, canTransition, isNodeState } from '../daemon/node-state.ts'

t.test('the transition table', async t => {
  t.ok(canTransition('idle', 'worker'), 'a claim makes an idle node a worker')
  t.ok(canTransition('worker', 'idle'), 'release or lease expiry')
  t.ok(canTransition('worker', 'owner'), 'the owner comes back mid-job')
  t.ok(canTransition('owner', 'worker'), 'the owner leaves while the claim is held')
  t.ok(canTransition('idle', 'coordinator'))
  t.notOk(canTransition('worker', 'coordinator'), 'a worker cannot start coordinating')
  t.notOk(canTransition('coordinator', 'worker'), 'a coordinator cannot be claimed')
  for (const s of NODE_STATES) t.notOk(NODE_TRANSITIONS[s].includes(s), `no self-loop for ${s}`)
  t.ok(isNodeState('owner'))
  t.notOk(isNodeState('busy'))
  t.notOk(isNodeState(3))
})
