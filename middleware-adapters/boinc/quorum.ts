// BOINC's transitioner and validator for one job, as a pure table: given the replicas'
// outcomes so far, wait, issue more, declare a canonical result, or fail.
// (BOINC: a workunit's results; min_quorum, target_nresults, max_error_results,
// max_total_results.)

import type { Replica, Decision } from '../../coordinator/core/contracts.ts'


export interface QuorumRules {
  quorum: number
  maxErrors: number
  maxTotal: number
}

/**
 * - a key held by at least `quorum` ok results, and by a strict majority of them, wins:
 *   its results are valid, the others invalid;
 * - more than maxErrors errors: fail;
 * - too few results out to reach the quorum: issue the missing ones (within maxTotal);
 * - a quorum in but no consensus, nothing pending: one more replica (BOINC issues a new
 *   result when validation finds no canonical one), until maxTotal: then `no consensus`.
 * Replicas still pending are never counted for or against.
 */
export function decide (replicas: Replica[], rules: QuorumRules): Decision {
  const ok = replicas.filter(r => r.outcome === 'ok' && r.key !== undefined)
  const unclassified = replicas.filter(r => r.outcome === 'ok' && r.key === undefined).length
  const errors = replicas.filter(r => r.outcome === 'error').length
  const pending = replicas.filter(r => r.outcome === 'pending').length + unclassified
  const byKey = new Map<string, Replica[]>()
  for (const r of ok) byKey.set(r.key as string, [...(byKey.get(r.key as string) ?? []), r])
  const best = [...byKey.entries()].sort((a, b) => b[1].length - a[1].length)[0]
  if (best !== undefined && best[1].length >= rules.quorum && best[1].length * 2 > ok.length) {
    return {
      kind: 'canonical', key: best[0], attempt: best[1][0].attempt,
      valid: best[1].map(r => r.attempt), invalid: ok.filter(r => r.key !== best[0]).map(r => r.attempt)
    }
  }
  if (errors > rules.maxErrors) return { kind: 'fail', reason: `too many errors: ${errors} replica(s) failed or did not reply (maxErrors ${rules.maxErrors})` }
  const issued = replicas.length
  // how many more agreeing results the leading key needs, counting what is still out
  const lead = best?.[1].length ?? 0
  const needed = Math.max(rules.quorum - lead, ok.length >= rules.quorum ? 1 : rules.quorum - ok.length) - pending
  if (needed <= 0) return { kind: 'wait', why: `${pending} replica(s) out` }
  if (issued >= rules.maxTotal) {
    if (pending > 0) return { kind: 'wait', why: `${pending} replica(s) out, maxTotal reached` }
    const groups = [...byKey.values()].map(g => g.map(r => r.worker))
    return {
      kind: 'fail',
      reason: ok.length >= 2
        ? `no consensus after ${issued} replica(s) (maxTotal ${rules.maxTotal}): ${groups.length} different result(s), from ${groups.map(g => g.map(w => w.slice(-8)).join('+')).join(' vs ')}`
        : `too few results after ${issued} replica(s) (maxTotal ${rules.maxTotal}): ${ok.length} ok, ${errors} error(s)`
    }
  }
  const n = Math.min(needed, rules.maxTotal - issued)
  return { kind: 'issue', n, why: ok.length >= rules.quorum ? 'no consensus yet' : `${ok.length} of ${rules.quorum} result(s) in` }
}
