// Programs DAGMan runs on the submit machine itself: PRE and POST scripts, and scheduler
// or local universe jobs. Each runs in its own process group, killed whole when its node
// is removed; its exit is what DAGMan sees (a code, or a signal's number negated).
import { spawn } from 'node:child_process'
import { openSync, closeSync, existsSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { errorMessage } from '../../protocol/errors.ts'
import { bestEffort } from '../../protocol/best-effort.ts'

/** a child's exit as DAGMan sees it: its code, or its signal's number negated */
function exitValue (code: number | null, signal: NodeJS.Signals | null): number {
  if (code !== null) return code
  return -(os.constants.signals[signal ?? 'SIGKILL'] ?? 9)
}

/** Run a process to its end in `cwd`; killed (its whole group) when `signal` aborts. */
export async function runProcess (file: string, args: string[], o: { cwd: string, env: Record<string, string>, stdin?: string | null, stdout?: string | null, stderr?: string | null, append?: boolean, signal: AbortSignal }): Promise<{ code: number, why?: string }> {
  const fds: number[] = []
  const open = (f: string | null | undefined, flags: string): number | 'ignore' => {
    if (f === null || f === undefined) return 'ignore'
    const fd = openSync(f, flags, 0o644)
    fds.push(fd)
    return fd
  }
  try {
    const inFd = open(o.stdin, 'r')
    const mode = o.append === true ? 'a' : 'w'
    const outFd = open(o.stdout, mode)
    const errFd = o.stderr !== null && o.stderr === o.stdout ? outFd : open(o.stderr, mode)
    return await new Promise(resolve => {
      let child: ReturnType<typeof spawn>
      try {
        child = spawn(file, args, { cwd: o.cwd, env: o.env, stdio: [inFd, outFd, errFd], detached: true })
      } catch (err) { resolve({ code: 1, why: `cannot start ${file}: ${errorMessage(err)}` }); return }
      const kill = (): void => { try { process.kill(-(child.pid as number), 'SIGKILL') } catch (err) { bestEffort('process.kill()', err) } }
      o.signal.addEventListener('abort', kill, { once: true })
      child.once('error', err => { o.signal.removeEventListener('abort', kill); resolve({ code: 1, why: `cannot start ${file}: ${err.message}` }) })
      child.once('exit', (code, sig) => {
        o.signal.removeEventListener('abort', kill)
        // nothing it started outlives it
        kill()
        resolve({ code: exitValue(code, sig) })
      })
    })
  } catch (err) {
    return { code: 1, why: errorMessage(err) }
  } finally {
    for (const fd of fds) closeSync(fd)
  }
}

/** a script's or executable's name: a file in `dir` when there is one there, else looked up in PATH */
export function program (name: string, dir: string): string {
  if (name.includes('/')) return path.resolve(dir, name)
  const local = path.join(dir, name)
  return existsSync(local) ? local : name
}

/** the few variables of the submitter's environment a local universe job starts with */
export function baseEnv (env: Record<string, string | undefined>): Record<string, string> {
  const out: Record<string, string> = {}
  for (const k of ['PATH', 'HOME', 'USER', 'LOGNAME', 'LANG', 'LC_ALL', 'TZ', 'PERL5LIB']) if (env[k] !== undefined) out[k] = env[k] as string
  return out
}
