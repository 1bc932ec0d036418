// `bgrid export dagman DAG.json -o DIR [--force]`: a dag.json read and validated as a run
// would read it, then written in HTCondor DAGMan's form (a .dag and a submit file per job).
import path from 'node:path'
import { BgridError } from '../../protocol/errors.ts'
import { printableLines } from '../../protocol/printable.ts'
import { parseDag, readDagJson } from '../../coordinator/dag-json.ts'
import { dagToDagman, writeDagman, type Exported } from '../../middleware-adapters/condor/export.ts'

/** Read and validate a dag.json, and write its DAGMan form into `dir`. */
export function exportDagman (file: string, dir: string, opts: { force?: boolean } = {}): Exported {
  const dag = parseDag(readDagJson(file), file)
  const r = dagToDagman(dag, { dir, source: path.resolve(file) })
  writeDagman(r, opts)
  return r
}

/** `bgrid export dagman DAG.json -o DIR [--force]` */
export async function exportCommand (format: string, file: string, o: any): Promise<number> {
  if (format !== 'dagman') throw new BgridError('INVALID_CONFIG', `unknown format ${format} (supported: dagman)`)
  const r = exportDagman(file, path.resolve(o.output), { force: o.force === true })
  for (const w of r.warnings) process.stderr.write(`warning: ${printableLines(w)}\n`)
  const s = r.summary
  // file and DAG names are the DAG's own, which may come from anyone
  const retried = s.retried > 0 ? `, RETRY on ${s.retried}` : ''
  process.stdout.write(printableLines(`${r.dagFile}: ${s.jobs} jobs, ${s.edges} edges${retried}; ` +
    `a submit file per job in ${path.join(r.dir, '<job>')}/\n` +
    `run it with: cd ${r.dir} && condor_submit_dag ${r.name}.dag`) + '\n')
  return 0
}
