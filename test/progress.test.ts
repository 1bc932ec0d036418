// The live bar on a terminal: an event line takes the bar's line, and no stale bar is
// left above it. The bar writes into a fake TTY stream that a small terminal emulator
// turns into screen lines.
import t from 'tap'
import { Progress } from '../coordinator/progress.ts'

/** Enough of a VT100 for what cli-progress and readline write: text, CR, LF, line clears, column moves, save/restore. */
class Screen {
  rows: string[] = ['']
  r = 0
  c = 0
  private saved = { r: 0, c: 0 }
  readonly isTTY = true
  readonly columns = 200
  write (data: string | Uint8Array, cb?: unknown): boolean {
    const s = typeof data === 'string' ? data : Buffer.from(data).toString()
    for (let i = 0; i < s.length; i++) {
      const ch = s[i]
      if (ch === '\x1b') {
        if (s[i + 1] === '7') { this.saved = { r: this.r, c: this.c }; i++; continue }
        if (s[i + 1] === '8') { ({ r: this.r, c: this.c } = this.saved); i++; continue }
        const m = /^\[(\?)?(\d*)(?:;(\d*))?([A-Za-z])/.exec(s.slice(i + 1))
        if (m === null) throw new Error(`escape not understood: ${JSON.stringify(s.slice(i, i + 8))}`)
        i += m[0].length
        const n = m[2] === '' ? undefined : Number(m[2])
        if (m[1] === '?') continue // cursor visibility, line wrapping
        const line = this.rows[this.r]
        switch (m[4]) {
          case 'K': // 0: to the right, 1: to the left, 2: whole line
            this.rows[this.r] = (n ?? 0) === 0 ? line.slice(0, this.c) : (n === 1 ? ' '.repeat(this.c) + line.slice(this.c) : '')
            break
          case 'G': this.c = (n ?? 1) - 1; break
          case 'A': this.r = Math.max(0, this.r - (n ?? 1)); break
          case 'B': this.r += n ?? 1; break
          case 'C': this.c += n ?? 1; break
          case 'D': this.c = Math.max(0, this.c - (n ?? 1)); break
          default: throw new Error(`escape not understood: ${m[0]}`)
        }
        continue
      }
      if (ch === '\r') { this.c = 0; continue }
      // a terminal's output processing turns LF into CR LF
      if (ch === '\n') { this.r++; this.c = 0; this.rows[this.r] ??= ''; continue }
      const line = this.rows[this.r].padEnd(this.c)
      this.rows[this.r] = line.slice(0, this.c) + ch + line.slice(this.c + 1)
      this.c++
    }
    if (typeof cb === 'function') cb()
    return true
  }

  on (): this { return this }
  once (): this { return this }
  removeListener (): this { return this }
  getWindowSize (): [number, number] { return [this.columns, 50] }
}

const counts = (done: number, running: number) => ({ pending: 10 - done - running, ready: 0, running, done, failed: 0, skipped: 0, cancelled: 0 })

t.test('an event line replaces the bar line; the bar is drawn again below it', async t => {
  const screen = new Screen()
  const p = new Progress('tty', screen as unknown as NodeJS.WriteStream)
  const startedAt = Date.now() - 1000
  p.update({ counts: counts(1, 2), total: 10, workers: 2, startedAt })
  t.match(screen.rows[screen.r], /1\/10 done \| 2 running/, 'the bar is drawn')
  p.event({ event: 'job' }, 'job a: FAILED: exit 1')
  p.update({ counts: counts(3, 2), total: 10, workers: 2, startedAt })
  p.event({ event: 'job' }, 'job b: retrying: lost worker')
  p.event({ event: 'job' }, 'job c: FAILED: exit 2')
  p.update({ counts: counts(5, 1), total: 10, workers: 2, startedAt })
  const lines = screen.rows.map(l => l.trimEnd()).filter(l => l !== '')
  const bars = lines.filter(l => / done \| /.test(l))
  t.same(lines.filter(l => !/ done \| /.test(l)), ['job a: FAILED: exit 1', 'job b: retrying: lost worker', 'job c: FAILED: exit 2'], 'every event line, in order, alone on its line')
  t.equal(bars.length, 1, `one bar on screen, not a stale one above each event (screen:\n${lines.join('\n')})`)
  t.equal(lines.at(-1), bars[0], 'the bar is the last line')
  t.match(bars[0], /[35]\/10 done \| [12] running/, 'redrawn with what it showed')
  p.stop()
  t.notOk(screen.rows.some(l => / done \| /.test(l)), 'the bar is gone once the run is over')
})
