// Nodes waiting to start, in DAGMan's order: higher PRIORITY first, then the order they
// became ready in. A binary heap: taking the next node is O(log n), so a DAG of 100,000
// nodes under -maxjobs does not sort its whole queue at every job's end.
import { BinaryHeap } from '../../protocol/heap.ts'

export interface Waiting { node: number, priority: number, seq: number }

function before (a: Waiting, b: Waiting): boolean {
  return a.priority !== b.priority ? a.priority > b.priority : a.seq < b.seq
}

export class ReadyQueue extends BinaryHeap<Waiting> {
  constructor () { super(before) }
}
