// The remote cache's source side: the submitter's input files served by content
// address straight from where they are (no copy), refused if they changed since
// they were hashed. A stat cache spares re-hashing unchanged files across runs.
import { stat, readFile, writeFile, rename, mkdir } from 'node:fs/promises'
import path from 'node:path'
import { hashFile } from './hasher.ts'
import { BgridError } from '../protocol/errors.ts'
import type { BlobSource } from './blob-protocol.ts'

interface StatEntry { size: number, mtimeMs: number, ino: number, hash: string }

export class StatCache {
  private entries: Record<string, StatEntry> = {}
  private readonly file: string
  hits = 0
  misses = 0
  constructor (file: string) { this.file = file }

  async load (): Promise<void> {
    try { this.entries = JSON.parse(await readFile(this.file, 'utf8')) } catch { this.entries = {} }
  }

  async hash (abs: string): Promise<{ hash: string, size: number }> {
    const s = await stat(abs)
    const e = this.entries[abs]
    if (e !== undefined && e.size === s.size && e.mtimeMs === s.mtimeMs && e.ino === s.ino) { this.hits++; return { hash: e.hash, size: e.size } }
    this.misses++
    const h = await hashFile(abs)
    this.entries[abs] = { size: h.size, mtimeMs: s.mtimeMs, ino: s.ino, hash: h.hash }
    return h
  }

  async save (): Promise<void> {
    await mkdir(path.dirname(this.file), { recursive: true })
    const tmp = `${this.file}.${process.pid}.tmp`
    await writeFile(tmp, JSON.stringify(this.entries))
    await rename(tmp, this.file)
  }
}

export class StagedFiles implements BlobSource {
  private readonly byHash = new Map<string, { path: string, size: number, mtimeMs: number }>()

  async add (abs: string, hash: string, size: number): Promise<void> {
    const s = await stat(abs)
    this.byHash.set(hash, { path: abs, size, mtimeMs: s.mtimeMs })
  }

  has (hash: string): boolean { return this.byHash.has(hash) }
  sizeOf (hash: string): number | undefined { return this.byHash.get(hash)?.size }

  async openPath (hash: string): Promise<string> {
    const e = this.byHash.get(hash)
    if (e === undefined) throw new BgridError('NOT_FOUND', `no staged file ${hash.slice(0, 12)}`)
    const s = await stat(e.path)
    if (s.size !== e.size || s.mtimeMs !== e.mtimeMs) throw new BgridError('HASH_MISMATCH', `${e.path} changed since it was submitted`)
    return e.path
  }
}

/** Serve from the first source that has the blob. */
export function combineSources (...sources: BlobSource[]): BlobSource {
  return {
    sizeOf: (hash) => { for (const s of sources) { const n = s.sizeOf(hash); if (n !== undefined) return n } return undefined },
    openPath: async (hash) => {
      for (const s of sources) if (s.sizeOf(hash) !== undefined) return await s.openPath(hash)
      throw new BgridError('NOT_FOUND', `no blob ${hash.slice(0, 12)}`)
    },
    touch: (hash) => { for (const s of sources) s.touch?.(hash) }
  }
}
