// Attempt directories of one run on a worker: <data>/runs/<run>/<attempt>/ holds
//   work/     the job's cwd (its user owns it once the inputs are in place)
//   tmp/      its /tmp, /var/tmp and /dev/shm
//   stdout, stderr   written through descriptors the launcher opened (root's files)
//   launch-error     why the job could not start, when it could not
//
// A job is hostile. Every attempt gets directories made fresh by the daemon, and
// nothing a job owned is ever used again: the whole attempt directory goes when the
// attempt is over. The daemon never follows a path the job could have changed: it
// makes the tree and links the inputs before any process of the attempt exists;
// afterwards it opens outputs component by component without following a link
// (openOutput), and removes the tree only once every process of the attempt is dead
// (rm does not follow links either).
import { mkdirSync, chownSync } from 'node:fs'
import { open, rm, opendir, lstat, constants as fsConst, type FileHandle } from 'node:fs/promises'
import path from 'node:path'
import { safeJoin } from '../protocol/paths.ts'
import { BgridError } from '../protocol/errors.ts'
import type { RunAs } from './job-users.ts'

export interface AttemptBox {
  dir: string
  work: string
  tmp: string
  stdout: string
  stderr: string
  /** the containment helper writes here why a job could not start */
  launchError: string
  /** directories the daemon made for the job (work/, tmp/, parents of input and output names) */
  made: string[]
}

export interface SandboxOptions {
  /** who runs the jobs (undefined: the daemon's own user) */
  owner?: RunAs
  /**
   * jobs reach their directory through their own mount namespace (the containment
   * helper binds it): the real tree can be private to the daemon. Without it, a job
   * walks the real path, so the run's directories must let it through.
   */
  privateTree: boolean
}

export class RunSandboxes {
  readonly runDir: string
  private readonly opts: SandboxOptions
  private ready = false

  constructor (runDir: string, opts: SandboxOptions) {
    this.runDir = runDir
    this.opts = opts
  }

  get owner (): RunAs | undefined { return this.opts.owner }

  /**
   * A fresh attempt tree, all of it the daemon's until handOver(): the parents of the
   * input and output names are made inside work/. Synchronous on purpose: a few
   * metadata calls on local disk, where an asynchronous call would add a thread-pool
   * round trip to each.
   */
  create (attempt: string, names: string[]): AttemptBox {
    const traverse = this.opts.privateTree ? 0o700 : 0o711
    if (!this.ready) { mkdirSync(this.runDir, { recursive: true, mode: traverse }); this.ready = true }
    const dir = safeJoin(this.runDir, attempt)
    // mkdir fails if anything is there already: an attempt id is used once
    mkdirSync(dir, { mode: traverse })
    const work = path.join(dir, 'work')
    const tmp = path.join(dir, 'tmp')
    mkdirSync(work, { mode: 0o755 })
    mkdirSync(tmp, { mode: 0o700 })
    const made = [work, tmp]
    const seen = new Set<string>([work])
    for (const name of names) {
      // each missing directory between work/ and the file, outermost first
      const dirs: string[] = []
      for (let d = path.dirname(safeJoin(work, name)); d !== work && !seen.has(d); d = path.dirname(d)) dirs.unshift(d)
      for (const d of dirs) { seen.add(d); mkdirSync(d, { mode: 0o755 }); made.push(d) }
    }
    return { dir, work, tmp, stdout: path.join(dir, 'stdout'), stderr: path.join(dir, 'stderr'), launchError: path.join(dir, 'launch-error'), made }
  }

  /** Inputs are in place: give the job its directories (no process of the attempt exists yet). */
  handOver (box: AttemptBox): void {
    const owner = this.opts.owner
    if (owner === undefined) return
    for (const d of box.made) chownSync(d, owner.uid, owner.gid)
  }

  /** The attempt is over and every process of it is gone: its whole tree goes. */
  async remove (box: AttemptBox): Promise<void> {
    await rm(box.dir, { recursive: true, force: true, maxRetries: 2 })
  }

  /** Session end: whatever is left of the run's attempts. */
  async removeAll (): Promise<void> {
    await rm(this.runDir, { recursive: true, force: true, maxRetries: 2 })
  }
}

/**
 * Open a declared output for reading without following any symbolic link on the way:
 * each directory from work/ down is opened relative to the previous one (openat(2)
 * through /proc/self/fd), the last component with O_NOFOLLOW, and the result must be
 * a regular file. A link, a FIFO or a device is refused with the reason.
 */
export async function openOutput (work: string, name: string): Promise<FileHandle> {
  safeJoin(work, name)
  const parts = name.split('/')
  let dir = await open(work, fsConst.O_RDONLY | fsConst.O_DIRECTORY | fsConst.O_NOFOLLOW)
  try {
    for (const part of parts.slice(0, -1)) {
      let next: FileHandle
      try {
        next = await open(`/proc/self/fd/${dir.fd}/${part}`, fsConst.O_RDONLY | fsConst.O_DIRECTORY | fsConst.O_NOFOLLOW)
      } catch (err: any) {
        throw notAFile(name, err, `${part}/ is`)
      }
      await dir.close()
      dir = next
    }
    let file: FileHandle
    try {
      // O_NONBLOCK: opening a FIFO must not wait for a writer
      file = await open(`/proc/self/fd/${dir.fd}/${parts.at(-1) as string}`, fsConst.O_RDONLY | fsConst.O_NOFOLLOW | fsConst.O_NONBLOCK)
    } catch (err: any) {
      throw notAFile(name, err, 'it is')
    }
    const s = await file.stat()
    if (!s.isFile()) {
      await file.close()
      throw new BgridError('PATH', `${name}: not a regular file`)
    }
    return file
  } finally {
    await dir.close()
  }
}

function notAFile (name: string, err: any, what: string): Error {
  if (err?.code === 'ENOENT') return Object.assign(new Error(`${name}: missing`), { code: 'ENOENT' })
  if (err?.code === 'ELOOP' || err?.code === 'ENOTDIR') return new BgridError('PATH', `${name}: ${what} a symbolic link or not a directory (links are never followed)`)
  return new BgridError('PATH', `${name}: ${err?.message ?? err}`)
}

/**
 * Disk a job used in its directories (allocated blocks, hard links counted once),
 * walked without following links. Files of `notOwnedBy` (the daemon: its input links)
 * are not the job's. Stops counting past maxEntries (a job making millions of files is
 * over its limit by that alone).
 */
export async function diskUsage (dirs: string[], notOwnedBy?: number, maxEntries = 200_000): Promise<{ bytes: number, entries: number }> {
  let bytes = 0
  let entries = 0
  const inodes = new Set<number>()
  const walk = async (d: string): Promise<void> => {
    let handle
    try { handle = await opendir(d) } catch { return }
    for await (const e of handle) {
      if (++entries > maxEntries) return
      const p = path.join(d, e.name)
      let s
      try { s = await lstat(p) } catch { continue }
      if (!inodes.has(s.ino) && s.uid !== notOwnedBy) { inodes.add(s.ino); bytes += s.blocks * 512 }
      if (s.isDirectory()) await walk(p)
    }
  }
  for (const d of dirs) await walk(d)
  return { bytes, entries }
}
