import { readFile, writeFile, mkdir, open } from 'node:fs/promises'
import { randomFillSync } from 'node:crypto'
import path from 'node:path'
import { importWfCommons } from '../../coordinator/wfcommons.ts'
import { BgridError } from '../../protocol/errors.ts'
import { printableLines } from '../../protocol/printable.ts'

async function writeRandomFile (file: string, size: number): Promise<void> {
  const fh = await open(file, 'w')
  try {
    const buf = Buffer.alloc(Math.min(size, 1 << 20))
    for (let done = 0; done < size;) {
      const n = Math.min(buf.length, size - done)
      randomFillSync(buf, 0, n)
      await fh.write(buf, 0, n)
      done += n
    }
  } finally { await fh.close() }
}

export async function importCommand (format: string, trace: string, o: any): Promise<number> {
  if (format === 'dagman') return await importDagman(trace, o)
  if (format !== 'wfcommons') throw new BgridError('INVALID_CONFIG', `unknown format ${format} (supported: wfcommons, dagman)`)
  let raw: unknown
  try { raw = JSON.parse(await readFile(trace, 'utf8')) } catch (err: any) {
    throw new BgridError('INVALID_DAG', `cannot read ${trace}: ${err.message}`)
  }
  const r = importWfCommons(raw, { timeScale: o.timeScale, sizeScale: o.sizeScale, sleep: o.sleep === true })
  const out = path.resolve(o.output)
  const dir = path.dirname(out)
  await mkdir(path.join(dir, 'inputs'), { recursive: true })
  let bytes = 0
  for (const f of r.external) { await writeRandomFile(path.join(dir, 'inputs', f.name), f.size); bytes += f.size }
  await writeFile(out, JSON.stringify(r.dag, null, 1) + '\n')
  // the trace names the files: it may come from anyone
  process.stdout.write(printableLines(`${out}: ${r.tasks} jobs, ${r.totalRuntime.toFixed(1)} s of work, ` +
    `${r.external.length} input file(s) (${(bytes / 1048576).toFixed(1)} MiB) in ${path.join(dir, 'inputs')}`) + '\n')
  return 0
}

/** `bgrid import dagman FILE.dag -o dag.json [--lenient] [--dot graph.dot]` */
async function importDagman (file: string, o: any): Promise<number> {
  const { readDagmanFile } = await import('../../middleware-adapters/condor/dag-file.ts')
  const { dagmanToDagJson } = await import('../../middleware-adapters/condor/to-dag-json.ts')
  const { dagmanDot } = await import('../../middleware-adapters/condor/dot.ts')
  const { parseDag } = await import('../../coordinator/dag-json.ts')
  const lenient = o.lenient === true
  const dag = readDagmanFile(file, { inlineSubdags: lenient })
  // the graph is written even when bgrid cannot run the DAG: it helps to see why
  if (typeof o.dot === 'string') await writeFile(path.resolve(o.dot), dagmanDot(dag))
  const out = path.resolve(o.output)
  const r = dagmanToDagJson(dag, { out, lenient })
  parseDag(r.dag, out)
  await mkdir(path.dirname(out), { recursive: true })
  await writeFile(out, JSON.stringify(r.dag, null, 1) + '\n')
  // node names and submit commands are the DAG's own, which may come from anyone
  const say = (s: string): void => { process.stderr.write(printableLines(s) + '\n') }
  for (const w of r.warnings) say(`warning: ${w}`)
  if (r.ignored.length > 0) say(`accepted, not applied (pool-only): ${r.ignored.join('; ')}`)
  for (const u of r.unknown) say(`unknown submit command: ${u}`)
  if (r.renamed.length > 0) say(`${r.renamed.length} node name(s) changed to fit bgrid's job ids: ${r.renamed.slice(0, 5).map(([a, b]) => `${a} -> ${b}`).join(', ')}${r.renamed.length > 5 ? ', ...' : ''}`)
  if (r.priorities.size > 0) say(`PRIORITY of ${r.priorities.size} job(s) not in dag.json (it has no priority field yet)`)
  const s = r.summary
  const left = `${s.done > 0 ? ` (${s.done} DONE left out)` : ''}${s.noop > 0 ? `, ${s.noop} NOOP` : ''}`
  const graph = typeof o.dot === 'string' ? `; graph in ${path.resolve(o.dot)}` : ''
  process.stdout.write(printableLines(`${out}: ${s.jobs} jobs from ${s.nodes} DAGMan nodes${left}, ` +
    `${s.edges} edges${graph}`) + '\n')
  return 0
}
