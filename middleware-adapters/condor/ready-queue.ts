// Nodes waiting to start, in DAGMan's order: higher PRIORITY first, then the order they
// became ready in. A binary heap: taking the next node is O(log n), so a DAG of 100,000
// nodes under -maxjobs does not sort its whole queue at every job's end.
export interface Waiting { node: number, priority: number, seq: number }

function before (a: Waiting, b: Waiting): boolean {
  return a.priority !== b.priority ? a.priority > b.priority : a.seq < b.seq
}

export class ReadyQueue {
  private readonly heap: Waiting[] = []
  get size (): number { return this.heap.length }

  push (w: Waiting): void {
    const h = this.heap
    h.push(w)
    let i = h.length - 1
    while (i > 0) {
      const p = (i - 1) >> 1
      if (!before(h[i], h[p])) break
      ;[h[i], h[p]] = [h[p], h[i]]
      i = p
    }
  }

  pop (): Waiting | undefined {
    const h = this.heap
    const top = h[0]
    const last = h.pop()
    if (h.length > 0 && last !== undefined) {
      h[0] = last
      let i = 0
      for (;;) {
        const l = 2 * i + 1
        const r = l + 1
        let m = i
        if (l < h.length && before(h[l], h[m])) m = l
        if (r < h.length && before(h[r], h[m])) m = r
        if (m === i) break
        ;[h[i], h[m]] = [h[m], h[i]]
        i = m
      }
    }
    return top
  }
}
