// The simulated LAN's DNS-SD view: every node's latest advertisement (protocol/txt.ts
// NodeAd), as coordinators browse it, and the run census every daemon keeps from the
// same announcements (protocol/census.ts RunCensus, the real one). Announcements reach
// everyone at once (a real LAN delivers them within milliseconds; the one census stands
// for every daemon's, which would hold the same entries); a responder answering queries
// refreshes its entry every CENSUS_REFRESH_MS.
// Contract: nodes `advertise` on every state change; coordinators read `list()` (every
// node, in a fixed order) and `idleList()`, and `onIdle` tells them a node just became
// idle (the browser's `update` event). Imports protocol/ and the run core's select.ts type.
import { RunCensus, CENSUS_MAX_AGE_MS } from '../../protocol/census.ts'
import type { Candidate } from '../../coordinator/core/select.ts'

/** how often each node's entry is heard again (queries answered): well within the census's memory */
export const CENSUS_REFRESH_MS = CENSUS_MAX_AGE_MS / 2

export class Lan {
  readonly census = new RunCensus()
  private readonly ads = new Map<string, Candidate>()
  private readonly idle = new Set<string>()
  private readonly listeners: Array<(c: Candidate) => void> = []
  private cached?: Candidate[]
  private cachedIdle?: Candidate[]

  advertise (c: Candidate, now: number): void {
    this.ads.set(c.name, c)
    this.cached = undefined
    this.cachedIdle = undefined
    this.census.observe(c.name, c.ad.next ?? c.ad.run, now)
    if (c.ad.state === 'idle') {
      this.idle.add(c.name)
      for (const l of this.listeners) l(c)
    } else this.idle.delete(c.name)
  }

  /** every entry heard again (a responder answering the browsers' queries) */
  refresh (now: number): void {
    for (const c of this.ads.values()) this.census.observe(c.name, c.ad.next ?? c.ad.run, now)
  }

  onIdle (l: (c: Candidate) => void): void { this.listeners.push(l) }

  /** every node seen, in the order they first appeared */
  list (): Candidate[] {
    this.cached ??= [...this.ads.values()]
    return this.cached
  }

  /** the nodes advertised idle now (selectWorkers would reject every other one) */
  idleList (): Candidate[] {
    this.cachedIdle ??= this.list().filter(c => this.idle.has(c.name))
    return this.cachedIdle
  }
}
