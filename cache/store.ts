// cache/: content-addressed data shared by the daemon and the coordinator: the blob store,
// the blob protocol, the hashing thread, staged inputs. Imports protocol/ only.
//
// Content-addressed blob store: blobs by SHA-256 under <data>/cas, indexed in LevelDB
// (size, last use, pins, seal, runs). Writes are atomic (temp file + fsync + rename),
// so a crash never leaves a visible partial blob; partial downloads live apart and
// can resume.
//
// Bytes are untrusted until their hash matches, and stay checked:
// - every blob enters as a private copy the store hashed itself (a job's output is
//   copied or reflinked from a descriptor, never renamed, chmodded or chowned);
// - a committed blob is sealed: owner, mode, inode, size and mtime recorded at commit.
//   Before a blob is linked into a sandbox or served, its seal is checked (one lstat);
//   a changed seal means a re-hash, and a mismatch quarantines the copy and is reported
//   (onCorrupt), never swallowed. A background scrub (verifyAll) re-hashes everything
//   for the damage a seal cannot see (a bit flipped under an unchanged mtime);
// - a fresh copy of known bytes replaces the stored one, so a good output repairs a
//   corrupt blob instead of being thrown away.
// Each blob also lists the runs it may be read for (it entered the store for them, or
// one of their holders proved it has the same bytes): a worker serves or links a blob
// only for those runs.
import { createHash } from 'node:crypto'
import { createReadStream, createWriteStream, mkdirSync, lstatSync, fstatSync, readSync, writeFileSync, chmodSync, chownSync, renameSync, unlinkSync, linkSync, type Stats } from 'node:fs'
import { open, rename, stat, unlink, readdir, copyFile, constants as fsConst, chmod, chown, lstat, type FileHandle } from 'node:fs/promises'
import path from 'node:path'
import { pipe } from 'it-pipe'
import type { Db } from '../protocol/db.ts'
import { sub } from '../protocol/db.ts'
import { BgridError } from '../protocol/errors.ts'
import { freeDiskMiB } from './disk.ts'
import { hashFile, INLINE_MAX } from './hasher.ts'
import { bestEffort } from '../protocol/best-effort.ts'
import { sleep } from '../protocol/sleep.ts'

/** What a blob's file looked like when the store committed it. */
export interface Seal { ino: number, mtimeMs: number, mode: number, uid: number }

export interface BlobMeta {
  size: number
  lastUse: number
  pins: number
  seal?: Seal
  /** runs this blob may be served or linked for (most recent last) */
  runs?: string[]
}

/** a blob remembers at most this many runs that may read it */
const MAX_RUNS = 32
const HASH_RE = /^[0-9a-f]{64}$/

export function checkHash (hash: string): void {
  if (!HASH_RE.test(hash)) throw new BgridError('BAD_REQUEST', `not a SHA-256 hex digest: ${hash.slice(0, 80)}`)
}

export interface StoreOptions {
  /** Largest total size of blobs, bytes; unpinned blobs are evicted LRU past it. */
  quotaBytes?: number
  /** Keep this much disk free (MiB) when accepting a blob. */
  reserveMiB?: number
  /** A stored copy did not match its hash (or vanished): it was quarantined. */
  onCorrupt?: (hash: string, why: string) => void
}

export interface VerifyReport { checked: number, bytes: number, corrupt: string[] }

function sealOf (s: Stats): Seal {
  return { ino: s.ino, mtimeMs: s.mtimeMs, mode: s.mode, uid: s.uid }
}

function sealHolds (seal: Seal | undefined, size: number, s: Stats): boolean {
  return seal !== undefined && s.isFile() && s.size === size && s.ino === seal.ino && s.mtimeMs === seal.mtimeMs &&
    s.mode === seal.mode && s.uid === seal.uid
}

/** Where a blob lives under a store's cas/ directory (also for readers without the store open). */
export function blobFile (casRoot: string, hash: string): string {
  checkHash(hash)
  return path.join(casRoot, hash.slice(0, 2), hash)
}

export class BlobStore {
  readonly root: string
  private readonly tmpDir: string
  private readonly quarantineDir: string
  private readonly index: Db
  private readonly opts: StoreOptions
  /** in-memory mirror of the index: cheap `has` on hot paths */
  private readonly known = new Map<string, BlobMeta>()
  private usedBytes = 0
  /** re-hashes under way (a changed seal), one per blob however many callers ask */
  private readonly checking = new Map<string, Promise<void>>()
  /** runs under way here: their blobs are never evicted (a consumer or the collection may still need them) */
  private readonly activeRuns = new Set<string>()

  constructor (dataDir: string, db: Db, opts: StoreOptions = {}) {
    this.root = path.join(dataDir, 'cas')
    this.tmpDir = path.join(this.root, 'tmp')
    this.quarantineDir = path.join(this.root, 'quarantine')
    // nobody but the daemon lists or reads the store: jobs get hard links to single blobs
    mkdirSync(this.root, { recursive: true, mode: 0o700 })
    mkdirSync(this.tmpDir, { recursive: true, mode: 0o700 })
    this.index = sub(db, 'blobs')
    this.opts = opts
  }

  async load (): Promise<void> {
    for await (const [hash, meta] of this.index.iterator()) {
      try {
        const s = await lstat(this.blobPath(hash))
        if (!s.isFile() || s.size !== meta.size) throw new Error('size changed')
        this.known.set(hash, meta)
        this.usedBytes += meta.size
      } catch {
        await this.index.del(hash)
      }
    }
    // temp files of writes that never finished are garbage; .part files may resume
    for (const f of await readdir(this.tmpDir)) if (f.endsWith('.tmp')) await unlink(path.join(this.tmpDir, f)).catch(err => { bestEffort('unlink()', err) })
  }

  blobPath (hash: string): string { return blobFile(this.root, hash) }

  partPath (hash: string): string {
    checkHash(hash)
    return path.join(this.tmpDir, `${hash}.part`)
  }

  has (hash: string): boolean { return this.known.has(hash) }
  sizeOf (hash: string): number | undefined { return this.known.get(hash)?.size }
  meta (hash: string): BlobMeta | undefined { return this.known.get(hash) }
  get used (): number { return this.usedBytes }
  list (): Array<[string, BlobMeta]> { return [...this.known.entries()] }

  /** May this blob be read for this run? */
  allows (hash: string, run: string): boolean { return this.known.get(hash)?.runs?.includes(run) === true }

  /** Let a run read a blob (it entered the store for it, or a holder of that run proved it has these bytes). */
  async grant (hash: string, run: string): Promise<void> {
    const m = this.known.get(hash)
    if (m === undefined || m.runs?.includes(run) === true) return
    m.runs = [...(m.runs ?? []), run].slice(-MAX_RUNS)
    await this.index.put(hash, m)
  }

  /** A run starts using this store: its blobs stay until it ends (whatever the quota says). */
  protect (run: string): void { this.activeRuns.add(run) }
  unprotect (run: string): void { this.activeRuns.delete(run) }

  private evictable (m: BlobMeta): boolean {
    return m.pins === 0 && !(m.runs ?? []).some(r => this.activeRuns.has(r))
  }

  touch (hash: string): void {
    const m = this.known.get(hash)
    if (m === undefined) return
    m.lastUse = Date.now()
    this.index.put(hash, m).catch(err => { bestEffort('this.index.put()', err) })
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
      throw new BgridError('DISK_FULL', `blob store quota of ${Math.round(quota / 1048576)} MiB on this node: need ${Math.ceil(bytes / 1048576)} MiB more, ${Math.max(0, Math.floor((quota - this.usedBytes) / 1048576))} MiB free (blobs of the run under way and pinned ones are never evicted)`)
    }
    const freeMiB = freeDiskMiB(this.root)
    if (bytes / 1048576 + (this.opts.reserveMiB ?? 64) > freeMiB) {
      throw new BgridError('DISK_FULL', `not enough disk for ${Math.ceil(bytes / 1048576)} MiB in ${this.root} (${freeMiB} MiB free)`)
    }
  }

  private tmpName (tag: string): string {
    return path.join(this.tmpDir, `${tag}.${process.pid}.${Math.random().toString(36).slice(2)}.tmp`)
  }

  /**
   * Make a hashed private file the blob: read-only, owned by the daemon, renamed over any
   * copy already there (a fresh copy whose hash we just computed is good by definition;
   * the old one may not be), then sealed.
   */
  private async commit (hash: string, size: number, tmp: string, run?: string): Promise<void> {
    const dest = this.blobPath(hash)
    // metadata calls on local disk, synchronous: an asynchronous call would add a
    // thread-pool round trip to each, behind whatever downloads are writing
    mkdirSync(path.dirname(dest), { recursive: true, mode: 0o700 })
    // immutable: a hard link handed to a job running as another user cannot change it
    chmodSync(tmp, 0o444)
    if (process.getuid?.() === 0) chownSync(tmp, 0, 0)
    renameSync(tmp, dest)
    const old = this.known.get(hash)
    if (old === undefined) this.usedBytes += size
    const runs = old?.runs ?? []
    const meta: BlobMeta = {
      size, lastUse: Date.now(), pins: old?.pins ?? 0, seal: sealOf(lstatSync(dest)),
      runs: run === undefined || runs.includes(run) ? runs : [...runs, run].slice(-MAX_RUNS)
    }
    this.known.set(hash, meta)
    await this.index.put(hash, meta)
  }

  /** Store bytes held in memory. */
  async putBuffer (buf: Uint8Array, run?: string): Promise<{ hash: string, size: number }> {
    const hash = createHash('sha256').update(buf).digest('hex')
    // written even when known: these bytes are good, the stored ones may not be
    if (!this.has(hash)) await this.ensureRoom(buf.length)
    const tmp = this.tmpName(hash)
    const fh = await open(tmp, 'w', 0o600)
    try { await fh.writeFile(buf); await fh.sync() } finally { await fh.close() }
    await this.commit(hash, buf.length, tmp, run)
    return { hash, size: buf.length }
  }

  /**
   * Take a copy of an open file into the store (job outputs and logs). The copy is made
   * from the descriptor: the original, which a job may still reach, is never touched,
   * and what is hashed is the store's own copy (a small file is read once, hashed and
   * written in the same pass; a big one is copied, reflinked where the file system
   * can, and hashed on the hashing thread).
   */
  async importFile (fh: FileHandle | number, run?: string): Promise<{ hash: string, size: number }> {
    const fd = typeof fh === 'number' ? fh : fh.fd
    const { size } = fstatSync(fd)
    await this.ensureRoom(size)
    // a copy even when the bytes are known: they are good, the stored ones may not be
    const tmp = this.tmpName('in')
    try {
      if (size < INLINE_MAX) {
        const buf = Buffer.allocUnsafe(size)
        for (let at = 0; at < size;) {
          const n = readSync(fd, buf, at, size - at, at)
          if (n === 0) throw new BgridError('INTERNAL', 'the file shrank while it was read')
          at += n
        }
        const hash = createHash('sha256').update(buf).digest('hex')
        writeFileSync(tmp, buf, { mode: 0o600, flag: 'wx' })
        await this.commit(hash, size, tmp, run)
        return { hash, size }
      }
      await copyFile(`/proc/self/fd/${fd}`, tmp, fsConst.COPYFILE_FICLONE)
      const got = await hashFile(tmp)
      await this.commit(got.hash, got.size, tmp, run)
      return got
    } catch (err) {
      try { unlinkSync(tmp) } catch (err) { bestEffort('unlinkSync()', err) }
      throw err
    }
  }

  /** Accept a downloaded .part file: verify, then commit. A bad one is deleted. */
  async commitPart (hash: string, size: number, hashedOnTheWay?: string, run?: string): Promise<void> {
    const part = this.partPath(hash)
    // a download that arrived in order was hashed as it came: no second read
    const got = hashedOnTheWay !== undefined ? { hash: hashedOnTheWay, size: (await stat(part)).size } : await hashFile(part)
    if (got.hash !== hash || got.size !== size) {
      await unlink(part).catch(err => { bestEffort('unlink()', err) })
      throw new BgridError('HASH_MISMATCH', `blob ${hash.slice(0, 12)} arrived corrupt (got ${got.hash.slice(0, 12)}, ${got.size} bytes)`)
    }
    await this.commit(hash, size, part, run)
  }

  /**
   * Is the stored copy still the one committed? One lstat against the seal; if that
   * changed, a re-hash decides (and the copy is quarantined if it no longer matches).
   */
  async intact (hash: string): Promise<boolean> {
    try { await this.check(hash); return true } catch (err) {
      if (err instanceof BgridError && (err.code === 'HASH_MISMATCH' || err.code === 'NOT_FOUND')) return false
      throw err
    }
  }

  /** Like intact(), but throws HASH_MISMATCH (or NOT_FOUND) with the reason; `rehash`: whatever the seal says. */
  async check (hash: string, rehash = false): Promise<void> {
    const m = this.known.get(hash)
    if (m === undefined) throw new BgridError('NOT_FOUND', `blob ${hash.slice(0, 12)} is not in this store`)
    let s: Stats | undefined
    try { s = lstatSync(this.blobPath(hash)) } catch (err) { bestEffort('lstatSync()', err) }
    if (!rehash && s !== undefined && sealHolds(m.seal, m.size, s)) return
    let pending = this.checking.get(hash)
    if (pending === undefined) {
      pending = this.rehash(hash, s === undefined ? 'missing' : rehash ? 'a peer received bad bytes from it' : 'its file changed since it was stored').finally(() => { this.checking.delete(hash) })
      this.checking.set(hash, pending)
    }
    await pending
  }

  private async rehash (hash: string, why: string): Promise<void> {
    const file = this.blobPath(hash)
    let s: Stats | undefined
    try { s = await lstat(file) } catch (err) { bestEffort('lstat()', err) }
    if (s === undefined || !s.isFile()) {
      await this.quarantine(hash, `${why}: not a regular file any more`)
      throw new BgridError('NOT_FOUND', `blob ${hash.slice(0, 12)}: ${why}`)
    }
    const got = await hashFile(file).catch((err: Error) => ({ hash: `unreadable (${err.message})`, size: -1 }))
    const m = this.known.get(hash)
    if (got.hash !== hash || m === undefined || got.size !== m.size) {
      await this.quarantine(hash, `${why}; its bytes no longer match (got ${got.hash.slice(0, 12)})`)
      throw new BgridError('HASH_MISMATCH', `blob ${hash.slice(0, 12)} is corrupt in this store (${why}): quarantined`)
    }
    // same bytes (a touch, a copy back): make it ours again and seal it anew
    await chmod(file, 0o444)
    if (process.getuid?.() === 0) await chown(file, 0, 0)
    m.seal = sealOf(await lstat(file))
    await this.index.put(hash, m)
  }

  /** Move a bad copy aside (kept for a look, never served), forget it, tell the daemon. */
  private async quarantine (hash: string, why: string): Promise<void> {
    const m = this.known.get(hash)
    if (m !== undefined) { this.known.delete(hash); this.usedBytes -= m.size }
    await this.index.del(hash)
    mkdirSync(this.quarantineDir, { recursive: true, mode: 0o700 })
    await rename(this.blobPath(hash), path.join(this.quarantineDir, `${hash}.${Date.now()}`)).catch(err => { bestEffort('rename()', err) })
    this.opts.onCorrupt?.(hash, why)
  }

  /** The path of a blob that still holds its bytes (checked), for a reader. */
  async openPath (hash: string): Promise<string> {
    await this.check(hash)
    return this.blobPath(hash)
  }

  /** Copy a blob out to a file (an input for a job running as the daemon's user), hash-checked on the way. */
  async materialize (hash: string, dest: string): Promise<void> {
    await this.check(hash)
    const src = this.blobPath(hash)
    const h = createHash('sha256')
    await pipe(createReadStream(src, { highWaterMark: 1 << 20 }), async (source: AsyncIterable<Buffer>) => {
      const out = createWriteStream(dest, { mode: 0o644, flags: 'wx' })
      for await (const chunk of source) {
        h.update(chunk)
        if (!out.write(chunk)) await new Promise<void>(resolve => out.once('drain', () => { resolve() }))
      }
      await new Promise<void>((resolve, reject) => { out.end((err?: Error | null) => { err != null ? reject(err) : resolve() }) })
    })
    if (h.digest('hex') !== hash) {
      await unlink(dest).catch(err => { bestEffort('unlink()', err) })
      await this.quarantine(hash, 'bytes changed under an intact seal')
      throw new BgridError('HASH_MISMATCH', `blob ${hash.slice(0, 12)} is corrupt on disk: quarantined`)
    }
    this.touch(hash)
  }

  /**
   * Hard-link a checked blob into place: no copy. Only for readers that cannot write it
   * (a job running as another user: the blob is the daemon's and 0444). `dest` must not
   * exist (link never follows or replaces it).
   */
  async linkTo (hash: string, dest: string): Promise<void> {
    await this.check(hash)
    linkSync(this.blobPath(hash), dest)
    this.touch(hash)
  }

  async remove (hash: string): Promise<void> {
    const m = this.known.get(hash)
    if (m === undefined) return
    this.known.delete(hash)
    this.usedBytes -= m.size
    await unlink(this.blobPath(hash)).catch(err => { bestEffort('unlink()', err) })
    await this.index.del(hash)
  }

  /**
   * Re-hash every blob (the scrub): a copy that no longer matches is quarantined and
   * reported. `bytesPerSec` paces it so a background scrub stays in the background.
   */
  async verifyAll (opts: { bytesPerSec?: number, signal?: AbortSignal } = {}): Promise<VerifyReport> {
    const report: VerifyReport = { checked: 0, bytes: 0, corrupt: [] }
    const t0 = Date.now()
    for (const [hash, m] of [...this.known.entries()]) {
      if (opts.signal?.aborted === true) break
      if (!this.known.has(hash)) continue
      const file = this.blobPath(hash)
      const got = await hashFile(file).catch((err: Error) => ({ hash: `unreadable (${err.message})`, size: -1 }))
      report.checked++
      report.bytes += m.size
      if (got.hash !== hash || got.size !== m.size) {
        report.corrupt.push(hash)
        await this.quarantine(hash, `scrub: bytes do not match (got ${got.hash.slice(0, 12)})`)
      } else {
        // a copy proven good under a changed seal is sealed anew
        const s = await lstat(file).catch(() => undefined)
        if (s !== undefined && !sealHolds(m.seal, m.size, s)) await this.rehash(hash, 'scrub').catch(err => { bestEffort('this.rehash()', err) })
      }
      if (opts.bytesPerSec !== undefined && opts.bytesPerSec > 0) {
        const ahead = report.bytes / opts.bytesPerSec * 1000 - (Date.now() - t0)
        if (ahead > 0) await sleep(Math.min(ahead, 60_000))
      }
    }
    return report
  }

  /** Evict unpinned blobs, least recently used first, until at most `targetBytes` remain. */
  async gc (targetBytes = 0): Promise<{ removed: number, freed: number }> {
    const victims = [...this.known.entries()].filter(([, m]) => this.evictable(m)).sort((a, b) => a[1].lastUse - b[1].lastUse)
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
