// `bgrid status RUN --analyze [JOB]` (condor_q -better-analyze): why a run or a job
// waits, every node seen accounted for, and for a job each node's fit, clause by clause.
import path from 'node:path'
import { controlRequest } from '../../protocol/control.ts'
import { resolveRunId, readRun } from '../../coordinator/runs.ts'
import { runsDirOf } from '../../coordinator/run-dir.ts'
import { BgridError } from '../../protocol/errors.ts'
import { printableJson, printableLines } from '../../protocol/printable.ts'

export async function analyzeCommand (runArg: string, job: string | undefined, o: { dataDir: string, json?: boolean }): Promise<number> {
  const id = resolveRunId(o.dataDir, runArg)
  const live = await controlRequest(path.join(runsDirOf(o.dataDir), id, 'control.sock'), { op: 'analyze', ...(job !== undefined ? { job } : {}) }, false, 10_000)
  if (live !== undefined) {
    if (live.reply?.ok !== true) throw new BgridError('NOT_FOUND', String(live.reply?.error ?? 'the run did not answer'))
    const a = live.reply.analysis
    if (o.json === true) { process.stdout.write(printableJson(a, 2) + '\n'); return 0 }
    const lines: string[] = []
    if (job !== undefined) {
      lines.push(`job ${String(a.job)}: ${String(a.state)}; it needs ${String(a.needs)}`)
      if (a.waiting !== undefined) lines.push(`  ${String(a.waiting)}`)
      if (a.reason !== undefined) lines.push(`  ${String(a.reason)}`)
      for (const l of a.summary) lines.push(`  ${String(l)}`)
      for (const n of a.nodes) lines.push(`    ${String(n.name)}: ${n.fits === true ? 'can run it' : `cannot (${(n.unmet as string[]).join('; ')})`}${n.cause === 'requirements' || n.cause === 'grid-key' ? '' : `; ${n.cause === 'claimed' ? 'a worker of this run' : String(n.detail)}`}`)
    } else {
      const c = a.counts
      lines.push(`run ${id}: ${c.done} done, ${c.running} running, ${c.ready + c.pending} waiting, ${c.failed} failed`)
      for (const l of a.waiting) lines.push(`  ${String(l)}`)
      if (a.nodes.length > 0) lines.push('  nodes seen and not workers of this run:')
      for (const l of a.nodes) lines.push(`    ${String(l)}`)
    }
    // names, details and reasons come from nodes and workers: each line is escaped
    process.stdout.write(printableLines(lines.join('\n')) + '\n')
    return 0
  }
  // the run is over: what it recorded
  const run = await readRun(o.dataDir, id)
  const s = run.status
  if (s === undefined) throw new BgridError('NOT_FOUND', `run ${id} left nothing to analyze${run.note !== undefined ? ` (${run.note})` : ''}`)
  if (job !== undefined && s.jobs?.[job] === undefined) throw new BgridError('NOT_FOUND', `no job ${job} in run ${id}`)
  if (o.json === true) {
    const recorded = job !== undefined ? s.jobs[job] : { state: s.state, error: s.error, nodes: s.nodes }
    process.stdout.write(printableJson(recorded, 2) + '\n')
    return 0
  }
  const lines = [`run ${id} is over (${String(s.state)})${s.error !== undefined ? `: ${String(s.error.message)}` : ''}`]
  if (job !== undefined) lines.push(`  job ${job}: ${String(s.jobs[job].state)}${s.jobs[job].reason !== undefined ? `: ${String(s.jobs[job].reason)}` : ''}`)
  for (const n of s.nodes ?? []) lines.push(`    ${String(n.name)}: ${String(n.cause)}: ${String(n.detail)}`)
  process.stdout.write(printableLines(lines.join('\n')) + '\n')
  return 0
}
