// Control groups for job attempts, cgroup v2 or v1, whichever the machine mounts.
// The daemon makes one subtree of its own (bgrid-<tag>, below the cgroup it runs in);
// under it a group per run and one per attempt. The run's group carries the CPU weight
// and accounting and is what the daemon freezes when the owner comes back and kills
// at the end of a session; an attempt's group carries its own limits (memory, pids).
// Everything a job forks is in them, whatever it does with sessions and process groups.
// (Only the controllers with a per-job limit get a group per attempt: each group is a
// few directory operations, and short jobs come by the thousand.)
//
// v1 mounts one hierarchy per controller (or a few together); v2 one hierarchy where a
// group may hold processes or enable controllers for its children, not both: there
// the daemon moves itself into a leaf (<own>/daemon) first. Both are detected from
// /proc/self/mountinfo and /proc/self/cgroup at start-up; what is enforced is logged.
import { readFileSync, writeFileSync, mkdirSync, rmdirSync, readdirSync, existsSync } from 'node:fs'
import path from 'node:path'
import { bestEffort } from '../protocol/best-effort.ts'

export type Controller = 'memory' | 'pids' | 'cpu' | 'cpuacct' | 'freezer'
const WANTED: Controller[] = ['memory', 'pids', 'cpu', 'cpuacct', 'freezer']
/** controllers with a group per attempt; the others stop at the run's group */
const PER_ATTEMPT: Controller[] = ['memory', 'pids']

export interface AttemptLimits {
  /** bytes of memory (and swap); undefined: none */
  memoryBytes?: number
  /** processes and threads at once */
  pids?: number
}

export interface CgroupLayout {
  version: 1 | 2
  /** v1: the directory of our subtree in each controller's hierarchy; v2: one directory for all */
  roots: Partial<Record<Controller, string>>
}

interface Mount { dir: string, fstype: string, options: string[] }

function parseMountinfo (text: string): Mount[] {
  const out: Mount[] = []
  for (const line of text.split('\n')) {
    const sep = line.indexOf(' - ')
    if (sep < 0) continue
    const left = line.slice(0, sep).split(' ')
    const right = line.slice(sep + 3).split(' ')
    if (right[0] !== 'cgroup' && right[0] !== 'cgroup2') continue
    out.push({ dir: left[4].replace(/\\040/g, ' '), fstype: right[0], options: (right[2] ?? '').split(',') })
  }
  return out
}

/** Our group in each hierarchy, from /proc/self/cgroup ("id:controllers:/path"). */
function parseSelf (text: string): { v1: Map<string, string>, v2?: string } {
  const v1 = new Map<string, string>()
  let v2: string | undefined
  for (const line of text.split('\n')) {
    const m = /^(\d+):([^:]*):(.*)$/.exec(line)
    if (m === null) continue
    if (m[1] === '0' && m[2] === '') v2 = m[3]
    else for (const c of m[2].split(',')) v1.set(c, m[3])
  }
  return { v1, v2 }
}

/**
 * Where our subtree would go. v1 wins when it has the memory controller (the v2
 * hierarchy of a hybrid system has none); v2 when its root lists controllers.
 * Undefined when no usable hierarchy is mounted (a container, `ip netns exec`).
 */
export function detectLayout (tag: string, proc = { mountinfo: '/proc/self/mountinfo', cgroup: '/proc/self/cgroup' }): CgroupLayout | undefined {
  let mounts: Mount[]
  let self: ReturnType<typeof parseSelf>
  try {
    mounts = parseMountinfo(readFileSync(proc.mountinfo, 'utf8'))
    self = parseSelf(readFileSync(proc.cgroup, 'utf8'))
  } catch { return undefined }
  const name = `bgrid-${tag}`
  const roots: CgroupLayout['roots'] = {}
  for (const m of mounts) {
    if (m.fstype !== 'cgroup') continue
    for (const c of WANTED) {
      if (!m.options.includes(c) || roots[c] !== undefined) continue
      const own = self.v1.get(c)
      if (own !== undefined) roots[c] = path.join(m.dir, own, name)
    }
  }
  if (roots.memory !== undefined) return { version: 1, roots }
  const unified = mounts.find(m => m.fstype === 'cgroup2')
  if (unified === undefined || self.v2 === undefined) return undefined
  const own = path.join(unified.dir, self.v2)
  let controllers: string[] = []
  try { controllers = readFileSync(path.join(own, 'cgroup.controllers'), 'utf8').trim().split(/\s+/) } catch (err) { bestEffort('readFileSync(path.join(own, \'cgroup.controllers\'), \'utf8\'...', err) }
  if (!controllers.includes('memory')) return undefined
  const dir = path.join(own, name)
  const v2: CgroupLayout['roots'] = { memory: dir, cpu: dir, cpuacct: dir }
  if (controllers.includes('pids')) v2.pids = dir
  // cgroup.freeze and cgroup.kill come with v2 itself
  v2.freezer = dir
  return { version: 2, roots: v2 }
}

function write (file: string, value: string): void { writeFileSync(file, value) }

function tryRead (file: string): string | undefined {
  try { return readFileSync(file, 'utf8') } catch { return undefined }
}

/** "key value" lines (memory.events, cpu.stat, memory.oom_control) */
export function statValue (text: string | undefined, key: string): number {
  const m = new RegExp(`^${key} (\\d+)$`, 'm').exec(text ?? '')
  return m === null ? 0 : Number(m[1])
}

/** The daemon's subtree: made at start-up (emptied of a previous life's leftovers). */
export class CgroupTree {
  readonly layout: CgroupLayout
  private readonly dirs: string[]

  constructor (layout: CgroupLayout) {
    this.layout = layout
    this.dirs = [...new Set(Object.values(layout.roots))]
  }

  get version (): 1 | 2 { return this.layout.version }
  has (c: Controller): boolean { return this.layout.roots[c] !== undefined }
  /** what is enforced, for the start-up log */
  controllers (): Controller[] { return WANTED.filter(c => this.has(c)) }

  /** Make the subtree; a previous daemon's leftovers in it are killed and removed. */
  setup (cpuShares = 2): void {
    if (this.version === 2) this.setupV2()
    for (const d of this.dirs) {
      if (existsSync(d)) { killTree(this.layout, d); removeTree(d) }
      mkdirSync(d, { recursive: true })
    }
    if (this.version === 2) write(path.join(this.dirs[0], 'cgroup.subtree_control'), this.enableList())
    // below the daemon's own threads (and, with the service unit's CPUWeight, the owner's processes)
    const cpu = this.layout.roots.cpu
    if (cpu !== undefined) {
      try { write(path.join(cpu, this.version === 1 ? 'cpu.shares' : 'cpu.weight'), String(this.version === 1 ? cpuShares : 1)) } catch (err) { bestEffort('write()', err) }
    }
  }

  /** v2: processes and controllers for children may not share a group: move ourselves into a leaf. */
  private setupV2 (): void {
    const own = path.dirname(this.dirs[0])
    const procs = tryRead(path.join(own, 'cgroup.procs'))?.trim().split('\n').filter(Boolean) ?? []
    if (procs.length > 0) {
      const leaf = path.join(own, 'daemon')
      mkdirSync(leaf, { recursive: true })
      for (const pid of procs) { try { write(path.join(leaf, 'cgroup.procs'), pid) } catch (err) { bestEffort('write()', err) } }
    }
    write(path.join(own, 'cgroup.subtree_control'), this.enableList())
  }

  /** v2: the controllers a group hands down to its children */
  enableList (): string {
    return ['memory', 'pids', 'cpu'].filter(c => this.has(c as Controller)).map(c => `+${c}`).join(' ')
  }

  /** A group for a run (its attempts go below it). */
  run (run: string): RunGroup { return new RunGroup(this, run) }

  /** CPU time used by every job of this daemon so far, ms (for the owner-load meter). */
  cpuMs (): number | undefined {
    const d = this.layout.roots.cpuacct
    if (d === undefined) return undefined
    if (this.version === 1) {
      const ns = tryRead(path.join(d, 'cpuacct.usage'))
      return ns === undefined ? undefined : Number(ns) / 1e6
    }
    const stat = tryRead(path.join(d, 'cpu.stat'))
    return stat === undefined ? undefined : statValue(stat, 'usage_usec') / 1000
  }

  dirFor (c: Controller, ...parts: string[]): string | undefined {
    const root = this.layout.roots[c]
    return root === undefined ? undefined : path.join(root, ...parts)
  }

  allDirs (...parts: string[]): string[] { return this.dirs.map(d => path.join(d, ...parts)) }

  /** Kill everything in the subtree and remove it (daemon stop). */
  teardown (): void {
    for (const d of this.dirs) { killTree(this.layout, d); removeTree(d) }
  }
}

export class RunGroup {
  readonly tree: CgroupTree
  readonly run: string

  constructor (tree: CgroupTree, run: string) {
    this.tree = tree
    this.run = run
    for (const d of tree.allDirs(run)) mkdirSync(d, { recursive: true })
    if (tree.version === 2) write(path.join(tree.allDirs(run)[0], 'cgroup.subtree_control'), tree.enableList())
  }

  /** The groups of an attempt slot (see AttemptGroup), made on first use. */
  slot (name: string): AttemptGroup {
    let g = this.slots.get(name)
    if (g === undefined) { g = new AttemptGroup(this, name); this.slots.set(name, g) }
    return g
  }

  private readonly slots = new Map<string, AttemptGroup>()

  /** v1: the run-level groups a job's first process joins (cpu, cpuacct, freezer) */
  procsFiles (): string[] {
    if (this.tree.version === 2) return []
    return WANTED.filter(c => !PER_ATTEMPT.includes(c)).flatMap(c => {
      const d = this.tree.dirFor(c, this.run)
      return d === undefined ? [] : [path.join(d, 'cgroup.procs')]
    })
  }

  /** The owner is back: every process of the run's jobs stops at once. */
  freeze (): boolean { return setFrozen(this.tree, [this.run], true) }
  thaw (): boolean { return setFrozen(this.tree, [this.run], false) }

  /** Session end: everything of this run dies, then its groups go. */
  destroy (): void {
    for (const d of this.tree.allDirs(this.run)) { killTree(this.tree.layout, d); removeTree(d) }
  }
}

/**
 * The groups of one attempt slot (a sandbox box): made once, then used by one attempt
 * after another, as the box is. A group is the kernel's, never the job's (it cannot
 * write a cgroup file), so nothing of a job survives in it once it is empty; making
 * and removing a memory cgroup for every attempt costs about a millisecond.
 */
export class AttemptGroup {
  private readonly tree: CgroupTree
  private readonly runGroup: RunGroup
  /** v1: a directory per per-attempt controller; v2: the one directory */
  private readonly dirs: string[]
  private readonly memDir?: string
  private readonly pidsDir?: string
  private current: AttemptLimits = {}
  /** the kernel's OOM-kill count when the current attempt began */
  private oomBase = 0

  constructor (runGroup: RunGroup, name: string) {
    const tree = runGroup.tree
    this.tree = tree
    this.runGroup = runGroup
    const dirOf = (c: Controller): string | undefined => tree.dirFor(c, runGroup.run, name)
    this.dirs = [...new Set(PER_ATTEMPT.flatMap(c => dirOf(c) ?? []))]
    for (const d of this.dirs) mkdirSync(d, { recursive: true })
    this.memDir = dirOf('memory')
    this.pidsDir = dirOf('pids')
  }

  /** An attempt starts in this group: its limits (written only when they change). */
  begin (limits: AttemptLimits): void {
    const v1 = this.tree.version === 1
    if (this.memDir !== undefined && limits.memoryBytes !== this.current.memoryBytes) {
      const bytes = limits.memoryBytes === undefined ? (v1 ? '-1' : 'max') : String(Math.floor(limits.memoryBytes))
      const swap = path.join(this.memDir, v1 ? 'memory.memsw.limit_in_bytes' : 'memory.swap.max')
      const mem = path.join(this.memDir, v1 ? 'memory.limit_in_bytes' : 'memory.max')
      // v1 wants memory <= memory+swap at every step: raise first whichever must grow
      const raising = limits.memoryBytes === undefined || (this.current.memoryBytes !== undefined && limits.memoryBytes > this.current.memoryBytes)
      // no swapping past the limit: the job is stopped at it, not the owner's desktop
      const steps: Array<[string, string]> = v1 ? (raising ? [[swap, bytes], [mem, bytes]] : [[mem, bytes], [swap, bytes]]) : [[mem, bytes], [swap, '0']]
      for (const [file, value] of steps) { try { write(file, value) } catch (err) { if (file === mem) throw err } }
    }
    if (this.pidsDir !== undefined && limits.pids !== this.current.pids) write(path.join(this.pidsDir, 'pids.max'), limits.pids === undefined ? 'max' : String(limits.pids))
    this.current = { ...limits }
    this.oomBase = this.oomCount()
  }

  private oomCount (): number {
    if (this.memDir === undefined) return 0
    return statValue(tryRead(path.join(this.memDir, this.tree.version === 1 ? 'memory.oom_control' : 'memory.events')), 'oom_kill')
  }

  /** the files a process writes its pid to, to join the slot (v1: one per hierarchy) */
  procsFiles (): string[] { return [...this.dirs.map(d => path.join(d, 'cgroup.procs')), ...this.runGroup.procsFiles()] }

  /** Did the kernel kill a process of the current attempt for going over its memory limit? */
  oomKilled (): boolean { return this.oomCount() > this.oomBase }

  /**
   * The attempt is over: anything of it still in the group is killed (normally nothing:
   * its PID namespace died with it), but `spare`: the slot's starter, which lives there.
   */
  end (spare?: number): void {
    for (const d of this.dirs) {
      for (const pid of listProcs(d)) if (pid !== spare) { try { process.kill(pid, 'SIGKILL') } catch (err) { bestEffort('process.kill()', err) } }
    }
  }
}

function listProcs (dir: string): number[] {
  return (tryRead(path.join(dir, 'cgroup.procs')) ?? '').split('\n').filter(Boolean).map(Number)
}

function setFrozen (tree: CgroupTree, parts: string[], frozen: boolean): boolean {
  const d = tree.dirFor('freezer', ...parts)
  if (d === undefined) return false
  try {
    if (tree.version === 1) write(path.join(d, 'freezer.state'), frozen ? 'FROZEN' : 'THAWED')
    else write(path.join(d, 'cgroup.freeze'), frozen ? '1' : '0')
    return true
  } catch { return false }
}

/**
 * Kill every process in a group and its descendants. Frozen first (where a freezer is
 * there) so that nothing forks between the listing and the kill; v2's cgroup.kill does
 * it in one write.
 */
function killTree (layout: CgroupLayout, dir: string): void {
  if (!existsSync(dir)) return
  if (layout.version === 2 && existsSync(path.join(dir, 'cgroup.kill'))) {
    try { write(path.join(dir, 'cgroup.kill'), '1') } catch (err) { bestEffort('write()', err) }
  } else {
    const freezer = layout.version === 1 && dir.startsWith(layout.roots.freezer ?? '\0')
    if (freezer) { try { write(path.join(dir, 'freezer.state'), 'FROZEN') } catch (err) { bestEffort('write()', err) } }
    for (const sub of walk(dir)) for (const pid of listProcs(sub)) { try { process.kill(pid, 'SIGKILL') } catch (err) { bestEffort('process.kill()', err) } }
    if (freezer) { try { write(path.join(dir, 'freezer.state'), 'THAWED') } catch (err) { bestEffort('write()', err) } }
  }
}

/** a group and every group below it, deepest first */
function walk (dir: string): string[] {
  const out: string[] = []
  let entries: string[] = []
  try { entries = readdirSync(dir, { withFileTypes: true }).filter(e => e.isDirectory()).map(e => e.name) } catch (err) { bestEffort('readdirSync(dir, { withFileTypes: true }).filter(e => e.i...', err) }
  for (const e of entries) out.push(...walk(path.join(dir, e)))
  out.push(dir)
  return out
}

/**
 * rmdir a group tree, deepest first. A group empties only once its killed processes
 * are reaped: retried for a short, bounded while.
 */
function removeTree (dir: string): void {
  const deadline = Date.now() + 2000
  for (const d of walk(dir)) {
    for (;;) {
      try { rmdirSync(d); break } catch (err: any) {
        if (err?.code === 'ENOENT') break
        if (err?.code !== 'EBUSY' || Date.now() > deadline) break
        Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 5)
      }
    }
  }
}
