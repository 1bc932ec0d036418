// What people (and scripts) see while a run goes: a live bar on a TTY (cli-progress),
// plain lines otherwise, NDJSON events with --json. An event's line for people carries
// what jobs, workers and nodes said: it is printed through protocol/printable.ts (its
// lines kept, every control sequence escaped), the NDJSON through printableJson.
import cliProgress from 'cli-progress'
import type { JobState } from './core/model.ts'
import { printable, printableJson, printableLines } from '../protocol/printable.ts'

export interface ProgressSnapshot {
  counts: Record<JobState, number>
  total: number
  workers: number
  startedAt: number
}

export type Mode = 'tty' | 'lines' | 'json' | 'quiet'

export class Progress {
  private readonly mode: Mode
  private bar?: cliProgress.SingleBar
  /** what the bar shows, to draw it again after an event line */
  private shown = { done: 0, total: 0, payload: {} as Record<string, unknown> }
  private lastLine = 0
  private readonly out: NodeJS.WriteStream

  constructor (mode: Mode, out: NodeJS.WriteStream = process.stderr) {
    this.mode = mode
    this.out = out
  }

  static pick (opts: { json?: boolean, quiet?: boolean }): Mode {
    if (opts.json === true) return 'json'
    if (opts.quiet === true) return 'quiet'
    return process.stderr.isTTY ? 'tty' : 'lines'
  }

  /** An event: NDJSON on stdout in json mode; a line for people otherwise (if it matters to them). */
  event (ev: Record<string, unknown>, human?: string): void {
    if (this.mode === 'json') { process.stdout.write(printableJson({ time: Date.now(), ...ev }) + '\n'); return }
    if (human === undefined || this.mode === 'quiet') return
    if (this.bar === undefined) { this.out.write(printableLines(human) + '\n'); return }
    // the event line takes the bar's line, and the bar is drawn again under it: stopped,
    // the bar erases itself (clearOnComplete; else its last frame would stay above the event)
    this.bar.stop()
    this.out.write(printableLines(human) + '\n')
    this.bar.start(this.shown.total, this.shown.done, this.shown.payload)
  }

  static rate (s: ProgressSnapshot): { rate: number, eta: string } {
    const finished = s.counts.done + s.counts.failed + s.counts.skipped
    const elapsed = (Date.now() - s.startedAt) / 1000
    const rate = elapsed > 0 ? s.counts.done / elapsed : 0
    const left = s.total - finished - s.counts.cancelled
    const eta = rate > 0 ? `${Math.ceil(left / rate)}s` : '?'
    return { rate, eta }
  }

  update (s: ProgressSnapshot): void {
    const { rate, eta } = Progress.rate(s)
    const c = s.counts
    const payload = { running: c.running, failed: c.failed, waiting: c.pending + c.ready, workers: s.workers, rate: rate.toFixed(1), etaText: eta }
    if (this.mode === 'tty') {
      this.shown = { done: c.done, total: s.total, payload }
      if (this.bar === undefined) {
        this.bar = new cliProgress.SingleBar({
          format: ' {bar} {value}/{total} done | {running} running | {waiting} waiting | {failed} failed | {workers} workers | {rate} jobs/s | ETA {etaText}',
          hideCursor: true,
          clearOnComplete: true,
          stream: this.out,
          fps: 5
        }, cliProgress.Presets.shades_classic)
        this.bar.start(s.total, c.done, payload)
      }
      this.bar.update(c.done, payload)
    } else if (this.mode === 'lines' && Date.now() - this.lastLine >= 5000) {
      this.lastLine = Date.now()
      this.out.write(`progress: ${c.done}/${s.total} done, ${c.running} running, ${c.pending + c.ready} waiting, ` +
        `${c.failed} failed, ${c.skipped} skipped; ${s.workers} workers; ${rate.toFixed(1)} jobs/s; ` +
        `ETA ${printable(eta)}\n`)
    }
  }

  stop (): void {
    this.bar?.stop()
    this.bar = undefined
  }
}
