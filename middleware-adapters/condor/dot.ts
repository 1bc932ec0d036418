// The DAG as a Graphviz file in DAGMan's DOT style (Dag::DumpDotFile): a label with the
// time, an optional INCLUDE file's lines, one ellipse per node labelled with its state
// ("(I)" not run yet, "(Done)" in bold for DONE nodes), then one arc per edge.
import { readFileSync } from 'node:fs'
import type { DagmanDag } from './dag-file.ts'
import { ctime } from './quote.ts'
import { bestEffort } from '../../protocol/best-effort.ts'


const q = (s: string): string => `"${s.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`

export function dagmanDot (dag: DagmanDag, opts: { include?: string | null, now?: Date } = {}): string {
  const lines = ['digraph DAG {', `    label="DAGMan Job status at ${ctime(opts.now ?? new Date())}";`, '']
  const include = opts.include ?? dag.dot?.include ?? null
  if (include !== null) {
    let text: string | null = null
    try { text = readFileSync(include, 'utf8') } catch (err) { bestEffort('readFileSync()', err) }
    if (text !== null) lines.push(`// Beginning of commands included from ${include}.`, text.replace(/\n$/, ''), `// End of commands included from ${include}.`, '')
  }
  for (const n of dag.nodes) {
    lines.push(n.done !== null
      ? `    ${q(n.name)} [shape=ellipse label=${q(`${n.name} (Done)`)} style=bold];`
      : `    ${q(n.name)} [shape=ellipse label=${q(`${n.name} (I)`)}];`)
  }
  const children: number[][] = dag.nodes.map(() => [])
  for (const n of dag.nodes) for (const p of n.parents) children[p].push(n.index)
  for (const n of dag.nodes) for (const c of children[n.index]) lines.push(`    ${q(n.name)} -> ${q(dag.nodes[c].name)};`)
  lines.push('}', '')
  return lines.join('\n')
}
