// A binary heap ordered by the caller's `before` (pure, no I/O): taking the first is
// O(log n). DAGMan's ready queue (a 100,000-node DAG under -maxjobs does not sort its
// whole queue at every job's end) and the simulation's event queue stand on it.
// Imports nothing.

export class BinaryHeap<T> {
  private readonly items: T[] = []
  private readonly before: (a: T, b: T) => boolean
  /** `before(a, b)`: a comes out first */
  constructor (before: (a: T, b: T) => boolean) { this.before = before }

  get size (): number { return this.items.length }

  push (item: T): void {
    const h = this.items
    h.push(item)
    let i = h.length - 1
    while (i > 0) {
      const p = (i - 1) >> 1
      if (!this.before(h[i], h[p])) break
      ;[h[i], h[p]] = [h[p], h[i]]
      i = p
    }
  }

  /** the first, taken out; undefined when empty */
  pop (): T | undefined {
    const h = this.items
    const top = h[0]
    const last = h.pop()
    if (h.length > 0 && last !== undefined) {
      h[0] = last
      let i = 0
      for (;;) {
        const l = 2 * i + 1
        const r = l + 1
        let m = i
        if (l < h.length && this.before(h[l], h[m])) m = l
        if (r < h.length && this.before(h[r], h[m])) m = r
        if (m === i) break
        ;[h[i], h[m]] = [h[m], h[i]]
        i = m
      }
    }
    return top
  }
}
