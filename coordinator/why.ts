// The one answer to "why is my run short of workers?" (pure): every node seen is
// accounted for by exactly one cause, from what it advertises and what it answered.
// A node's name and words are remote text: each account holds them as one escaped line
// (protocol/printable.ts), since they end up in NO_WORKERS and in progress lines.
import { type Candidate, type Refusal, attrsOf } from './core/select.ts'
import { explainFailure, evalBool, type Expr } from '../protocol/expr.ts'
import { printable } from '../protocol/printable.ts'

export type Cause =
  | 'claimed' | 'requirements' | 'grid-key' | 'owner' | 'busy' | 'refused' | 'unreachable' | 'untried'

export interface NodeAccount { name: string, peer: string, state: string, cause: Cause, detail: string }

export interface AccountInput {
  /** every node seen advertised (its latest advertisement) */
  nodes: Candidate[]
  claimed: ReadonlySet<string>
  /** what a node not claimed answered to our last claim (or that it could not be reached) */
  refusals: ReadonlyMap<string, Refusal>
  requirements: Expr | null
  /** this run's grid key fingerprint (undefined: open grid) */
  gridId?: string
  /** the coordinator's own peer id (its machine's daemon is not a candidate) */
  self: string
}

const REFUSAL_CAUSE: Record<string, Cause> = {
  BUSY: 'busy', YIELDING: 'busy', OWNER: 'owner', UNREACHABLE: 'unreachable', TIMEOUT: 'unreachable', ERROR: 'unreachable', INTERNAL: 'unreachable'
}

function gridMismatch (theirs: string | undefined, ours: string | undefined): string | undefined {
  if (theirs === ours) return undefined
  if (ours === undefined) return 'is in a private grid: this run needs its grid key (--grid-key)'
  if (theirs === undefined) return 'is in the open grid: this run was given a --grid-key it does not have'
  return 'is in another private grid (another --grid-key)'
}

export function accountNodes (i: AccountInput): NodeAccount[] {
  const out: NodeAccount[] = []
  for (const n of i.nodes) {
    const ad = n.ad
    if (ad.peer === i.self) continue
    const base = { name: printable(n.name, { max: 80 }), peer: ad.peer, state: ad.state }
    const say = (cause: Cause, detail: string): void => { out.push({ ...base, cause, detail }) }
    if (i.claimed.has(ad.peer)) { say('claimed', 'a worker of this run'); continue }
    const grid = gridMismatch(ad.grid, i.gridId)
    if (grid !== undefined) { say('grid-key', grid); continue }
    const attrs = attrsOf(ad)
    if (i.requirements !== null && !evalBool(i.requirements, attrs)) {
      say('requirements', printable(explainFailure(i.requirements, attrs).join('; '), { max: 2000 }))
      continue
    }
    if (ad.state === 'owner') { say('owner', 'its owner is using it'); continue }
    if (ad.state === 'worker') { say('busy', `busy with run ${ad.run ?? '?'}${ad.coord !== undefined ? ` (coordinator …${ad.coord.slice(-8)})` : ''}`); continue }
    if (ad.state === 'coordinator') { say('busy', 'coordinating a run of its own'); continue }
    const r = i.refusals.get(ad.peer)
    if (r !== undefined) {
      const words = `${printable(r.code, { max: 32 })}: ${printable(r.message, { max: 160 })}`
      say(REFUSAL_CAUSE[r.code] ?? 'refused', words)
      continue
    }
    say('untried', 'idle, not claimed yet')
  }
  return out
}

const HEADLINE: Record<Cause, string> = {
  claimed: 'claimed',
  requirements: 'fail the requirements',
  'grid-key': 'are in another grid',
  owner: 'are in use by their owners',
  busy: 'are busy',
  refused: 'refused this run',
  unreachable: 'could not be reached',
  untried: 'are idle and not claimed yet'
}

/** a refusal's words, by its code */
const REFUSED: Record<string, string> = {
  POLICY: 'refused by the node\'s policy',
  UNAUTHORISED: 'refused this submitter\'s identity',
  VERSION: 'speak another protocol version'
}

/**
 * One line per cause (and per clause or run within it), the nodes named:
 * "2 node(s) fail `cost >= 5`: a (cost=0), b (cost=1)", "1 node(s) busy with run x: c".
 * Claimed nodes are left out: this says why the others are not.
 */
export function summariseAccounts (accounts: NodeAccount[], max = 5): string[] {
  const groups = new Map<string, string[]>()
  const add = (key: string, who: string): void => { groups.set(key, [...(groups.get(key) ?? []), who]) }
  for (const a of accounts) {
    if (a.cause === 'claimed') continue
    if (a.cause === 'requirements') {
      for (const clause of a.detail.split('; ')) {
        const cut = clause.lastIndexOf(' (')
        add(`fail \`${cut > 0 ? clause.slice(0, cut) : clause}\``, `${a.name}${cut > 0 ? clause.slice(cut) : ''}`)
      }
    } else if (a.cause === 'busy') add(a.detail, a.name)
    else if (a.cause === 'grid-key') add(a.detail.replace(/^is /, 'are '), a.name)
    else if (a.cause === 'owner') add(HEADLINE.owner, a.name)
    else if (a.cause === 'refused') add(REFUSED[a.detail.slice(0, a.detail.indexOf(':'))] ?? HEADLINE.refused, `${a.name} (${a.detail.slice(a.detail.indexOf(':') + 2)})`)
    else add(HEADLINE[a.cause], `${a.name} (${a.detail})`)
  }
  return [...groups].map(([why, who]) => `${who.length} node(s) ${why}: ${who.slice(0, max).join(', ')}${who.length > max ? `, and ${who.length - max} more` : ''}`)
}
