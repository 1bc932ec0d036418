// Who holds this worker: at most one coordinator at a time (pure logic, no I/O). A node
// that leaves its run for a fairer one (protocol/fair-share.ts) is first retiring (still
// held, taking no new job), then reserved for the asker for a while: nobody else gets it.
import type { ErrorCode } from '../protocol/errors.ts'
import type { NodeState } from '../protocol/node-states.ts'
import { shouldMove, type RunShare, type ShareRules } from '../protocol/fair-share.ts'

export interface Claim {
  coordinator: string
  /** the submitter the coordinator runs for (its signature checked), when it said */
  submitter?: string
  run: string
  leaseMs: number
  grantedAt: number
  expiresAt: number
  addrs: string[]
  /** how this node runs the coordinator's work (the claim's middleware: daemon/drivers) */
  middleware?: string
  /** the run's priority (fair sharing) */
  priority?: number
  /** set once this node is leaving the run for a fairer one: who it goes to, since when */
  retiringFor?: { coordinator: string, run: string, since: number, why: string }
}

/** who a node leaving its run is kept for, and until when */
export interface Reservation { coordinator: string, run: string, until: number }

/** how long a node that left its run waits for the asker to claim it (it asks again every second or so) */
export const RESERVATION_MS = 15_000

/**
 * A retiring node whose jobs are over waits this long for its coordinator to let go (it
 * hears `retiring` at its next renewal, every quarter lease) before it releases itself.
 */
export function selfReleaseAfterMs (leaseMs: number): number { return leaseMs / 3 + 1000 }

export type ClaimDecision = { ok: true, claim: Claim, fresh: boolean } | { ok: false, code: ErrorCode, message: string }

export interface ClaimContext {
  now: number
  state: NodeState
  /** allow-list of submitter (or coordinator) peer ids; empty means anyone with the grid key */
  allow: readonly string[]
  /** the claim's verified submitter id */
  submitter?: string
  version: number
  supportedVersion: number
  /** the middleware a fresh claim runs (the daemon checked it has its driver) */
  middleware?: string
  /** the run's priority */
  priority?: number
}

export type ContendDecision =
  | { code: 'YIELDING', message: string, fresh: boolean }
  | { code: 'BUSY', message: string }

export class ClaimBook {
  current: Claim | undefined
  /** a node that left its run for another keeps itself for that one for a while */
  reservation: Reservation | undefined

  constructor (restored?: Claim) { this.current = restored }

  /** Check-and-set with no await inside: concurrent claims cannot both win. */
  claim (peer: string, run: string, leaseMs: number, addrs: string[], ctx: ClaimContext): ClaimDecision {
    if (ctx.version !== ctx.supportedVersion) {
      return { ok: false, code: 'VERSION', message: `protocol version ${ctx.version} not supported (this node speaks ${ctx.supportedVersion})` }
    }
    if (ctx.allow.length > 0 && !ctx.allow.includes(peer) && (ctx.submitter === undefined || !ctx.allow.includes(ctx.submitter))) {
      return { ok: false, code: 'POLICY', message: ctx.submitter === undefined ? 'this node takes only signed claims from allowed submitters (--allow-coordinator)' : `submitter ${ctx.submitter} is not in this node's allow-list` }
    }
    const cur = this.current
    if (cur !== undefined && cur.expiresAt > ctx.now) {
      if (cur.coordinator === peer && cur.run === run) {
        cur.expiresAt = ctx.now + cur.leaseMs
        return { ok: true, claim: cur, fresh: false }
      }
      return { ok: false, code: 'BUSY', message: 'node is claimed by another coordinator' }
    }
    if (ctx.state === 'owner') return { ok: false, code: 'OWNER', message: 'the owner is using this machine' }
    if (ctx.state === 'coordinator') return { ok: false, code: 'BUSY', message: 'node is coordinating its own run' }
    const held = this.reservation
    if (held !== undefined && held.until > ctx.now && (held.coordinator !== peer || held.run !== run)) {
      return { ok: false, code: 'BUSY', message: `node is kept for run ${held.run} (it left its run for that one: fair sharing)` }
    }
    this.reservation = undefined
    const claim: Claim = {
      coordinator: peer, run, leaseMs, grantedAt: ctx.now, expiresAt: ctx.now + leaseMs, addrs,
      ...(ctx.submitter !== undefined ? { submitter: ctx.submitter } : {}),
      ...(ctx.middleware !== undefined ? { middleware: ctx.middleware } : {}),
      ...(ctx.priority !== undefined && ctx.priority !== 0 ? { priority: ctx.priority } : {})
    }
    this.current = claim
    return { ok: true, claim, fresh: true }
  }

  /**
   * A claim refused BUSY came from a run short of workers (`asker`, its count as the node
   * sees it): should the node leave its run for it? `holderHeld`: the holder's count.
   * YIELDING with `fresh` the first time: the caller then retires the session and, once
   * it has ended, reserves the node (reserveFor). Check-and-set, no await.
   */
  contend (asker: RunShare, holderHeld: number, now: number, rules: ShareRules): ContendDecision {
    const cur = this.current
    if (cur === undefined || cur.expiresAt <= now) return { code: 'BUSY', message: 'node is between claims: ask again' }
    const going = cur.retiringFor
    if (going !== undefined) {
      return going.coordinator === asker.coordinator && going.run === asker.run
        ? { code: 'YIELDING', message: `node finishes its job for run ${cur.run}, then is yours`, fresh: false }
        : { code: 'BUSY', message: `node is leaving run ${cur.run} for run ${going.run}` }
    }
    const holder: RunShare = { run: cur.run, coordinator: cur.coordinator, ...(cur.submitter !== undefined ? { submitter: cur.submitter } : {}), priority: cur.priority ?? 0, held: holderHeld }
    const v = shouldMove(holder, asker, cur.grantedAt, now, rules)
    if (!v.move) return { code: 'BUSY', message: `node is claimed by another coordinator (fair share: ${v.why})` }
    cur.retiringFor = { coordinator: asker.coordinator, run: asker.run, since: now, why: v.why }
    return { code: 'YIELDING', message: `node leaves run ${cur.run} at its next job boundary, then is yours (${v.why})`, fresh: true }
  }

  /** The node left its run for the one it retired for: kept for that one a while. */
  reserveFor (left: Claim, now: number): void {
    const to = left.retiringFor
    if (to === undefined) return
    this.reservation = { coordinator: to.coordinator, run: to.run, until: now + RESERVATION_MS }
    this.leftRun = left.run
  }

  /** the run this node last left for a fairer share (its coordinator is told why its renewal fails) */
  private leftRun?: string

  renew (peer: string, run: string, now: number): ClaimDecision {
    const cur = this.current
    if (cur === undefined || cur.coordinator !== peer || cur.run !== run || cur.expiresAt <= now) {
      const left = this.reservation !== undefined && this.leftRun === run ? ` (the node left it for run ${this.reservation.run}: fair share)` : ''
      return { ok: false, code: 'NOT_CLAIMED', message: `no live claim for run ${run}${left}` }
    }
    cur.expiresAt = now + cur.leaseMs
    return { ok: true, claim: cur, fresh: false }
  }

  /** The holder lets go (a node leaving for a fairer share is kept for its asker from now: reserveFor). */
  /** the run this node has promised itself to: the one it retires for, or is kept for */
  promisedTo (now: number): string | undefined {
    const r = this.reservation
    return this.current?.retiringFor?.run ?? (r !== undefined && r.until > now ? r.run : undefined)
  }

  release (peer: string, run: string, now = Date.now()): Claim | undefined {
    const cur = this.current
    if (cur === undefined || cur.coordinator !== peer || cur.run !== run) return undefined
    this.current = undefined
    this.reserveFor(cur, now)
    return cur
  }

  /** The claim if its lease ran out (and forget it). */
  expire (now: number): Claim | undefined {
    const cur = this.current
    if (cur === undefined || cur.expiresAt > now) return undefined
    this.current = undefined
    this.reserveFor(cur, now)
    return cur
  }

  isHeldBy (peer: string, run?: string): boolean {
    const cur = this.current
    return cur !== undefined && cur.coordinator === peer && (run === undefined || cur.run === run)
  }
}

/** What a claim request asks of the node (protocol/claim.ts's `claim` op, as far as the book weighs it). */
export interface ClaimAsk {
  run: string
  leaseMs: number
  addrs?: string[]
  priority?: number
  /** workers the asking run holds, given by a run short of workers: the node may leave its run for it */
  held?: number
}

export type ClaimAnswer =
  | { ok: true, claim: Claim, fresh: boolean }
  /** `retire`: the node has just promised itself to the asker and must start leaving this claim's run */
  | { ok: false, code: ErrorCode, message: string, retire?: Claim }

/**
 * The node's answer to a claim (pure: the daemon and the simulation both ask it). Granted
 * or refused by the book; a node working for another run and asked by a run short of
 * workers weighs the two on the LAN's counts (`count(run)`: the workers of that run the
 * advertisements show, this node excepted), never on what the asker says of the others
 * alone: YIELDING when it goes to the asker.
 */
export function answerClaim (book: ClaimBook, peer: string, ask: ClaimAsk, ctx: ClaimContext, count: (run: string) => number, rules: ShareRules): ClaimAnswer {
  const d = book.claim(peer, ask.run, ask.leaseMs, ask.addrs ?? [], ctx)
  if (d.ok || d.code !== 'BUSY' || ask.held === undefined || ctx.state !== 'worker') return d
  const cur = book.current
  if (cur === undefined) return d
  const asker: RunShare = { run: ask.run, coordinator: peer, ...(ctx.submitter !== undefined ? { submitter: ctx.submitter } : {}), priority: ask.priority ?? 0, held: Math.max(ask.held, count(ask.run)) }
  const c = book.contend(asker, count(cur.run) + 1, ctx.now, rules)
  return { ok: false, code: c.code, message: c.message, ...(c.code === 'YIELDING' && c.fresh ? { retire: cur } : {}) }
}
