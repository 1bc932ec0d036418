// Worker selection, a pure function: filter feasible nodes, then rank them
// (Nomad's feasibility-then-ranking; HTCondor's Requirements/Rank). Every
// rejection says which requirement failed with which values.
import type { NodeAd } from '../protocol/txt.ts'
import { evalBool, evalNumber, explainFailure, type Attrs, type Expr } from './expr.ts'

export interface Candidate { name: string, ad: NodeAd, addresses: string[] }
export interface Rejection { name: string, reasons: string[] }
export interface Selection { ranked: Candidate[], rejected: Rejection[] }

export function attrsOf (ad: Pick<NodeAd, 'ram' | 'cores' | 'mhz' | 'disk' | 'load' | 'cost' | 'os' | 'arch'>): Attrs {
  return { ram: ad.ram, cores: ad.cores, mhz: ad.mhz, disk: ad.disk, load: ad.load, cost: ad.cost, os: ad.os, arch: ad.arch }
}

export function selectWorkers (nodes: Candidate[], requirements: Expr | null, rank: Expr, opts: { self?: string, exclude?: Set<string> } = {}): Selection {
  const ranked: Array<{ c: Candidate, score: number }> = []
  const rejected: Rejection[] = []
  for (const c of nodes) {
    if (c.ad.peer === opts.self) continue
    if (opts.exclude?.has(c.ad.peer) === true) continue
    if (c.ad.state !== 'idle') {
      rejected.push({ name: c.name, reasons: [c.ad.state === 'worker' ? `claimed by another coordinator (${c.ad.coord?.slice(-8) ?? '?'})` : `state is ${c.ad.state}`] })
      continue
    }
    const attrs = attrsOf(c.ad)
    if (requirements !== null && !evalBool(requirements, attrs)) {
      rejected.push({ name: c.name, reasons: explainFailure(requirements, attrs) })
      continue
    }
    ranked.push({ c, score: evalNumber(rank, attrs) })
  }
  ranked.sort((a, b) => b.score - a.score || b.c.ad.ram - a.c.ad.ram || a.c.name.localeCompare(b.c.name))
  return { ranked: ranked.map(r => r.c), rejected }
}

/** One line per failed requirement, grouped: "2 nodes: ram >= 4096 (ram=2000)". */
export function summariseRejections (rejected: Rejection[]): string[] {
  const groups = new Map<string, string[]>()
  for (const r of rejected) {
    for (const reason of r.reasons) {
      const key = reason.replace(/\(.*\)$/, '').trim()
      groups.set(key, [...(groups.get(key) ?? []), `${r.name}${/\(.*\)$/.exec(reason)?.[0] ?? ''}`])
    }
  }
  return [...groups].map(([why, who]) => `${who.length} node(s) fail \`${why}\`: ${who.slice(0, 5).join(', ')}${who.length > 5 ? ', ...' : ''}`)
}

/** A node that answered a claim with a refusal, or could not be reached. */
export interface Refusal { name: string, code: string, message: string }

const CAUSES: Record<string, string> = {
  POLICY: 'refused by the node\'s policy',
  UNREACHABLE: 'unreachable (a wrong or missing --grid-key, a firewall, or a node gone)',
  TIMEOUT: 'unreachable (a wrong or missing --grid-key, a firewall, or a node gone)',
  BUSY: 'busy with another coordinator',
  OWNER: 'its owner is using it',
  VERSION: 'speaks another protocol version',
  UNAUTHORISED: 'refused this submitter\'s identity'
}

/** One line per cause, the nodes named, each with the node's own words: "2 node(s) refused by the node's policy: a (…), b (…)". */
export function summariseRefusals (refusals: Refusal[]): string[] {
  const groups = new Map<string, string[]>()
  for (const r of refusals) {
    const cause = CAUSES[r.code] ?? `refused (${r.code})`
    groups.set(cause, [...(groups.get(cause) ?? []), `${r.name} (${r.message.slice(0, 120)})`])
  }
  return [...groups].map(([cause, who]) => `${who.length} node(s) ${cause}: ${who.slice(0, 5).join(', ')}${who.length > 5 ? ', ...' : ''}`)
}
