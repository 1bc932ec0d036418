// Nodes waiting to start, in DAGMan's order: higher PRIORITY first, then the order they
// became ready in. A binary heap: taking the next node is O(log n), so a DAG of 100,000
// nodes under -maxjobs does not sort its whole queue at every job's end.
import { BinaryHeap } from '../../protocol/heap.ts'

export interface Waiting { node: number, priority: number, seq: number }

function before (a: Waiting, b: Waiting): boolean {
  return a.priority !== b.priority ? a.priority > b.priority : a.seq < b.seq
}

export class ReadyQueue {
  private readonly heap = new BinaryHeap<Waiting>(before)
  get size (): number { return this.heap.size }
  push (w: Waiting): void { this.heap.push(w) }
  pop (): Waiting | undefined { return this.heap.pop() }
}
