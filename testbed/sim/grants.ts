// The double-grant detector: who held each node when, as the coordinators saw it, kept
// apart from the daemons' claim books (it trusts none of them). A coordinator's hold on a
// node starts when its claim's grant reaches it and ends when it sends its release (or
// declares the worker lost): the same intervals the claim-race lab test checks.
// Contract: `granted`/`ended` are told by the coordinators; `doubleGrants` counts the
// grants made while another coordinator still held that node. Imports nothing.

export interface Overlap { node: string, holder: string, granted: string, at: number }

export class GrantLog {
  /** node -> the coordinators holding it now */
  private readonly holding = new Map<string, Set<string>>()
  readonly overlaps: Overlap[] = []
  grants = 0

  /** `coordinator`'s claim on `node` was granted (the reply reached it) */
  granted (node: string, coordinator: string, at: number): void {
    this.grants++
    let holders = this.holding.get(node)
    if (holders === undefined) { holders = new Set(); this.holding.set(node, holders) }
    for (const h of holders) if (h !== coordinator) this.overlaps.push({ node, holder: h, granted: coordinator, at })
    holders.add(coordinator)
  }

  /** `coordinator` stopped holding `node` (it sent its release, or gave the worker up) */
  ended (node: string, coordinator: string): void {
    this.holding.get(node)?.delete(coordinator)
  }

  /** moments a node was granted to a coordinator while another held it */
  get doubleGrants (): number { return this.overlaps.length }
}
