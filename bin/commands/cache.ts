import { BlobStore } from '../../cache/store.ts'
import { openDb } from '../../protocol/db.ts'
import { controlRequest } from '../../protocol/control.ts'
import { BgridError } from '../../protocol/errors.ts'
import path from 'node:path'
import { printable, printableJson, printableLines } from '../../protocol/printable.ts'

const MiB = (n: number): string => `${(n / 1048576).toFixed(1)} MiB`

interface BlobRow { hash: string, size: number, lastUse: number, pins: number }

function show (sub: 'ls' | 'du', blobs: BlobRow[], bytes: number, o: any): void {
  blobs.sort((a, b) => b.lastUse - a.lastUse)
  if (sub === 'ls') {
    if (o.json === true) process.stdout.write(printableJson(blobs, 2) + '\n')
    else {
      for (const m of blobs) {
        const pins = m.pins > 0 ? `  pinned(${m.pins})` : ''
        const used = new Date(m.lastUse).toISOString()
        process.stdout.write(printable(`${m.hash}  ${String(m.size).padStart(12)}  ${used}${pins}`) + '\n')
      }
    }
    return
  }
  const pinned = blobs.filter(m => m.pins > 0).reduce((a, m) => a + m.size, 0)
  const out = { blobs: blobs.length, bytes, pinnedBytes: pinned }
  process.stdout.write(o.json === true
    ? printableJson(out) + '\n'
    : printableLines(`${out.blobs} blob(s), ${MiB(out.bytes)} (${MiB(pinned)} pinned)\n`))
}

export async function cacheCommand (sub: 'ls' | 'du' | 'gc' | 'verify', o: any): Promise<number> {
  if (sub === 'verify') return await verify(o)
  // a running daemon holds the database: ask it (it knows its blob index by heart)
  const sock = path.join(o.dataDir, 'control.sock')
  const live = await controlRequest(sock, { op: 'status' })
  if (live?.reply?.ok === true) {
    if (sub === 'gc') throw new BgridError('IN_USE', `a daemon is running with the data dir ${o.dataDir} (it evicts by itself, within its --cache-quota): stop it first to evict by hand, or give it --cache-quota`)
    const r = await controlRequest(sock, { op: 'cache' }, false, 30_000)
    if (r?.reply?.ok !== true) throw new BgridError('IN_USE', `the data dir ${o.dataDir} is in use by a running daemon that does not list its cache (${String(r?.reply?.error ?? 'no answer')}): stop it, or use another --data-dir`)
    show(sub, r.reply.cache.blobs, r.reply.cache.bytes, o)
    return 0
  }
  const db = await openDb(o.dataDir)
  try {
    const store = new BlobStore(o.dataDir, db)
    await store.load()
    const rows = (): BlobRow[] => store.list().map(([hash, m]) => ({ hash, size: m.size, lastUse: m.lastUse, pins: m.pins }))
    if (sub !== 'gc') { show(sub, rows(), store.used, o); return 0 }
    // gc says what it evicted and what it kept, whatever it did
    const before = rows()
    await store.gc(o.target * 1048576)
    const left = new Set(store.list().map(([hash]) => hash))
    const evicted = before.filter(b => !left.has(b.hash)).map(b => ({ hash: b.hash, size: b.size }))
    const evictedBytes = evicted.reduce((a, b) => a + b.size, 0)
    const pinnedBytes = rows().filter(m => m.pins > 0).reduce((a, m) => a + m.size, 0)
    if (o.json === true) {
      const kept = { keptBytes: store.used, keptBlobs: left.size, pinnedBytes, targetBytes: o.target * 1048576 }
      process.stdout.write(printableJson({ evicted, evictedBytes, ...kept }) + '\n')
    }
    else {
      const over = store.used > o.target * 1048576
        ? `: over the ${String(o.target)} MiB target, the rest is pinned`
        : ''
      process.stdout.write(printableLines(`evicted ${evicted.length} blob(s), ${MiB(evictedBytes)}; ` +
        `kept ${left.size} blob(s), ${MiB(store.used)} (${MiB(pinnedBytes)} pinned)${over}\n`))
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
  if (o.json === true) process.stdout.write(printableJson(report) + '\n')
  else {
    process.stdout.write(`${report.checked} blob(s), ${(report.bytes / 1048576).toFixed(1)} MiB checked: ${report.corrupt.length === 0 ? 'all intact' : `${report.corrupt.length} corrupt, quarantined`}\n`)
    for (const h of report.corrupt) process.stdout.write(`corrupt: ${printable(h)}\n`)
  }
  return report.corrupt.length === 0 ? 0 : 1
}
