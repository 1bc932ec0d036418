// Issue 10 benchmark: a 100,000-node HTCondor DAGMan file (fan-out/fan-in: one split
// node, N-2 workers with VARS, one join), read, converted to dag.json, validated by
// parseDag, and planned (HEFT placement on 50 workers of 8 slots, coordinator/core/plan.ts),
// in this process. Prints the times and the peak RSS (targets: < 3 s, < 1 GB).
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { readDagmanFile } from '../middleware-adapters/condor/dag-file.ts'
import { dagmanToDagJson } from '../middleware-adapters/condor/to-dag-json.ts'
import { parseDag } from '../coordinator/dag-json.ts'
import { edgeBytes, upwardRank, planPlacement } from '../coordinator/core/plan.ts'

const N = Number(process.argv[2] ?? 100_000)
const dir = mkdtempSync(path.join(os.tmpdir(), 'bgrid-dagman-bench-'))
process.on('exit', () => { rmSync(dir, { recursive: true, force: true }) })

writeFileSync(path.join(dir, 'split.sh'), '#!/bin/sh\nseq 1 1000 > split.out\n')
writeFileSync(path.join(dir, 'work.sh'), '#!/bin/sh\nsed -n "$2p" split.out\n')
writeFileSync(path.join(dir, 'join.sh'), '#!/bin/sh\necho done\n')
writeFileSync(path.join(dir, 'split.sub'), 'executable = split.sh\ntransfer_output_files = split.out\nlog = bench.log\nqueue\n')
writeFileSync(path.join(dir, 'work.sub'), [
  '# one worker of the fan-out',
  'universe = vanilla',
  'executable = work.sh',
  'arguments = "--chunk $(chunk) \'$(label)\'"',
  'transfer_input_files = split.out',
  'output = out.$(chunk)',
  'error = err.$(chunk)',
  'log = bench.log',
  'request_cpus = 1',
  'request_memory = 512M',
  'request_disk = 1G',
  'requirements = OpSys == "LINUX" && Memory >= 512',
  'queue', ''
].join('\n'))
writeFileSync(path.join(dir, 'join.sub'), 'executable = join.sh\noutput = join.out\nlog = bench.log\nqueue\n')
const lines = ['JOB split split.sub']
for (let i = 0; i < N - 2; i++) {
  lines.push(`JOB w${i} work.sub`, `VARS w${i} chunk="${i}" label="part \\"\\"${i % 1000}\\"\\" of $(JOB)"`, `PARENT split CHILD w${i}`, `PARENT w${i} CHILD join`)
}
lines.push('JOB join join.sub', 'RETRY ALL_NODES 1', '')
const dagFile = path.join(dir, 'fan.dag')
writeFileSync(dagFile, lines.join('\n'))

global.gc?.()
const cpu0 = process.cpuUsage()
const t0 = performance.now()
const dagman = readDagmanFile(dagFile)
const t1 = performance.now()
const out = path.join(dir, 'dag.json')
const r = dagmanToDagJson(dagman, { out })
const t2 = performance.now()
const dag = parseDag(r.dag, out)
const t3 = performance.now()
const tE = performance.now()
const edges = edgeBytes(dag, () => 1000)
const tR = performance.now()
const rank = upwardRank(dag, edges)
const tP = performance.now()
const workers = Array.from({ length: 50 }, (_, w) => ({ id: `w${w}`, slots: 8, speed: 1 }))
const plan = planPlacement(dag, workers, edges, rank)
const t4 = performance.now()
const peak = process.resourceUsage().maxRSS / 1024
const cpu = process.cpuUsage(cpu0)
const total = t4 - t0
process.stdout.write(`dagman: ${N} nodes, ${dagman.edges} edges: read ${(t1 - t0).toFixed(0)} ms, to dag.json ${(t2 - t1).toFixed(0)} ms, parseDag ${(t3 - t2).toFixed(0)} ms, ` +
  `HEFT plan on 50 workers (400 slots) ${(t4 - t3).toFixed(0)} ms (edges ${(tR - tE).toFixed(0)}, rank ${(tP - tR).toFixed(0)}, placement ${(t4 - tP).toFixed(0)}); total ${total.toFixed(0)} ms (target < 3000 ms; CPU ${((cpu.user + cpu.system) / 1000).toFixed(0)} ms, load average ${os.loadavg()[0].toFixed(1)}); ` +
  `${r.summary.jobs} jobs, planned makespan ${plan.makespan.toFixed(0)} s; peak RSS ${peak.toFixed(0)} MB (target < 1024 MB)\n`)
process.exitCode = total < 3000 && peak < 1024 ? 0 : 1
