// Simulated: many volunteer nodes and many coordinators, each running a DAG, on the real
// claim logic, node state table, run core and fair-share asks, over an in-process
// transport and a virtual clock (testbed/sim/). Deterministic by seed. Prints one JSON
// object with --json, else a summary. Targets (issue 21): 1,000 nodes and 400
// coordinators: every run completed, 0 double grants, the virtual makespan within 1.3x of
// the bound, under 60 s of wall time.
// usage: node bench/sim.ts [--nodes N] [--coordinators C] [--seed S] [--slots K] [--window S] [--load S] [--bags F] [--wait S] [--json]
import { parseArgs } from 'node:util'
import { simulate, DEFAULT_SIM } from '../testbed/sim/world.ts'

const { values: a } = parseArgs({
  options: {
    nodes: { type: 'string', default: '1000' },
    coordinators: { type: 'string', default: '400' },
    seed: { type: 'string', default: '1' },
    slots: { type: 'string', default: String(DEFAULT_SIM.slots) },
    window: { type: 'string', default: String(DEFAULT_SIM.windowSec) },
    load: { type: 'string', default: String(DEFAULT_SIM.loadSec) },
    bags: { type: 'string', default: String(DEFAULT_SIM.bagShare) },
    wait: { type: 'string', default: String(DEFAULT_SIM.waitSec) },
    workloads: { type: 'string', default: DEFAULT_SIM.workloads },
    json: { type: 'boolean', default: false }
  }
})
const num = (name: string, v: string | undefined, min: number): number => {
  const n = Number(v)
  if (!Number.isFinite(n) || n < min) { process.stderr.write(`bench/sim.ts: --${name} must be a number >= ${min}\n`); process.exit(2) }
  return n
}
const t0 = performance.now()
const r = simulate({
  ...DEFAULT_SIM,
  nodes: Math.floor(num('nodes', a.nodes, 1)),
  coordinators: Math.floor(num('coordinators', a.coordinators, 1)),
  seed: Math.floor(num('seed', a.seed, 0)),
  slots: Math.floor(num('slots', a.slots, 1)),
  windowSec: num('window', a.window, 0),
  loadSec: num('load', a.load, 1),
  bagShare: num('bags', a.bags, 0),
  waitSec: num('wait', a.wait, 0),
  workloads: a.workloads
})
const wallSeconds = Math.round((performance.now() - t0) / 10) / 100
if (a.json) {
  process.stdout.write(JSON.stringify({ ...r, wallSeconds }) + '\n')
} else {
  const say = (s: string): void => { process.stdout.write(s + '\n') }
  say(`${r.nodes} nodes (${r.slots} slot(s) each), ${r.coordinators} coordinators, seed ${r.seed}`)
  say(`  runs completed: ${r.completed}/${r.coordinators}${Object.keys(r.failed).length > 0 ? `, failed: ${JSON.stringify(r.failed)}` : ''}${r.unfinished > 0 ? `, unfinished: ${r.unfinished}` : ''}`)
  say(`  double grants: ${r.doubleGrants}; illegal state changes: ${r.illegalTransitions}`)
  say(`  virtual makespan ${r.virtualMakespanSeconds} s against a bound of ${r.boundSeconds} s (${r.boundBy}): ${r.makespanOverBound}x`)
  say(`  per-run makespan ${r.perRunMakespan.min}..${r.perRunMakespan.max} s (median ${r.perRunMakespan.median}); stretch over its critical path ${r.perRunStretch.min}..${r.perRunStretch.max}`)
  say(`  ${r.jobs} jobs, ${r.attempts} attempts; ${r.claims} claims, ${r.grants} grants, ${r.claimMessages} claim messages, ${r.events} events`)
  say(`  workloads: ${Object.entries(r.workloads).map(([k, n]) => `${k} ${n}`).join(', ')}`)
  for (const t of r.tracesRefused) say(`  trace left out (the importer refuses it): ${t}`)
  say(`  wall time ${wallSeconds} s`)
}
