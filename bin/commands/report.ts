// `bgrid report RUN`: writes report.html and trace.tsv for a run, from its live status
// while it runs or from what it left when it ended, and prints where the page is.
import path from 'node:path'
import { resolveRunId, readRun } from '../../coordinator/runs.ts'
import { writeRunReport } from '../../coordinator/report/write.ts'
import type { RunJson } from '../../coordinator/report/run-json.ts'
import { BgridError } from '../../protocol/errors.ts'
import { printableLines } from '../../protocol/printable.ts'

export async function reportCommand (idOrPrefix: string, o: { dataDir: string, out?: string }): Promise<number> {
  const id = resolveRunId(o.dataDir, idOrPrefix)
  const info = await readRun(o.dataDir, id)
  if (info.status === undefined) throw new BgridError('NOT_FOUND', `run ${id} has no status to report${info.note !== undefined ? ` (${info.note})` : ''}`)
  const run = info.status as RunJson
  const outDir = o.out ?? run.outDir
  if (outDir === undefined) throw new BgridError('INVALID_CONFIG', `run ${id} does not say where its outputs are: give --out`)
  process.stdout.write(printableLines(await writeRunReport(path.resolve(outDir), run)) + '\n')
  return 0
}
