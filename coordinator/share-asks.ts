// Asking for a fair share (pure logic, no I/O): a run short of workers, with no idle node
// left to take, asks nodes that work for other runs to come over. The nodes decide
// (protocol/fair-share.ts, on their own counts); this side only picks whom to ask and how
// many, from the same advertisements, so that it asks for no more than its share and
// the nodes of one big run are not all asked at once by every newcomer.
import { shouldMove, preferenceTag, type RunShare } from '../protocol/fair-share.ts'
import type { Candidate } from './core/select.ts'

export interface Asker {
  run: string
  coordinator: string
  submitter: string
  priority: number
  /** workers held now, and nodes already asked (their answer pending, or promised) */
  held: number
  pending: number
  /** workers the run could use now (workers.max, and its jobs' demand) */
  want: number
}

/**
 * The run's share of the nodes seen working or idle: nodes left once every run of higher
 * priority keeps what it holds and every run of lower priority keeps one, split evenly
 * between the runs of this priority. At least one: no run starves.
 */
export function shareTarget (nodes: Candidate[], me: Asker): number {
  const view = gridView(nodes)
  let left = view.total
  let peers = 1
  for (const [run, r] of view.runs) {
    if (run === me.run) continue
    if (r.priority > me.priority) left -= r.count
    else if (r.priority < me.priority) left -= 1
    else peers++
  }
  return Math.max(1, Math.floor(left / peers))
}

/** what every asker reads of one advertisement list: the nodes working or idle, and each run's workers */
interface GridView {
  total: number
  runs: Map<string, { priority: number, count: number, workers: Candidate[] }>
}

// one view per list: a coordinator's tick (and the simulation's hundreds of coordinators
// on one LAN's list) reads it several times; with no memo, asking cost the nodes squared.
// A list is never changed once made (a new advert makes a new list), so a view stays true
const views = new WeakMap<Candidate[], GridView>()

function gridView (nodes: Candidate[]): GridView {
  let view = views.get(nodes)
  if (view !== undefined) return view
  view = { total: 0, runs: new Map() }
  for (const n of nodes) {
    if (n.ad.state !== 'idle' && n.ad.state !== 'worker') continue
    view.total++
    if (n.ad.state !== 'worker' || n.ad.run === undefined) continue
    let r = view.runs.get(n.ad.run)
    if (r === undefined) { r = { priority: n.ad.prio ?? 0, count: 0, workers: [] }; view.runs.set(n.ad.run, r) }
    r.count++
    r.workers.push(n)
  }
  views.set(nodes, view)
  return view
}

/**
 * Nodes not to ask now: those asked already (their answer pending, or promised), being
 * claimed, or that refused a moment ago (BUSY: leaving for another run, kept for one, or
 * just granted): asking them again every second would only be refused again, while the
 * next node in line, asked instead, may come.
 */
export function notToAsk (
  asked: Iterable<string>, claiming: Iterable<string>, refusedUntil: ReadonlyMap<string, number>, now: number
): Set<string> {
  const out = new Set([...asked, ...claiming])
  for (const [peer, until] of refusedUntil) if (until >= now) out.add(peer)
  return out
}

/** where a node comes in an asker's order (FNV-1a of the two names: cheap, spread, the same every time) */
export function askOrder (run: string, peer: string): number {
  let h = 0x811c9dc5
  for (const s of [run, '/', peer]) {
    for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193)
  }
  return h >>> 0
}

/**
 * Nodes to ask now, best first: each one a node would give (judged as it will judge, on
 * the counts seen, counting the asks already made), up to the run's share and its want.
 */
export function pickAsks (nodes: Candidate[], me: Asker, asked: ReadonlySet<string>): Candidate[] {
  const target = Math.min(me.want, shareTarget(nodes, me))
  let room = target - me.held - me.pending
  if (room <= 0) return []
  const byRun = new Map<string, Candidate[]>()
  for (const [run, r] of gridView(nodes).runs) {
    if (run === me.run) continue
    const ns = r.workers.filter(n => !asked.has(n.ad.peer))
    if (ns.length > 0) byRun.set(run, ns)
  }
  // each asker goes through a run's nodes in an order of its own: two askers short at
  // the same moment ask different nodes, not both the same one (one of them refused)
  for (const [run, ns] of byRun) {
    byRun.set(run, ns.map(n => ({ n, key: askOrder(me.run, n.ad.peer) })).sort((a, b) => a.key - b.key).map(x => x.n))
  }
  const counts = new Map([...byRun].map(([run, ns]) => [run, ns.length]))
  const mine = preferenceTag(me.submitter)
  let held = me.held + me.pending
  const out: Candidate[] = []
  while (room > 0) {
    let best: { c: Candidate, run: string, count: number, prio: number } | undefined
    for (const [run, ns] of byRun) {
      const c = ns[ns.length - 1]
      if (c === undefined) continue
      const count = counts.get(run) ?? 0
      const holder: RunShare = { run, coordinator: c.ad.coord ?? '', priority: c.ad.prio ?? 0, held: count }
      const prefersMe = c.ad.pref?.includes(mine) === true
      const asker: RunShare = { run: me.run, coordinator: me.coordinator, submitter: me.submitter, priority: me.priority, held }
      if (!shouldMove(holder, asker, -Infinity, 0, { prefer: prefersMe ? [me.submitter] : [], tenureMs: 0 }).move) continue
      // the largest run of the lowest priority gives first
      if (best === undefined || holder.priority < best.prio || (holder.priority === best.prio && count > best.count)) best = { c, run, count, prio: holder.priority }
    }
    if (best === undefined) break
    out.push(best.c)
    byRun.get(best.run)?.pop()
    counts.set(best.run, best.count - 1)
    held++
    room--
  }
  return out
}

/**
 * Claims out at once, per run: each is a dial and a handshake, and a run that dials every
 * node of a busy LAN at its start gets most of them timed out (many users submitting on a
 * loaded LAN); the next goes out as soon as one is answered.
 */
export const MAX_CLAIMS_IN_FLIGHT = 8

/**
 * How many idle nodes a run takes now (`room`: what workers.max leaves): up to its fair
 * share at once; beyond it, while other runs work on the grid, one a second, so that a
 * run below its share takes a node that frees up first rather than asking for it back
 * later; never more than the claims in flight allow.
 */
export function idleToTake (
  nodes: Candidate[], me: Asker & { claiming: number }, room: number, lastTakenAt: number, now: number
): number {
  const window = Math.max(0, MAX_CLAIMS_IN_FLIGHT - me.claiming)
  const limit = Math.min(Math.max(1, room), window)
  const runs = gridView(nodes).runs
  if (runs.size === (runs.has(me.run) ? 1 : 0)) return limit
  const below = shareTarget(nodes, me) - me.held - me.claiming
  if (below > 0) return Math.min(limit, below)
  return now - lastTakenAt >= 1000 ? Math.min(limit, 1) : 0
}
