// V8 flags the daemon runs with. bin/cli.ts re-executes `bgrid daemon` with them
// (they must be set before the heap exists); the transfer benchmark runs its two
// ends with them, so that it measures what daemons do.
export const DAEMON_NODE_FLAGS = [
  // A daemon idles for days on someone's PC: a small young generation keeps it under 100 MB.
  '--max-semi-space-size=1',
  // Blob transfers allocate buffers outside the JS heap (socket reads, cipher output). By
  // default V8 starts a full collection every ~64 MB of them: ~100 collections per GiB
  // moved, a third of the transfer's CPU. Counting them in the heap's global limit instead
  // keeps collections as rare as the heap's own growth asks for...
  '--external-memory-accounted-in-global-limit',
  // ...and letting the heap grow to twice what the last collection kept (V8 picks a
  // factor from its own speed, often near 1.1 here) halves them again: each full
  // collection marks the whole ~20 MB heap on four threads. An idle daemon's heap stays
  // within twice its live size.
  '--heap-growing-percent=100'
]
