import { readFile, writeFile, mkdir, open } from 'node:fs/promises'
import { randomFillSync } from 'node:crypto'
import path from 'node:path'
import { importWfCommons } from '../../coordinator/wfcommons.ts'
import { BgridError } from '../../protocol/errors.ts'

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
  if (format !== 'wfcommons') throw new BgridError('INVALID_CONFIG', `unknown format ${format} (supported: wfcommons)`)
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
  process.stdout.write(`${out}: ${r.tasks} jobs, ${r.totalRuntime.toFixed(1)} s of work, ${r.external.length} input file(s) (${(bytes / 1048576).toFixed(1)} MiB) in ${path.join(dir, 'inputs')}\n`)
  return 0
}
