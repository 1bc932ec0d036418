// The stall watch: a run never waits in silence. When no job has ended and no command
// has run for the stated time (`--stall-after`, 60 s), the run says why, job by job
// (what each waits for, on which worker, in which phase, for how long), and acts on
// what it can: an attempt a worker holds without running it (queued, getting inputs
// with no byte arriving, a result it does not deliver) for that long is given up and
// its job goes to another worker; the worker drops it at its next lease renewals. An
// attempt getting its inputs is given more time (five times): that may be local work.
// A command that runs is progress, however long it takes (its job's own timeout bounds
// it: a worker that lets one run 10 s past it is not waited for).
// May import the run context and the core's records; owns no state of the run.
import type { RunContext } from './run-context.ts'
import { type AttemptRec, TERMINAL } from './core/model.ts'

/** how long a run may go with no job ending and no command running before it says why and acts */
export const DEFAULT_STALL_SEC = 60
/** a worker ends a command at its timeout; past it by this much, the coordinator stops waiting for it */
const TIMEOUT_MARGIN_MS = 10_000
/** how many stated times an attempt getting its inputs may go without a byte before it is given up */
const INPUTS_PATIENCE = 5
/** jobs named in one stall report at most (the rest are counted) */
const MAX_NAMED = 10

const PHASE_WORDS: Record<string, string> = {
  queued: 'queued, not started',
  inputs: 'getting its inputs, no byte arriving',
  running: 'running its command',
  reporting: 'done, its result not delivered'
}

export class StallWatch {
  private readonly ctx: Pick<RunContext, 'core' | 'log' | 'emit' | 'wake' | 'notify'>
  private readonly stallMs: number
  /** a worker's name for people (the recruiter knows it) */
  private readonly nameOf: (peer: string) => string
  private lastProgressAt: number
  private ended: number

  constructor (ctx: Pick<RunContext, 'core' | 'log' | 'emit' | 'wake' | 'notify'>, stallSec: number, nameOf: (peer: string) => string, now = Date.now()) {
    this.ctx = ctx
    this.stallMs = stallSec * 1000
    this.nameOf = nameOf
    this.lastProgressAt = now
    this.ended = this.endedJobs()
  }

  private endedJobs (): number {
    let n = 0
    for (const [state, count] of Object.entries(this.ctx.core.counts())) if (TERMINAL.has(state as never)) n += count
    return n
  }

  /** Called by the run's main loop (every half second). */
  check (now: number): void {
    const { core } = this.ctx
    const held = this.heldAttempts()
    this.overTime(held, now)
    if (this.stallMs <= 0 || core.held) { this.lastProgressAt = now; return }
    const ended = this.endedJobs()
    // a command running, or input bytes landing lately (the worker dates "inputs" from its last byte), is progress
    const moving = held.some(a => a.phase?.name === 'running' || (a.phase?.name === 'inputs' && now - a.phase.since < this.stallMs))
    if (ended !== this.ended || moving) {
      this.ended = ended
      this.lastProgressAt = now
      return
    }
    if (now - this.lastProgressAt < this.stallMs) return
    // stalled: say why, act, and say again after another stated time if nothing moves
    this.lastProgressAt = now
    const secs = Math.round(this.stallMs / 1000)
    // what each job waits for, as it stood: before anything is given up
    const waiting: Array<{ job: string, why: string }> = []
    let more = 0
    for (const job of core.jobs.values()) {
      // the frontier only: a job waiting for its parents waits for what they wait for
      if (TERMINAL.has(job.state) || job.spec.after.some(p => core.jobs.get(p)?.state !== 'done')) continue
      const why = this.whyStuck(job.spec.id, now)
      if (why === undefined) continue
      if (waiting.length < MAX_NAMED) waiting.push({ job: job.spec.id, why })
      else more++
    }
    const givenUp: string[] = []
    for (const a of held) {
      const since = a.phase?.since ?? a.assignedAt
      // getting inputs may be long local work with no byte arriving (a big input copied
      // into its box, a copy re-hashed): the fetch's own deadlines end a stalled transfer,
      // so the watch waits five times as long before it gives such an attempt up
      if (now - since < this.stallMs * (a.phase?.name === 'inputs' ? INPUTS_PATIENCE : 1)) continue
      const where = `${this.phaseWords(a)} on ${this.nameOf(a.worker)} for ${Math.round((now - since) / 1000)} s`
      core.giveUp(a.id, `no progress for ${secs} s: ${where}; run again elsewhere`, now)
      givenUp.push(`${a.job} (${where})`)
    }
    // nothing waits (an open run between its jobs): nothing to say
    if (waiting.length === 0 && givenUp.length === 0) return
    const lines = [
      `no progress for ${secs} s:`,
      ...waiting.map(w => `  job ${w.job}: ${w.why}`),
      ...(more > 0 ? [`  ... and ${more} more job(s)`] : []),
      ...(givenUp.length > 0 ? [`  given up and re-queued: ${givenUp.join('; ')}`] : [])
    ]
    this.ctx.log.warn('run stalled', { seconds: secs, waiting, givenUp })
    this.ctx.emit({ event: 'stalled', seconds: secs, waiting, more, givenUp }, lines.join('\n'))
    this.ctx.wake()
    this.ctx.notify()
  }

  /**
   * A job's timeout is its worker's to enforce; a worker that says its command still
   * runs well past it (stuck, or lying) does not hold the run: the attempt is given up.
   */
  private overTime (held: AttemptRec[], now: number): void {
    for (const a of held) {
      const timeoutMs = this.ctx.core.jobs.get(a.job)?.spec.timeoutMs ?? 0
      if (timeoutMs <= 0 || a.phase?.name !== 'running' || now - a.phase.since <= timeoutMs + TIMEOUT_MARGIN_MS) continue
      const why = `still running on ${this.nameOf(a.worker)} ${Math.round((now - a.phase.since - timeoutMs) / 1000)} s past its timeout: given up`
      this.ctx.log.warn('attempt past its timeout', { job: a.job, attempt: a.id, worker: a.worker })
      this.ctx.emit({ event: 'warning', job: a.job, message: why }, `job ${a.job}: ${why}`)
      this.ctx.core.giveUp(a.id, why, now, 'failed')
    }
  }

  /** attempts handed to live workers with no result yet */
  private heldAttempts (): AttemptRec[] {
    const { core } = this.ctx
    const out: AttemptRec[] = []
    for (const w of core.workers.values()) {
      if (!w.alive) continue
      for (const id of w.running.keys()) {
        const a = core.attempts.get(id)
        if (a !== undefined && a.status === undefined) out.push(a)
      }
    }
    return out
  }

  private phaseWords (a: AttemptRec): string {
    return a.phase === undefined ? 'handed out, its worker silent about it' : PHASE_WORDS[a.phase.name] ?? a.phase.name
  }

  private whyStuck (id: string, now: number): string | undefined {
    const { core } = this.ctx
    const job = core.jobs.get(id)
    if (job?.state === 'running') {
      const a = job.attempts.at(-1)
      if (a === undefined || a.status !== undefined) return core.whyWaiting(id, now) ?? 'running'
      return `attempt ${a.id}: ${this.phaseWords(a)} on ${this.nameOf(a.worker)} for ${Math.round((now - (a.phase?.since ?? a.assignedAt)) / 1000)} s`
    }
    return core.whyWaiting(id, now)
  }
}
