// Runs one job attempt on a worker: a fresh attempt directory, inputs linked in after
// their hash seal is checked, argv exec (no shell) inside the containment helper (its
// own uid, cgroup, PID and mount namespaces), limits enforced while it runs (memory and
// pids by the kernel; disk by the kernel too where the attempt has a file system of its
// own, else by RLIMIT_FSIZE and a watcher that walks the box), outputs copied into the
// blob store without following any link the job made. When the attempt is over, every
// process of it is gone before its directory is touched, and the directory goes.
import { openSync, closeSync, fstatSync, readSync, constants as fsConst } from 'node:fs'
import type { Assignment, AttemptResult, FileResult, InputProblem, LogResult } from '../protocol/jobs.ts'
import { safeJoin } from '../protocol/paths.ts'
import { BgridError } from '../protocol/errors.ts'
import { tryBestEffort } from '../protocol/best-effort.ts'
import type { BlobStore } from '../cache/store.ts'
import type { RunJail } from './containment.ts'
import type { AttemptGroup } from './cgroups.ts'
import { openOutput, diskUsage, diskUsageSync, type AttemptBox } from './sandbox.ts'
import { SandboxFilesystems } from './sandbox-fs.ts'

export interface ExecutorOptions {
  store: BlobStore
  /** this run's user, directories, cgroups and job starters on this node */
  jail: RunJail
  /** the process runs (its pid is known) */
  onStart?: (r: RunningAttempt) => void
  /** fetch (or prove) the input blobs; throws InputUnavailable with what went wrong */
  ensureInputs: (a: Assignment) => Promise<{ bytesFetched: number, cacheHits: number }>
  /** this node's peer id (a corrupt local copy names it) */
  self: string
  /** how often the disk watcher looks, ms */
  diskCheckMs?: number
}

/** Inputs the worker could not have: not the job's failure (the coordinator finds other holders). */
export class InputUnavailable extends Error {
  readonly problems: InputProblem[]
  constructor (problems: InputProblem[]) {
    super(problems.map(p => p.message).join('; '))
    this.problems = problems
  }
}

const TAIL = 4096

export class RunningAttempt {
  pid?: number
  /** taken from the worker's queue into a slot */
  started = false
  exited = false
  suspended = false
  killedFor?: string
  group?: AttemptGroup
  /** stops every job of the run at once (the run's freezer cgroup) */
  freezer?: { freeze: () => boolean, thaw: () => boolean }
  readonly assignment: Assignment
  constructor (a: Assignment) { this.assignment = a }

  signalGroup (sig: NodeJS.Signals): void {
    if (this.pid === undefined || this.pid <= 0 || this.exited) return
    const pid = this.pid
    tryBestEffort('signalling an attempt\'s processes', () => { process.kill(-pid, sig) })
  }

  /** The owner is back: everything of the attempt stops at once (the freezer; signals without one). */
  suspend (): void {
    if (this.freezer?.freeze() !== true) this.signalGroup('SIGSTOP')
    this.suspended = true
  }

  resume (): void {
    if (this.freezer?.thaw() !== true) this.signalGroup('SIGCONT')
    this.suspended = false
  }

  wasPreempted (): boolean { return this.killedFor?.startsWith('preempted') === true }

  kill (why: string): void {
    this.killedFor ??= why
    // a frozen process cannot die: the kill lands once it is thawed (SIGKILL is queued meanwhile)
    if (this.suspended) this.freezer?.thaw()
    this.signalGroup('SIGCONT')
    this.signalGroup('SIGKILL')
  }
}

/** A file the daemon made in the attempt directory (stdout, stderr), copied into the store; its tail sent back. */
async function keepLog (file: string, store: BlobStore, run: string): Promise<LogResult | undefined> {
  let fd: number
  try { fd = openSync(file, fsConst.O_RDONLY | fsConst.O_NOFOLLOW) } catch { return undefined }
  try {
    const { size } = fstatSync(fd)
    if (size === 0) return undefined
    const tailBuf = Buffer.alloc(Math.min(TAIL, size))
    readSync(fd, tailBuf, 0, tailBuf.length, size - tailBuf.length)
    const { hash } = await store.importFile(fd, run)
    return { hash, size, tail: tailBuf.toString('utf8') }
  } finally { closeSync(fd) }
}

type Base = Omit<AttemptResult, 'status' | 'endedAt' | 'inputWaitMs'>

export async function runAttempt (r: RunningAttempt, opts: ExecutorOptions): Promise<AttemptResult> {
  const a = r.assignment
  const base: Base = { attempt: a.attempt, outputs: [] as FileResult[], exitCode: null, signal: null, startedAt: Date.now(), bytesFetched: 0, cacheHits: 0 }
  let box: AttemptBox
  try {
    const inputBytes = a.inputs.reduce((n, i) => n + i.size, 0)
    const diskMiB = opts.jail.limits(a).diskMiB
    box = await opts.jail.sandboxes.createFor(a.inputs.map(i => i.name), a.outputs, diskMiB, inputBytes)
  } catch (err: any) {
    return { ...base, status: 'lost', error: `preparing the sandbox: ${err?.message ?? err}`, endedAt: Date.now(), inputWaitMs: 0 }
  }
  try {
    r.group = opts.jail.attemptGroup(box, opts.jail.limits(a))
    r.freezer = opts.jail
    return await runInBox(r, opts, box, base)
  } catch (err: any) {
    return { ...base, status: 'lost', error: `preparing the sandbox: ${err?.message ?? err}`, endedAt: Date.now(), inputWaitMs: 0 }
  } finally {
    // nothing of the attempt may still run when its directory goes (the PID namespace is
    // gone with the job already; the group catches what a weaker containment left)
    r.group?.end(opts.jail.starterFor(box, r.group).pid)
    tryBestEffort('releasing a sandbox', () => { opts.jail.sandboxes.release(box) })
  }
}

async function runInBox (r: RunningAttempt, opts: ExecutorOptions, box: AttemptBox, base: Base): Promise<AttemptResult> {
  const a = r.assignment
  const { jail, store } = opts
  const run = jail.run
  let inputWaitMs = 0
  try {
    const t0 = Date.now()
    const got = await opts.ensureInputs(a)
    base.bytesFetched = got.bytesFetched
    base.cacheHits = got.cacheHits
    for (const input of a.inputs) {
      const dest = safeJoin(box.work, input.name)
      try {
        // a job running as another user gets read-only hard links to the daemon's blobs (no
        // copy); one running as the daemon's own user could write them, and a box on a file
        // system of its own cannot hold a link: they get a checked copy (root's, 0644)
        if (jail.user !== undefined && box.fs === undefined) await store.linkTo(input.hash, dest)
        else await store.materialize(input.hash, dest)
      } catch (err: any) {
        if (err instanceof BgridError && (err.code === 'HASH_MISMATCH' || err.code === 'NOT_FOUND')) {
          throw new InputUnavailable([{ hash: input.hash, code: err.code, holders: [opts.self], local: true, message: err.message }])
        }
        throw err
      }
    }
    inputWaitMs = Date.now() - t0
  } catch (err: any) {
    const problems = err instanceof InputUnavailable ? { inputProblems: err.problems } : {}
    return { ...base, ...problems, status: 'lost', error: `inputs: ${err?.message ?? err}`, endedAt: Date.now(), inputWaitMs }
  }
  if (r.killedFor !== undefined) return { ...base, status: 'lost', error: r.killedFor, endedAt: Date.now(), inputWaitMs }
  jail.sandboxes.handOver(box)

  const limits = jail.limits(a)
  const startedAt = Date.now()
  let outcome: { code: number | null, signal: string | null, error?: string, cpuMs?: number }
  let wrote = { out: 1, err: 1 }
  try {
    const launched = await jail.starterFor(box, r.group).launch(jail.launchSpec(box, a, limits))
    r.pid = launched.pid
    opts.onStart?.(r)
    if (r.killedFor !== undefined) r.kill(r.killedFor)
    let timer: NodeJS.Timeout | undefined
    if (a.timeoutMs > 0) timer = setTimeout(() => { r.kill(`timed out after ${a.timeoutMs} ms`) }, a.timeoutMs)
    const watcher = watchDisk(r, box, limits.diskMiB, notOwnedBy(jail), opts.diskCheckMs ?? 1000)
    const end = await launched.exited
    clearTimeout(timer)
    clearInterval(watcher)
    r.exited = true
    if (end.setupError !== undefined) box.launchFailed = true
    wrote = { out: end.out, err: end.err }
    const error = end.setupError !== undefined ? end.setupError.trim()
      : end.signal === 'LOST' ? 'job launcher exited'
        : r.killedFor
    outcome = { code: end.setupError !== undefined ? null : end.code, signal: end.signal === 'LOST' ? null : end.signal, ...(error !== undefined ? { error } : {}), ...(end.cpuMs !== undefined ? { cpuMs: end.cpuMs } : {}) }
  } catch (err: any) {
    outcome = { code: null, signal: null, error: `cannot start ${a.cmd[0]}: ${err.message}` }
  }
  const result: AttemptResult = {
    ...base,
    status: 'failed',
    exitCode: outcome.code,
    signal: outcome.signal,
    startedAt,
    endedAt: Date.now(),
    inputWaitMs,
    ...(outcome.cpuMs !== undefined ? { cpuMs: outcome.cpuMs } : {}),
    ...(outcome.error !== undefined ? { error: outcome.error } : {})
  }
  // a job that wrote past its limit faster than the watcher looks is refused all the same;
  // so is one whose logs come to more than its limit (their apparent size: a sparse log
  // would be stored and sent whole)
  if (result.error === undefined) result.error = overDisk(box, limits.diskMiB, notOwnedBy(jail))
  if (result.error === undefined && wrote.out + wrote.err > limits.diskMiB * 1048576) {
    result.error = diskLimit(limits.diskMiB, `stdout and stderr come to ${mb(wrote.out + wrote.err)} MB`)
  }
  if (r.group?.oomKilled() === true && limits.memoryMiB !== undefined) {
    result.error = `out of memory (limit ${limits.memoryMiB} MiB)`
    result.oomLimitMiB = limits.memoryMiB
  }
  try {
    const [so, se] = await Promise.all([
      wrote.out > 0 ? keepLog(box.stdout, store, run) : undefined,
      wrote.err > 0 ? keepLog(box.stderr, store, run) : undefined
    ])
    if (so !== undefined) result.stdout = so
    if (se !== undefined) result.stderr = se
  } catch (err: any) {
    result.error = `${result.error ?? ''} keeping logs: ${err.message}`.trim()
  }
  if (r.wasPreempted()) { result.status = 'preempted'; return result }
  // the inputs the job read were the store's own blobs (hard links): if one changed while
  // it ran (a failing disk, a meddler), what it computed cannot be trusted
  const changed = await changedInputs(a, store, opts.self)
  if (changed.length > 0) return { ...result, status: 'lost', inputProblems: changed, error: `inputs: ${changed.map(p => p.message).join('; ')}` }
  if (outcome.code !== 0 || result.error !== undefined) return result
  // every output opened (and sized) before any is stored: outputs, stdout and stderr
  // count against the limit by their apparent size, the bytes the store would hold and
  // the submitter receive (a sparse file takes next to nothing in the box)
  const missing: string[] = []
  const opened: Array<{ name: string, fd: number }> = []
  try {
    let total = wrote.out + wrote.err
    for (const name of a.outputs) {
      try {
        const fd = openOutput(box.work, name)
        opened.push({ name, fd })
        total += fstatSync(fd).size
      } catch (err: any) {
        missing.push(err?.code === 'ENOENT' ? name : err.message)
      }
    }
    if (missing.length > 0) {
      result.error = `declared outputs missing: ${missing.join(', ')}`
      return result
    }
    if (total > limits.diskMiB * 1048576) {
      result.error = diskLimit(limits.diskMiB, `outputs, stdout and stderr come to ${mb(total)} MB (apparent size)`)
      return result
    }
    for (const { name, fd } of opened) {
      const stored = await store.importFile(fd, run)
      result.outputs.push({ name, ...stored })
    }
  } catch (err: any) {
    result.error = `keeping outputs: ${err?.message ?? err}`
    result.outputs = []
    return result
  } finally {
    for (const { fd } of opened) closeSync(fd)
  }
  result.status = 'ok'
  return result
}

/** Inputs whose blob no longer holds its bytes (seal checked; re-hashed if it changed, quarantined if bad). */
async function changedInputs (a: Assignment, store: BlobStore, self: string): Promise<InputProblem[]> {
  const out: InputProblem[] = []
  for (const input of a.inputs) {
    try { await store.check(input.hash) } catch (err: any) {
      if (err instanceof BgridError && (err.code === 'HASH_MISMATCH' || err.code === 'NOT_FOUND')) {
        out.push({ hash: input.hash, code: err.code, holders: [self], local: true, message: `${input.name} changed while the job ran: ${err.message}` })
      } else throw err
    }
  }
  return out
}

const mb = (bytes: number): number => Math.ceil(bytes / 1048576)

/** the reason a job fails over its disk limit (the words "disk limit exceeded" kept for older readers) */
function diskLimit (limitMiB: number, detail: string): string {
  return `disk limit exceeded: disk limit of ${limitMiB} MB reached, ${detail}`
}

/** the daemon's own files in the box (its input links) are not the job's */
function notOwnedBy (jail: RunJail): number | undefined {
  return jail.user !== undefined ? process.getuid?.() : undefined
}

/**
 * Whether the attempt's directories are over its limit, and why. A file system of its
 * own: full (the kernel refused a write or a new file: ENOSPC) or more used than the
 * limit (ext4 keeps a little room for its own use). Else the walk: its bytes, or
 * anything it could not count.
 */
function overDisk (box: AttemptBox, limitMiB: number, notOwned: number | undefined): string | undefined {
  if (box.fs !== undefined) {
    if (!SandboxFilesystems.full(box.fs, limitMiB, box.inputBytes ?? 0)) return undefined
    const u = SandboxFilesystems.usage(box.fs)
    return diskLimit(limitMiB, u === undefined ? 'its file system cannot be read'
      : u.freeInodes < 2 ? 'no inode left (too many files)'
        : `its file system is full (${mb(u.usedBytes - (box.inputBytes ?? 0))} MB used besides its inputs)`)
  }
  const used = diskUsageSync([box.work, box.tmp], notOwned)
  return walkedOver(used, limitMiB)
}

function walkedOver (u: { bytes: number, over?: string }, limitMiB: number): string | undefined {
  if (u.over !== undefined) return diskLimit(limitMiB, u.over)
  if (u.bytes > limitMiB * 1048576) return diskLimit(limitMiB, `wrote ${mb(u.bytes)} MB`)
  return undefined
}

/**
 * The disk limit while the job writes. With a file system of its own, the kernel
 * stops the job's writes; this stops the job once its file system is full (one statfs
 * a look). Without one, RLIMIT_FSIZE stops any one file at the limit (in the kernel,
 * at write time) and this walks the box to stop the attempt once all its files
 * together pass it, one walk at a time. Looks every `everyMs`.
 */
function watchDisk (
  r: RunningAttempt, box: AttemptBox, limitMiB: number, notOwned: number | undefined, everyMs: number
): NodeJS.Timeout {
  let busy = false
  const t = setInterval(() => {
    if (busy || r.exited) return
    if (box.fs !== undefined) {
      const why = overDisk(box, limitMiB, notOwned)
      if (why !== undefined) r.kill(why)
      return
    }
    busy = true
    diskUsage([box.work, box.tmp], notOwned).then(u => {
      const why = walkedOver(u, limitMiB)
      if (why !== undefined) r.kill(why)
    }, () => {}).finally(() => { busy = false })
  }, everyMs)
  t.unref()
  return t
}
