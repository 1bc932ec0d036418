// Runs one job attempt on a worker: a fresh sandbox directory, argv exec (no shell),
// a scrubbed environment, its own process group (timeout kills the whole group),
// an unprivileged user when the daemon is root, outputs hashed into the blob store.
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdir, chown, stat, writeFile, readdir } from 'node:fs/promises'
import { createHash } from 'node:crypto'
import path from 'node:path'
import type { Assignment, AttemptResult, FileResult, LogResult } from '../protocol/jobs.ts'
import { safeJoin } from '../protocol/paths.ts'
import type { BlobStore } from '../cache/store.ts'

export interface RunAs { uid: number, gid: number, name: string }

export interface ExecutorOptions {
  store: BlobStore
  /** where this run's attempt directories go */
  runDir: string
  runAs?: RunAs
  /** fetch missing input blobs; returns bytes fetched over the network */
  ensureInputs: (a: Assignment) => Promise<{ bytesFetched: number, cacheHits: number }>
}

const LOG_IN_MEMORY = 1 << 20
const TAIL = 4096
const SAFE_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'

export class RunningAttempt {
  child?: ChildProcess
  suspended = false
  killedFor?: string
  readonly assignment: Assignment
  constructor (a: Assignment) { this.assignment = a }

  signalGroup (sig: NodeJS.Signals): void {
    const pid = this.child?.pid
    if (pid === undefined || this.child?.exitCode !== null) return
    try { process.kill(-pid, sig) } catch {}
  }

  suspend (): void { this.signalGroup('SIGSTOP'); this.suspended = true }
  resume (): void { this.signalGroup('SIGCONT'); this.suspended = false }
  wasPreempted (): boolean { return this.killedFor?.startsWith('preempted') === true }
  kill (why: string): void { this.killedFor ??= why; this.signalGroup('SIGCONT'); this.signalGroup('SIGKILL') }
}

class LogSink {
  private chunks: Buffer[] = []
  private size = 0
  private spilled = false
  private readonly file: string
  private pending: Promise<void> = Promise.resolve()
  constructor (file: string) { this.file = file }

  push (b: Buffer): void {
    this.size += b.length
    this.chunks.push(b)
    if (this.size > LOG_IN_MEMORY) this.spill()
  }

  /** big logs go to disk as they come: nothing is lost, memory stays bounded */
  private spill (): void {
    const data = Buffer.concat(this.chunks)
    this.chunks = []
    const flag = this.spilled ? 'a' : 'w'
    this.spilled = true
    this.pending = this.pending.then(async () => { await writeFile(this.file, data, { flag }) })
  }

  async finish (store: BlobStore): Promise<LogResult | undefined> {
    if (this.size === 0) return undefined
    if (this.spilled) {
      this.spill()
      await this.pending
      const tailBuf = Buffer.alloc(Math.min(TAIL, this.size))
      const { open } = await import('node:fs/promises')
      const fh = await open(this.file, 'r')
      try { await fh.read(tailBuf, 0, tailBuf.length, this.size - tailBuf.length) } finally { await fh.close() }
      const { hash } = await store.putFile(this.file, { move: true })
      return { hash, size: this.size, tail: tailBuf.toString('utf8') }
    }
    const all = Buffer.concat(this.chunks)
    const { hash } = await store.putBuffer(all)
    return { hash, size: this.size, tail: all.subarray(Math.max(0, all.length - TAIL)).toString('utf8') }
  }
}

async function chownTree (dir: string, uid: number, gid: number): Promise<void> {
  await chown(dir, uid, gid)
  for (const e of await readdir(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name)
    if (e.isDirectory()) await chownTree(p, uid, gid)
    else await chown(p, uid, gid)
  }
}

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

export async function runAttempt (r: RunningAttempt, opts: ExecutorOptions): Promise<AttemptResult> {
  const a = r.assignment
  const started = Date.now()
  const base = { attempt: a.attempt, outputs: [] as FileResult[], exitCode: null, signal: null, startedAt: started, bytesFetched: 0, cacheHits: 0 }
  const attemptDir = safeJoin(opts.runDir, a.attempt)
  const work = path.join(attemptDir, 'work')
  let inputWaitMs = 0
  try {
    await mkdir(work, { recursive: true })
    const t0 = Date.now()
    const got = await opts.ensureInputs(a)
    base.bytesFetched = got.bytesFetched
    base.cacheHits = got.cacheHits
    for (const input of a.inputs) await opts.store.materialize(input.hash, safeJoin(work, input.name))
    for (const out of a.outputs) await mkdir(path.dirname(safeJoin(work, out)), { recursive: true })
    if (opts.runAs !== undefined) await chownTree(work, opts.runAs.uid, opts.runAs.gid)
    inputWaitMs = Date.now() - t0
  } catch (err: any) {
    return { ...base, status: 'lost', error: `preparing the sandbox: ${err?.message ?? err}`, endedAt: Date.now(), inputWaitMs }
  }
  if (r.killedFor !== undefined) return { ...base, status: 'lost', error: r.killedFor, endedAt: Date.now(), inputWaitMs }

  const stdout = new LogSink(path.join(attemptDir, 'stdout'))
  const stderr = new LogSink(path.join(attemptDir, 'stderr'))
  const startedAt = Date.now()
  const outcome = await new Promise<{ code: number | null, signal: string | null, error?: string }>(resolve => {
    let child: ChildProcess
    try {
      child = spawn(a.cmd[0], a.cmd.slice(1), {
        cwd: work,
        env: jobEnv(a, work),
        detached: true, // own process group: a timeout or kill reaches every descendant
        stdio: ['ignore', 'pipe', 'pipe'],
        ...(opts.runAs !== undefined ? { uid: opts.runAs.uid, gid: opts.runAs.gid } : {})
      })
    } catch (err: any) {
      resolve({ code: null, signal: null, error: `cannot start ${a.cmd[0]}: ${err.message}` }); return
    }
    r.child = child
    if (r.killedFor !== undefined) r.kill(r.killedFor)
    child.stdout?.on('data', (b: Buffer) => { stdout.push(b) })
    child.stderr?.on('data', (b: Buffer) => { stderr.push(b) })
    let timer: NodeJS.Timeout | undefined
    if (a.timeoutMs > 0) timer = setTimeout(() => { r.kill(`timed out after ${a.timeoutMs} ms`) }, a.timeoutMs)
    let spawnError: string | undefined
    child.on('error', (err) => { spawnError = `cannot start ${a.cmd[0]}: ${err.message}` })
    child.on('close', (code, signal) => {
      clearTimeout(timer)
      resolve({ code, signal, error: spawnError ?? r.killedFor })
    })
  })
  const result: AttemptResult = {
    ...base,
    status: 'failed',
    exitCode: outcome.code,
    signal: outcome.signal,
    startedAt,
    endedAt: Date.now(),
    inputWaitMs,
    ...(outcome.error !== undefined ? { error: outcome.error } : {})
  }
  try {
    const [so, se] = await Promise.all([stdout.finish(opts.store), stderr.finish(opts.store)])
    if (so !== undefined) result.stdout = so
    if (se !== undefined) result.stderr = se
  } catch (err: any) {
    result.error = `${result.error ?? ''} keeping logs: ${err.message}`.trim()
  }
  if (r.wasPreempted()) { result.status = 'preempted'; return result }
  if (outcome.code !== 0 || outcome.error !== undefined) return result
  const missing: string[] = []
  for (const name of a.outputs) {
    const file = safeJoin(work, name)
    try {
      const s = await stat(file)
      if (!s.isFile()) { missing.push(`${name} (not a regular file)`); continue }
      const stored = await opts.store.putFile(file, { move: true })
      result.outputs.push({ name, ...stored })
    } catch (err: any) {
      missing.push(err?.code === 'ENOENT' ? name : `${name} (${err.message})`)
    }
  }
  if (missing.length > 0) {
    result.error = `declared outputs missing: ${missing.join(', ')}`
    return result
  }
  result.status = 'ok'
  return result
}

export function sha256 (b: Uint8Array): string { return createHash('sha256').update(b).digest('hex') }

/** uid/gid of a user from /etc/passwd (no native lookup in Node). */
export async function lookupUser (name: string): Promise<RunAs | undefined> {
  const { readFile } = await import('node:fs/promises')
  const text = await readFile('/etc/passwd', 'utf8').catch(() => '')
  for (const line of text.split('\n')) {
    const f = line.split(':')
    if (f[0] === name && f.length >= 4) return { name, uid: Number(f[2]), gid: Number(f[3]) }
  }
  return undefined
}
