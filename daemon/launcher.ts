// The Node job launcher: the starter of a daemon whose jobs run unconfined (not root,
// or --isolation none). It speaks bgrid-contain's protocol (see bgrid-contain.c and
// launcher-client.ts) but honours only what a plain spawn can: argv, environment, cwd,
// uid/gid, its own process group. It imports nothing heavy on purpose.
import { spawn } from 'node:child_process'
import { openSync, closeSync, fstatSync, readFileSync, existsSync, constants as fsConst } from 'node:fs'
import { bestEffort } from '../protocol/best-effort.ts'

const send = (line: string): void => { process.stdout.write(line + '\n') }

/**
 * CPU time of the children this process reaped, in clock ticks (/proc/self/stat cutime +
 * cstime: Node has no wait4). undefined where there is no /proc.
 */
function reapedTicks (): number | undefined {
  try {
    const stat = readFileSync('/proc/self/stat', 'utf8')
    // fields from the third on (after the command name, which may hold spaces): cutime is the 16th, cstime the 17th
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    const ticks = Number(f[13]) + Number(f[14])
    return Number.isFinite(ticks) ? ticks : undefined
  } catch { return undefined }
}
/** Linux reports times to user space in USER_HZ, 100 a second on every architecture */
const MS_PER_TICK = 10
let reaped = reapedTicks()
/** jobs running, by pid; `shared`: reaped in one batch with another, their times mixed */
const live = new Map<number, { shared: boolean }>()

/**
 * A job's CPU time, from the growth of our reaped children's total since the last exit.
 * libuv reaps every exited child first, then reports each: when another job was reaped
 * with this one (gone from /proc, its exit not reported yet), the growth is theirs
 * together and neither gets a figure (the daemon counts wall time instead).
 */
function cpuOf (pid: number): string {
  const now = reapedTicks()
  const grown = now !== undefined && reaped !== undefined ? now - reaped : undefined
  reaped = now
  const me = live.get(pid)
  live.delete(pid)
  let shared = me?.shared ?? true
  for (const [other, o] of live) if (!existsSync(`/proc/${other}`)) { o.shared = true; shared = true }
  return grown === undefined || shared || grown < 0 ? '' : ` cpu=${grown * MS_PER_TICK}`
}

/** the log files of the attempt's box (root's, in a directory only the daemon can write: never a link) */
const LOG_FILE = fsConst.O_WRONLY | fsConst.O_CREAT | fsConst.O_TRUNC | fsConst.O_NOFOLLOW

function start (fields: string[]): void {
  const [id, stdout, stderr, , cwd, , , uid, gid] = fields
  let k = 13
  const list = (): string[] => { const n = Number(fields[k++]); const out = fields.slice(k, k + n); k += n; return out }
  list() // cgroups: none here
  list() // hidden directories: none here
  const env = Object.fromEntries(list().map(e => { const i = e.indexOf('='); return [e.slice(0, i), e.slice(i + 1)] }))
  const argv = list()
  let out: number | undefined
  let err: number | undefined
  try {
    // files, not pipes: a pipe costs more per job than an open(), and a background
    // descendant holding a pipe would hold the job
    out = openSync(stdout, LOG_FILE, 0o600)
    err = openSync(stderr, LOG_FILE, 0o600)
    const o = out
    const e = err
    const child = spawn(argv[0], argv.slice(1), {
      cwd,
      env,
      detached: true, // own process group: the daemon signals the whole group
      stdio: ['ignore', o, e],
      ...(uid !== '-1' ? { uid: Number(uid), gid: Number(gid) } : {})
    })
    let spawned = false
    child.on('error', (x) => {
      if (spawned) return
      closeSync(o)
      closeSync(e)
      send(`exit ${id} - - 0 0 cannot start ${argv[0]}: ${x.message.replace(/\n/g, ' ')}`)
    })
    child.on('spawn', () => {
      spawned = true
      if (child.pid !== undefined) live.set(child.pid, { shared: false })
      send(`spawned ${id} ${child.pid ?? -1}`)
    })
    child.on('exit', (code, signal) => {
      if (!spawned) return
      const cpu = child.pid !== undefined ? cpuOf(child.pid) : ''
      // the job is over: what it left running in its process group goes too (as HTCondor
      // does without containment)
      if (child.pid !== undefined) { try { process.kill(-child.pid, 'SIGKILL') } catch (err) { bestEffort('process.kill()', err) } }
      let so = 1
      let se = 1
      try { so = fstatSync(o).size; se = fstatSync(e).size } catch (err) { bestEffort('fstatSync()', err) }
      closeSync(o)
      closeSync(e)
      send(`exit ${id} ${code ?? '-'} ${signal ?? '-'} ${so} ${se}${cpu}`)
    })
    out = undefined
    err = undefined
  } catch (x: any) {
    send(`exit ${id} - - 0 0 ${String(x.message).replace(/\n/g, ' ')}`)
  } finally {
    if (out !== undefined) closeSync(out)
    if (err !== undefined) closeSync(err)
  }
}

// frames: 'R', u32le length, NUL-terminated fields
let buf: Buffer = Buffer.alloc(0)
process.stdin.on('data', (chunk: Buffer) => {
  buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk])
  while (buf.length >= 5) {
    const len = buf.readUInt32LE(1)
    if (buf[0] !== 0x52) { process.stderr.write('launcher: bad request\n'); process.exit(1) }
    if (buf.length < 5 + len) break
    const fields = buf.subarray(5, 5 + len).toString('utf8').split('\0').slice(0, -1)
    buf = buf.subarray(5 + len)
    start(fields)
  }
})
// the daemon is gone: nothing left to do
process.stdin.on('end', () => { process.exit(0) })
