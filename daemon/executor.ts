// Runs one job attempt on a worker: a fresh sandbox directory, argv exec (no shell),
// a scrubbed environment, its own process group (timeout kills the whole group),
// an unprivileged user when the daemon is root, outputs hashed into the blob store.
import { stat, open } from 'node:fs/promises'
import type { SandboxPool, Sandbox } from './sandbox.ts'
import type { Launcher } from './launcher-client.ts'
import path from 'node:path'
import type { Assignment, AttemptResult, FileResult, LogResult } from '../protocol/jobs.ts'
import { safeJoin } from '../protocol/paths.ts'
import type { BlobStore } from '../cache/store.ts'

export interface RunAs { uid: number, gid: number, name: string }

export interface ExecutorOptions {
  store: BlobStore
  /** this run's attempt directories */
  sandboxes: SandboxPool
  launcher: Launcher
  /** the process runs (its pid is known) */
  onStart?: (r: RunningAttempt) => void
  /** fetch missing input blobs; returns bytes fetched over the network */
  ensureInputs: (a: Assignment) => Promise<{ bytesFetched: number, cacheHits: number }>
}

const TAIL = 4096
const SAFE_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'

export class RunningAttempt {
  pid?: number
  /** taken from the worker's queue into a slot */
  started = false
  exited = false
  suspended = false
  killedFor?: string
  readonly assignment: Assignment
  constructor (a: Assignment) { this.assignment = a }

  signalGroup (sig: NodeJS.Signals): void {
    if (this.pid === undefined || this.pid <= 0 || this.exited) return
    try { process.kill(-this.pid, sig) } catch {}
  }

  suspend (): void { this.signalGroup('SIGSTOP'); this.suspended = true }
  resume (): void { this.signalGroup('SIGCONT'); this.suspended = false }
  wasPreempted (): boolean { return this.killedFor?.startsWith('preempted') === true }
  kill (why: string): void { this.killedFor ??= why; this.signalGroup('SIGCONT'); this.signalGroup('SIGKILL') }
}

/** A job's stdout or stderr file: kept whole in the blob store, its tail sent back. */
async function keepLog (file: string, store: BlobStore): Promise<LogResult | undefined> {
  let size: number
  try { size = (await stat(file)).size } catch { return undefined }
  // an empty file stays: the sandbox's next attempt truncates it rather than creating one
  if (size === 0) return undefined
  const fh = await open(file, 'r')
  const tailBuf = Buffer.alloc(Math.min(TAIL, size))
  try { await fh.read(tailBuf, 0, tailBuf.length, size - tailBuf.length) } finally { await fh.close() }
  const { hash } = await store.moveIn(file)
  return { hash, size, tail: tailBuf.toString('utf8') }
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
  const inputNames = a.inputs.map(i => i.name)
  let box: Sandbox
  try {
    box = opts.sandboxes.take(a.attempt, [...inputNames, ...a.outputs])
  } catch (err: any) {
    return { ...base, status: 'lost', error: `preparing the sandbox: ${err?.message ?? err}`, endedAt: Date.now(), inputWaitMs: 0 }
  }
  try {
    return await runInSandbox(r, opts, box, base)
  } finally {
    // a job's processes may outlive a kill for a moment: only a finished one gives its directory back
    if (r.pid === undefined || r.exited) opts.sandboxes.give(box, inputNames)
  }
}

async function runInSandbox (r: RunningAttempt, opts: ExecutorOptions, box: Sandbox, base: Omit<AttemptResult, 'status' | 'endedAt' | 'inputWaitMs'>): Promise<AttemptResult> {
  const a = r.assignment
  const { dir: attemptDir, work } = box
  let inputWaitMs = 0
  try {
    const t0 = Date.now()
    const got = await opts.ensureInputs(a)
    base.bytesFetched = got.bytesFetched
    base.cacheHits = got.cacheHits
    for (const input of a.inputs) {
      const dest = safeJoin(work, input.name)
      // a job running as another user gets read-only hard links (no copy); as the daemon's
      // own user it could write them, so it gets a hash-checked copy
      if (opts.sandboxes.runAs !== undefined) await opts.store.linkTo(input.hash, dest)
      else await opts.store.materialize(input.hash, dest)
    }
    inputWaitMs = Date.now() - t0
  } catch (err: any) {
    return { ...base, status: 'lost', error: `preparing the sandbox: ${err?.message ?? err}`, endedAt: Date.now(), inputWaitMs }
  }
  if (r.killedFor !== undefined) return { ...base, status: 'lost', error: r.killedFor, endedAt: Date.now(), inputWaitMs }

  const stdoutFile = path.join(attemptDir, 'stdout')
  const stderrFile = path.join(attemptDir, 'stderr')
  const startedAt = Date.now()
  let outcome: { code: number | null, signal: string | null, error?: string }
  let wrote = { out: 1, err: 1 }
  try {
    const launched = await opts.launcher.launch({
      file: a.cmd[0], args: a.cmd.slice(1), cwd: work, env: jobEnv(a, work),
      ...(opts.sandboxes.runAs !== undefined ? { uid: opts.sandboxes.runAs.uid, gid: opts.sandboxes.runAs.gid } : {}),
      stdout: stdoutFile, stderr: stderrFile
    })
    r.pid = launched.pid
    opts.onStart?.(r)
    if (r.killedFor !== undefined) r.kill(r.killedFor)
    let timer: NodeJS.Timeout | undefined
    if (a.timeoutMs > 0) timer = setTimeout(() => { r.kill(`timed out after ${a.timeoutMs} ms`) }, a.timeoutMs)
    const end = await launched.exited
    clearTimeout(timer)
    r.exited = true
    wrote = { out: end.out, err: end.err }
    outcome = { code: end.code, signal: end.signal, ...(end.signal === 'LOST' ? { error: 'job launcher exited' } : {}), ...(r.killedFor !== undefined ? { error: r.killedFor } : {}) }
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
    ...(outcome.error !== undefined ? { error: outcome.error } : {})
  }
  try {
    const [so, se] = await Promise.all([
      wrote.out > 0 ? keepLog(stdoutFile, opts.store) : undefined,
      wrote.err > 0 ? keepLog(stderrFile, opts.store) : undefined
    ])
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
      const stored = await opts.store.moveIn(file)
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
