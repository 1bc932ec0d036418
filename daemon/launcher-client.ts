// The daemon's side of the job launcher (see launcher.ts).
import { spawn, type ChildProcess } from 'node:child_process'
import { createInterface } from 'node:readline'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

const self = fileURLToPath(import.meta.url)
// launcher.ts from source, launcher.js once built
const LAUNCHER = path.join(path.dirname(self), `launcher${path.extname(self)}`)

export interface LaunchSpec {
  file: string, args: string[], cwd: string, env: Record<string, string>
  uid?: number, gid?: number, stdout: string, stderr: string
  /** where the containment helper explains why the job could not start */
  statusFile?: string
}

export interface Exit {
  code: number | null
  signal: string | null
  /** bytes the job wrote to stdout/stderr (0: nothing to keep) */
  out: number
  err: number
  /** the job never started: why (the containment helper's explanation) */
  setupError?: string
}

export interface Launched {
  pid: number
  exited: Promise<Exit>
}

interface Pending {
  onSpawn: (pid: number) => void
  onError: (message: string) => void
  onExit: (exit: Exit) => void
}

export class Launcher {
  private child?: ChildProcess
  private readonly pending = new Map<string, Pending>()
  private seq = 0

  private ensure (): ChildProcess {
    if (this.child !== undefined && this.child.exitCode === null && this.child.signalCode === null) return this.child
    // a small heap and no helper threads: fork() copies less, and every job is a fork
    const child = spawn(process.execPath, ['--single-threaded', '--max-semi-space-size=1', '--max-old-space-size=64', LAUNCHER], { stdio: ['pipe', 'pipe', 'inherit'] })
    child.stdout?.setEncoding('utf8')
    createInterface({ input: child.stdout! }).on('line', (line) => {
      let m: any
      try { m = JSON.parse(line) } catch { return }
      const p = this.pending.get(m.id)
      if (p === undefined) return
      if (m.event === 'spawned') p.onSpawn(m.pid)
      else if (m.event === 'error') { this.pending.delete(m.id); p.onError(m.message) }
      else if (m.event === 'exit') {
        this.pending.delete(m.id)
        p.onExit({ code: m.code, signal: m.signal, out: Number(m.out ?? 1), err: Number(m.err ?? 1), ...(typeof m.setupError === 'string' ? { setupError: m.setupError } : {}) })
      }
    })
    child.on('exit', () => {
      // the launcher died: its children's exits will never be reported
      for (const [id, p] of this.pending) { this.pending.delete(id); p.onError('job launcher exited') }
    })
    this.child = child
    return child
  }

  /** Start a process; resolves once it runs (or rejects if it could not start). */
  async launch (spec: LaunchSpec): Promise<Launched> {
    const id = String(++this.seq)
    return await new Promise<Launched>((resolve, reject) => {
      let resolveExit!: (v: Exit) => void
      const exited = new Promise<Exit>(r => { resolveExit = r })
      let started = false
      this.pending.set(id, {
        onSpawn: (pid) => { started = true; resolve({ pid, exited }) },
        onError: (message) => {
          if (!started) reject(new Error(message))
          else resolveExit({ code: null, signal: 'LOST', out: 1, err: 1 })
        },
        onExit: (exit) => {
          if (!started) { started = true; resolve({ pid: -1, exited }) }
          resolveExit(exit)
        }
      })
      this.ensure().stdin?.write(JSON.stringify({ id, ...spec }) + '\n')
    })
  }

  stop (): void {
    this.child?.stdin?.end()
    this.child = undefined
  }
}
