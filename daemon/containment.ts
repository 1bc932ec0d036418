// What keeps a job in its box, decided once at start-up and logged: the containment
// helper (namespaces, read-only root, private /tmp, a uid per run), cgroups (memory,
// pids, CPU weight, freezer) and the limits the daemon applies to every attempt. The
// disk limit is the kernel's where each attempt can have a file system of its own
// (sandbox-fs.ts: root, loop devices, mkfs.ext4), else the daemon walks the box; the
// containment line says which ("disk limits").
//
// Levels:
//   full   the daemon is root and bgrid-contain works here: all of the above
//   none   the daemon is not root, or --isolation none: jobs run as the daemon's user
//          (or --run-as), in their own process group, with no limits. For trusted use.
// A root daemon whose helper does not work refuses to start rather than run strangers'
// code unconfined (--isolation none says so on purpose).
import { existsSync, mkdirSync, rmSync, realpathSync, accessSync, constants as fsConst } from 'node:fs'
import { createHash } from 'node:crypto'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { BgridError } from '../protocol/errors.ts'
import { tryBestEffort } from '../protocol/best-effort.ts'
import type { Db } from '../protocol/db.ts'
import type { Logger } from '../protocol/log.ts'
import type { Assignment } from '../protocol/jobs.ts'
import { CgroupTree, detectLayout, type AttemptGroup, type RunGroup } from './cgroups.ts'
import { JobUsers, lookupUser, type RunAs } from './job-users.ts'
import { RunSandboxes, type AttemptBox } from './sandbox.ts'
import { SandboxFilesystems, sweep } from './sandbox-fs.ts'
import { Launcher, type LaunchSpec } from './launcher-client.ts'

export type IsolationMode = 'auto' | 'none'

export interface ContainmentConfig {
  dataDir: string
  mode: IsolationMode
  /** every run's jobs as this user, instead of a uid per run (weaker: runs share a uid) */
  runAs?: string
  /** a job's memory limit when it declares no `ram`, MiB (default: 90 % of RAM over the slots) */
  maxJobRamMiB?: number
  /** the most a job may write, MiB */
  maxJobDiskMiB: number
  /** processes and threads per attempt */
  maxJobPids: number
  slots: number
  ramTotalMiB: number
}

/** where `npm run build` puts the job starter: <package>/dist/libexec/bgrid-contain */
export function helperPath (): string {
  let dir = path.dirname(fileURLToPath(import.meta.url))
  while (!existsSync(path.join(dir, 'package.json')) && path.dirname(dir) !== dir) dir = path.dirname(dir)
  return path.join(dir, 'dist', 'libexec', 'bgrid-contain')
}

const SAFE_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'
/** the owner's private places, never shown to a job */
const HIDDEN = ['/home', '/root', '/run/user', '/media']
/** a job's /tmp replaces these: the data dir cannot live there */
const PRIVATE_TMP = ['/tmp', '/var/tmp', '/dev/shm']

export function jobEnv (a: Assignment, home: string): Record<string, string> {
  return {
    PATH: SAFE_PATH,
    HOME: home,
    TMPDIR: home,
    LANG: 'C.UTF-8',
    BGRID_JOB: a.job,
    BGRID_ATTEMPT: a.attempt,
    BGRID_CORES: String(a.cores),
    OMP_NUM_THREADS: String(Math.max(1, Math.floor(a.cores))),
    ...a.env
  }
}

export interface Limits { memoryMiB?: number, diskMiB: number, pids: number }

export class Containment {
  readonly level: 'full' | 'none'
  readonly cfg: ContainmentConfig
  readonly helper?: string
  readonly cgroups?: CgroupTree
  private readonly users?: JobUsers
  /** --run-as, or the daemon's fallback user when not root */
  private readonly sharedUser?: RunAs
  readonly dataDir: string
  /** a file system per attempt (the disk limit in the kernel); undefined: the box is walked */
  filesystems?: SandboxFilesystems
  /** how disk limits are enforced, for the containment line */
  diskLimits = 'walked'

  private constructor (cfg: ContainmentConfig, parts: { level: 'full' | 'none', helper?: string, cgroups?: CgroupTree, users?: JobUsers, sharedUser?: RunAs }) {
    this.cfg = cfg
    this.level = parts.level
    this.helper = parts.helper
    this.cgroups = parts.cgroups
    this.users = parts.users
    this.sharedUser = parts.sharedUser
    this.dataDir = realpathSync(cfg.dataDir)
  }

  static async start (cfg: ContainmentConfig, meta: Db, log: Logger): Promise<Containment> {
    const root = process.getuid?.() === 0
    const linux = process.platform === 'linux'
    let sharedUser: RunAs | undefined
    if (cfg.runAs !== undefined && cfg.runAs !== 'root') {
      sharedUser = lookupUser(cfg.runAs)
      if (sharedUser === undefined) throw new BgridError('INVALID_CONFIG', `--run-as: no user ${cfg.runAs} in /etc/passwd`)
      if (!root) throw new BgridError('INVALID_CONFIG', '--run-as needs the daemon to run as root')
    }
    if (cfg.mode === 'none' || !root || !linux) {
      const why = cfg.mode === 'none' ? '--isolation none' : !linux ? `${process.platform} has no containment in bgrid yet` : 'the daemon is not root'
      // not root: jobs run as this very user, who can read everything the daemon can
      const c = new Containment(cfg, { level: 'none', sharedUser: root ? (sharedUser ?? lookupUser('nobody')) : undefined })
      // what a contained life of this data dir left mounted goes all the same
      if (root && linux) sweep(path.join(c.dataDir, 'sandfs'))
      c.diskLimits = `walked (${why})`
      log.warn('containment: none: jobs are not isolated from this machine (run the daemon as root, or as a service, to isolate them)', { why, user: c.sharedUser?.name ?? os.userInfo().username })
      return c
    }
    const dataDir = realpathSync(cfg.dataDir)
    for (const t of PRIVATE_TMP) {
      if (dataDir === t || dataDir.startsWith(t + '/')) throw new BgridError('INVALID_CONFIG', `--data-dir ${dataDir} is under ${t}, which every job gets a private copy of: put the data dir elsewhere (the service uses /var/lib/bgrid)`)
    }
    const helper = helperPath()
    try { accessSync(helper, fsConst.X_OK) } catch {
      throw new BgridError('INVALID_CONFIG', `the job starter ${helper} is missing (it is compiled by \`npm install\` / \`npm run build\` with a C compiler: install gcc or clang and run \`npm run build\`), or run with --isolation none to run jobs unconfined`)
    }
    const layout = detectLayout(createHash('sha256').update(dataDir).digest('hex').slice(0, 12))
    let cgroups: CgroupTree | undefined
    if (layout !== undefined) {
      cgroups = new CgroupTree(layout)
      try { cgroups.setup() } catch (err: any) {
        log.warn('cgroups not usable: no memory, pids or freezer limits', { err: String(err?.message ?? err) })
        cgroups = undefined
      }
    }
    const c = new Containment(cfg, { level: 'full', helper, cgroups, users: sharedUser === undefined ? new JobUsers(meta) : undefined, sharedUser })
    const pool = await SandboxFilesystems.open(dataDir, {
      sizeMiB: cfg.maxJobDiskMiB,
      // per size in use: one for each slot and one ready beyond
      perSize: cfg.slots + 1,
      onError: (what, err) => { log.warn(what, { err: String((err as Error)?.message ?? err) }) }
    })
    if (pool instanceof SandboxFilesystems) {
      c.filesystems = pool
      c.diskLimits = 'per-attempt filesystem (kernel-enforced)'
    } else {
      // said on the containment line, not a line of its own
      c.diskLimits = `walked (${pool.why})`
    }
    // a real attempt of /bin/true under full containment: if this machine cannot, say why now
    await c.probe()
    log.info('containment', c.summary())
    if (cgroups === undefined) log.warn('no cgroup hierarchy with a memory controller is mounted here: jobs get no memory or pids limit and are suspended by signals')
    return c
  }

  summary (): Record<string, unknown> {
    return {
      level: this.level,
      users: this.level === 'none' ? (this.sharedUser?.name ?? 'the daemon\'s') : this.sharedUser !== undefined ? `${this.sharedUser.name} (shared by every run)` : 'a uid per run',
      namespaces: this.level === 'full' ? 'pid, mount (read-only root, private /tmp, data dir and homes hidden), ipc; network on request' : 'none',
      cgroups: this.cgroups === undefined ? 'none' : `v${this.cgroups.version}: ${this.cgroups.controllers().join(', ')}`,
      diskLimits: this.diskLimits,
      limits: { memoryMiB: `${this.defaultMemoryMiB()} unless a job declares ram`, diskMiB: this.cfg.maxJobDiskMiB, pids: this.cgroups?.has('pids') === true ? this.cfg.maxJobPids : 'none' }
    }
  }

  private defaultMemoryMiB (): number {
    return this.cfg.maxJobRamMiB ?? Math.max(256, Math.floor(this.cfg.ramTotalMiB * 0.9 / Math.max(1, this.cfg.slots)))
  }

  /** A job's limits: its declared ram plus a margin, its declared disk within the worker's cap. */
  limitsFor (a: Assignment): Limits {
    const memoryMiB = a.ram > 0 ? a.ram + Math.max(64, Math.ceil(a.ram * 0.1)) : this.defaultMemoryMiB()
    const diskMiB = a.disk > 0 ? Math.min(a.disk, this.cfg.maxJobDiskMiB) : this.cfg.maxJobDiskMiB
    // (+1: the slot's starter lives in the same pids group)
    return { memoryMiB, diskMiB, pids: this.cfg.maxJobPids + 1 }
  }

  /** Everything a run's jobs get on this node: a user, directories, a cgroup. */
  async forRun (run: string): Promise<RunJail> {
    const user = this.level === 'full' ? (this.sharedUser ?? await this.users?.next()) : this.sharedUser
    return new RunJail(this, run, user)
  }

  /** CPU time our jobs used so far (ms), for the owner-load meter; undefined without cgroups */
  jobsCpuMs (): number | undefined { return this.cgroups?.cpuMs() }

  teardown (): void {
    this.sharedLauncher?.stop()
    this.cgroups?.teardown()
    // every sandbox file system: unmounted, loop devices freed, images deleted
    this.filesystems?.closeSync()
  }

  /** A job starter for this level: bgrid-contain when contained, the Node launcher otherwise. */
  launcher (cgroups: string[] = []): Launcher { return new Launcher(this.level === 'full' ? this.helper : undefined, cgroups) }

  private sharedLauncher?: Launcher
  /** the one Node launcher of an unconfined daemon (its jobs have no cgroups to be born in) */
  shared (): Launcher {
    this.sharedLauncher ??= this.launcher()
    return this.sharedLauncher
  }

  private async probe (): Promise<void> {
    const dir = path.join(this.dataDir, 'runs', '.probe')
    rmSync(dir, { recursive: true, force: true })
    mkdirSync(dir, { recursive: true, mode: 0o700 })
    const jail = await this.forRun('.probe')
    const launcher = this.launcher()
    // a box as jobs get them: on a file system of its own where the daemon makes them
    const box = await jail.sandboxes.createFor([], [], this.cfg.maxJobDiskMiB)
    try {
      jail.sandboxes.handOver(box)
      const cmd = ['/bin/sh', '-c', 'test ! -e "$0/db" && test -w /tmp && test -w . && test ! -w /etc', this.dataDir]
      const spec = jail.launchSpec(box, { attempt: 'probe', job: 'probe', cmd, env: {}, timeoutMs: 0, cores: 1, ram: 0, disk: 0, network: true, inputs: [], outputs: [] })
      const launched = await launcher.launch(spec)
      const timer = setTimeout(() => {
        if (launched.pid > 0) tryBestEffort('killing the probe job', () => { process.kill(launched.pid, 'SIGKILL') })
      }, 10_000)
      const end = await launched.exited
      clearTimeout(timer)
      if (end.code !== 0) {
        const why = end.setupError ?? (end.signal !== null ? `killed by ${end.signal}` : `a contained test job exited ${String(end.code)}`)
        throw new BgridError('INVALID_CONFIG', `containment does not work on this machine (${why}); run with --isolation none to run jobs unconfined`)
      }
    } finally {
      launcher.stop()
      jail.destroy()
      jail.sandboxes.release(box)
      await jail.sandboxes.removeAll()
    }
  }
}

/** One run's jobs on this node. */
export class RunJail {
  private readonly c: Containment
  readonly run: string
  readonly user?: RunAs
  readonly sandboxes: RunSandboxes
  private readonly group?: RunGroup
  /** a starter per attempt slot, living in the slot's cgroups: its jobs are born there */
  private readonly starters = new Map<string, Launcher>()

  constructor (c: Containment, run: string, user: RunAs | undefined) {
    this.c = c
    this.run = run
    this.user = user
    this.sandboxes = new RunSandboxes(path.join(c.dataDir, 'runs', run), {
      owner: user, privateTree: c.level === 'full', filesystems: c.filesystems
    })
    this.group = c.cgroups?.run(run)
  }

  get contained (): boolean { return this.c.level === 'full' }

  limits (a: Assignment): Limits { return this.c.limitsFor(a) }

  /** The owner is back: every job of the run here stops (thaw: goes on); false without a freezer. */
  freeze (): boolean { return this.group?.freeze() === true }
  thaw (): boolean { return this.group?.thaw() === true }

  /**
   * The starter for an attempt in this box: contained, the box's own (it joined the
   * slot's cgroups when it started, so a job needs no move into them, which costs
   * milliseconds each); unconfined, the daemon's one launcher.
   */
  starterFor (box: AttemptBox, group: AttemptGroup | undefined): Launcher {
    if (this.c.level !== 'full') return this.c.shared()
    let l = this.starters.get(box.dir)
    if (l === undefined) { l = this.c.launcher(group?.procsFiles() ?? []); this.starters.set(box.dir, l) }
    return l
  }

  /** The cgroup of an attempt in a box (reused with the box), set to the attempt's limits. */
  attemptGroup (box: AttemptBox, limits: Limits): AttemptGroup | undefined {
    const g = this.group?.slot(path.basename(box.dir))
    g?.begin({ memoryBytes: limits.memoryMiB !== undefined ? limits.memoryMiB * 1048576 : undefined, pids: limits.pids })
    return g
  }

  /** What the starter runs: the job in its containment, or (level none) the job itself. */
  launchSpec (box: AttemptBox, a: Assignment, limits = this.c.limitsFor(a)): LaunchSpec {
    const spec: LaunchSpec = {
      argv: a.cmd, env: jobEnv(a, box.work), stdout: box.stdout, stderr: box.stderr, cwd: box.work,
      ...(this.user !== undefined ? { uid: this.user.uid, gid: this.user.gid } : {})
    }
    if (this.c.level === 'full') {
      spec.contain = {
        // (no cgroups to join: the box's starter is in them, and so is every job it clones)
        work: box.work, tmp: box.tmp, hide: [this.c.dataDir, ...HIDDEN], cgroups: [],
        network: a.network, fsizeBytes: limits.diskMiB * 1048576, nofile: 4096, nice: 19
      }
    }
    return spec
  }

  /** Session end: every process of the run dies (the starters too), its groups go. */
  destroy (): void {
    for (const l of this.starters.values()) l.stop()
    this.starters.clear()
    this.group?.destroy()
  }
}
