// The stall watch: a run never waits in silence. When no job has ended and no command
// has run for the stated time (`--stall-after`, 60 s), the run says why, job by job
// (what each waits for, on which worker, in which phase, for how long), and acts on
// what it can: an attempt a worker holds without running it (queued, getting inputs
// with no byte arriving, a result it does not deliver) for that long is given up and
// its job goes to another worker; the worker drops it at its next lease renewal.
// A command that runs is progress, however long it takes (its job's own timeout bounds
// it); so is a job that waits for workers, which the recruiter explains already.
// May import the run context and the core's records; owns no state of the run.
import type { RunContext } from './run-context.ts'
import { type AttemptRec, TERMINAL } from './core/model.ts'

/** how long a run may go with no job ending and no command running before it says why and acts */
export const DEFAULT_STALL_SEC = 60
/** jobs named in one stall report at most (the rest are counted) */
const MAX_NAMED = 10

const PHASE_WORDS: Record<string, string> = {
  queued: 'queued, not started',
  inputs: 'getting its inputs, no byte arriving',
  running: 'running its command',
  reporting: 'done, its result not delivered'
}

export class StallWatch {
  private readonly ctx: RunContext
  private readonly stallMs: number
  /** a worker's name for people (the recruiter knows it) */
  private readonly nameOf: (peer: string) => string
  private lastProgressAt: number
  private ended = -1

  constructor (ctx: RunContext, stallSec: number, nameOf: (peer: string) => string) {
    this.ctx = ctx
    this.stallMs = stallSec * 1000
    this.nameOf = nameOf
    this.lastProgressAt = Date.now()
  }

  /** Called by the run's main loop (every half second). */
  check (now: number): void {
    const { core } = this.ctx
    if (this.stallMs <= 0 || core.held) { this.lastProgressAt = now; return }
    let ended = 0
    for (const [state, n] of Object.entries(core.counts())) if (TERMINAL.has(state as never)) ended += n
    const held = this.heldAttempts()
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
      if (TERMINAL.has(job.state)) continue
      const why = this.whyStuck(job.spec.id, now)
      if (why === undefined) continue
      if (waiting.length < MAX_NAMED) waiting.push({ job: job.spec.id, why })
      else more++
    }
    const givenUp: string[] = []
    for (const a of held) {
      const since = a.phase?.since ?? a.assignedAt
      if (now - since < this.stallMs) continue
      const where = `${this.phaseWords(a)} on ${this.nameOf(a.worker)} for ${Math.round((now - since) / 1000)} s`
      core.giveUp(a.id, `no progress for ${secs} s: ${where}; run again elsewhere`, now)
      givenUp.push(`${a.job} (${where})`)
    }
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
