// Daemons as real child processes, each in its own namespace of a Lab; helpers to
// run the CLI beside them and to wait for log events (never for a fixed sleep).
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { mkdtempSync, mkdirSync, rmSync, existsSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { Lab, HostLab, canMakeNamespaces, type LabHost, type LabOptions } from './netns.ts'
import { mountsUnder } from '../daemon/sandbox-fs.ts'
import { tryBestEffort } from '../protocol/best-effort.ts'

export const ROOT = findRoot(path.dirname(fileURLToPath(import.meta.url)))

function findRoot (dir: string): string {
  return existsSync(path.join(dir, 'package.json')) ? dir : findRoot(path.dirname(dir))
}
/** the built CLI (`npm run build`): what users run */
export const BGRID = path.join(ROOT, 'dist', 'bin', 'bgrid.js')
/** a misbehaving daemon for tests, from source (`daemon --cheat flip|flaky ...`, see the file) */
export const CHEATING_DAEMON = path.join(ROOT, 'testbed', 'cheating-daemon.ts')
/** the libp2p port of a lab host's first daemon; more daemons on the same host take the next ones */
const FIRST_PORT = 4001

export interface StartDaemonOptions {
  /** the entry script to run instead of the CLI (e.g. CHEATING_DAEMON); it takes `daemon` and the CLI's daemon flags */
  entry?: string
  /** the libp2p port (default: the first one no live daemon of this cluster holds on that host) */
  port?: number
}

export interface LogEvent { msg: string, [k: string]: unknown }

/**
 * A scratch directory for a test's daemons and files. As root, under /var/lib: a
 * contained daemon refuses a data dir under /tmp (every job gets a private /tmp).
 */
export function scratchDir (prefix: string): string {
  const base = process.getuid?.() === 0 ? '/var/lib/bgrid-labs' : os.tmpdir()
  mkdirSync(base, { recursive: true, mode: 0o755 })
  return mkdtempSync(path.join(base, prefix))
}

export class Proc {
  readonly child: ChildProcess
  readonly events: LogEvent[] = []
  stdout = ''
  stderr = ''
  readonly exited: Promise<{ code: number | null, signal: string | null }>
  private waiters: Array<() => void> = []

  constructor (child: ChildProcess) {
    this.child = child
    let errBuf = ''
    child.stdout?.setEncoding('utf8')
    child.stderr?.setEncoding('utf8')
    child.stdout?.on('data', (c: string) => { this.stdout += c; this.notify() })
    child.stderr?.on('data', (c: string) => {
      this.stderr += c
      errBuf += c
      let nl
      while ((nl = errBuf.indexOf('\n')) >= 0) {
        const line = errBuf.slice(0, nl)
        errBuf = errBuf.slice(nl + 1)
        if (!line.startsWith('{')) continue
        tryBestEffort('reading a JSON log line', () => { this.events.push(JSON.parse(line)) })
      }
      this.notify()
    })
    this.exited = new Promise(resolve => { child.on('exit', (code, signal) => { resolve({ code, signal }); this.notify() }) })
  }

  get pid (): number { return this.child.pid ?? -1 }
  get alive (): boolean { return this.child.exitCode === null && this.child.signalCode === null }

  private notify (): void { for (const w of this.waiters.splice(0)) w() }

  /** Wait until pred() holds, re-checked on every output or exit; fails after timeoutMs. */
  async until<T> (pred: () => T | undefined | false, timeoutMs: number, what: string): Promise<T> {
    const deadline = Date.now() + timeoutMs
    for (;;) {
      const v = pred()
      if (v !== undefined && v !== false) return v
      if (!this.alive) throw new Error(`process ${this.pid} exited (${String(this.child.exitCode ?? this.child.signalCode)}) while waiting for ${what}\n--- stderr tail ---\n${this.stderr.slice(-3000)}`)
      const left = deadline - Date.now()
      if (left <= 0) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}\n--- stderr tail ---\n${this.stderr.slice(-3000)}`)
      await new Promise<void>(resolve => {
        const t = setTimeout(resolve, Math.min(left, 250))
        this.waiters.push(() => { clearTimeout(t); resolve() })
      })
    }
  }

  async waitLog (match: (e: LogEvent) => boolean, timeoutMs: number, what: string, from = 0): Promise<LogEvent> {
    return await this.until(() => this.events.slice(from).find(match), timeoutMs, what)
  }

  async done (timeoutMs: number): Promise<{ code: number | null, signal: string | null }> {
    let t: NodeJS.Timeout | undefined
    const timeout = new Promise<never>((_resolve, reject) => { t = setTimeout(() => { reject(new Error(`process ${this.pid} still running after ${timeoutMs} ms\n${this.stderr.slice(-3000)}`)) }, timeoutMs) })
    try { return await Promise.race([this.exited, timeout]) } finally { clearTimeout(t) }
  }

  kill (sig: NodeJS.Signals = 'SIGTERM'): void {
    if (this.alive) tryBestEffort('signalling a child process', () => { process.kill(this.pid, sig) })
  }
}

export interface DaemonProc extends Proc { host: LabHost, peer: string, port: number, dataDir: string }

export class Cluster {
  readonly lab: Lab | HostLab
  readonly tmp: string
  readonly daemons: DaemonProc[] = []
  readonly procs: Proc[] = []
  private counter = 0
  /** daemons starting (not listed yet): their host and port */
  private readonly starting = new Set<{ ns: string, port: number }>()
  /** daemons' log level: debug for tests (logs explain failures), info for benchmarks */
  logLevel = 'debug'

  constructor (opts: LabOptions & { hostMode?: boolean } = {}) {
    this.lab = opts.hostMode === true ? new HostLab() : new Lab(opts)
    this.tmp = scratchDir('lab-')
  }

  spawn (host: LabHost, argv: string[], env: Record<string, string> = {}, cwd = ROOT): Proc {
    const full = this.lab.exec(host, argv)
    const child = spawn(full[0], full.slice(1), { cwd, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } })
    const p = new Proc(child)
    this.procs.push(p)
    return p
  }

  /** Run the bgrid CLI inside a host's namespace. */
  cli (host: LabHost, args: string[], env: Record<string, string> = {}): Proc {
    return this.spawn(host, [process.execPath, BGRID, ...args], env)
  }

  async runCli (host: LabHost, args: string[], timeoutMs = 60_000, env: Record<string, string> = {}): Promise<{ code: number | null, stdout: string, stderr: string }> {
    const p = this.cli(host, args, env)
    const { code } = await p.done(timeoutMs)
    return { code, stdout: p.stdout, stderr: p.stderr }
  }

  /**
   * A daemon on a new host, or on `host`: several daemons may share one host (one
   * network namespace, one address), each on its own port and data dir, as a volunteer
   * running several daemons on one PC would.
   */
  async startDaemon (args: string[] = ['--always-available'], host?: LabHost, name?: string, opts: StartDaemonOptions = {}): Promise<DaemonProc> {
    const h = host ?? this.lab.addHost()
    const dataDir = path.join(this.tmp, name ?? `d${++this.counter}`)
    const port = String(this.lab.hostMode ? 0 : opts.port ?? this.freePort(h))
    // taken from now on, though the daemon is not listed until it has started
    const pending = { ns: h.ns, port: Number(port) }
    this.starting.add(pending)
    const argv = ['daemon', '--data-dir', dataDir, '--json-logs', '--port', port, '--sample', '500', ...args]
    const env = { BGRID_LOG_LEVEL: this.logLevel }
    const p = (opts.entry !== undefined ? this.spawn(h, [process.execPath, opts.entry, ...argv], env) : this.cli(h, argv, env)) as DaemonProc
    const started = await p.waitLog(e => e.msg === 'daemon started', 20_000, `daemon in ${h.ns} to start`).finally(() => { this.starting.delete(pending) })
    p.host = h
    p.peer = String(started.peer)
    p.port = Number(started.port)
    p.dataDir = dataDir
    this.daemons.push(p)
    return p
  }

  /** the first port from FIRST_PORT that no live daemon of this cluster holds on host h */
  private freePort (h: LabHost): number {
    const taken = new Set([...this.daemons.filter(d => d.host.ns === h.ns && d.alive), ...[...this.starting].filter(s => s.ns === h.ns)].map(d => d.port))
    let port = FIRST_PORT
    while (taken.has(port)) port++
    return port
  }

  async startDaemons (n: number, args?: string[]): Promise<DaemonProc[]> {
    const out: DaemonProc[] = []
    for (let i = 0; i < n; i++) out.push(this.startDaemon(args) as unknown as DaemonProc)
    return await Promise.all(out)
  }

  private dags = 0

  /** A DAG file of its own directory under the cluster's scratch dir, with other files beside it (a validator script...). */
  writeDag (dag: unknown, files: Record<string, string> = {}): string {
    const dir = path.join(this.tmp, `dag${++this.dags}`)
    mkdirSync(dir, { recursive: true })
    for (const [name, text] of Object.entries(files)) writeFileSync(path.join(dir, name), text)
    writeFileSync(path.join(dir, 'dag.json'), JSON.stringify(dag))
    return path.join(dir, 'dag.json')
  }

  async stop (): Promise<void> {
    for (const p of this.procs) p.kill('SIGTERM')
    await Promise.all(this.procs.map(async p => {
      try { await p.done(12_000) } catch { p.kill('SIGKILL'); await p.exited }
    }))
    this.lab.destroySync()
    // a daemon killed with SIGKILL leaves its sandbox file systems to its watchdog, which
    // may not be done yet: detach them here, or removing the scratch dir meets EBUSY
    for (const mp of mountsUnder(this.tmp)) spawnSync('umount', ['-l', mp])
    rmSync(this.tmp, { recursive: true, force: true })
  }
}


/** The JSON lines a process printed on stdout (NDJSON events, probe results). */
export function stdoutJson (p: Proc): any[] {
  return p.stdout.split('\n').filter(l => l.startsWith('{')).map(l => JSON.parse(l))
}

/**
 * A cluster for one test file, torn down with it; or, where network namespaces cannot
 * be made (not root), a skip-all plan and undefined.
 */
export function clusterOrSkip (t: { plan: (n: number, why: string) => void, teardown: (fn: () => Promise<void>) => void }): Cluster | undefined {
  if (!canMakeNamespaces()) {
    t.plan(0, 'needs root and ip netns: daemons run in their own network namespaces')
    return undefined
  }
  const cluster = new Cluster()
  t.teardown(async () => { await cluster.stop() })
  return cluster
}
