// Reading fair sharing off real runs (no I/O: the runs' --json events in, facts out):
// every claim a run made as an interval, double grants as overlapping intervals of one
// worker, and how many workers a run held at an instant. The fair-share lab test and
// the fair-share bench judge runs the same way.
// May import: nothing of ours.

/** one run's --json events, as parsed lines */
export type RunEvents = Array<Record<string, unknown>>

export interface Hold { run: number, worker: string, from: number, to: number }

/** every claim each run made: worker, from its claim to its release being requested (or its loss) */
export function holds (runs: RunEvents[]): Hold[] {
  return runs.flatMap((evs, k) => {
    const workerEvents = evs.filter(e => e.event === 'worker')
    return workerEvents.filter(e => e.state === 'claimed').map(c => {
      const end = workerEvents.find(e => e.worker === c.worker && (e.time as number) >= (c.time as number) && (e.state === 'released' || e.state === 'lost'))
      return { run: k, worker: c.worker as string, from: c.time as number, to: (end?.requestedAt ?? end?.time ?? Infinity) as number }
    })
  })
}

/** a worker held by two runs at the same time, each as a line that says who and when */
export function overlaps (held: Hold[]): string[] {
  return held.flatMap(a => held.filter(b => b.run > a.run && b.worker === a.worker && b.from < a.to && a.from < b.to)
    .map(b => `${a.worker.slice(-8)}: run ${a.run} ${a.from}..${a.to}, run ${b.run} ${b.from}..${b.to}`))
}

/** how many workers run k held at time `at` */
export function heldAt (held: Hold[], k: number, at: number): number {
  return held.filter(h => h.run === k && h.from <= at && at < h.to).length
}
