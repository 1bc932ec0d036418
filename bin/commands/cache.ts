import { BlobStore } from '../../cache/store.ts'
import { openDb } from '../../protocol/db.ts'
import { controlRequest } from '../../daemon/control.ts'
import { BgridError } from '../../protocol/errors.ts'
import path from 'node:path'

export async function cacheCommand (sub: 'ls' | 'du' | 'gc', o: any): Promise<number> {
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
