// `bgrid status RUN --analyze [JOB]` (pure): why a run or a job waits, every node
// seen accounted for, and, for a job, each node's fit clause by clause
// (condor_q -better-analyze).
import type { RunCore } from './core/run-core.ts'
import { jobFits, whyNotFits, describeNeeds, withRunRequirements, type NodeShape } from './core/feasibility.ts'
import { summariseAccounts, type NodeAccount } from './why.ts'

export interface JobAnalysis {
  job: string
  state: string
  needs: string
  waiting?: string
  reason?: string
  /** nodes seen, each: can it run this job (if it were free), and if not, which clauses fail */
  nodes: Array<{ name: string, peer: string, cause: string, detail: string, fits: boolean, unmet: string[] }>
  summary: string[]
}

export interface RunAnalysis {
  counts: Record<string, number>
  /** why nodes seen are not workers of this run, grouped */
  nodes: string[]
  /** why waiting jobs wait, grouped by reason: "12 job(s): waits for a free slot ..." */
  waiting: string[]
}

export function analyzeJob (core: RunCore, id: string, accounts: NodeAccount[], shapes: Map<string, NodeShape>): JobAnalysis | undefined {
  const job = core.jobs.get(id)
  if (job === undefined) return undefined
  // a node runs the job only if it meets the run's requirements too
  const needs = withRunRequirements(job.spec, core.dag.requirements)
  const nodes = accounts.map(a => {
    const shape = shapes.get(a.peer)
    const unmet = shape === undefined ? [] : whyNotFits(needs, shape)
    // a node of another grid cannot be reached at all, whatever it has
    if (a.cause === 'grid-key') unmet.unshift('the same grid key as this run')
    return { name: a.name, peer: a.peer, cause: a.cause, detail: a.detail, fits: shape !== undefined && a.cause !== 'grid-key' && jobFits(needs, shape), unmet }
  })
  const fit = nodes.filter(n => n.fits)
  const summary = [`${fit.length} of ${nodes.length} node(s) seen can run it${fit.length > 0 ? `: ${fit.slice(0, 5).map(n => `${n.name} (${n.cause === 'claimed' ? 'claimed' : n.detail})`).join(', ')}` : ''}`]
  // both sides have a say (condor_q -analyze): nodes the job rejects, nodes that reject the job
  const byStart = (u: string): boolean => u.startsWith('the node\'s START ')
  const jobRejects = nodes.filter(n => n.unmet.some(u => !byStart(u))).length
  const nodeRejects = nodes.filter(n => n.unmet.some(byStart)).length
  if (jobRejects + nodeRejects > 0) summary.push(`${jobRejects} node(s) rejected by the job's requirements, ${nodeRejects} reject the job by their START policy`)
  const unmet = new Map<string, string[]>()
  for (const n of nodes) {
    for (const u of n.unmet) {
      const cut = u.lastIndexOf(' (')
      const key = cut > 0 ? u.slice(0, cut) : u
      unmet.set(key, [...(unmet.get(key) ?? []), `${n.name}${cut > 0 ? u.slice(cut) : ''}`])
    }
  }
  for (const [clause, who] of unmet) summary.push(`${clause} fails on ${who.length} node(s): ${who.slice(0, 5).join(', ')}${who.length > 5 ? ', ...' : ''}`)
  return {
    job: id, state: job.state, needs: describeNeeds(needs), nodes, summary,
    ...(core.whyWaiting(id) !== undefined ? { waiting: core.whyWaiting(id) } : {}),
    ...(job.reason !== undefined ? { reason: job.reason } : {})
  }
}

export function analyzeRun (core: RunCore, accounts: NodeAccount[]): RunAnalysis {
  const groups = new Map<string, string[]>()
  const now = Date.now()
  for (const id of core.jobs.keys()) {
    const why = core.whyWaiting(id, now)
    if (why === undefined) continue
    // group by the reason without its job-specific tail (names of parents)
    const key = why.replace(/: [^:]*$/, m => (/parent/.test(why) ? '' : m))
    groups.set(key, [...(groups.get(key) ?? []), id])
  }
  const waiting = [...groups].sort((a, b) => b[1].length - a[1].length)
    .map(([why, ids]) => `${ids.length} job(s) ${why.replace(/^waits/, 'wait')} (${ids.slice(0, 5).join(', ')}${ids.length > 5 ? ', ...' : ''})`)
  return { counts: core.counts(), nodes: summariseAccounts(accounts), waiting }
}
