// A file system of its own for each job attempt: the disk limit enforced by the kernel.
//
// A job's box (its work/, its private /tmp, its stdout and stderr) is the root of a
// small ext4 file system: a sparse image in <data>/sandfs/ on a loop device, mounted
// nosuid,nodev at <data>/sandfs/f<n>/, as big as the job's disk limit plus ext4's own
// metadata, with a bounded number of inodes. Whatever the job does (trees deeper than
// any path, files deleted while open, fallocate, floods of empty files) ends in ENOSPC
// inside the job, and the daemon reads how full the file system is with one statfs.
// HTCondor's STARTD_ENFORCE_DISK_LIMITS does the same with a loopback file system or a
// logical volume. (This kernel has no ext4/xfs project quota, so quotas are out.)
//
// Making one costs tens of milliseconds (mkfs, mount): too much for jobs that last a
// millisecond. So each size has a few ready file systems, made ahead of time one at a
// time in the background, and a released one is wiped and used again: at once when the
// job left nothing (the common short job), by a background rm when it left a few files,
// and replaced (unmounted, image deleted, a fresh one made) when it left many. Every
// process of an attempt is dead before its box is released (the job has its own PID
// namespace), so nothing still writes there.
//
// Mounts use discard: what a job deletes is punched out of the image at once, so the
// volunteer's disk gets the space back. Every image, loop device and mount goes when the
// daemon stops; if it is killed, a small watchdog shell (it waits on a pipe only the
// daemon holds) does the same; and a start-up removes whatever is left (sweep).
import {
  mkdirSync, rmSync, rmdirSync, unlinkSync, readdirSync, readFileSync, statfsSync, existsSync, chmodSync, openSync,
  ftruncateSync, closeSync
} from 'node:fs'
import { rm, readdir } from 'node:fs/promises'
import { spawn, spawnSync } from 'node:child_process'
import path from 'node:path'
import { tryBestEffort } from '../protocol/best-effort.ts'


const MKFS_CANDIDATES = ['/usr/sbin/mkfs.ext4', '/sbin/mkfs.ext4', '/usr/bin/mkfs.ext4']
/** below this many free bytes the job has hit ENOSPC (or is about to): its limit is reached */
const FULL_BYTES = 64 * 1024
/** a job that left more than this many inodes: a fresh file system is cheaper than deleting them */
const WIPE_MAX_INODES = 2000

export interface SandboxFs {
  id: number
  /** the mount point: the attempt's box */
  dir: string
  image: string
  sizeMiB: number
  /** blocks and inodes in use on the fresh file system (its root, tmp/) */
  baseBlocks: number
  baseInodes: number
}

export interface FsUsage { usedBytes: number, freeBytes: number, freeInodes: number }

/** Inodes for a limit: one per 16 KiB, at least 4096, at most 2^20 (an inode flood ends there). */
export function inodesFor (sizeMiB: number): number {
  return Math.min(1 << 20, Math.max(4096, sizeMiB * 64))
}

/** Image size for a limit: the limit, the inode tables, ext4's reserve for its own metadata, a margin. */
function imageBytes (sizeMiB: number): number {
  const tablesMiB = Math.ceil(inodesFor(sizeMiB) * 256 / 1048576)
  return (sizeMiB + tablesMiB + Math.min(16, Math.ceil(sizeMiB / 50)) + 2) * 1048576
}

function run (argv: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(argv[0], argv.slice(1), { stdio: ['ignore', 'ignore', 'pipe'] })
    let err = ''
    child.stderr.setEncoding('utf8').on('data', (c: string) => { err += c })
    child.on('error', reject)
    child.on('exit', code => {
      if (code === 0) resolve()
      else reject(new Error(`${path.basename(argv[0])}: ${err.trim() || `exit ${String(code)}`}`))
    })
  })
}

function runSync (argv: string[]): boolean {
  return spawnSync(argv[0], argv.slice(1), { stdio: 'ignore' }).status === 0
}

/** Mount points at or under dir, deepest first (this process's mount table; \ooo escapes undone). */
export function mountsUnder (dir: string): string[] {
  let text = ''
  tryBestEffort('reading the mount table', () => { text = readFileSync('/proc/self/mountinfo', 'utf8') })
  const unescape = (s: string): string => s.replace(/\\([0-7]{3})/g, (_m, o: string) => String.fromCharCode(parseInt(o, 8)))
  const out: string[] = []
  for (const line of text.split('\n')) {
    const field = line.split(' ')[4]
    if (field === undefined) continue
    const mp = unescape(field)
    if (mp === dir || mp.startsWith(dir + '/')) out.push(mp)
  }
  return out.sort((a, b) => b.length - a.length)
}

/** Loop devices whose backing file is under dir (/sys/block/loopN/loop/backing_file). */
function loopsUnder (dir: string): string[] {
  const out: string[] = []
  let names: string[] = []
  tryBestEffort('sandbox file system', () => { names = readdirSync('/sys/block').filter(n => n.startsWith('loop')) })
  for (const n of names) {
    tryBestEffort('sandbox file system', () => {
      const backing = readFileSync(`/sys/block/${n}/loop/backing_file`, 'utf8').trim().replace(/ \(deleted\)$/, '')
      if (backing.startsWith(dir + '/')) out.push(`/dev/${n}`)
    })
  }
  return out
}

/**
 * The ready file systems of one daemon. open() says why there can be none (not root,
 * no loop device, no mkfs.ext4): the daemon then walks the sandbox instead.
 */
export class SandboxFilesystems {
  readonly root: string
  private readonly mkfs: string
  /** file systems kept per size, in use and ready (a slot's each, and one ready beyond) */
  private readonly perSize: number
  private readonly ready = new Map<number, SandboxFs[]>()
  /** sizes wanted ready, most recent last (a few kept) */
  private readonly wanted: number[] = []
  private seq = 0
  private making = false
  private closed = false
  private readonly inUse = new Set<SandboxFs>()
  /** given back, being wiped (counted as held: they come back) */
  private readonly wiping = new Set<SandboxFs>()
  private readonly onError: (what: string, err: unknown) => void
  /** cleans up if the daemon dies without closeSync */
  guard?: { done: () => void }

  private constructor (root: string, mkfs: string, perSize: number, onError: (what: string, err: unknown) => void) {
    this.root = root
    this.mkfs = mkfs
    this.perSize = perSize
    this.onError = onError
  }

  /**
   * A pool under <dataDir>/sandfs, after removing what a previous life left there; one
   * file system of `sizeMiB` is made now (the test that this machine can), more in the
   * background. Returns the reason instead where it cannot.
   */
  static async open (
    dataDir: string, opts: { sizeMiB: number, perSize: number, onError: (what: string, err: unknown) => void }
  ): Promise<SandboxFilesystems | { why: string }> {
    const root = path.join(dataDir, 'sandfs')
    sweep(root)
    if (process.getuid?.() !== 0) return { why: 'the daemon is not root' }
    if (!existsSync('/dev/loop-control')) return { why: 'no loop device (/dev/loop-control missing)' }
    const mkfs = MKFS_CANDIDATES.find(p => existsSync(p))
    if (mkfs === undefined) return { why: 'mkfs.ext4 not found (install e2fsprogs)' }
    mkdirSync(root, { mode: 0o700 })
    const pool = new SandboxFilesystems(root, mkfs, opts.perSize, opts.onError)
    pool.guard = watchdog(root)
    pool.want(opts.sizeMiB)
    try {
      pool.put(await pool.make(opts.sizeMiB))
    } catch (err: any) {
      pool.closeSync()
      return { why: `cannot make one: ${String(err?.message ?? err).split('\n')[0]}` }
    }
    pool.fill()
    return pool
  }

  /** A ready file system of exactly this size (made now if none is ready), for one attempt. */
  async take (sizeMiB: number): Promise<SandboxFs> {
    this.want(sizeMiB)
    const fs = this.ready.get(sizeMiB)?.pop() ?? await this.make(sizeMiB)
    this.inUse.add(fs)
    this.fill()
    return fs
  }

  /**
   * The attempt is over (every process of it dead): the box goes back as new. At once
   * when the job left nothing behind; else wiped in the background, or replaced when
   * it left many files or the wipe did not bring it back to new.
   */
  give (fs: SandboxFs): void {
    this.inUse.delete(fs)
    if (this.closed) { this.destroy(fs); return }
    const u = usage(fs)
    if (u !== undefined && u.inodes === fs.baseInodes && u.blocks === fs.baseBlocks) { this.put(fs); return }
    if (u === undefined || u.inodes - fs.baseInodes > WIPE_MAX_INODES) { this.retire(fs); return }
    this.wiping.add(fs)
    this.wipe(fs).finally(() => { this.wiping.delete(fs) }).then(() => {
      const after = usage(fs)
      const asNew = after !== undefined && after.inodes === fs.baseInodes && after.blocks === fs.baseBlocks
      if (!this.closed && asNew) this.put(fs)
      else this.retire(fs)
    }, () => { this.retire(fs) })
  }

  /** Daemon stop: every file system goes (unmounted, its loop device detached, its image deleted). */
  closeSync (): void {
    this.closed = true
    this.ready.clear()
    this.inUse.clear()
    sweep(this.root)
    this.guard?.done()
  }

  /** in use and ready, of one size */
  private held (sizeMiB: number): number {
    let n = this.ready.get(sizeMiB)?.length ?? 0
    for (const fs of [...this.inUse, ...this.wiping]) if (fs.sizeMiB === sizeMiB) n++
    return n
  }

  private put (fs: SandboxFs): void {
    const list = this.ready.get(fs.sizeMiB) ?? []
    // (given back, it is no longer in use: held() counts the others)
    const unwanted = !this.wanted.includes(fs.sizeMiB) || this.held(fs.sizeMiB) >= this.perSize
    if (this.closed || unwanted) { this.destroy(fs); return }
    list.push(fs)
    this.ready.set(fs.sizeMiB, list)
  }

  private want (sizeMiB: number): void {
    const i = this.wanted.indexOf(sizeMiB)
    if (i >= 0) this.wanted.splice(i, 1)
    this.wanted.push(sizeMiB)
    // a few sizes kept ready: an unusual one drops out when others are asked for
    while (this.wanted.length > 4) {
      const old = this.wanted.shift() as number
      for (const fs of this.ready.get(old) ?? []) this.destroy(fs)
      this.ready.delete(old)
    }
  }

  /** Make what is missing, one file system at a time, in the background. */
  private fill (): void {
    if (this.making || this.closed) return
    const size = [...this.wanted].reverse().find(s => this.held(s) < this.perSize)
    if (size === undefined) return
    this.making = true
    this.make(size).then(fs => { this.put(fs) }, err => {
      if (!this.closed) this.onError('making a sandbox file system', err)
    })
      .finally(() => { this.making = false; this.fill() })
  }

  /** A fresh formatted file system of this size, mounted, its root the daemon's with an empty tmp/. */
  async make (sizeMiB: number): Promise<SandboxFs> {
    const id = ++this.seq
    const image = path.join(this.root, `f${id}.img`)
    const dir = path.join(this.root, `f${id}`)
    try {
      const fd = openSync(image, 'wx', 0o600)
      try { ftruncateSync(fd, imageBytes(sizeMiB)) } finally { closeSync(fd) }
      // no journal (nothing to recover: a crash's file systems are thrown away), no room to grow,
      // nothing reserved for root, inode tables written lazily, no discard of a sparse image
      await run([this.mkfs, '-q', '-F', '-O', '^has_journal,^resize_inode', '-E', 'lazy_itable_init=1,nodiscard',
        '-m', '0', '-b', '4096', '-N', String(inodesFor(sizeMiB)), image])
      mkdirSync(dir, { mode: 0o700 })
      await run(['mount', '-t', 'ext4', '-o', 'loop,nosuid,nodev,noatime,discard', image, dir])
    } catch (err) {
      tryBestEffort('sandbox file system', () => { rmdirSync(dir) })
      tryBestEffort('sandbox file system', () => { unlinkSync(image) })
      throw err
    }
    if (this.closed) { tryBestEffort('sandbox file system', () => { detach(dir, image) }); throw new Error('closed') }
    // the root: no lost+found (the job never sees it; a box holds work/, tmp/ and logs only)
    tryBestEffort('sandbox file system', () => { rmdirSync(path.join(dir, 'lost+found')) })
    chmodSync(dir, 0o700)
    makeTmp(dir)
    const u = usage({ dir } as SandboxFs)
    if (u === undefined) {
      this.destroy({ id, dir, image, sizeMiB, baseBlocks: 0, baseInodes: 0 })
      throw new Error('statfs failed')
    }
    return { id, dir, image, sizeMiB, baseBlocks: u.blocks, baseInodes: u.inodes }
  }

  /** Back to new: everything in the root but tmp/, and what is in tmp/ (tmp/ itself made again). */
  private async wipe (fs: SandboxFs): Promise<void> {
    for (const name of await readdir(fs.dir)) await rm(path.join(fs.dir, name), { recursive: true, force: true })
    makeTmp(fs.dir)
  }

  private retire (fs: SandboxFs): void {
    this.destroy(fs)
    this.fill()
  }

  /** Unmounted (lazily if still busy), its loop device freed with it (autoclear), its image gone. */
  async remove (fs: SandboxFs): Promise<void> {
    try {
      await run(['umount', fs.dir]).catch(async () => { await run(['umount', '-l', fs.dir]) })
      tryBestEffort('sandbox file system', () => { rmdirSync(fs.dir) })
      tryBestEffort('sandbox file system', () => { unlinkSync(fs.image) })
    } catch {
      tryBestEffort('sandbox file system', () => { detach(fs.dir, fs.image) })
    }
  }

  /** remove(), in the background (umount waits for the file system to be written out) */
  private destroy (fs: SandboxFs): void {
    this.remove(fs).catch(err => { if (!this.closed) this.onError('removing a sandbox file system', err) })
  }

  /** how full an attempt's file system is */
  static usage (fs: SandboxFs): FsUsage | undefined {
    const s = statfsOf(fs.dir)
    if (s === undefined) return undefined
    const usedBytes = Math.max(0, s.blocks - fs.baseBlocks) * s.bsize
    return { usedBytes, freeBytes: s.bavail * s.bsize, freeInodes: s.ffree }
  }

  /**
   * Whether the job filled its file system (a write, a create got ENOSPC) or used more
   * than its limit besides its inputs (copied in by the daemon, on room of their own).
   */
  static full (fs: SandboxFs, limitMiB: number, inputBytes = 0): boolean {
    const u = SandboxFilesystems.usage(fs)
    if (u === undefined) return true
    return u.freeBytes < FULL_BYTES || u.freeInodes < 2 || u.usedBytes - inputBytes > limitMiB * 1048576
  }

  get count (): number {
    let n = this.inUse.size
    for (const l of this.ready.values()) n += l.length
    return n
  }
}

interface Statfs { blocks: number, bavail: number, bsize: number, files: number, ffree: number }

/** statfs of a mount point, blocks counted as used (total - free) */
function statfsOf (dir: string): Statfs | undefined {
  try {
    const s = statfsSync(dir)
    return {
      blocks: Number(s.blocks) - Number(s.bfree), bavail: Number(s.bavail), bsize: Number(s.bsize),
      files: Number(s.files), ffree: Number(s.ffree)
    }
  } catch { return undefined }
}

function usage (fs: Pick<SandboxFs, 'dir'>): { blocks: number, inodes: number } | undefined {
  const s = statfsOf(fs.dir)
  return s === undefined ? undefined : { blocks: s.blocks, inodes: s.files - s.ffree }
}

/** tmp/: root's, sticky and world-writable, as /tmp is */
function makeTmp (dir: string): void {
  const tmp = path.join(dir, 'tmp')
  mkdirSync(tmp)
  // after mkdir: the umask must not take the sticky, world-writable bits away
  chmodSync(tmp, 0o1777)
}

function detach (dir: string, image: string): void {
  if (!runSync(['umount', dir])) runSync(['umount', '-l', dir])
  tryBestEffort('sandbox file system', () => { rmdirSync(dir) })
  tryBestEffort('sandbox file system', () => { unlinkSync(image) })
}

/**
 * A shell that outlives the daemon only to clean up after it: it reads a pipe whose
 * other end only the daemon holds, so the read ends when the daemon does, however it
 * ends (SIGKILL, a crash), and then unmounts everything under root (a loop device
 * mounted with -o loop goes with its last mount) and deletes the images.
 */
function watchdog (root: string): { done: () => void } {
  // "done" on the pipe: the daemon cleaned up itself (a later daemon may already use root)
  const script = 'read -r said; [ "$said" = done ] && exit 0; ' +
    'awk -v r="$1/" \'index($5, r) == 1 { print $5 }\' /proc/self/mountinfo | sort -r | ' +
    'while read -r mp; do umount "$mp" 2>/dev/null || umount -l "$mp"; done; rm -rf --one-file-system "$1"'
  const child = spawn('/bin/sh', ['-c', script, 'sh', root], { stdio: ['pipe', 'ignore', 'ignore'], detached: true })
  child.on('error', () => { /* no shell: the next start sweeps */ })
  child.stdin?.on('error', () => { /* the watchdog gone: the next start sweeps */ })
  // not waited for, and its pipe does not keep the daemon alive
  child.unref()
  ;(child.stdin as unknown as { unref: () => void } | null)?.unref()
  return { done: () => { child.stdin?.end('done\n') } }
}

/**
 * Remove every mount, loop device and image under root (a stop, or what a crash left):
 * mounts deepest first (lazily if busy), loop devices still backed by an image there,
 * then the directory.
 */
export function sweep (root: string): void {
  for (const mp of mountsUnder(root)) if (!runSync(['umount', mp])) runSync(['umount', '-l', mp])
  for (const dev of loopsUnder(root)) runSync(['losetup', '-d', dev])
  // --one-file-system's equivalent: nothing is mounted under root any more
  if (mountsUnder(root).length === 0) tryBestEffort('sandbox file system', () => { rmSync(root, { recursive: true, force: true }) })
}
