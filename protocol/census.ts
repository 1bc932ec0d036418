// How many nodes work for each run, as the LAN's `_bgrid._tcp` advertisements say (pure
// logic, no I/O). A daemon keeps one from the announcements its mDNS responder hears
// anyway, and judges fair-share requests on it: a run's count comes from the nodes'
// own advertisements, never from what a coordinator says of itself or of others.
// A node's entry ends with its goodbye (TTL 0) or when not heard of for a while.
import { RUN_RE } from './txt.ts'

export interface CensusEntry { run?: string, at: number }

/** an entry not heard of for this long is forgotten (a node gone without its goodbye) */
export const CENSUS_MAX_AGE_MS = 120_000
/** nodes remembered at most: a LAN's worth, and a flood of made-up names cannot grow it further */
export const CENSUS_MAX_NODES = 8192

export class RunCensus {
  private readonly nodes = new Map<string, CensusEntry>()
  private readonly maxAgeMs: number

  constructor (maxAgeMs = CENSUS_MAX_AGE_MS) { this.maxAgeMs = maxAgeMs }

  /** a node's advertisement: the run it works for (undefined: none); `gone` for a goodbye */
  observe (instance: string, run: string | undefined, now: number, gone = false): void {
    if (gone) { this.nodes.delete(instance); return }
    if (!this.nodes.has(instance) && this.nodes.size >= CENSUS_MAX_NODES) this.prune(now)
    if (!this.nodes.has(instance) && this.nodes.size >= CENSUS_MAX_NODES) return
    this.nodes.set(instance, { ...(run !== undefined ? { run } : {}), at: now })
  }

  /** nodes working for `run` now, `except` one (the node asking, which counts itself) */
  count (run: string, now: number, except?: string): number {
    let n = 0
    for (const [name, e] of this.nodes) if (e.run === run && name !== except && now - e.at < this.maxAgeMs) n++
    return n
  }

  get size (): number { return this.nodes.size }

  private prune (now: number): void {
    for (const [name, e] of this.nodes) if (now - e.at >= this.maxAgeMs) this.nodes.delete(name)
  }
}

/**
 * The run a raw TXT record counts for, from multicast-dns's decoded strings (`key=value`
 * buffers), checked as protocol/txt.ts checks it: the run it promised itself to (`next`:
 * leaving its run for that one, or kept for it), else the run it works for (`run`).
 */
export function runOfTxt (data: unknown): string | undefined {
  if (!Array.isArray(data)) return undefined
  const value = (key: string): string | undefined => {
    for (const item of data) {
      const s = Buffer.isBuffer(item) ? item.toString('utf8') : typeof item === 'string' ? item : undefined
      if (s?.startsWith(`${key}=`) === true) return s.slice(key.length + 1)
    }
    return undefined
  }
  const run = value('next') ?? value('run')
  return run !== undefined && RUN_RE.test(run) ? run : undefined
}
