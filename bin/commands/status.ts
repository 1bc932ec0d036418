import { readFile, readdir } from 'node:fs/promises'
import path from 'node:path'
import { controlRequest } from '../../daemon/control.ts'
import { runDirOf } from '../../coordinator/coordinator.ts'
import { BgridError } from '../../protocol/errors.ts'

async function readStatus (dataDir: string, id: string): Promise<any> {
  const dir = runDirOf(dataDir, id)
  const live = await controlRequest(path.join(dir, 'control.sock'), { op: 'status' })
  if (live?.reply?.ok === true) return live.reply.status
  try { return JSON.parse(await readFile(path.join(dir, 'status.json'), 'utf8')) } catch {}
  throw new BgridError('NOT_FOUND', `no run ${id} in ${path.dirname(dir)}`)
}

function render (s: any): string {
  const c = s.counts
  const lines = [
    `run ${s.run} (${s.dag}): ${s.state}`,
    `  jobs: ${c.done} done, ${c.running} running, ${c.ready} ready, ${c.pending} pending, ${c.failed} failed, ${c.skipped} skipped, ${c.cancelled} cancelled`,
    `  workers: ${s.workers.filter((w: any) => w.alive).length} alive of ${s.workers.length}`,
    `  outputs: ${s.outDir}`
  ]
  for (const w of s.waiting ?? []) lines.push(`  waiting: ${w}`)
  const failed = Object.entries(s.jobs).filter(([, j]: any) => j.state === 'failed')
  for (const [id, j] of failed.slice(0, 10) as any) lines.push(`  failed ${id}: ${j.reason}`)
  return lines.join('\n')
}

export async function statusCommand (id: string | undefined, o: any): Promise<number> {
  if (id === undefined) {
    const daemon = await controlRequest(path.join(o.dataDir, 'control.sock'), { op: 'status' })
    const runsDir = path.join(o.dataDir, 'coordinator', 'runs')
    const runs = await readdir(runsDir).catch(() => [] as string[])
    if (o.json === true) {
      process.stdout.write(JSON.stringify({ daemon: daemon?.reply?.status ?? null, runs }, null, 2) + '\n')
      return 0
    }
    if (daemon?.reply?.ok === true) {
      const d = daemon.reply.status
      process.stdout.write(`daemon ${d.peer}: ${d.state}, ${d.running} job(s) running, cache ${d.cache.blobs} blob(s) ${(d.cache.bytes / 1048576).toFixed(1)} MiB\n`)
      if (d.policy?.notOffered !== undefined) process.stdout.write(`  not offered: ${String(d.policy.notOffered)}\n`)
    } else process.stdout.write(`no daemon running with data dir ${o.dataDir}\n`)
    for (const r of runs.sort()) {
      try { const s = await readStatus(o.dataDir, r); process.stdout.write(`${r}: ${s.state}, ${s.counts.done}/${Object.keys(s.jobs).length} done\n`) } catch {}
    }
    return 0
  }
  const s = await readStatus(o.dataDir, id)
  process.stdout.write((o.json === true ? JSON.stringify(s, null, 2) : render(s)) + '\n')
  return 0
}

export async function cancelCommand (id: string, o: any): Promise<number> {
  const dir = runDirOf(o.dataDir, id)
  const r = await controlRequest(path.join(dir, 'control.sock'), { op: 'cancel' })
  if (r === undefined || r.reply?.ok !== true) throw new BgridError('NOT_FOUND', `run ${id} is not running here`)
  process.stdout.write(`cancelling run ${id}: its workers are being released\n`)
  return 0
}
