// Who holds which blob (staged inputs, outputs, logs): the run core's map of the data.
// Dispatch names holders in assignments, prefetch in hints, and the job table asks
// whether an input or output can still be had at all.
import type { BlobRec, WorkerRec } from './model.ts'
import type { HolderBook } from './contracts.ts'

export class Holders implements HolderBook {
  readonly blobs = new Map<string, BlobRec>()
  private readonly coordinatorId: string
  private readonly workers: ReadonlyMap<string, WorkerRec>
  private rotation = 0

  constructor (coordinatorId: string, workers: ReadonlyMap<string, WorkerRec>) {
    this.coordinatorId = coordinatorId
    this.workers = workers
  }

  addHolder (hash: string, size: number, holder: string): void {
    let b = this.blobs.get(hash)
    if (b === undefined) { b = { size, holders: new Set() }; this.blobs.set(hash, b) }
    b.holders.add(holder)
  }

  holds (hash: string, holder: string): boolean {
    return this.blobs.get(hash)?.holders.has(holder) === true
  }

  /** A worker announces blobs it holds now (fetched ahead, or a copy re-verified). */
  announce (workerId: string, hashes: string[]): void {
    for (const h of hashes) this.blobs.get(h)?.holders.add(workerId)
  }

  /** Holders that can serve a blob now: workers first (in a rotating order, to spread load), the submitter last. */
  liveHolders (hash: string): string[] {
    const b = this.blobs.get(hash)
    if (b === undefined) return []
    const workers: string[] = []
    let coordinator = false
    for (const h of b.holders) {
      if (h === this.coordinatorId) coordinator = true
      else if (this.workers.get(h)?.alive === true) workers.push(h)
    }
    if (workers.length > 1) {
      const k = this.rotation++ % workers.length
      workers.push(...workers.splice(0, k))
    }
    if (coordinator) workers.push(this.coordinatorId)
    return workers
  }

  /** Can some live node serve this blob? (a check: no rotation, no array) */
  hasLiveHolder (hash: string): boolean {
    for (const h of this.blobs.get(hash)?.holders ?? []) {
      if (h === this.coordinatorId || this.workers.get(h)?.alive === true) return true
    }
    return false
  }
}
