// The simulation's virtual clock: a discrete-event scheduler. Time moves only from one
// event to the next (no real time, no timers): what runs "at" a time runs when the
// scheduler gets there, events at the same time in the order they were scheduled, so a
// run is the same every time for the same inputs. Also the seeded random numbers
// (mulberry32) every random choice of the simulation takes.
// Contract: `now` is the clock the real code is handed (CoreOptions.now, claim-book `now`
// arguments); `at`/`after` schedule a callback; `run` advances until a condition holds or
// no event is left. Imports protocol/heap.ts only.

import { BinaryHeap } from '../../protocol/heap.ts'

/** virtual time starts at a plausible epoch (ms): timestamps look like real ones in the real code's records */
export const VIRTUAL_EPOCH = Date.UTC(2030, 0, 1)

interface Event { t: number, seq: number, fn: () => void }

export class VirtualClock {
  private t = VIRTUAL_EPOCH
  private seq = 0
  /** the events to come, earliest first (then in the order they were scheduled) */
  private readonly heap = new BinaryHeap<Event>((a, b) => a.t < b.t || (a.t === b.t && a.seq < b.seq))
  /** events run so far */
  ran = 0

  /** the current virtual time, ms (an arrow: handed to the real code as its clock) */
  readonly now = (): number => this.t

  at (t: number, fn: () => void): void {
    this.heap.push({ t: Math.max(t, this.t), seq: this.seq++, fn })
  }

  after (ms: number, fn: () => void): void { this.at(this.t + ms, fn) }

  get pending (): number { return this.heap.size }

  /** Run events until `stop()` holds, none is left, or the next is past `limit`. */
  run (stop: () => boolean, limit = Infinity): void {
    while (this.heap.size > 0 && !stop()) {
      const ev = this.heap.pop() as Event
      if (ev.t > limit) { this.heap.push(ev); return }
      this.t = ev.t
      this.ran++
      ev.fn()
    }
  }
}

/** mulberry32: a seeded generator of floats in [0, 1); every bit of it random (an LCG's low bits are not) */
export function mulberry32 (seed: number): () => number {
  let s = seed | 0
  return () => {
    s = (s + 0x6D2B79F5) | 0
    let x = Math.imul(s ^ (s >>> 15), 1 | s)
    x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296
  }
}
