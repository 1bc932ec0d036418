// DAGMan's configuration: the DAGMAN_* settings a DAG runs under, from the -config file,
// the DAG's CONFIG files and the _CONDOR_ environment (as HTCondor's condor_config_val
// would give them to condor_dagman).
import { readFileSync } from 'node:fs'
import path from 'node:path'
import { BgridError, errorMessage } from '../../protocol/errors.ts'
import type { DagmanDag } from './dag-file.ts'

/** DAGMan configuration: the DAG's CONFIG file, then _CONDOR_ variables (which win) */
export function dagmanConfig (dag: DagmanDag, env: Record<string, string | undefined>, configFile?: string): Map<string, string> {
  const cfg = new Map<string, string>()
  const read = (f: string, where: string): void => {
    let text: string
    try { text = readFileSync(f, 'utf8') } catch (err) { throw new BgridError('INVALID_DAG', `${where}: ${errorMessage(err)}`) }
    for (const line of text.split('\n')) {
      const m = /^\s*([A-Za-z_][A-Za-z0-9_.]*)\s*=\s*(.*?)\s*$/.exec(line)
      if (m !== null) cfg.set(m[1].toUpperCase(), m[2])
    }
  }
  if (configFile !== undefined) read(path.resolve(configFile), `-config ${configFile}`)
  for (const c of dag.commands) {
    if (c.keyword !== 'CONFIG') continue
    read(path.resolve(dag.dir, c.args.trim()), `${path.relative(dag.dir, c.at.file) || c.at.file}:${c.at.line}: CONFIG ${c.args}`)
  }
  for (const [k, v] of Object.entries(env)) if (k.startsWith('_CONDOR_') && v !== undefined) cfg.set(k.slice(8).toUpperCase(), v)
  return cfg
}

/** a boolean setting (TRUE/FALSE, YES/NO, 1/0), or its default */
export function bool (v: string | undefined, dflt: boolean): boolean {
  if (v === undefined || v.trim() === '') return dflt
  return /^(true|t|yes|y|1)$/i.test(v.trim()) ? true : /^(false|f|no|n|0)$/i.test(v.trim()) ? false : dflt
}
/** an integer setting, or its default */
export function int (v: string | undefined, dflt: number): number {
  const n = Number(v)
  return v === undefined || v.trim() === '' || !Number.isInteger(n) ? dflt : n
}
