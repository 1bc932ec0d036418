// Worker selection, a pure function: filter feasible nodes, then rank them
// (Nomad's feasibility-then-ranking; HTCondor's Requirements/Rank). Every
// rejection says which requirement failed with which values.
import type { NodeAd } from '../../protocol/txt.ts'
import { nodeAttrs } from '../../protocol/start.ts'
import { evalBool, evalNumber, explainFailure, type Attrs, type Expr } from '../../protocol/expr.ts'

export interface Candidate { name: string, ad: NodeAd, addresses: string[] }
export interface Rejection { name: string, reasons: string[] }
export interface Selection { ranked: Candidate[], rejected: Rejection[] }

/** a node's attributes as expressions see them: the built-in ones, and its custom ones (`--attr`) */
export function attrsOf (ad: Pick<NodeAd, 'ram' | 'cores' | 'mhz' | 'disk' | 'load' | 'cost' | 'os' | 'arch' | 'gflops' | 'attrs'>): Attrs {
  return nodeAttrs(ad)
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

/** A node that answered a claim with a refusal, or could not be reached. */
export interface Refusal { name: string, code: string, message: string }
