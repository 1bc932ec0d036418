// Local control socket (<data-dir>/control.sock, mode 0600): the file's permissions are
// the authorisation. Line-delimited JSON. A `coordinate` request holds the node in
// state `coordinator` for as long as the requesting connection stays open.
import net from 'node:net'
import { openSync, closeSync } from 'node:fs'
import path from 'node:path'
import { unlink, chmod } from 'node:fs/promises'
import type { Logger } from './log.ts'
import { bestEffort } from './best-effort.ts'

export interface ControlTarget {
  status: () => Record<string, unknown>
  enterCoordinator: (run: string) => { ok: boolean, message: string }
  leaveCoordinator: () => void
  /** a running submit: stop the run */
  cancel?: () => void
  /** a daemon: re-hash every blob now (`bgrid cache verify`) */
  verify?: () => Promise<unknown>
  /** a running submit: why the run or one job waits (`bgrid status RUN --analyze [JOB]`) */
  analyze?: (job?: string) => unknown
  /** a running submit: where a job attempt's stdout/stderr are (`bgrid logs`) */
  logs?: (job: string, attempt?: number) => Promise<unknown>
  /** a daemon: its blob index (`bgrid cache ls/du` cannot open the database it holds) */
  cacheList?: () => unknown
}

const MAX_LINE = 64 * 1024
/** sun_path holds 108 bytes: a longer socket path is reached through its directory's descriptor */
const MAX_SUN_PATH = 100

/**
 * A name for a socket file that fits in sun_path: the path itself, or (a deep data dir)
 * /proc/self/fd/<dir>/<name> through a descriptor of its directory, held while used.
 */
function shortPath (file: string): { path: string, release: () => void } {
  if (Buffer.byteLength(file) <= MAX_SUN_PATH) return { path: file, release: () => {} }
  const fd = openSync(path.dirname(file), 'r')
  return { path: `/proc/self/fd/${fd}/${path.basename(file)}`, release: () => { try { closeSync(fd) } catch (err) { bestEffort('closeSync()', err) } } }
}

export class ControlServer {
  private server?: net.Server
  private readonly file: string
  private readonly target: ControlTarget
  private readonly log: Logger

  constructor (file: string, target: ControlTarget, log: Logger) {
    this.file = file; this.target = target; this.log = log
  }

  async start (): Promise<void> {
    await unlink(this.file).catch(err => { bestEffort('unlink()', err) })
    this.server = net.createServer(sock => { this.onConnection(sock) })
    const where = shortPath(this.file)
    try {
      await new Promise<void>((resolve, reject) => {
        this.server?.once('error', reject)
        this.server?.listen(where.path, () => { resolve() })
      })
    } finally { where.release() }
    await chmod(this.file, 0o600)
  }

  private onConnection (sock: net.Socket): void {
    let buf = ''
    let coordinating = false
    sock.setEncoding('utf8')
    const reply = (msg: unknown): void => { sock.write(JSON.stringify(msg) + '\n') }
    sock.on('data', (chunk: string) => {
      buf += chunk
      if (buf.length > MAX_LINE) { reply({ ok: false, error: 'request too large' }); sock.destroy(); return }
      let nl
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl)
        buf = buf.slice(nl + 1)
        let req: any
        try { req = JSON.parse(line) } catch { reply({ ok: false, error: 'not JSON' }); continue }
        if (req?.op === 'status') reply({ ok: true, status: this.target.status() })
        else if (req?.op === 'coordinate' && typeof req.run === 'string' && req.run.length <= 64) {
          const r = this.target.enterCoordinator(req.run)
          coordinating ||= r.ok
          reply({ ok: r.ok, message: r.message })
        } else if (req?.op === 'cancel' && this.target.cancel !== undefined) {
          this.target.cancel()
          reply({ ok: true, message: 'cancelling' })
        } else if (req?.op === 'cache' && this.target.cacheList !== undefined) {
          reply({ ok: true, cache: this.target.cacheList() })
        } else if (req?.op === 'verify' && this.target.verify !== undefined) {
          this.target.verify().then(report => { reply({ ok: true, report }) }, (err: Error) => { reply({ ok: false, error: err.message }) })
        } else if (req?.op === 'analyze' && this.target.analyze !== undefined && (req.job === undefined || typeof req.job === 'string')) {
          reply({ ok: true, analysis: this.target.analyze(req.job) })
        } else if (req?.op === 'logs' && this.target.logs !== undefined && typeof req.job === 'string' && (req.attempt === undefined || Number.isInteger(req.attempt))) {
          this.target.logs(req.job, req.attempt).then(logs => { reply({ ok: true, logs }) }, (err: Error) => { reply({ ok: false, error: err.message }) })
        } else reply({ ok: false, error: 'unknown op' })
      }
    })
    sock.on('close', () => { if (coordinating) this.target.leaveCoordinator() })
    sock.on('error', () => {})
  }

  async stop (): Promise<void> {
    await new Promise<void>(resolve => { if (this.server === undefined) resolve(); else this.server.close(() => { resolve() }) })
    await unlink(this.file).catch(err => { bestEffort('unlink()', err) })
  }
}

/** Client side: ask the local daemon (if any) something; undefined if none answers. */
export async function controlRequest (file: string, req: unknown, keepOpen = false, timeoutMs = 2000): Promise<{ reply: any, socket: net.Socket } | undefined> {
  let where: ReturnType<typeof shortPath>
  try { where = shortPath(file) } catch { return undefined }
  return await new Promise(resolve => {
    const sock = net.connect(where.path)
    sock.once('connect', () => { where.release() })
    sock.once('close', () => { where.release() })
    let buf = ''
    const t = setTimeout(() => { sock.destroy(); resolve(undefined) }, timeoutMs)
    sock.setEncoding('utf8')
    sock.on('error', () => { clearTimeout(t); resolve(undefined) })
    sock.on('connect', () => { sock.write(JSON.stringify(req) + '\n') })
    sock.on('data', (c: string) => {
      buf += c
      const nl = buf.indexOf('\n')
      if (nl < 0) return
      clearTimeout(t)
      let reply: any
      try { reply = JSON.parse(buf.slice(0, nl)) } catch { reply = undefined }
      if (!keepOpen) sock.end()
      resolve({ reply, socket: sock })
    })
  })
}
