// BOINC's script validator: the job's own `compare` command, run on the submitter's
// machine with two result directories appended, says whether two results are the same
// (exit 0) or not (any other exit): floating-point outputs that differ in the last
// digits can still agree. It runs with a time limit, from the DAG's directory.
import { spawn } from 'node:child_process'
import { BgridError } from '../../protocol/errors.ts'
import { bestEffort } from '../../protocol/best-effort.ts'

export const COMPARE_TIMEOUT_MS = 60_000

export async function resultsEquivalent (cmd: string[], cwd: string, dirA: string, dirB: string, timeoutMs = COMPARE_TIMEOUT_MS): Promise<boolean> {
  return await new Promise<boolean>((resolve, reject) => {
    const child = spawn(cmd[0], [...cmd.slice(1), dirA, dirB], { cwd, stdio: ['ignore', 'ignore', 'pipe'], detached: true })
    let stderr = ''
    child.stderr.setEncoding('utf8')
    child.stderr.on('data', (c: string) => { if (stderr.length < 4096) stderr += c })
    const timer = setTimeout(() => { try { process.kill(-(child.pid as number), 'SIGKILL') } catch (err) { bestEffort('process.kill()', err) } }, timeoutMs)
    child.once('error', err => { clearTimeout(timer); reject(new BgridError('INVALID_DAG', `compare command ${cmd[0]}: ${err.message}`)) })
    child.once('exit', (code, signal) => {
      clearTimeout(timer)
      if (signal !== null) reject(new BgridError('TIMEOUT', `compare command ${cmd[0]} killed by ${signal}${signal === 'SIGKILL' ? ` (over ${timeoutMs / 1000} s)` : ''}: ${stderr.trim().slice(-300)}`))
      else resolve(code === 0)
    })
  })
}
