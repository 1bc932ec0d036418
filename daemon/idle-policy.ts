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
  /** when the node last became unavailable (ms) */
  unavailableSince: number
}

export function initialPolicyState (now: number): PolicyState {
  return { available: false, lowLoadSince: null, highLoadSince: null, unavailableSince: now }
}

export interface PolicyDecision {
  state: PolicyState
  /** why, for the log and `bgrid peers` */
  reason: string
  /** tasks suspended longer than maxSuspendSec: give them back */
  vacate: boolean
}

export function stepIdlePolicy (prev: PolicyState, s: ActivitySample, cfg: IdlePolicyConfig): PolicyDecision {
  const lowLoadSince = s.ownerLoad <= cfg.startMaxLoad ? (prev.lowLoadSince ?? s.now) : null
  const highLoadSince = s.ownerLoad >= cfg.suspendLoad ? (prev.highLoadSince ?? s.now) : null
  const base = { ...prev, lowLoadSince, highLoadSince }
  if (prev.available) {
    if (s.userIdleSec < cfg.suspendActiveSec) {
      return { state: { ...base, available: false, unavailableSince: s.now }, reason: `owner active ${Math.round(s.userIdleSec)}s ago`, vacate: false }
    }
    if (highLoadSince !== null && s.now - highLoadSince >= cfg.suspendLoadSec * 1000) {
      return { state: { ...base, available: false, unavailableSince: s.now }, reason: `owner load ${s.ownerLoad.toFixed(2)} >= ${cfg.suspendLoad} for ${cfg.suspendLoadSec}s`, vacate: false }
    }
    return { state: base, reason: 'idle', vacate: false }
  }
  const userAway = s.userIdleSec >= cfg.startIdleSec
  const quietLongEnough = lowLoadSince !== null && s.now - lowLoadSince >= cfg.startIdleSec * 1000
  if (userAway && quietLongEnough) {
    return { state: { ...base, available: true }, reason: 'owner away and load low', vacate: false }
  }
  const vacate = s.now - prev.unavailableSince >= cfg.maxSuspendSec * 1000
  const reason = !userAway
    ? `owner active ${Math.round(s.userIdleSec)}s ago (need ${cfg.startIdleSec}s)`
    : `owner load ${s.ownerLoad.toFixed(2)} (need <= ${cfg.startMaxLoad} for ${cfg.startIdleSec}s)`
  return { state: base, reason, vacate }
}
