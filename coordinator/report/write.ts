// Writes a run's report.html and trace.tsv into its output directory, each whole or
// not at all (a reader, or a browser reloading the page, never sees half a file).
import { mkdir, readdir, rename, rm, writeFile } from 'node:fs/promises'
import { randomBytes } from 'node:crypto'
import path from 'node:path'
import type { RunJson } from './run-json.ts'
import { renderReportHtml } from './html.ts'
import { renderTrace } from './trace.ts'

async function writeAtomically (file: string, text: string): Promise<void> {
  const tmp = `${file}.${process.pid}.${randomBytes(3).toString('hex')}.tmp`
  try {
    await writeFile(tmp, text)
    await rename(tmp, file)
  } catch (err) {
    await rm(tmp, { force: true })
    throw err
  }
}

/** Renders and writes `<outDir>/report.html` and `<outDir>/trace.tsv`; returns the report's path. */
export async function writeRunReport (outDir: string, run: RunJson): Promise<string> {
  await mkdir(outDir, { recursive: true })
  // link only the logs the coordinator could fetch (they come at the end of a run)
  const logFiles = new Set(await readdir(path.join(outDir, 'logs')).catch(() => [] as string[]))
  const report = path.join(outDir, 'report.html')
  await writeAtomically(report, renderReportHtml(run, { logFiles }))
  await writeAtomically(path.join(outDir, 'trace.tsv'), renderTrace(run))
  return report
}
