// When a node announces its advertisement again (pure logic, no I/O). Every announcement
// is a multicast packet that every other node on the LAN receives and decodes, so an
// idle node's cost grows with the LAN by what the others announce: a change of state,
// run, priority or anything a coordinator matches on goes out at once (coordinators act
// on it), but the resources that drift all the time (free RAM, free disk, load) go out
// only when they moved by a useful amount, and then at most every RESOURCE_READVERTISE_MS.
// A claim's offer carries them fresh anyway: the advertisement only ranks candidates.
// May import: protocol/ types only.
import type { NodeAd } from '../protocol/txt.ts'

/** at most one announcement for drifting resources in this long, ms */
export const RESOURCE_READVERTISE_MS = 30_000

/** how far a resource moves before it is worth telling the LAN */
export const RESOURCE_STEP = { load: 0.25, ramMiB: 256, diskMiB: 1024, fraction: 0.1 } as const

/** Did the resources move enough to be worth an announcement? */
function resourcesMoved (last: NodeAd, next: NodeAd): boolean {
  const moved = (a: number, b: number, floor: number): boolean =>
    Math.abs(a - b) >= Math.max(floor, RESOURCE_STEP.fraction * Math.abs(a))
  return Math.abs(next.load - last.load) >= RESOURCE_STEP.load ||
    moved(last.ram, next.ram, RESOURCE_STEP.ramMiB) ||
    moved(last.disk, next.disk, RESOURCE_STEP.diskMiB)
}

/** what a new advertisement is worth: nothing, a change coordinators act on, or a resource update */
export type Announcement = 'none' | 'change' | 'resources'

/**
 * What `next` is worth, `last` having been announced at `lastAt`: anything but the
 * drifting resources is a change, told now (and repeated, RFC 6762 s8.4); those are a
 * resource update when they moved enough and the last announcement is
 * RESOURCE_READVERTISE_MS old, told once (a lost one is caught by the next).
 */
export function announcement (last: NodeAd | undefined, next: NodeAd, lastAt: number, now: number): Announcement {
  if (last === undefined) return 'change'
  const steady = (ad: NodeAd): string => JSON.stringify({ ...ad, ram: 0, disk: 0, load: 0 })
  if (steady(last) !== steady(next)) return 'change'
  return resourcesMoved(last, next) && now - lastAt >= RESOURCE_READVERTISE_MS ? 'resources' : 'none'
}
