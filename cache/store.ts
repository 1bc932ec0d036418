// Content-addressed blob store: blobs by SHA-256 under <data>/cas, indexed in LevelDB
// (size, last use, pins). Writes are atomic (temp file + fsync + rename), so a crash
// never leaves a visible partial blob; partial downloads live apart and can resume.
import { createHash } from 'node:crypto'
import { createReadStream, createWriteStream, mkdirSync } from 'node:fs'
import { open, rename, stat, unlink, readdir, copyFile, constants as fsConst, link, chmod } from 'node:fs/promises'
import path from 'node:path'
import { pipe } from 'it-pipe'
import type { Db } from '../daemon/store.ts'
import { sub } from '../daemon/store.ts'
import { BgridError } from '../protocol/errors.ts'
import { freeDiskMiB } from '../daemon/resources.ts'
import { hashFile } from './hasher.ts'

export interface BlobMeta { size: number, lastUse: number, pins: number }

const HASH_RE = /^[0-9a-f]{64}$/

export function checkHash (hash: string): void {
  if (!HASH_RE.test(hash)) throw new BgridError('BAD_REQUEST', `not a SHA-256 hex digest: ${hash.slice(0, 80)}`)
}

export interface StoreOptions {
  /** Largest total size of blobs, bytes; unpinned blobs are evicted LRU past it. */
  quotaBytes?: number
  /** Keep this much disk free (MiB) when accepting a blob. */
  reserveMiB?: number
}

export class BlobStore {
  readonly root: string
  private readonly tmpDir: string
  private readonly index: Db
  private readonly opts: StoreOptions
  /** in-memory mirror of the index: cheap `has` on hot paths */
  private readonly known = new Map<string, BlobMeta>()
  private usedBytes = 0

  constructor (dataDir: string, db: Db, opts: StoreOptions = {}) {
    this.root = path.join(dataDir, 'cas')
    this.tmpDir = path.join(this.root, 'tmp')
    mkdirSync(this.tmpDir, { recursive: true, mode: 0o700 })
    this.index = sub(db, 'blobs')
    this.opts = opts
  }

  async load (): Promise<void> {
    for await (const [hash, meta] of this.index.iterator()) {
      try {
        const s = await stat(this.blobPath(hash))
        if (s.size !== meta.size) throw new Error('size changed')
        this.known.set(hash, meta)
        this.usedBytes += meta.size
      } catch {
        await this.index.del(hash)
      }
    }
    // temp files of writes that never finished are garbage; .part files may resume
    for (const f of await readdir(this.tmpDir)) if (f.endsWith('.tmp')) await unlink(path.join(this.tmpDir, f)).catch(() => {})
  }

  blobPath (hash: string): string {
    checkHash(hash)
    return path.join(this.root, hash.slice(0, 2), hash)
  }

  partPath (hash: string): string {
    checkHash(hash)
    return path.join(this.tmpDir, `${hash}.part`)
  }

  has (hash: string): boolean { return this.known.has(hash) }
  sizeOf (hash: string): number | undefined { return this.known.get(hash)?.size }
  async openPath (hash: string): Promise<string> { return this.blobPath(hash) }
  meta (hash: string): BlobMeta | undefined { return this.known.get(hash) }
  get used (): number { return this.usedBytes }
  list (): Array<[string, BlobMeta]> { return [...this.known.entries()] }

  touch (hash: string): void {
    const m = this.known.get(hash)
    if (m === undefined) return
    m.lastUse = Date.now()
    this.index.put(hash, m).catch(() => {})
  }

  async pin (hash: string, delta = 1): Promise<void> {
    const m = this.known.get(hash)
    if (m === undefined) return
    m.pins = Math.max(0, m.pins + delta)
    await this.index.put(hash, m)
  }

  /** Refuse early, with a clear error, when `bytes` more would not fit. */
  async ensureRoom (bytes: number): Promise<void> {
    const quota = this.opts.quotaBytes
    if (quota !== undefined && this.usedBytes + bytes > quota) await this.gc(quota - bytes)
    if (quota !== undefined && this.usedBytes + bytes > quota) {
      throw new BgridError('DISK_FULL', `blob store quota: need ${bytes} bytes, ${quota - this.usedBytes} free of ${quota} (pinned blobs cannot be evicted)`)
    }
    const freeMiB = freeDiskMiB(this.root)
    if (bytes / 1048576 + (this.opts.reserveMiB ?? 64) > freeMiB) {
      throw new BgridError('DISK_FULL', `not enough disk for ${Math.ceil(bytes / 1048576)} MiB in ${this.root} (${freeMiB} MiB free)`)
    }
  }

  private async commit (hash: string, size: number, tmp: string): Promise<void> {
    const dest = this.blobPath(hash)
    mkdirSync(path.dirname(dest), { recursive: true })
    // blobs are immutable: read-only, so a hard link handed to an unprivileged job cannot change them
    await chmod(tmp, 0o444)
    await rename(tmp, dest)
    if (!this.known.has(hash)) this.usedBytes += size
    const meta: BlobMeta = { size, lastUse: Date.now(), pins: this.known.get(hash)?.pins ?? 0 }
    this.known.set(hash, meta)
    await this.index.put(hash, meta)
  }

  /** Store bytes held in memory. */
  async putBuffer (buf: Uint8Array): Promise<{ hash: string, size: number }> {
    const hash = createHash('sha256').update(buf).digest('hex')
    if (this.has(hash)) { this.touch(hash); return { hash, size: buf.length } }
    await this.ensureRoom(buf.length)
    const tmp = path.join(this.tmpDir, `${hash}.${process.pid}.${Math.random().toString(36).slice(2)}.tmp`)
    const fh = await open(tmp, 'w', 0o600)
    try { await fh.writeFile(buf); await fh.sync() } finally { await fh.close() }
    await this.commit(hash, buf.length, tmp)
    return { hash, size: buf.length }
  }

  /**
   * Take a file into the store (job outputs and logs): renamed in when it is on the same
   * file system (no copy), copied otherwise; the original is gone afterwards. The private
   * copy is hashed once: what is hashed is what is stored.
   */
  async moveIn (file: string): Promise<{ hash: string, size: number }> {
    const tmp = path.join(this.tmpDir, `in.${process.pid}.${Math.random().toString(36).slice(2)}.tmp`)
    try {
      await rename(file, tmp)
    } catch {
      await this.ensureRoom((await stat(file)).size)
      await copyFile(file, tmp, fsConst.COPYFILE_FICLONE)
      await unlink(file).catch(() => {})
    }
    const { hash, size } = await hashFile(tmp)
    if (this.has(hash)) {
      this.touch(hash)
      await unlink(tmp).catch(() => {})
      return { hash, size }
    }
    try { await this.ensureRoom(size) } catch (err) { await unlink(tmp).catch(() => {}); throw err }
    await this.commit(hash, size, tmp)
    return { hash, size }
  }

  /** Accept a downloaded .part file: verify, then commit. A bad one is deleted. */
  async commitPart (hash: string, size: number, hashedOnTheWay?: string): Promise<void> {
    const part = this.partPath(hash)
    // a download that arrived in order was hashed as it came: no second read
    const got = hashedOnTheWay !== undefined ? { hash: hashedOnTheWay, size: (await stat(part)).size } : await hashFile(part)
    if (got.hash !== hash || got.size !== size) {
      await unlink(part).catch(() => {})
      throw new BgridError('HASH_MISMATCH', `blob ${hash.slice(0, 12)} arrived corrupt (got ${got.hash.slice(0, 12)}, ${got.size} bytes)`)
    }
    await this.commit(hash, size, part)
  }

  /** Copy a blob out to a file (sandbox input), verifying its hash on the way. */
  async materialize (hash: string, dest: string): Promise<void> {
    const src = this.blobPath(hash)
    if (!this.has(hash)) throw new BgridError('NOT_FOUND', `blob ${hash.slice(0, 12)} is not in this store`)
    mkdirSync(path.dirname(dest), { recursive: true })
    const h = createHash('sha256')
    await pipe(createReadStream(src, { highWaterMark: 1 << 20 }), async (source: AsyncIterable<Buffer>) => {
      const out = createWriteStream(dest, { mode: 0o644 })
      for await (const chunk of source) {
        h.update(chunk)
        if (!out.write(chunk)) await new Promise<void>(resolve => out.once('drain', () => { resolve() }))
      }
      await new Promise<void>((resolve, reject) => { out.end((err?: Error | null) => { err != null ? reject(err) : resolve() }) })
    })
    if (h.digest('hex') !== hash) {
      await this.remove(hash)
      await unlink(dest).catch(() => {})
      throw new BgridError('HASH_MISMATCH', `blob ${hash.slice(0, 12)} is corrupt on disk: removed`)
    }
    this.touch(hash)
  }

  /**
   * Hard-link a blob into place: no copy. Only for readers that cannot write it (a job
   * running as another user: the blob is root-owned and 0444), since the inode is shared.
   */
  async linkTo (hash: string, dest: string): Promise<void> {
    if (!this.has(hash)) throw new BgridError('NOT_FOUND', `blob ${hash.slice(0, 12)} is not in this store`)
    mkdirSync(path.dirname(dest), { recursive: true })
    await link(this.blobPath(hash), dest)
    this.touch(hash)
  }

  async remove (hash: string): Promise<void> {
    const m = this.known.get(hash)
    if (m === undefined) return
    this.known.delete(hash)
    this.usedBytes -= m.size
    await unlink(this.blobPath(hash)).catch(() => {})
    await this.index.del(hash)
  }

  /** Evict unpinned blobs, least recently used first, until at most `targetBytes` remain. */
  async gc (targetBytes = 0): Promise<{ removed: number, freed: number }> {
    const victims = [...this.known.entries()].filter(([, m]) => m.pins === 0).sort((a, b) => a[1].lastUse - b[1].lastUse)
    let removed = 0
    let freed = 0
    for (const [hash, m] of victims) {
      if (this.usedBytes <= targetBytes) break
      await this.remove(hash)
      removed++
      freed += m.size
    }
    return { removed, freed }
  }
}
