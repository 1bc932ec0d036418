// Fair sharing at lab scale: D real daemons (--slots 1) in network namespaces and C users
// submitting the same bag of J jobs of S seconds at once (workers.max D). Prints, in one
// JSON line: every run's exit code and end (s after the submits), the workers each held
// at `--at` s after the last submit (and after the last coordinator started) against the
// fair share D/C, the spread of ends, the double grants (claim intervals of one worker that overlap across runs), and the baseline
// measured in the same run: one user running all C×J jobs alone on the same daemons.
// usage: node bench/fair-share.ts [--daemons 30] [--coordinators 5] [--jobs 60] [--seconds 2] [--at 10] [--dump DIR]
import { parseArgs } from 'node:util'
import path from 'node:path'
import { mkdirSync, writeFileSync } from 'node:fs'
import { Cluster, stdoutJson, type Proc, type DaemonProc } from '../testbed/cluster.ts'
import { holds, overlaps, heldAt } from '../testbed/share-check.ts'

const { values: o } = parseArgs({
  options: {
    daemons: { type: 'string', default: '30' },
    coordinators: { type: 'string', default: '5' },
    jobs: { type: 'string', default: '60' },
    seconds: { type: 'string', default: '2' },
    at: { type: 'string', default: '10' },
    dump: { type: 'string' }
  }
})
const D = Number(o.daemons)
const C = Number(o.coordinators)
const J = Number(o.jobs)
const S = Number(o.seconds)
const cluster = new Cluster()
cluster.logLevel = 'info'
const daemons: DaemonProc[] = []
try {
  // a few at a time: each measures its machine as it starts
  for (let i = 0; i < D; i += 4) daemons.push(...await cluster.startDaemons(Math.min(4, D - i), ['--always-available', '--slots', '1']))
  const bag = (name: string, n: number): string => cluster.writeDag({
    name,
    workers: { min: 1, max: D },
    jobs: Array.from({ length: n }, (_, i) => ({ id: `j${i}`, cmd: `sleep ${S}; echo ${name}-${i} > o.txt`, outputs: ['o.txt'] }))
  })
  const submit = (dag: string, k: number): Proc => {
    const h = cluster.lab.addHost()
    return cluster.cli(h, ['submit', dag, '--data-dir', path.join(cluster.tmp, `home${k}`), '--json', '--wait', '30', '--out', path.join(cluster.tmp, `out${k}`)])
  }
  const dags = Array.from({ length: C }, (_, k) => bag(`user${k}`, J))
  const submittedAt = Date.now()
  const runs = dags.map((d, k) => submit(d, k))
  const codes = await Promise.all(runs.map(async r => (await r.done(600_000)).code))
  const evs = runs.map(stdoutJson)
  const ends = evs.map(e => ((e.find(x => x.event === 'finished')?.time as number | undefined) ?? NaN) - submittedAt)
  const held = holds(evs)
  const at = submittedAt + Number(o.at) * 1000
  const shares = runs.map((_r, k) => heldAt(held, k, at))
  // the same, counted from the last coordinator's start (35 processes starting on a small machine take seconds)
  const lastStarted = Math.max(...evs.map(e => (e.find(x => x.event === 'started')?.time as number | undefined) ?? NaN))
  const sharesFromStart = runs.map((_r, k) => heldAt(held, k, lastStarted + Number(o.at) * 1000))
  if (o.dump !== undefined) {
    mkdirSync(o.dump, { recursive: true })
    runs.forEach((r, k) => { writeFileSync(path.join(o.dump as string, `run${k}.ndjson`), r.stdout); writeFileSync(path.join(o.dump as string, `run${k}.err`), r.stderr) })
    daemons.forEach((d, k) => { writeFileSync(path.join(o.dump as string, `daemon${k}.ndjson`), d.events.map(e => JSON.stringify(e)).join('\n')) })
  }
  // the baseline: the same work submitted by one user alone
  const aloneAt = Date.now()
  const alone = submit(bag('alone', C * J), C)
  const aloneCode = (await alone.done(600_000)).code
  const aloneSeconds = (((stdoutJson(alone).find(x => x.event === 'finished')?.time as number | undefined) ?? NaN) - aloneAt) / 1000
  const lastEnd = Math.max(...ends) / 1000
  process.stdout.write(JSON.stringify({
    daemons: D,
    coordinators: C,
    jobs: J,
    jobSeconds: S,
    codes,
    endsSeconds: ends.map(e => Math.round(e / 100) / 10),
    spread: Math.round(Math.max(...ends) / Math.min(...ends) * 100) / 100,
    fairShare: D / C,
    heldAt: { seconds: Number(o.at), workers: shares },
    heldAtFromLastStart: { seconds: Number(o.at), workers: sharesFromStart, lastStartedSeconds: Math.round((lastStarted - submittedAt) / 100) / 10 },
    doubleGrants: overlaps(held).length,
    aloneSeconds,
    aloneCode,
    lastEndOverAlone: Math.round(lastEnd / aloneSeconds * 100) / 100,
    boundSeconds: C * J * S / D
  }) + '\n')
} finally {
  for (const d of daemons) d.kill('SIGTERM')
  await Promise.all(daemons.map(async d => await d.done(15_000).catch(() => undefined)))
  await cluster.stop()
}
