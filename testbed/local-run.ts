// The reference for every test that runs a DAG on the grid: the same jobs run here, one
// after the other in a plain shell, each in a directory of its own with its inputs
// copied in. What the grid returns must equal this byte for byte.
import { spawnSync } from 'node:child_process'
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { createHash } from 'node:crypto'
import path from 'node:path'
import { parseDag } from '../coordinator/dag-json.ts'

export interface LocalRun {
  /** sha256 of every output, by `job/name` */
  hashes: Map<string, string>
  /** where the outputs are (removed by cleanup()) */
  dirOf: Map<string, string>
  cleanup: () => void
}

/** `env` overrides the jobs' own (a pause that only makes a grid run last longer, say). */
export function runLocally (dagFile: string, scratch: string, env: Record<string, string> = {}): LocalRun {
  const dag = parseDag(JSON.parse(readFileSync(dagFile, 'utf8')), dagFile)
  const root = mkdtempSync(path.join(scratch, 'local-'))
  const hashes = new Map<string, string>()
  const dirOf = new Map<string, string>()
  for (const id of dag.order) {
    const job = dag.byId.get(id)!
    const dir = path.join(root, id)
    mkdirSync(dir)
    for (const input of job.inputs) {
      const dest = path.join(dir, input.name)
      mkdirSync(path.dirname(dest), { recursive: true })
      const src = input.source.kind === 'file' ? input.source.path : path.join(dirOf.get(input.source.job)!, input.source.file)
      copyFileSync(src, dest)
    }
    for (const o of job.outputs) mkdirSync(path.dirname(path.join(dir, o)), { recursive: true })
    const r = spawnSync(job.cmd[0], job.cmd.slice(1), {
      cwd: dir, encoding: 'utf8', timeout: 120_000,
      env: { PATH: '/usr/local/bin:/usr/bin:/bin', HOME: dir, TMPDIR: dir, LANG: 'C.UTF-8', BGRID_JOB: id, BGRID_RETRY: '0', ...job.env, ...env }
    })
    if (r.status !== 0) throw new Error(`local run of ${id} failed (${String(r.status ?? r.signal)}): ${r.stderr}`)
    dirOf.set(id, dir)
    for (const o of job.outputs) hashes.set(`${id}/${o}`, createHash('sha256').update(readFileSync(path.join(dir, o))).digest('hex'))
  }
  return { hashes, dirOf, cleanup: () => { rmSync(root, { recursive: true, force: true }) } }
}

/**
 * Compare a grid run's run.json (every output's sha256) and its collected files in
 * outDir with the local run: the lines that differ, empty when all agree.
 */
export function compareWithLocal (local: LocalRun, run: any, outDir: string): string[] {
  const diffs: string[] = []
  for (const [key, want] of local.hashes) {
    const [job, name] = [key.slice(0, key.indexOf('/')), key.slice(key.indexOf('/') + 1)]
    const got = run.jobs?.[job]?.outputs?.[name]?.sha256
    if (got !== want) diffs.push(`${key}: grid ${String(got)}, local ${want}`)
  }
  for (const [job, rec] of Object.entries(run.jobs ?? {}) as Array<[string, any]>) {
    if (rec.outputs === null) continue
    for (const name of Object.keys(rec.outputs)) {
      let bytes: Buffer
      try { bytes = readFileSync(path.join(outDir, job, name)) } catch { continue } // not collected (an intermediate)
      const local2 = readFileSync(path.join(local.dirOf.get(job)!, name))
      if (!bytes.equals(local2)) diffs.push(`${job}/${name}: the collected file differs from the local one`)
    }
  }
  return diffs
}
