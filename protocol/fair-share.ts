// Fair sharing of workers between concurrent runs, decided by each daemon alone (pure
// logic, no I/O). A coordinator short of workers asks a node that works for another run
// to come over; the node compares the two runs and either says no or retires from its
// run at a job boundary and is then reserved for the asker. What the node compares:
//   - the owner's preference first (`--prefer-coordinator`, as HTCondor's machine RANK):
//     a preferred submitter takes the node from a stranger, never the reverse;
//   - then the runs' priorities: a higher one takes the node from a lower one that keeps
//     at least one worker; a lower one takes a node only while it has none (no run starves);
//   - at equal priority, the counts: the node moves only if its run keeps at least as
//     many workers as the asker will have (held(holder) >= held(asker) + 2).
// Every move strictly lowers the sum of squares of the runs' counts (equal priority) or
// moves a node up in priority, so moves end: two runs cannot trade a node back and forth.
// A node just granted is not moved again for a tenure, so that counts seen a moment
// late (advertisements in flight) cannot undo a move.
import { createHash } from 'node:crypto'

/** one side of a comparison: a run as the node knows it */
export interface RunShare {
  run: string
  /** the coordinator's peer id, and the submitter it runs for (checked signature), when it said */
  coordinator: string
  submitter?: string
  /** the run's priority (the DAG's `priority`); higher goes first */
  priority: number
  /** how many workers the run holds: the node counts them from the LAN's advertisements */
  held: number
}

export interface ShareRules {
  /** submitters (or coordinators) this node's owner prefers (`--prefer-coordinator`) */
  prefer: readonly string[]
  /** how long a grant stands before the node may move again, ms */
  tenureMs: number
}

/** no move in less than this after a grant: long enough for the LAN's counts to follow a move */
export const DEFAULT_TENURE_MS = 1500

export type ShareVerdict = { move: boolean, why: string }

function preferred (r: RunShare, rules: ShareRules): boolean {
  return rules.prefer.includes(r.coordinator) || (r.submitter !== undefined && rules.prefer.includes(r.submitter))
}

/**
 * Should this node leave `holder`'s run for `asker`'s? `grantedAt`: when the holder's
 * claim was granted. The answer says why, in words the asker is told.
 */
export function shouldMove (holder: RunShare, asker: RunShare, grantedAt: number, now: number, rules: ShareRules): ShareVerdict {
  if (holder.run === asker.run) return { move: false, why: 'the node already works for this run' }
  const age = now - grantedAt
  if (age < rules.tenureMs) return { move: false, why: `the node joined run ${holder.run} ${Math.round(age)} ms ago (tenure ${rules.tenureMs} ms)` }
  const askerPreferred = preferred(asker, rules)
  const holderPreferred = preferred(holder, rules)
  if (askerPreferred && !holderPreferred) return { move: true, why: 'the node\'s owner prefers this submitter' }
  if (holderPreferred && !askerPreferred) return { move: false, why: `the node's owner prefers the submitter of run ${holder.run}` }
  if (holder.held < 2) return { move: false, why: `run ${holder.run} has no other worker` }
  if (asker.priority > holder.priority) return { move: true, why: `priority ${asker.priority} over ${holder.priority}` }
  if (asker.priority < holder.priority) {
    return asker.held === 0
      ? { move: true, why: `no run starves: the asker has no worker and run ${holder.run} has ${holder.held}` }
      : { move: false, why: `run ${holder.run} has priority ${holder.priority} over ${asker.priority}` }
  }
  return holder.held >= asker.held + 2
    ? { move: true, why: `run ${holder.run} holds ${holder.held} workers, the asker ${asker.held}` }
    : { move: false, why: `run ${holder.run} holds ${holder.held} workers, the asker ${asker.held}: no fairer after a move` }
}

/**
 * What a node advertises of the submitters its owner prefers (TXT `pref`): a short
 * fingerprint of each id, so that a preferred run knows to ask it.
 */
export function preferenceTag (id: string): string {
  return createHash('sha256').update(id).digest('hex').slice(0, 8)
}

/** preference tags a node advertises at most */
export const MAX_PREFERENCE_TAGS = 16
