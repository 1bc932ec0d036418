// The names of a node's states, as they travel in DNS-SD TXT records and claim replies.
// Which changes between them are legal is the daemon's business (daemon/node-state.ts).
export type NodeState = 'idle' | 'worker' | 'coordinator' | 'owner'
export const NODE_STATES: readonly NodeState[] = ['idle', 'worker', 'coordinator', 'owner']

export function isNodeState (s: unknown): s is NodeState {
  return typeof s === 'string' && (NODE_STATES as readonly string[]).includes(s)
}
