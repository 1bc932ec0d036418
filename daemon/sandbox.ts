// Attempt directories of one run on a worker: <data>/runs/<run>/b<n>/ holds
//   work/     the job's cwd (its user owns it once the inputs are in place)
//   tmp/      its /tmp, /var/tmp and /dev/shm: root's, sticky and world-writable as
//             /tmp itself is, so the job owns what it puts there, never the directory
//   stdout, stderr   written through descriptors the launcher opened (root's files)
//   launch-error     why the job could not start, when it could not
//
// A job is hostile. work/ is made fresh by the daemon for every attempt and goes when
// it is over (an empty one is moved aside to the run's trash and deleted with the run:
// on ext4, deleting directories as fast as short jobs end makes every mkdir scan the
// recently freed inodes); tmp/ is emptied: nothing a job owned is ever used again. The box around
// them is root's, private, and the job never sees it (its mount namespace shows work/
// and tmp/ alone): that box, its tmp/ and its two log files are kept for a later
// attempt of the same run, so that one directory is made and removed per attempt (on
// this kind of disk each costs a few tenths of a millisecond, and short jobs come by
// the thousand). The daemon never follows a path the job could have changed: it makes
// the tree and links the inputs before any process of the attempt exists; afterwards
// it opens outputs component by component without following a link (openOutput), and
// removes what the job left only once every process of the attempt is dead (rm does
// not follow links either).
//
// Where the daemon can (root, loop devices), a box is instead the root of a file system
// of its own, as big as the attempt's disk limit (sandbox-fs.ts): taken ready from a
// pool and given back to it, never moved to the run's trash. Elsewhere the disk a job
// used is found by walking its directories (diskUsage), by descriptor, never by path.
import {
  mkdirSync, chownSync, chmodSync, renameSync, unlinkSync, rmdirSync, openSync, closeSync, fstatSync, lstatSync,
  existsSync, opendirSync
} from 'node:fs'
import { spawn } from 'node:child_process'
import { rm, opendir, lstat, open, constants as fsConst } from 'node:fs/promises'
import path from 'node:path'
import { safeJoin } from '../protocol/paths.ts'
import { BgridError } from '../protocol/errors.ts'
import type { RunAs } from './job-users.ts'
import type { SandboxFilesystems, SandboxFs } from './sandbox-fs.ts'
import { tryBestEffort } from '../protocol/best-effort.ts'

export interface AttemptBox {
  dir: string
  work: string
  tmp: string
  stdout: string
  stderr: string
  /** the containment helper writes here why a job could not start */
  launchError: string
  /** directories the daemon made for the job (work/, parents of input and output names) */
  made: string[]
  /** input names directly in work/ (unlinked by name at the end: a final component is never followed) */
  topInputs: string[]
  /** the helper wrote launch-error */
  launchFailed?: boolean
  /** the box is a file system of its own, the attempt's disk limit (see sandbox-fs.ts) */
  fs?: SandboxFs
  /** bytes of the inputs copied into that file system (not the job's) */
  inputBytes?: number
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
  /** boxes kept for later attempts */
  spare?: number
  /** a file system of its own for each attempt, when the machine allows (else the box is walked) */
  filesystems?: SandboxFilesystems
}

export class RunSandboxes {
  readonly runDir: string
  private readonly opts: SandboxOptions
  private ready = false
  private seq = 0
  private trashed = 0
  private readonly free: string[] = []

  constructor (runDir: string, opts: SandboxOptions) {
    this.runDir = runDir
    this.opts = opts
  }

  get owner (): RunAs | undefined { return this.opts.owner }

  /**
   * A box with fresh work/ and tmp/, all of it the daemon's until handOver(): the
   * parents of the input and output names are made inside work/. Synchronous on
   * purpose: a few metadata calls on local disk, where an asynchronous call would add a
   * thread-pool round trip to each.
   */
  create (inputs: string[], outputs: string[]): AttemptBox {
    const traverse = this.opts.privateTree ? 0o700 : 0o711
    if (!this.ready) {
      mkdirSync(this.runDir, { recursive: true, mode: traverse })
      mkdirSync(path.join(this.runDir, '.trash'), { mode: 0o700 })
      this.ready = true
    }
    let dir = this.free.pop()
    if (dir === undefined) {
      dir = path.join(this.runDir, `b${++this.seq}`)
      mkdirSync(dir, { mode: traverse })
      makeTmp(dir)
    }
    return fillBox(dir, inputs, outputs)
  }

  /**
   * A box for an attempt whose disk limit is `diskMiB`: where the daemon has sandbox
   * file systems, one of that size (a ready one, else made now), else create(). Its
   * inputs are copied in (a hard link cannot cross file systems): the file system has
   * room for them beyond the limit, rounded up to 64 MiB so that jobs with inputs of
   * about the same size share ready file systems.
   */
  async createFor (inputs: string[], outputs: string[], diskMiB: number, inputBytes = 0): Promise<AttemptBox> {
    const pool = this.opts.filesystems
    if (pool === undefined) return this.create(inputs, outputs)
    const room = inputBytes > 0 ? Math.ceil(inputBytes / (64 << 20)) * 64 : 0
    const fs = await pool.take(diskMiB + room)
    try {
      return { ...fillBox(fs.dir, inputs, outputs), fs, inputBytes }
    } catch (err) {
      pool.give(fs)
      throw err
    }
  }

  /** Inputs are in place: give the job its directories (no process of the attempt exists yet). */
  handOver (box: AttemptBox): void {
    const owner = this.opts.owner
    if (owner === undefined) return
    for (const d of box.made) chownSync(d, owner.uid, owner.gid)
  }

  /**
   * The attempt is over and every process of it is gone: work/ and what the job left in
   * tmp/ go, and the box waits for the next attempt (its log files are truncated when
   * reopened). Synchronous: renames; the deleting happens in the background.
   */
  release (box: AttemptBox): void {
    if (box.launchFailed === true) tryBestEffort('releasing a sandbox', () => { unlinkSync(box.launchError) })
    for (const f of box.topInputs) tryBestEffort('releasing a sandbox', () => { unlinkSync(f) })
    if (box.fs !== undefined) {
      // a file system of its own: the logs (kept in the store by now) and the directories
      // the daemon made go at once; anything else the job left is wiped by the pool
      for (const f of [box.stdout, box.stderr]) tryBestEffort('releasing a sandbox', () => { unlinkSync(f) })
      for (const d of [...box.made].reverse()) tryBestEffort('releasing a sandbox', () => { rmdirSync(d) })
      this.opts.filesystems?.give(box.fs)
      return
    }
    // out of the way at once (a rename); what it holds is deleted in the background
    this.discard(box.work)
    // what the job put in tmp/ goes with it, whole (one rename, however many entries it
    // made); a fresh root-owned sticky tmp/ takes its place
    if (!isEmptyDir(box.tmp)) this.discard(box.tmp)
    if (!exists(box.tmp)) tryBestEffort('releasing a sandbox', () => { makeTmp(box.dir) })
    // the box is used again only as new: no work/ left, an empty tmp/ of the daemon's
    // (a rename that failed leaves what the job owned where it was: the whole box goes)
    const fresh = !exists(box.work) && exists(box.tmp) && isEmptyDir(box.tmp)
    if (fresh && this.free.length < (this.opts.spare ?? 16)) this.free.push(box.dir)
    else this.discard(box.dir)
  }

  /** deletions waiting, done one at a time (see discard) */
  private readonly doomed: string[] = []
  private deleting = false

  /**
   * Move something the job left into the run's trash now; delete it later, one at a
   * time. Freeing a file's blocks can wait on the disk (a discard, on some mounts), and
   * each deletion holds one of libuv's four threads, the ones blob downloads write
   * through. An empty directory stays in the trash until the run ends (see the header).
   */
  private discard (p: string): void {
    const to = path.join(this.runDir, '.trash', String(++this.trashed))
    try { renameSync(p, to) } catch { return }
    let empty = false
    tryBestEffort('discarding what a job left', () => { empty = lstatSync(to).isDirectory() && isEmptyDir(to) })
    if (empty) return
    this.doomed.push(to)
    if (!this.deleting) this.deleteNext()
  }

  private deleteNext (): void {
    const next = this.doomed.shift()
    if (next === undefined) { this.deleting = false; return }
    this.deleting = true
    rm(next, { recursive: true, force: true, maxRetries: 2 }).catch(() => {}).finally(() => { this.deleteNext() })
  }

  /**
   * Session end: whatever is left of the run's attempts goes. Renamed out of the way at
   * once (a later session of the same run starts clean), deleted in the background.
   */
  async removeAll (): Promise<void> {
    this.free.length = 0
    this.doomed.length = 0
    const gone = path.join(path.dirname(this.runDir), `.gone-${path.basename(this.runDir)}-${Date.now()}`)
    try { renameSync(this.runDir, gone) } catch { return }
    removeInBackground(gone)
  }
}

/**
 * Open a declared output for reading without following any symbolic link on the way:
 * each directory from work/ down is opened relative to the previous one (openat(2)
 * through /proc/self/fd), the last component with O_NOFOLLOW, and the result must be
 * a regular file. A link, a FIFO or a device is refused with the reason. Returns a file
 * descriptor (the caller closes it). Synchronous: a few opens on local disk.
 */
export function openOutput (work: string, name: string): number {
  safeJoin(work, name)
  const parts = name.split('/')
  let dir = openSync(work, fsConst.O_RDONLY | fsConst.O_DIRECTORY | fsConst.O_NOFOLLOW)
  try {
    for (const part of parts.slice(0, -1)) {
      let next: number
      try {
        next = openSync(`/proc/self/fd/${dir}/${part}`, fsConst.O_RDONLY | fsConst.O_DIRECTORY | fsConst.O_NOFOLLOW)
      } catch (err: any) {
        throw notAFile(name, err, `${part}/ is`)
      }
      closeSync(dir)
      dir = next
    }
    let file: number
    try {
      // O_NONBLOCK: opening a FIFO must not wait for a writer
      file = openSync(`/proc/self/fd/${dir}/${parts.at(-1) as string}`, fsConst.O_RDONLY | fsConst.O_NOFOLLOW | fsConst.O_NONBLOCK)
    } catch (err: any) {
      throw notAFile(name, err, 'it is')
    }
    if (!fstatSync(file).isFile()) {
      closeSync(file)
      throw new BgridError('PATH', `${name}: not a regular file`)
    }
    return file
  } finally {
    closeSync(dir)
  }
}

function notAFile (name: string, err: any, what: string): Error {
  if (err?.code === 'ENOENT') return Object.assign(new Error(`${name}: missing`), { code: 'ENOENT' })
  if (err?.code === 'ELOOP' || err?.code === 'ENOTDIR') return new BgridError('PATH', `${name}: ${what} a symbolic link or not a directory (links are never followed)`)
  return new BgridError('PATH', `${name}: ${err?.message ?? err}`)
}

/** a box's tmp/: root's, sticky and world-writable, as /tmp is */
function makeTmp (boxDir: string): void {
  const tmp = path.join(boxDir, 'tmp')
  mkdirSync(tmp)
  // mode after mkdir: the umask must not take the sticky, world-writable bits away
  chmodSync(tmp, 0o1777)
}

/** work/ (always new: mkdir fails if anything is there) and the parents of the file names in it */
function fillBox (dir: string, inputs: string[], outputs: string[]): AttemptBox {
  const work = path.join(dir, 'work')
  mkdirSync(work, { mode: 0o755 })
  const made = [work]
  const seen = new Set<string>([work])
  for (const name of [...inputs, ...outputs]) {
    // each missing directory between work/ and the file, outermost first
    const dirs: string[] = []
    for (let d = path.dirname(safeJoin(work, name)); d !== work && !seen.has(d); d = path.dirname(d)) dirs.unshift(d)
    for (const d of dirs) { seen.add(d); mkdirSync(d, { mode: 0o755 }); made.push(d) }
  }
  return {
    dir, work, tmp: path.join(dir, 'tmp'), stdout: path.join(dir, 'stdout'), stderr: path.join(dir, 'stderr'),
    launchError: path.join(dir, 'launch-error'), made,
    topInputs: inputs.filter(n => !n.includes('/')).map(n => path.join(work, n))
  }
}

/** whether anything is at this path (a link itself, not what it points to) */
function exists (p: string): boolean {
  try { lstatSync(p); return true } catch { return false }
}

/** Whether a directory has no entry, read one entry at most (a job may leave millions). */
function isEmptyDir (d: string): boolean {
  let dir
  try { dir = opendirSync(d) } catch { return true }
  try { return dir.readSync() === null } finally { dir.closeSync() }
}

/** What a walk of a job's directories found; `over`: why it is over the limit whatever its size. */
export interface WalkedUsage { bytes: number, entries: number, over?: string }

const O_DIR = fsConst.O_RDONLY | fsConst.O_DIRECTORY | fsConst.O_NOFOLLOW
/** deeper than this counts as over the limit (each level holds a descriptor while walked) */
const MAX_DEPTH = 1000

/**
 * Why an entry the walk must count could not be read: over the limit (what cannot be
 * counted is not allowed). Undefined when it was deleted meanwhile (a running job's).
 */
function unreadable (err: any): string | undefined {
  return err?.code === 'ENOENT' ? undefined : `a file or directory it made cannot be read (${String(err?.code ?? err)})`
}

/**
 * diskUsage, synchronously, for the check when a job ends (most leave a few files: a
 * walk of metadata calls, without a thread-pool round trip for each).
 */
export function diskUsageSync (dirs: string[], notOwnedBy?: number, maxEntries = 200_000): WalkedUsage {
  const u: WalkedUsage = { bytes: 0, entries: 0 }
  const inodes = new Set<number>()
  const walk = (fd: number, depth: number): void => {
    const at = `/proc/self/fd/${fd}`
    // entry by entry: a directory of millions is not read whole before the cap applies
    let dir
    try { dir = opendirSync(at) } catch (err) { u.over ??= unreadable(err); return }
    try {
      for (let e = dir.readSync(); e !== null && u.over === undefined; e = dir.readSync()) {
        if (++u.entries > maxEntries) { u.over = `more than ${maxEntries} files`; return }
        let s
        try { s = lstatSync(`${at}/${e.name}`) } catch (err) { u.over = unreadable(err); continue }
        if (!inodes.has(s.ino) && s.uid !== notOwnedBy) { inodes.add(s.ino); u.bytes += s.blocks * 512 }
        if (!s.isDirectory()) continue
        if (depth >= MAX_DEPTH) { u.over = `directories nested more than ${MAX_DEPTH} deep`; return }
        let sub
        try { sub = openSync(`${at}/${e.name}`, O_DIR) } catch (err) { u.over = unreadable(err); continue }
        try { walk(sub, depth + 1) } finally { closeSync(sub) }
      }
    } finally { dir.closeSync() }
  }
  for (const d of dirs) {
    let fd
    try { fd = openSync(d, O_DIR) } catch (err) { u.over ??= unreadable(err); continue }
    try { walk(fd, 1) } finally { closeSync(fd) }
  }
  return u
}

/**
 * Disk a job used in its directories (allocated blocks, hard links counted once),
 * walked without following links and without paths: each directory is opened relative
 * to its parent's descriptor (/proc/self/fd/N/name, openat(2)'s equivalent), so a tree
 * nested deeper than PATH_MAX is counted like any other. Files of `notOwnedBy` (the
 * daemon: its input links) are not the job's. A directory that cannot be read, a tree
 * deeper than MAX_DEPTH or more than maxEntries entries make the job over its limit
 * (`over`), whatever the bytes say. Used where an attempt has no file system of its own.
 */
export async function diskUsage (dirs: string[], notOwnedBy?: number, maxEntries = 200_000): Promise<WalkedUsage> {
  // the common case, a job that left nothing: one entry read per directory
  if (dirs.every(d => isEmptyDir(d))) return { bytes: 0, entries: 0 }
  const u: WalkedUsage = { bytes: 0, entries: 0 }
  const inodes = new Set<number>()
  const walk = async (fd: number, depth: number): Promise<void> => {
    const at = `/proc/self/fd/${fd}`
    let handle
    try { handle = await opendir(at) } catch (err) { u.over ??= unreadable(err); return }
    for await (const e of handle) {
      if (u.over !== undefined) break
      if (++u.entries > maxEntries) { u.over = `more than ${maxEntries} files`; break }
      let s
      try { s = await lstat(`${at}/${e.name}`) } catch (err) { u.over = unreadable(err); continue }
      if (!inodes.has(s.ino) && s.uid !== notOwnedBy) { inodes.add(s.ino); u.bytes += s.blocks * 512 }
      if (!s.isDirectory()) continue
      if (depth >= MAX_DEPTH) { u.over = `directories nested more than ${MAX_DEPTH} deep`; break }
      let sub
      try { sub = await open(`${at}/${e.name}`, O_DIR) } catch (err) { u.over = unreadable(err); continue }
      try { await walk(sub.fd, depth + 1) } finally { await sub.close() }
    }
  }
  for (const d of dirs) {
    let h
    try { h = await open(d, O_DIR) } catch (err) { u.over ??= unreadable(err); continue }
    try { await walk(h.fd, 1) } finally { await h.close() }
  }
  return u
}

/**
 * Delete a tree without getting in anyone's way: a detached `rm -rf` at idle I/O
 * priority and nice 19 (a run leaves thousands of entries, and freeing them can wait on
 * the disk); where ionice is missing, rm alone, still niced. The daemon's start-up
 * removes whatever a stop interrupted (runs/ is cleared).
 */
export function removeInBackground (dir: string): void {
  const argv = existsSync('/usr/bin/ionice') ? ['/usr/bin/ionice', '-c3', '/usr/bin/nice', '-n19', 'rm', '-rf', '--one-file-system', dir] : ['/usr/bin/nice', '-n19', 'rm', '-rf', '--one-file-system', dir]
  try {
    const child = spawn(argv[0], argv.slice(1), { stdio: 'ignore', detached: true })
    child.on('error', () => { rm(dir, { recursive: true, force: true }).catch(() => {}) })
    child.unref()
  } catch {
    rm(dir, { recursive: true, force: true }).catch(() => {})
  }
}
