// Who holds this worker: at most one coordinator at a time (pure logic, no I/O).
import type { ErrorCode } from '../protocol/errors.ts'
import type { NodeState } from '../protocol/node-states.ts'

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
}

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
}

export class ClaimBook {
  current: Claim | undefined

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
    const claim: Claim = { coordinator: peer, run, leaseMs, grantedAt: ctx.now, expiresAt: ctx.now + leaseMs, addrs, ...(ctx.submitter !== undefined ? { submitter: ctx.submitter } : {}), ...(ctx.middleware !== undefined ? { middleware: ctx.middleware } : {}) }
    this.current = claim
    return { ok: true, claim, fresh: true }
  }

  renew (peer: string, run: string, now: number): ClaimDecision {
    const cur = this.current
    if (cur === undefined || cur.coordinator !== peer || cur.run !== run || cur.expiresAt <= now) {
      return { ok: false, code: 'NOT_CLAIMED', message: `no live claim for run ${run}` }
    }
    cur.expiresAt = now + cur.leaseMs
    return { ok: true, claim: cur, fresh: false }
  }

  release (peer: string, run: string): Claim | undefined {
    const cur = this.current
    if (cur === undefined || cur.coordinator !== peer || cur.run !== run) return undefined
    this.current = undefined
    return cur
  }

  /** The claim if its lease ran out (and forget it). */
  expire (now: number): Claim | undefined {
    const cur = this.current
    if (cur === undefined || cur.expiresAt > now) return undefined
    this.current = undefined
    return cur
  }

  isHeldBy (peer: string, run?: string): boolean {
    const cur = this.current
    return cur !== undefined && cur.coordinator === peer && (run === undefined || cur.run === run)
  }
}
