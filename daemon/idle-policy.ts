// Desktop idle policy, a pure function of samples (HTCondor START/SUSPEND and
// BOINC "run when idle" in one): the node is offered only after the owner has
// left it alone for a while, and withdrawn as soon as the owner is back.

export interface IdlePolicyConfig {
  /** Owner must be away (no keyboard/mouse) and load low this long before we offer the node (BOINC idle_time_to_run: 3 min). */
  startIdleSec: number
  /** Owner's CPU load (fraction of the machine, bgrid's tasks excluded) at or below which the machine counts as idle (HTCondor: 0.3). */
  startMaxLoad: number
  /** Keyboard/mouse used within this many seconds: the owner is back (HTCondor: 60 s). */
  suspendActiveSec: number
  /** Owner's load at or above this ... (HTCondor: 0.5) */
  suspendLoad: number
  /** ... for this long: the owner is back (HTCondor: 2 min). */
  suspendLoadSec: number
  /** Suspended longer than this: our tasks are given back to their coordinator (HTCondor MaxSuspendTime: 10 min). */
  maxSuspendSec: number
}

export const DEFAULT_IDLE_POLICY: IdlePolicyConfig = {
  startIdleSec: 180,
  startMaxLoad: 0.3,
  suspendActiveSec: 60,
  suspendLoad: 0.5,
  suspendLoadSec: 120,
  maxSuspendSec: 600
}

export interface ActivitySample {
  /** ms since epoch */
  now: number
  /** owner's CPU load as a fraction of the whole machine, 0..1, bgrid's own tasks excluded */
  ownerLoad: number
  /** seconds since the last keyboard/mouse activity; Infinity when unknown (headless) */
  userIdleSec: number
}

export interface PolicyState {
  available: boolean
  /** since when ownerLoad has stayed <= startMaxLoad (ms), or null */
  lowLoadSince: number | null
  /** since when ownerLoad has stayed >= suspendLoad (ms), or null */
  highLoadSince: number | null
  /** since when ownerLoad has stayed > startMaxLoad (ms), or null: for the reason */
  busySince?: number | null
  /** when the node last became unavailable (ms) */
  unavailableSince: number
}

export function initialPolicyState (now: number): PolicyState {
  return { available: false, lowLoadSince: null, highLoadSince: null, busySince: null, unavailableSince: now }
}

/** what decided: the owner at the keyboard, the owner's CPU load, a quiet period not over yet, or nothing (offered) */
export type PolicyCause = 'active' | 'load' | 'settling' | 'idle'

export interface PolicyDecision {
  state: PolicyState
  /** why, in words and with the numbers, for the log, `bgrid status` and `bgrid peers` */
  reason: string
  cause: PolicyCause
  /** tasks suspended longer than maxSuspendSec: give them back */
  vacate: boolean
}

/** 40 s, 3 min, 2 min 30 s, 1 h 5 min: what people read in a reason */
export function humanSeconds (sec: number): string {
  if (!Number.isFinite(sec)) return 'ever'
  const s = Math.max(0, Math.round(sec))
  if (s < 60) return `${s} s`
  if (s < 3600) return s % 60 === 0 ? `${s / 60} min` : `${Math.floor(s / 60)} min ${s % 60} s`
  const m = Math.floor(s / 60) % 60
  return `${Math.floor(s / 3600)} h${m > 0 ? ` ${m} min` : ''}`
}

const load = (x: number): string => x.toFixed(2)

export function stepIdlePolicy (prev: PolicyState, s: ActivitySample, cfg: IdlePolicyConfig): PolicyDecision {
  const lowLoadSince = s.ownerLoad <= cfg.startMaxLoad ? (prev.lowLoadSince ?? s.now) : null
  const highLoadSince = s.ownerLoad >= cfg.suspendLoad ? (prev.highLoadSince ?? s.now) : null
  const busySince = lowLoadSince === null ? (prev.busySince ?? s.now) : null
  const base = { ...prev, lowLoadSince, highLoadSince, busySince }
  const away = Number.isFinite(s.userIdleSec) ? `owner away ${humanSeconds(s.userIdleSec)}` : 'no keyboard/mouse activity seen'
  if (prev.available) {
    if (s.userIdleSec < cfg.suspendActiveSec) {
      return { state: { ...base, available: false, unavailableSince: s.now }, cause: 'active', reason: `owner active ${humanSeconds(s.userIdleSec)} ago (keyboard/mouse; offered after ${humanSeconds(cfg.startIdleSec)} idle)`, vacate: false }
    }
    if (highLoadSince !== null && s.now - highLoadSince >= cfg.suspendLoadSec * 1000) {
      return { state: { ...base, available: false, unavailableSince: s.now }, cause: 'load', reason: `owner CPU load ${load(s.ownerLoad)} >= ${cfg.suspendLoad} for ${humanSeconds((s.now - highLoadSince) / 1000)} (offered after ${humanSeconds(cfg.startIdleSec)} at or below ${cfg.startMaxLoad})`, vacate: false }
    }
    return { state: base, cause: 'idle', reason: `${away}, CPU load ${load(s.ownerLoad)}`, vacate: false }
  }
  const userAway = s.userIdleSec >= cfg.startIdleSec
  const quietFor = lowLoadSince === null ? 0 : (s.now - lowLoadSince) / 1000
  if (userAway && lowLoadSince !== null && s.now - lowLoadSince >= cfg.startIdleSec * 1000) {
    return { state: { ...base, available: true }, cause: 'idle', reason: `${away}, CPU load ${load(s.ownerLoad)} <= ${cfg.startMaxLoad} for ${humanSeconds(quietFor)}`, vacate: false }
  }
  const vacate = s.now - prev.unavailableSince >= cfg.maxSuspendSec * 1000
  if (!userAway) {
    return { state: base, cause: 'active', reason: `owner active ${humanSeconds(s.userIdleSec)} ago (keyboard/mouse; offered after ${humanSeconds(cfg.startIdleSec)} idle)`, vacate }
  }
  if (lowLoadSince === null) {
    return { state: base, cause: 'load', reason: `owner CPU load ${load(s.ownerLoad)} > ${cfg.startMaxLoad} for ${humanSeconds((s.now - (busySince ?? s.now)) / 1000)} (offered after ${humanSeconds(cfg.startIdleSec)} at or below it)`, vacate }
  }
  return { state: base, cause: 'settling', reason: `${away}, CPU load ${load(s.ownerLoad)} <= ${cfg.startMaxLoad} for ${humanSeconds(quietFor)} (offered after ${humanSeconds(cfg.startIdleSec)})`, vacate }
}
