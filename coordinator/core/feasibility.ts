// Can this node ever run this job? (pure). The same test decides placement on
// claimed workers and whether a job is unplaceable on every node seen, and it
// says why not, clause by clause, with the node's values (condor_q -analyze).
import type { JobSpec } from './model.ts'
import { evalBool, explainFailure, type Attrs, type Expr } from '../../protocol/expr.ts'
import { checkStart, type NodeStart, type StartVerdict } from '../../protocol/start.ts'

/**
 * What a job's fit is judged on: a claimed worker, or a node only seen advertised.
 * `start`: the node's START policy; both sides must agree (HTCondor's two-sided match).
 */
export interface NodeShape { name?: string, slots: number, attrs: Attrs, start?: NodeStart }

export type JobNeeds = Pick<JobSpec, 'cores' | 'ram' | 'requirements'> & { disk?: number }

/** the node's START policy's verdict on the job (its own say in the match) */
export function startVerdict (spec: JobNeeds, n: NodeShape): StartVerdict {
  if (n.start === undefined) return { ok: true }
  return checkStart(n.start.expr, n.attrs, { ram: spec.ram, cores: spec.cores, disk: spec.disk ?? 0, ...(n.start.owner !== undefined ? { owner: n.start.owner } : {}) })
}

/** does the job want this node (its requirements, cores and ram), whatever the node wants? */
export function jobWants (spec: JobNeeds, n: NodeShape): boolean {
  if (spec.cores > n.slots) return false
  if (spec.ram > Number(n.attrs.ram)) return false
  return spec.requirements === null || evalBool(spec.requirements, n.attrs)
}

/** both sides agree: the job wants the node, and the node's START lets the job in */
export function jobFits (spec: JobNeeds, n: NodeShape): boolean {
  return jobWants(spec, n) && startVerdict(spec, n).ok
}

/** Each unmet need, in words: "cores: needs 8 (cores=4)", "`cost >= 5` (cost=0)". */
export function whyNotFits (spec: JobNeeds, n: NodeShape): string[] {
  const out: string[] = []
  if (spec.cores > n.slots) out.push(`cores >= ${spec.cores} (cores=${n.slots})`)
  if (spec.ram > Number(n.attrs.ram)) out.push(`ram >= ${spec.ram} MiB (ram=${String(n.attrs.ram)})`)
  if (spec.requirements !== null && !evalBool(spec.requirements, n.attrs)) {
    // explainFailure says "clause (values)": quote the clause
    for (const c of explainFailure(spec.requirements, n.attrs)) {
      const cut = c.lastIndexOf(' (')
      out.push(cut > 0 ? `\`${c.slice(0, cut)}\`${c.slice(cut)}` : `\`${c}\``)
    }
  }
  const v = startVerdict(spec, n)
  if (!v.ok) for (const c of v.clauses) out.push(`the node's START ${c}`)
  return out
}

/**
 * A job's needs with the run's own requirements added (a node must meet both to run
 * it): their clauses stay separate, so each is explained on its own.
 */
export function withRunRequirements (spec: JobNeeds, run: Expr | null): JobNeeds {
  if (run === null) return spec
  if (spec.requirements === null) return { ...spec, requirements: run }
  const both: Expr = { source: `${run.source} && ${spec.requirements.source}`, ast: { type: 'BinaryExpression', operator: '&&', left: run.ast, right: spec.requirements.ast } as any }
  return { ...spec, requirements: both }
}

/** What a job asks for, in the words of its requirements: "1 core, 2048 MiB, `cost >= 5`" (nothing said of ram it did not ask). */
export function describeNeeds (spec: JobNeeds): string {
  const parts = [`${spec.cores} core${spec.cores === 1 ? '' : 's'}`]
  if (spec.ram > 0) parts.push(`${spec.ram} MiB of RAM`)
  if (spec.requirements !== null) parts.push(`\`${spec.requirements.source}\``)
  return parts.join(', ')
}

/**
 * Why no node among `nodes` can run the job, grouped by unmet clause:
 * "`cost >= 5` fails on 3 node(s): a (cost=0), b (cost=0), c (cost=1)".
 */
export function summariseMisfits (spec: JobNeeds, nodes: NodeShape[]): string[] {
  const groups = new Map<string, string[]>()
  for (const n of nodes) {
    for (const why of whyNotFits(spec, n)) {
      const m = /^(.*?)(?: \(([^()]*)\))?$/.exec(why) as RegExpExecArray
      const key = m[1]
      groups.set(key, [...(groups.get(key) ?? []), `${n.name ?? '?'}${m[2] !== undefined ? ` (${m[2]})` : ''}`])
    }
  }
  return [...groups].map(([clause, who]) => `${clause} fails on ${who.length} node(s): ${who.slice(0, 5).join(', ')}${who.length > 5 ? ', ...' : ''}`)
}
