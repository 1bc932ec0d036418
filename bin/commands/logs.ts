// `bgrid logs RUN JOB [--attempt N] [--follow]`: a job's stdout and stderr. While the
// run goes, its coordinator brings the attempt's logs from the worker that holds them;
// once it is over, they are read from --out (the last attempt) or the run's own store.
// A job's output goes to a terminal escaped (protocol/printable.ts: no control sequence of
// the job's reaches it), to a pipe or a file as the bytes the job wrote.
import { readFile } from 'node:fs/promises'
import { createHash } from 'node:crypto'
import { blobFile } from '../../cache/store.ts'
import path from 'node:path'
import { controlRequest } from '../../protocol/control.ts'
import { resolveRunId, readRun } from '../../coordinator/runs.ts'
import { runsDirOf } from '../../coordinator/run-dir.ts'
import { BgridError } from '../../protocol/errors.ts'
import { printable, printableFor } from '../../protocol/printable.ts'
import { bestEffort } from '../../protocol/best-effort.ts'
import { sleep } from '../../protocol/sleep.ts'

interface LogsOptions { dataDir: string, attempt?: number, follow?: boolean, stdout?: boolean, stderr?: boolean, timeout?: number }

async function show (file: string | undefined, tail: string | undefined, to: NodeJS.WriteStream, sha256?: string): Promise<boolean> {
  if (file !== undefined) {
    try {
      const bytes = await readFile(file)
      // a stored copy is shown only if it still is what its worker reported
      if (sha256 !== undefined && createHash('sha256').update(bytes).digest('hex') !== sha256) {
        process.stderr.write(`(the stored copy of ${printable(path.basename(file))} no longer matches its hash: ` +
          'not shown)\n')
        return false
      }
      to.write(printableFor(to, bytes))
      return true
    } catch (err) { bestEffort('readFile()', err) }
  }
  if (tail !== undefined) { to.write(printableFor(to, tail)); return true }
  return false
}

export async function logsCommand (runArg: string, job: string, o: LogsOptions): Promise<number> {
  const id = resolveRunId(o.dataDir, runArg)
  const dir = path.join(runsDirOf(o.dataDir), id)
  const want = { stdout: o.stderr !== true || o.stdout === true, stderr: o.stdout !== true || o.stderr === true }
  // --follow: wait (bounded by the run itself, or --timeout) for a running attempt to end
  const deadline = Date.now() + (o.timeout ?? 86400) * 1000
  let said = false
  for (;;) {
    const live = await controlRequest(path.join(dir, 'control.sock'), { op: 'logs', job, ...(o.attempt !== undefined ? { attempt: o.attempt } : {}) }, false, 30_000)
    if (live === undefined) break // the run is over: read what it left
    if (live.reply?.ok !== true) throw new BgridError('NOT_FOUND', String(live.reply?.error ?? 'the run did not answer'))
    const l = live.reply.logs
    if (l.attempts === 0 || l.status === 'running') {
      const what = l.attempts === 0
        ? `job ${job} has not started: ${String(l.waiting ?? l.state)}`
        : `attempt ${String(l.attempt)} of ${job} runs on ${String(l.node)} ` +
          `since ${new Date(Number(l.startedAt)).toLocaleTimeString()}: its output comes when it ends`
      if (o.follow !== true || Date.now() > deadline) {
        const hint = o.follow === true ? '' : ' (--follow waits for it)'
        process.stderr.write(`${printable(what, { max: 2000 })}${hint}\n`)
        return o.follow === true ? 4 : 0
      }
      if (!said) { process.stderr.write(`${printable(what, { max: 2000 })}...\n`); said = true }
      await sleep(1000)
      continue
    }
    if (l.attempts > 1 || o.attempt !== undefined) {
      const which = `attempt ${String(l.attempt)} of ${String(l.attempts)} (${String(l.status)} on ${String(l.node)})`
      process.stderr.write(printable(which) + '\n')
    }
    if (want.stdout) await show(l.stdout, l.stdoutTail, process.stdout)
    if (want.stderr) await show(l.stderr, l.stderrTail, process.stderr)
    return 0
  }
  // over: --out keeps the last attempt's logs; the run's store has those it collected
  const run = await readRun(o.dataDir, id)
  const j = run.status?.jobs?.[job]
  if (j === undefined) throw new BgridError('NOT_FOUND', run.status === undefined ? `run ${id} left no status to read logs from` : `no job ${job} in run ${id}`)
  const attempts: any[] = j.attempts ?? []
  if (attempts.length === 0) {
    const why = `${String(j.state)}${j.reason !== undefined ? `: ${String(j.reason)}` : ''}`
    process.stderr.write(printable(`job ${job} never started (${why})`, { max: 2000 }) + '\n')
    return 0
  }
  const n = o.attempt ?? attempts.length
  const a = attempts[n - 1]
  if (a === undefined) throw new BgridError('NOT_FOUND', `job ${job} has ${attempts.length} attempt(s), not ${n}`)
  if (attempts.length > 1 || o.attempt !== undefined) {
    const which = `attempt ${n} of ${attempts.length} (${String(a.status)} on ${String(a.node ?? a.worker)})`
    process.stderr.write(printable(which) + '\n')
  }
  let found = false
  for (const which of ['stdout', 'stderr'] as const) {
    if (!want[which]) continue
    const to = which === 'stdout' ? process.stdout : process.stderr
    const sha: string | undefined = typeof a[which]?.sha256 === 'string' && /^[0-9a-f]{64}$/.test(a[which].sha256) ? a[which].sha256 : undefined
    const inStore = sha !== undefined ? blobFile(path.join(dir, 'cas'), sha) : undefined
    const inOut = n === attempts.length && run.outDir !== undefined ? path.join(run.outDir, 'logs', `${job}.${which}`) : undefined
    found = (await show(inStore, undefined, to, sha)) || (await show(inOut, undefined, to)) ||
      (n === attempts.length && run.outDir !== undefined && await show(path.join(run.outDir, 'logs', `${job}.${which}.tail`), undefined, to)) || found
  }
  if (!found && a[want.stdout ? 'stdout' : 'stderr'] !== undefined) process.stderr.write(`the logs of attempt ${n} were not kept (only the last attempt's are collected into --out)\n`)
  return 0
}
