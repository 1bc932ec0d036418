// The node's floating-point speed, measured once when the daemon starts, advertised
// as `gflops` (TXT record and claim offer).
//
// What the number means: GFLOPS of ONE core, 10^9 double-precision operations a second,
// from a multiply-add kernel on the main thread (eight independent chains, so the
// core's pipelines are busy rather than waiting on one result). It plays the part of
// BOINC's Whetstone benchmark (p_fpops): BOINC's unit of credit, the cobblestone, is
// 1/200 of a day of CPU time on a 1 GFLOPS machine, so credit for an attempt is
// cpuMs / 86_400_000 * 200 * gflops. Like BOINC's, it is a rough figure: JavaScript
// does not vectorise, and a busy machine measures slower.

/** how long the measurement may take (the node is not offered meanwhile) */
export const BENCHMARK_MS = 200

let sink = 0

/** one block of the kernel: 16 floating-point operations an iteration */
function block (n: number, seed: number): number {
  // x <- x*m + c converges to c/(1-m) = 1: no overflow, no denormals, whatever n is
  const m = 0.999_999
  const c = 0.000_001
  let a0 = seed; let a1 = seed + 0.1; let a2 = seed + 0.2; let a3 = seed + 0.3
  let a4 = seed + 0.4; let a5 = seed + 0.5; let a6 = seed + 0.6; let a7 = seed + 0.7
  for (let i = 0; i < n; i++) {
    a0 = a0 * m + c; a1 = a1 * m + c; a2 = a2 * m + c; a3 = a3 * m + c
    a4 = a4 * m + c; a5 = a5 * m + c; a6 = a6 * m + c; a7 = a7 * m + c
  }
  return a0 + a1 + a2 + a3 + a4 + a5 + a6 + a7
}

/**
 * GFLOPS of one core, 2 decimals; blocks the caller for about `budgetMs`. The fastest
 * of many short blocks counts: a block the scheduler gave to another process, or one
 * run before the JIT had compiled the kernel, measures the machine's load, not its core.
 */
export function measureGflops (budgetMs = BENCHMARK_MS): number {
  const n = 1 << 16
  let best = 0
  const t0 = performance.now()
  do {
    const t = performance.now()
    // the result is used, so the loop cannot be optimised away
    sink += block(n, Math.random())
    const ms = performance.now() - t
    if (ms > 0) best = Math.max(best, 16 * n / ms)
  } while (performance.now() - t0 < budgetMs)
  if (!Number.isFinite(sink)) return 0
  return Math.round(best / 1e4) / 100 // ops per ms / 1e6 = GFLOPS
}
