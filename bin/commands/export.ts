import path from 'node:path'
import { BgridError } from '../../protocol/errors.ts'

/** `bgrid export dagman DAG.json -o DIR [--force]` */
export async function exportCommand (format: string, file: string, o: any): Promise<number> {
  if (format !== 'dagman') throw new BgridError('INVALID_CONFIG', `unknown format ${format} (supported: dagman)`)
  const { exportDagman } = await import('../../coordinator/dagman/export.ts')
  const r = exportDagman(file, path.resolve(o.output), { force: o.force === true })
  for (const w of r.warnings) process.stderr.write(`warning: ${w}\n`)
  const s = r.summary
  process.stdout.write(`${r.dagFile}: ${s.jobs} jobs, ${s.edges} edges${s.retried > 0 ? `, RETRY on ${s.retried}` : ''}; a submit file per job in ${path.join(r.dir, '<job>')}/\n` +
    `run it with: cd ${r.dir} && condor_submit_dag ${r.name}.dag\n`)
  return 0
}
