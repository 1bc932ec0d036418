// The daemon's side of the job starter: a small helper process that starts job
// processes for it. Spawning from the daemon itself costs ~7 ms a job (fork copies a
// large process's page tables); from a small process, ~2 ms.
//
// Two starters speak the same protocol (see bgrid-contain.c): the C one, bgrid-contain,
// for a root daemon (it clones each job straight into its containment), and
// launcher.ts, for a daemon whose jobs run unconfined (no root, or --isolation none).
import { spawn, type ChildProcess } from 'node:child_process'
import { createInterface } from 'node:readline'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { MAX_CPU_MS } from '../protocol/jobs.ts'

const self = fileURLToPath(import.meta.url)
// launcher.ts from source, launcher.js once built
const NODE_LAUNCHER = path.join(path.dirname(self), `launcher${path.extname(self)}`)

export interface LaunchSpec {
  argv: string[]
  env: Record<string, string>
  /** the job's files: stdout, stderr (opened by the starter, in the attempt's private box) */
  stdout: string
  stderr: string
  /** contained: its own namespaces, work/ and tmp/ the only writable places */
  contain?: { work: string, tmp: string, hide: string[], cgroups: string[], network: boolean, fsizeBytes: number, nofile: number, nice: number }
  /** uncontained: where it runs */
  cwd: string
  uid?: number
  gid?: number
}

export interface Exit {
  code: number | null
  signal: string | null
  /** bytes the job wrote to stdout/stderr (0: nothing to keep) */
  out: number
  err: number
  /** the job's CPU time (user + system, with the descendants it waited for), ms; absent: not measured */
  cpuMs?: number
  /** the job never started: why */
  setupError?: string
}

export interface Launched {
  pid: number
  exited: Promise<Exit>
}

interface Pending {
  onSpawn: (pid: number) => void
  onExit: (exit: Exit) => void
}

/** A request frame: 'R', u32le length, NUL-terminated fields (see bgrid-contain.c). */
export function encodeRequest (id: string, s: LaunchSpec): Buffer {
  const c = s.contain
  const env = Object.entries(s.env).map(([k, v]) => `${k}=${v}`)
  const fields = [
    id, s.stdout, s.stderr, c !== undefined ? '1' : '0', s.cwd, c?.work ?? '', c?.tmp ?? '',
    String(s.uid ?? -1), String(s.gid ?? -1), String(c?.fsizeBytes ?? -1), String(c?.nofile ?? -1), String(c?.nice ?? 0), c?.network === false ? '1' : '0',
    String(c?.cgroups.length ?? 0), ...(c?.cgroups ?? []),
    String(c?.hide.length ?? 0), ...(c?.hide ?? []),
    String(env.length), ...env,
    String(s.argv.length), ...s.argv
  ]
  for (const f of fields) if (f.includes('\0')) throw new Error('NUL byte in a job\'s command, environment or path')
  const payload = Buffer.from(fields.map(f => `${f}\0`).join(''), 'utf8')
  const head = Buffer.alloc(5)
  head[0] = 0x52
  head.writeUInt32LE(payload.length, 1)
  return Buffer.concat([head, payload])
}

/**
 * "exit <id> <code|-> <signal|-> <out> <err>[ cpu=<ms>][ <error>]". `cpu=` came later
 * (a starter built before it says nothing there), and is never the start of an error.
 */
export function parseExit (fields: string[], rest: string): Exit {
  const cpu = /^cpu=(\d+)(?: |$)/.exec(rest)
  const error = cpu === null ? rest : rest.slice(cpu[0].length)
  return {
    code: fields[2] === '-' ? null : Number(fields[2]),
    signal: fields[3] === '-' ? null : fields[3],
    out: Number(fields[4] ?? 1),
    err: Number(fields[5] ?? 1),
    // within the jobs schema's bound, whatever a starter says (a result out of it would be refused whole)
    ...(cpu !== null ? { cpuMs: Math.min(Number(cpu[1]), MAX_CPU_MS) } : {}),
    ...(error !== '' ? { setupError: error } : {})
  }
}

export class Launcher {
  /** the C starter, for contained jobs; undefined: the Node launcher */
  private readonly binary?: string
  /** cgroups the C starter joins once: its jobs are born in them */
  private readonly cgroups: string[]
  private child?: ChildProcess
  private readonly pending = new Map<string, Pending>()
  private seq = 0

  constructor (binary?: string, cgroups: string[] = []) {
    this.binary = binary
    this.cgroups = cgroups
  }

  /** the starter's pid (it shares its jobs' cgroups: killing what is left there spares it) */
  get pid (): number | undefined { return this.child?.pid }

  private ensure (): ChildProcess {
    if (this.child !== undefined && this.child.exitCode === null && this.child.signalCode === null) return this.child
    const child = this.binary !== undefined
      // an empty environment: the starter is root, nothing of ours needs to reach it
      ? spawn(this.binary, ['--serve', ...this.cgroups.flatMap(c => ['--cgroup', c])], { stdio: ['pipe', 'pipe', 'inherit'], env: {} })
      // a small heap and no helper threads: fork() copies less, and every job is a fork
      : spawn(process.execPath, ['--single-threaded', '--max-semi-space-size=1', '--max-old-space-size=64', NODE_LAUNCHER], { stdio: ['pipe', 'pipe', 'inherit'] })
    child.stdout?.setEncoding('utf8')
    createInterface({ input: child.stdout! }).on('line', (line) => {
      const fields = line.split(' ', 6)
      const p = this.pending.get(fields[1])
      if (p === undefined) return
      if (fields[0] === 'spawned') p.onSpawn(Number(fields[2]))
      else if (fields[0] === 'exit') {
        this.pending.delete(fields[1])
        // the error, if any, is the rest of the line after the sixth field
        const rest = line.split(' ').slice(6).join(' ')
        p.onExit(parseExit(fields, rest))
      }
    })
    child.on('exit', () => {
      // the starter died: its children died with it, and their exits will never be reported
      for (const [id, p] of this.pending) { this.pending.delete(id); p.onExit({ code: null, signal: 'LOST', out: 1, err: 1 }) }
    })
    child.stdin?.on('error', () => {})
    this.child = child
    return child
  }

  /** Start a process; resolves once it runs (a job that could not start resolves with its exit at once). */
  async launch (spec: LaunchSpec): Promise<Launched> {
    const id = String(++this.seq)
    const frame = encodeRequest(id, spec)
    return await new Promise<Launched>((resolve) => {
      let resolveExit!: (v: Exit) => void
      const exited = new Promise<Exit>(r => { resolveExit = r })
      let started = false
      this.pending.set(id, {
        onSpawn: (pid) => { started = true; resolve({ pid, exited }) },
        onExit: (exit) => {
          if (!started) { started = true; resolve({ pid: -1, exited }) }
          resolveExit(exit)
        }
      })
      this.ensure().stdin?.write(frame)
    })
  }

  stop (): void {
    this.child?.stdin?.end()
    this.child = undefined
  }
}
