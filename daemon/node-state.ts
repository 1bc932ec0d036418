// The node state table. One place says which changes are legal; an illegal
// change is a bug: it is logged and refused, never applied silently.
import type { NodeState } from '../protocol/node-states.ts'
export { type NodeState, NODE_STATES, isNodeState } from '../protocol/node-states.ts'

export const NODE_TRANSITIONS: Readonly<Record<NodeState, readonly NodeState[]>> = {
  idle: ['worker', 'coordinator', 'owner'],
  // owner: the owner came back while we served a coordinator (tasks suspended)
  worker: ['idle', 'owner'],
  // worker: the owner left again while the claim is still held
  owner: ['idle', 'worker', 'coordinator'],
  coordinator: ['idle', 'owner']
}

export function canTransition (from: NodeState, to: NodeState): boolean {
  return NODE_TRANSITIONS[from].includes(to)
}
