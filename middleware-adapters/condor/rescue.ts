// Rescue DAGs, as condor_dagman writes and finds them: FILE.rescue001, 002... next to
// the DAG file. A partial rescue DAG (the default) holds only the DONE nodes and is read
// together with the original DAG; a full one (DAGMAN_WRITE_PARTIAL_RESCUE = False) is
// the whole DAG again, with DONE on the nodes that finished and the retries left, and
// is run on its own.
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { BgridError } from '../../protocol/errors.ts'
import { readDagmanFile, type DagmanDag, type DagmanNode } from './dag-file.ts'
import type { DagmanEngine, DagResult, NodeState } from './engine.ts'
import type { DagmanOut } from './dagman-logs.ts'
import type { DagmanRunOptions } from './dag-run.ts'
import { dagmanConfig, bool, int } from './config.ts'
import { splitLines } from './lexer/lines.ts'
import { doubleQuoted, twoDigits } from './quote.ts'
import { bestEffort } from '../../protocol/best-effort.ts'

/** DAGMAN_MAX_RESCUE_NUM's default */
export const MAX_RESCUE = 100

export function rescueName (dagFile: string, n: number): string {
  return `${dagFile}.rescue${String(n).padStart(3, '0')}`
}

/** the highest rescue number written for this DAG file (0: none) */
export function lastRescue (dagFile: string): number {
  const base = path.basename(dagFile) + '.rescue'
  let best = 0
  let names: string[] = []
  try { names = readdirSync(path.dirname(dagFile)) } catch (err) { bestEffort('readdirSync()', err) }
  for (const f of names) {
    if (!f.startsWith(base)) continue
    const m = /^(\d{3})$/.exec(f.slice(base.length))
    if (m !== null) best = Math.max(best, Number(m[1]))
  }
  return best
}

/** the node names a partial rescue DAG says are DONE (a full one is run as a DAG of its own) */
/** what a partial rescue DAG says: DONE nodes, and RETRY counts left (its other lines make it a full one) */
export function rescueDoneNodes (file: string): { done: string[], retries: Map<string, number>, full: boolean } {
  const text = readFileSync(file, 'utf8')
  const done: string[] = []
  const retries = new Map<string, number>()
  let full = false
  const lines = splitLines(text)
  for (let i = 0; i < lines.text.length; i++) {
    if (lines.comment[i]) continue
    const toks = lines.text[i].trim().split(/\s+/)
    const kw = toks[0]?.toUpperCase()
    if (kw === undefined || kw === '') continue
    if (kw === 'DONE' && toks[1] !== undefined) done.push(toks[1])
    else if (kw === 'RETRY' && toks[1] !== undefined && /^\d+$/.test(toks[2] ?? '')) retries.set(toks[1], Number(toks[2]))
    else full = true
  }
  return { done, retries, full }
}

function header (dag: DagmanDag, engine: DagmanEngine, partial: boolean, now: Date): string[] {
  const failed = engine.nodes.flatMap((n, i) => engine.state[i].status === 'error' ? [n.name] : [])
  return [
    '# Rescue DAG file, created after running',
    `#   the ${path.basename(dag.file)} DAG file`,
    `# Created ${now.getUTCMonth() + 1}/${now.getUTCDate()}/${now.getUTCFullYear()} ${twoDigits(now.getUTCHours())}:${twoDigits(now.getUTCMinutes())}:${twoDigits(now.getUTCSeconds())} UTC`,
    `# Rescue DAG version: 2.0.1 (${partial ? 'partial' : 'full'})`,
    '#',
    `# Total number of Nodes: ${engine.nodes.length}`,
    `# Nodes premarked DONE: ${engine.state.filter(s => s.status === 'done').length}`,
    `# Nodes that failed: ${failed.length}`,
    `#   ${failed.map(f => f + ',').join('')}<ENDLIST>`,
    ''
  ]
}

/** a partial rescue DAG: the DONE nodes (read with the original DAG file) */
export function partialRescue (dag: DagmanDag, engine: DagmanEngine, now: Date, resetRetries: boolean): string {
  const lines = header(dag, engine, true, now)
  dag.nodes.forEach((n, i) => {
    const s = engine.state[i]
    if (s.status === 'done' && n.kind !== 'FINAL') lines.push(`DONE ${n.name}`)
    // as DAGMan's: the retries left, when they are not reset upon rescue (DAGMAN_RESET_RETRIES_UPON_RESCUE)
    if (n.retry !== null && n.retry.count > 0 && !resetRetries && s.status !== 'done') lines.push(...retryLines(n, s))
  })
  return lines.join('\n') + '\n'
}

/** a node's RETRY block in a rescue DAG: what was performed, and what is left */
function retryLines (n: DagmanNode, s: NodeState, resetRetries = false): string[] {
  const retry = n.retry
  if (retry === null || retry.count === 0) return []
  const out: string[] = []
  const left = Math.max(0, retry.count - s.retries)
  if (s.status === 'error' && s.retryStopped) out.push(`# ${s.retries} of ${retry.count} retries performed; remaining attempts aborted after node returned ${s.returnValue ?? ''}`)
  else if (!resetRetries) out.push(`# ${s.retries} of ${retry.count} retries already performed; ${left} remaining`)
  out.push(`RETRY ${n.name} ${resetRetries ? retry.count : left}${retry.unlessExit !== null ? ` UNLESS-EXIT ${retry.unlessExit}` : ''}`)
  return out
}


/** a full rescue DAG: every node again, DONE where it finished, with the retries it has left */
export function fullRescue (dag: DagmanDag, engine: DagmanEngine, now: Date, resetRetries: boolean): string {
  const lines = header(dag, engine, false, now)
  const byName = new Map(engine.nodes.map((n, i) => [n.name, i]))
  const rel = (f: string): string => { const r = path.relative(dag.dir, f); return r === '' || r.startsWith('..') ? f : r }
  for (const n of dag.nodes) {
    const i = byName.get(n.name) as number
    const s = engine.state[i]
    const kw = n.kind === 'SUBDAG' ? 'SUBDAG EXTERNAL' : n.kind
    // relative names in the rescue DAG start from the top DAG's directory (splices' nodes included)
    const dir = n.dir !== dag.dir ? ` DIR ${rel(n.dir)}` : ''
    // DAGMan's layout (Dag::WriteNodeToRescue): the JOB line with a space after each part
    lines.push('', `${kw} ${n.name} ${n.submit} ${dir !== '' ? `${dir.trim()} ` : ''}${n.noop ? 'NOOP ' : ''}`)
    const script = (k: string): void => { for (const sc of n.scripts) if (sc.kind === k) lines.push(`SCRIPT ${sc.kind} ${n.name} ${sc.command}`) }
    script('PRE')
    if (n.preSkip !== null) lines.push(`PRE_SKIP ${n.name} ${n.preSkip.code}`)
    script('POST')
    // one value per name (the last given wins), $(JOB) as DAGMan put it in
    const vars = new Map<string, string>()
    for (const v of n.vars) vars.set(v.name, v.value.replaceAll('$(JOB)', n.name))
    if (vars.size > 0) lines.push(`VARS ${n.name} ${[...vars].map(([k, v]) => `${k}=${doubleQuoted(v)}`).join(' ')}`)
    if (n.abortDagOn !== null) lines.push(`ABORT-DAG-ON ${n.name} ${n.abortDagOn.value}${n.abortDagOn.returnValue !== null ? ` RETURN ${n.abortDagOn.returnValue}` : ''}`)
    if (n.priority !== null && n.priority.value !== 0) lines.push(`PRIORITY ${n.name} ${n.priority.value}`)
    if (n.category !== null) lines.push(`CATEGORY ${n.name} ${n.category.name}`)
    // a FINAL node is never marked DONE
    if (s.status === 'done' && n.kind !== 'FINAL') lines.push(`DONE ${n.name}`)
    lines.push(...retryLines(n, s, resetRetries))
  }
  lines.push('')
  // one line per parent, with its children
  const childrenOf = new Map<number, string[]>()
  for (const n of dag.nodes) for (const p of n.parents) { let c = childrenOf.get(p); if (c === undefined) { c = []; childrenOf.set(p, c) } c.push(n.name) }
  for (const [p, kids] of childrenOf) lines.push(`PARENT ${dag.nodes[p].name} CHILD ${kids.join(' ')}`)
  for (const m of dag.maxJobs) lines.push(`MAXJOBS ${m.category} ${m.limit}`)
  for (const c of dag.commands) lines.push(`${c.keyword} ${c.args}`)
  return lines.join('\n') + '\n'
}

/** Where a run starts: the DAG (or the full rescue DAG a failed run left), its configuration, what is done. */
export interface RescueStart {
  dag: DagmanDag
  cfg: Map<string, string>
  /** the DAG file run: the one given, or a full rescue DAG */
  dagFile: string
  rescueNum: number
  maxRescue: number
  /** nodes a partial rescue DAG marks DONE, and the retries they had left */
  done: Set<string>
  retriesLeft: Map<string, number>
}

/** Read a DAG and the rescue DAG a failed run left: DONE nodes (partial) or the DAG to run (full). */
export function startFromRescue (dagFile: string, o: Pick<DagmanRunOptions, 'autoRescue' | 'doRescueFrom' | 'configFile'>,
  env: Record<string, string | undefined>, out: DagmanOut): RescueStart {
  let first = readDagmanFile(dagFile)
  let cfg = dagmanConfig(first, env, o.configFile)
  const autoRescue = o.autoRescue ?? bool(cfg.get('DAGMAN_AUTO_RESCUE'), true)
  const maxRescue = int(cfg.get('DAGMAN_MAX_RESCUE_NUM'), MAX_RESCUE)
  let rescueNum = o.doRescueFrom ?? (autoRescue ? lastRescue(dagFile) : 0)
  if (rescueNum > maxRescue) rescueNum = maxRescue
  const done = new Set<string>()
  let retriesLeft = new Map<string, number>()
  if (rescueNum > 0) {
    const rf = rescueName(dagFile, rescueNum)
    if (!existsSync(rf)) throw new BgridError('NOT_FOUND', `rescue DAG ${rf} does not exist (-dorescuefrom ${rescueNum})`)
    const r = rescueDoneNodes(rf)
    out.line(`Running rescue DAG ${rescueNum} (${path.basename(rf)})${r.full ? ', a full rescue DAG' : ''}`)
    if (r.full) { first = readDagmanFile(rf, { rescue: true }); cfg = dagmanConfig(first, env, o.configFile); dagFile = rf } else { for (const d of r.done) done.add(d); retriesLeft = r.retries }
  }
  return { dag: first, cfg, dagFile, rescueNum, maxRescue, done, retriesLeft }
}

/**
 * A rescue DAG, as DAGMan writes one: when the DAG failed before its FINAL node (whatever
 * FINAL then did); none when it succeeded (ABORT-DAG-ON ... RETURN 0 included). Its file, or null.
 */
export function writeRescue (dag: DagmanDag, engine: DagmanEngine, result: DagResult, outBase: string,
  cfg: Map<string, string>, maxRescue: number, out: DagmanOut): string | null {
  let rescue: string | null = null
  if ((engine.beforeFinal() ?? result).exitCode !== 0 || result.exitCode !== 0) {
    const num = lastRescue(outBase) + 1
    if (num <= maxRescue) {
      rescue = rescueName(outBase, num)
      const partial = bool(cfg.get('DAGMAN_WRITE_PARTIAL_RESCUE'), true)
      const reset = bool(cfg.get('DAGMAN_RESET_RETRIES_UPON_RESCUE'), true)
      const text = partial ? partialRescue(dag, engine, new Date(), reset) : fullRescue(dag, engine, new Date(), reset)
      writeFileSync(rescue, text)
      out.line(`Writing Rescue DAG file ${path.basename(rescue)}`)
    } else out.line(`Rescue DAG ${num} would be more than DAGMAN_MAX_RESCUE_NUM (${maxRescue}): none written`)
  }
  return rescue
}
