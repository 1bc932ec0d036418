// `npm run bench`: every benchmark in turn (about 30 minutes; root needed for the namespace ones).
import { spawnSync } from 'node:child_process'
import path from 'node:path'

const here = import.meta.dirname
const runs: string[][] = [
  ['scale.ts'],
  ['daemon.ts'],
  ['dispatch.ts'],
  ['transfer.ts'],
  ['data.ts'],
  ['chaos.ts'],
  ['report.ts'],
  ['quorum.ts'],
  ['seam.ts'],
  ['dagman.ts'],
  ['dagman-bag.ts'],
  ['fair-share.ts'],
  ['sim.ts', '--nodes', '1000', '--coordinators', '400', '--seed', '1']
]
let failed = 0
for (const [script, ...args] of runs) {
  process.stdout.write(`\n== bench/${script}\n`)
  const r = spawnSync(process.execPath, [path.join(here, script), ...args], { stdio: 'inherit' })
  if (r.status !== 0) failed++
}
process.exit(failed === 0 ? 0 : 1)
