// The job launcher: a small helper process that spawns job processes for the daemon.
// Spawning from the daemon itself costs ~7 ms a job (fork copies a large process's
// page tables); from this small process, ~2 ms. Line-delimited JSON on stdin/stdout.
// It imports nothing heavy on purpose.
import { spawn } from 'node:child_process'
import { openSync, closeSync, statSync, readFileSync, constants as fsConst } from 'node:fs'
import { createInterface } from 'node:readline'

interface SpawnRequest {
  id: string, file: string, args: string[], cwd: string, env: Record<string, string>
  uid?: number, gid?: number, stdout: string, stderr: string
  /** the containment helper explains a failure to start here (and exits 255) */
  statusFile?: string
}

/** new files only: an attempt's directory is fresh, and nothing in it is followed */
const NEW_FILE = fsConst.O_WRONLY | fsConst.O_CREAT | fsConst.O_EXCL | fsConst.O_NOFOLLOW

const send = (msg: unknown): void => { process.stdout.write(JSON.stringify(msg) + '\n') }

const rl = createInterface({ input: process.stdin })
rl.on('line', (line) => {
  let req: SpawnRequest
  try { req = JSON.parse(line) } catch { return }
  let out: number | undefined
  let err: number | undefined
  try {
    // files, not pipes: a pipe costs more per job than an open(), and a background
    // descendant holding a pipe would hold the job
    out = openSync(req.stdout, NEW_FILE, 0o600)
    err = openSync(req.stderr, NEW_FILE, 0o600)
    const child = spawn(req.file, req.args, {
      cwd: req.cwd,
      env: req.env,
      detached: true, // own process group: the daemon signals the whole group
      stdio: ['ignore', out, err],
      ...(req.uid !== undefined ? { uid: req.uid, gid: req.gid } : {})
    })
    child.on('error', (e) => { send({ id: req.id, event: 'error', message: e.message }) })
    child.on('spawn', () => { send({ id: req.id, event: 'spawned', pid: child.pid }) })
    child.on('exit', (code, signal) => {
      // the job is over: what it left running in its process group goes too (as HTCondor
      // does), so nothing writes into a sandbox that a later attempt may reuse
      if (child.pid !== undefined) { try { process.kill(-child.pid, 'SIGKILL') } catch {} }
      // sizes of what it wrote, so the daemon need not look at empty files
      const size = (file: string): number => statSync(file).size
      let o = 1
      let e = 1
      try { o = size(req.stdout); e = size(req.stderr) } catch {}
      let setupError: string | undefined
      if (code === 255 && req.statusFile !== undefined) { try { setupError = readFileSync(req.statusFile, 'utf8').slice(0, 2000) } catch {} }
      send({ id: req.id, event: 'exit', code, signal, out: o, err: e, ...(setupError !== undefined ? { setupError } : {}) })
    })
  } catch (e: any) {
    send({ id: req.id, event: 'error', message: e.message })
  } finally {
    if (out !== undefined) closeSync(out)
    if (err !== undefined) closeSync(err)
  }
})
// the daemon is gone: nothing left to do
rl.on('close', () => { process.exit(0) })
