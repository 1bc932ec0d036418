// Waiting: a plain sleep, and the alarm a main loop sleeps on between ticks (what changes
// the run wakes it early).

/** Wait `ms` milliseconds. */
export async function sleep (ms: number): Promise<void> {
  await new Promise(resolve => setTimeout(resolve, ms))
}

/** A main loop's tick: sleep() for at most `ms`, ended early by wake(). */
export class Alarm {
  private ring: () => void = () => {}

  async sleep (ms: number): Promise<void> {
    await new Promise<void>(resolve => {
      const t = setTimeout(() => { this.ring = () => {}; resolve() }, Math.max(0, ms))
      this.ring = () => { clearTimeout(t); this.ring = () => {}; resolve() }
    })
  }

  /** end the current sleep now (none: nothing happens) */
  wake (): void { this.ring() }
}
