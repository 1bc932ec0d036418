// Soak benchmark for "a run never hangs" (issue 19): every WfCommons trace in
// ../shared/workloads (Pegasus, Makeflow, Nextflow) imported with
// `bgrid import wfcommons --time-scale T --size-scale 0.001 --sleep`, each run twice in
// sequence on the same 4 daemons (own network namespaces), the second run with one worker
// SIGKILLed when 40 % of its jobs are done and started again on its data dir and port
// while the run goes on. Every run must succeed within its deadline, with outputs equal
// byte for byte to the same DAG run locally (testbed/soak.ts says how the outputs are
// made deterministic). A trace the import refuses is "skipped: reason", not a failure.
//
// Time scale 0.02 by default: the traces' recorded runtimes (222 s to 2,580 s of work)
// become 4-27 s of sleep spread over 8 slots, so a run lasts seconds, long enough for a
// kill to land mid-way, short enough for twelve runs in a few minutes; a trace whose
// critical path would still be over 10 s (soykb: 59 s) gets a lower scale, printed.
// At size scale 0.001 most files are a few bytes or empty: that is the point.
//
// Prints one line per run (trace, round, seconds, ok/FAILED), then the time of all runs
// against the sum of each trace's first run (the fault-free single run measured here) as
// a ratio (2.00: a second run, killed worker included, costs what the first did), then
// `N passed, N failed`. On a failure the evidence (run.json, status, daemon logs) is kept
// in a directory it names. Exit 1 if any run failed.
//
// A run hangs when no job of it moves for 120 s, or when it outlives its deadline: 300 s,
// or 2 s per job for the big traces (montage 025d, 619 jobs). Generous on purpose: on a
// 2-core machine loaded by other work a contained job took 2-55 s from start to end (a
// 41-job trace 120 s), and a slow run is not a hung one; the hang of issue 19 never moves.
// usage: node bench/soak.ts [deadline-seconds=300] [time-scale=0.02]
import path from 'node:path'
import { cpSync, existsSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs'
import { Cluster } from '../testbed/cluster.ts'
import { canMakeNamespaces } from '../testbed/netns.ts'
import { runLocally } from '../testbed/local-run.ts'
import { Soak, WORKLOADS, listTraces, importTrace, formatRun, type RunResult, type SoakDag } from '../testbed/soak.ts'

const say = (s: string): void => { process.stdout.write(s + '\n') }
if (!canMakeNamespaces()) { process.stderr.write('bench/soak.ts needs root (network namespaces)\n'); process.exit(1) }
const DEADLINE_S = Number(process.argv[2] ?? 300)
const TIME_SCALE = Number(process.argv[3] ?? 0.02)
const DAEMONS = 4

const traces = listTraces()
if (traces.length === 0) {
  say(`soak: skipped: no WfCommons traces at ${WORKLOADS}`)
  say('0 passed, 0 failed')
  process.exit(0)
}

const started = Date.now()
const c = new Cluster()
// info, not debug: twelve runs of debug logs held in memory slow the daemons down
c.logLevel = 'info'
const results: RunResult[] = []
const skipped: string[] = []
let evidence: string | undefined
try {
  const soak = await Soak.start(c, DAEMONS,
    { deadlineMs: DEADLINE_S * 1000, perJobMs: 2000, stallMs: 120_000, killAt: 0.4, lease: 3 })
  for (const trace of traces) {
    const prepared = importTrace(trace, path.join(c.tmp, 'traces', trace.name),
      { timeScale: TIME_SCALE, sizeScale: 0.001, maxCriticalPath: 10, workers: DAEMONS })
    if ('skipped' in prepared) {
      skipped.push(`${trace.name}: ${prepared.skipped}`)
      say(`${trace.name.padEnd(46)} skipped: ${prepared.skipped}`)
      continue
    }
    const dag: SoakDag = prepared
    say(`${dag.name}: ${dag.note}`)
    const local = runLocally(dag.dagFile, c.tmp, { SOAK_PAUSE: '0' })
    try {
      for (const round of [1, 2]) {
        await soak.idle(60_000)
        const r = await soak.run(dag, round, local, round === 2)
        results.push(r)
        say(formatRun(r))
        if (!r.ok) evidence = keepEvidence(r, soak, evidence)
      }
    } finally { local.cleanup() }
  }
  const firsts = results.filter(r => r.round === 1)
  const baseline = firsts.reduce((s, r) => s + r.seconds, 0)
  const total = results.reduce((s, r) => s + r.seconds, 0)
  say('')
  if (skipped.length > 0) say(`skipped: ${skipped.join('; ')}`)
  say(`time: ${results.length} runs took ${total.toFixed(1)} s against ${baseline.toFixed(1)} s ` +
    `for the ${firsts.length} first runs alone (each trace once, no fault): ratio ${(total / baseline).toFixed(2)} ` +
    '(2.00 = the second run, with its killed worker, as fast as the first); ' +
    `wall clock ${((Date.now() - started) / 1000).toFixed(0)} s with imports, local references and daemon starts`)
  if (evidence !== undefined) say(`evidence of the failures kept in ${evidence}`)
} finally {
  await c.stop()
}
const failed = results.filter(r => !r.ok).length
say(`${results.length - failed} passed, ${failed} failed`)
process.exit(failed > 0 ? 1 : 0)

/** Copy what explains a failed run out of the scratch dir (removed at the end): outputs, run dir, logs. */
function keepEvidence (r: RunResult, soak: Soak, dir: string | undefined): string {
  const keep = dir ?? mkdtempSync('/var/tmp/bgrid-soak-evidence-')
  const to = path.join(keep, r.runId)
  mkdirSync(to, { recursive: true })
  if (existsSync(r.outDir)) cpSync(r.outDir, path.join(to, 'out'), { recursive: true })
  const runDir = path.join(soak.home, 'coordinator', 'runs', r.runId)
  if (existsSync(runDir)) cpSync(runDir, path.join(to, 'run-dir'), { recursive: true })
  writeFileSync(path.join(to, 'why.txt'), r.why.join('\n') + '\n')
  writeFileSync(path.join(to, 'submit.stdout'), r.submit.stdout)
  writeFileSync(path.join(to, 'submit.stderr'), r.submit.stderr)
  for (const d of soak.cluster.daemons) {
    writeFileSync(path.join(to, `${path.basename(d.dataDir)}-${d.pid}.log`), d.stderr)
  }
  return keep
}
