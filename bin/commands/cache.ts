import { BlobStore } from '../../cache/store.ts'
import { openDb } from '../../protocol/db.ts'
import { controlRequest } from '../../daemon/control.ts'
import { BgridError } from '../../protocol/errors.ts'
import path from 'node:path'

export async function cacheCommand (sub: 'ls' | 'du' | 'gc' | 'verify', o: any): Promise<number> {
  if (sub === 'verify') return await verify(o)
  // the daemon holds the database lock while it runs: it must be stopped for gc and reads
  const live = await controlRequest(path.join(o.dataDir, 'control.sock'), { op: 'status' })
  if (live?.reply?.ok === true) {
    if (sub === 'gc') throw new BgridError('INVALID_CONFIG', `a daemon is running with ${o.dataDir}: stop it first, or give it --cache-quota`)
    const c = live.reply.status.cache
    if (sub === 'du' || o.json !== true) { process.stdout.write(`${c.blobs} blob(s), ${(c.bytes / 1048576).toFixed(1)} MiB (daemon running: per-blob listing needs it stopped)\n`); return 0 }
  }
  const db = await openDb(o.dataDir)
  try {
    const store = new BlobStore(o.dataDir, db)
    await store.load()
    const blobs = store.list().sort((a, b) => b[1].lastUse - a[1].lastUse)
    if (sub === 'ls') {
      if (o.json === true) process.stdout.write(JSON.stringify(blobs.map(([hash, m]) => ({ hash, ...m })), null, 2) + '\n')
      else for (const [hash, m] of blobs) process.stdout.write(`${hash}  ${String(m.size).padStart(12)}  ${new Date(m.lastUse).toISOString()}${m.pins > 0 ? `  pinned(${m.pins})` : ''}\n`)
    } else if (sub === 'du') {
      const pinned = blobs.filter(([, m]) => m.pins > 0).reduce((a, [, m]) => a + m.size, 0)
      const out = { blobs: blobs.length, bytes: store.used, pinnedBytes: pinned }
      process.stdout.write(o.json === true ? JSON.stringify(out) + '\n' : `${out.blobs} blob(s), ${(out.bytes / 1048576).toFixed(1)} MiB (${(pinned / 1048576).toFixed(1)} MiB pinned)\n`)
    } else {
      const r = await store.gc(o.target * 1048576)
      process.stdout.write(`removed ${r.removed} blob(s), freed ${(r.freed / 1048576).toFixed(1)} MiB; ${(store.used / 1048576).toFixed(1)} MiB left\n`)
    }
  } finally {
    await db.close()
  }
  return 0
}

/** `bgrid cache verify`: re-hash every blob (through the daemon when it runs); exit 1 when any was corrupt. */
async function verify (o: any): Promise<number> {
  const sock = path.join(o.dataDir, 'control.sock')
  let report: { checked: number, bytes: number, corrupt: string[] } | undefined
  const live = await controlRequest(sock, { op: 'status' })
  if (live?.reply?.ok === true) {
    const r = await controlRequest(sock, { op: 'verify' }, false, 24 * 3_600_000)
    if (r?.reply?.ok !== true) throw new BgridError('INTERNAL', `the daemon could not verify its store: ${String(r?.reply?.error ?? 'no answer')}`)
    report = r.reply.report
  } else {
    const db = await openDb(o.dataDir)
    try {
      const store = new BlobStore(o.dataDir, db)
      await store.load()
      report = await store.verifyAll()
    } finally { await db.close() }
  }
  if (report === undefined) return 1
  if (o.json === true) process.stdout.write(JSON.stringify(report) + '\n')
  else {
    process.stdout.write(`${report.checked} blob(s), ${(report.bytes / 1048576).toFixed(1)} MiB checked: ${report.corrupt.length === 0 ? 'all intact' : `${report.corrupt.length} corrupt, quarantined`}\n`)
    for (const h of report.corrupt) process.stdout.write(`corrupt: ${h}\n`)
  }
  return report.corrupt.length === 0 ? 0 : 1
}
