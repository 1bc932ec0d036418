// The node state table. A node's state changes only through next(state, event), a pure
// function over named events; a change the table does not declare is a bug: the daemon
// logs and refuses it, never applies it silently.
import type { NodeState } from '../protocol/node-states.ts'

/**
 * What happens to a node. next() sees only the state and the event, so where the
 * outcome depends on the owner (using the machine or not) or on a claim being held,
 * the event says which: the daemon knows, the table stays pure.
 */
export type NodeEvent =
  /** a coordinator's claim was accepted */
  | 'claimed'
  /** the claim ended: its coordinator released it, or the daemon stops */
  | 'released'
  /** the claim ended: its coordinator went silent */
  | 'lease-expired'
  /** the owner uses the machine again: not offered, a worker's tasks suspended */
  | 'owner-back'
  /** the owner left, and no claim is held: offered */
  | 'owner-away'
  /** the owner left while a claim is still held: its tasks resume */
  | 'owner-away-claimed'
  /** a local `bgrid submit` coordinates here: nobody may claim the node meanwhile */
  | 'coordinate'
  /** the local run ended, the owner away (or the machine always available) */
  | 'coordinate-end'
  /** the local run ended while the owner uses the machine */
  | 'coordinate-end-owner-here'
  /** the daemon (re)started: not offered until the idle policy has sampled the owner */
  | 'restart'
  /** the daemon (re)started on a dedicated machine (--always-available) */
  | 'restart-always-available'

const EVERY = (to: NodeState): Record<NodeState, NodeState> => ({ idle: to, worker: to, coordinator: to, owner: to })

/** The table, written once: for each event, the state it leads to from each state it may happen in. */
const TABLE: Readonly<Record<NodeEvent, Readonly<Partial<Record<NodeState, NodeState>>>>> = {
  // worker: a new claim accepted while the previous run's session is still ending (the
  // claim book holds one claim at a time): the node stays a worker
  claimed: { idle: 'worker', worker: 'worker' },
  // only a worker is released: the policy withdraws a worker whose owner is back at once
  // (worker -> owner), so a worker's owner is away and the node is offered again
  released: { worker: 'idle' },
  'lease-expired': { worker: 'idle' },
  'owner-back': { idle: 'owner', worker: 'owner' },
  'owner-away': { owner: 'idle' },
  'owner-away-claimed': { owner: 'worker' },
  // coordinator: another local submit while one runs (it coordinates too)
  coordinate: { idle: 'coordinator', owner: 'coordinator', coordinator: 'coordinator' },
  'coordinate-end': { coordinator: 'idle' },
  'coordinate-end-owner-here': { coordinator: 'owner' },
  // whatever the node was before (its claim died with the daemon)
  restart: EVERY('owner'),
  'restart-always-available': EVERY('idle')
}

export const NODE_EVENTS = Object.keys(TABLE) as readonly NodeEvent[]

/** The state `event` leads to from `state`; undefined: the change is illegal. */
export function next (state: NodeState, event: NodeEvent): NodeState | undefined {
  return Object.hasOwn(TABLE, event) ? TABLE[event][state] : undefined
}
