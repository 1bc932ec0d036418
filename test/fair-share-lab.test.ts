// Fair sharing between concurrent coordinators, with real daemons and coordinators as
// processes in network namespaces: several users submitting at once end together and
// not much later than one user with all their work alone, priority and the owner's
// preference win nodes, and no node is ever held by two coordinators at once. Thirty
// daemons and five users are bench/fair-share.ts (minutes on a 2-core machine).
import t from 'tap'
import path from 'node:path'
import { readFileSync } from 'node:fs'
import { stdoutJson, clusterOrSkip, type Proc, type DaemonProc } from '../testbed/cluster.ts'
import type { LabHost } from '../testbed/netns.ts'
import { holds as holdsOf, overlaps, heldAt, type Hold } from '../testbed/share-check.ts'

const events = stdoutJson

const cluster = clusterOrSkip(t)
if (cluster !== undefined) {
  const home = (h: LabHost): string => path.join(cluster.tmp, `home-${h.ns}`)
  const submit = (dag: string, h: LabHost, args: string[] = []): Proc =>
    cluster.cli(h, ['submit', dag, '--data-dir', home(h), '--json', '--wait', '30', '--lease', '3', ...args])
  const bag = (name: string, n: number, seconds: number, max: number): string => cluster.writeDag({
    name,
    workers: { min: 1, max },
    jobs: Array.from({ length: n }, (_, i) => ({ id: `j${i}`, cmd: `sleep ${seconds}; echo ${name}-${i} > o.txt`, outputs: ['o.txt'] }))
  })
  const holds = (runs: Proc[]): Hold[] => holdsOf(runs.map(events))
  const stopAll = async (ds: DaemonProc[]): Promise<void> => {
    for (const d of ds) d.kill('SIGTERM')
    await Promise.all(ds.map(async d => await d.done(15_000)))
  }
  /** daemons started a few at a time: each measures its machine as it starts (a 2-core box starting 30 at once takes minutes) */
  const startDaemons = async (n: number, args: string[]): Promise<DaemonProc[]> => {
    const out: DaemonProc[] = []
    for (let i = 0; i < n; i += 4) out.push(...await cluster.startDaemons(Math.min(4, n - i), args))
    return out
  }
  const submitterId = async (h: LabHost): Promise<string> => {
    const r = await cluster.runCli(h, ['id', '--data-dir', home(h)])
    return r.stdout.trim().split(/\s+/).find(w => w.startsWith('12D3Koo')) ?? ''
  }

  t.test('three users submit the same bag to twelve one-slot daemons at once: they end together', async t => {
    const daemons = await startDaemons(12, ['--always-available', '--slots', '1'])
    const hosts = [cluster.lab.addHost(), cluster.lab.addHost(), cluster.lab.addHost()]
    const dags = hosts.map((_h, k) => bag(`bag${k}`, 48, 1, 12))
    const submittedAt = Date.now()
    const runs = hosts.map((h, k) => submit(dags[k], h, ['--out', path.join(cluster.tmp, `out-bag${k}`)]))
    const ends = await Promise.all(runs.map(async r => { const { code } = await r.done(120_000); return { code, at: Date.now() } }))
    t.same(ends.map(e => e.code), [0, 0, 0], runs.map(r => r.stderr).join('\n'))
    const finished = runs.map(r => events(r).find(e => e.event === 'finished')?.time as number)
    const took = finished.map(f => (f - submittedAt) / 1000)
    t.comment(`runs ended after ${took.map(s => s.toFixed(1)).join(', ')} s`)
    t.ok(Math.max(...took) <= 1.35 * Math.min(...took), `the last ends at most 1.35x after the first (${(Math.max(...took) / Math.min(...took)).toFixed(2)}x)`)
    // the bound in the same run: one user submitting all 144 jobs alone on the same daemons
    const aloneAt = Date.now()
    const alone = submit(bag('alone', 144, 1, 12), cluster.lab.addHost())
    t.equal((await alone.done(120_000)).code, 0, alone.stderr)
    const aloneSeconds = ((events(alone).find(e => e.event === 'finished')?.time as number) - aloneAt) / 1000
    t.comment(`one user alone with the 144 jobs: ${aloneSeconds.toFixed(1)} s (12 s of work per slot)`)
    t.ok(Math.max(...took) <= 1.5 * aloneSeconds, `three users at once end within 1.5x of one user alone (${(Math.max(...took) / aloneSeconds).toFixed(2)}x)`)
    for (let k = 0; k < 3; k++) {
      const run = JSON.parse(readFileSync(path.join(cluster.tmp, `out-bag${k}`, 'run.json'), 'utf8'))
      const workers = new Set(Object.values(run.jobs).map((j: any) => j.worker))
      t.ok(workers.size >= 3, `run ${k} ran its jobs on ${workers.size} workers (at least 3)`)
      t.equal(Object.values(run.jobs).filter((j: any) => j.state === 'done').length, 48, `run ${k}: 48 jobs done`)
    }
    t.same(overlaps(holds(runs)), [], 'no worker held by two coordinators at the same time')
    await stopAll(daemons)
  })

  t.test('a priority-10 run takes its share from a priority-0 run, which keeps one worker', async t => {
    const daemons = await startDaemons(6, ['--always-available', '--slots', '1'])
    const [lowHost, highHost] = [cluster.lab.addHost(), cluster.lab.addHost()]
    const low = submit(bag('low', 60, 1, 6), lowHost)
    await low.until(() => events(low).filter(e => e.event === 'worker' && e.state === 'claimed').length >= 6, 30_000, 'the low run holding all six')
    const highAt = Date.now()
    const high = submit(bag('high', 20, 1, 6), highHost, ['--priority', '10'])
    await high.until(() => events(high).filter(e => e.event === 'worker' && e.state === 'claimed').length >= 5, 20_000, 'the high run holding five')
    const tookMs = Date.now() - highAt
    t.comment(`the high run held 5 workers ${tookMs} ms after its submit`)
    t.ok(tookMs < 15_000, 'within 15 s')
    const [lowEnd, highEnd] = await Promise.all([low.done(120_000), high.done(120_000)])
    t.same([lowEnd.code, highEnd.code], [0, 0], low.stderr + high.stderr)
    const held = holds([low, high])
    const at = (events(high).find(e => e.event === 'finished')?.time as number) - 500
    t.equal(heldAt(held, 0, at), 1, 'the low run kept one worker while the high one ran')
    t.same(overlaps(held), [], 'no worker held by two coordinators at the same time')
    t.ok(events(low).some(e => e.event === 'worker' && e.state === 'released' && /fairer share/.test(String(e.reason))), 'the low run let its workers go for a fairer share')
    await stopAll(daemons)
  })

  t.test('a daemon\'s preferred submitter takes it from a stranger at equal priority, its last worker included', async t => {
    const [strangerHost, labHost] = [cluster.lab.addHost(), cluster.lab.addHost()]
    const labId = await submitterId(labHost)
    t.match(labId, /^12D3Koo/, 'the lab user\'s submitter id')
    const [d] = await startDaemons(1, ['--always-available', '--slots', '1', '--prefer-coordinator', labId])
    const stranger = submit(bag('stranger', 8, 1, 1), strangerHost)
    await stranger.until(() => events(stranger).some(e => e.event === 'worker' && e.state === 'claimed'), 30_000, 'the stranger holding the node')
    const mine = submit(bag('mine', 2, 1, 1), labHost)
    const [s, m] = await Promise.all([stranger.done(120_000), mine.done(120_000)])
    t.same([s.code, m.code], [0, 0], stranger.stderr + mine.stderr)
    const mineEnd = events(mine).find(e => e.event === 'finished')?.time as number
    const strangerEnd = events(stranger).find(e => e.event === 'finished')?.time as number
    t.ok(mineEnd < strangerEnd, 'the preferred run ended first, though it came second')
    t.same(overlaps(holds([stranger, mine])), [], 'no double grant')
    await stopAll([d])
  })

  t.test('a coordinator that never lets a node go loses it all the same: the node leaves by itself for the run that asks', async t => {
    const daemons = await startDaemons(2, ['--always-available', '--slots', '1'])
    const targets = daemons.map(d => ['--target', `/ip4/${d.host.ip}/tcp/${d.port}/p2p/${d.peer}`]).flat()
    const script = path.join(import.meta.dirname, '..', 'testbed', 'greedy-holder.ts')
    const greedy = cluster.spawn(cluster.lab.addHost(), [process.execPath, script, '--seconds', '40', ...targets])
    await greedy.until(() => events(greedy).filter(e => e.event === 'claimed').length === 2, 20_000, 'the greedy run holding both nodes')
    const askedAt = Date.now()
    const asker = cluster.spawn(cluster.lab.addHost(), [process.execPath, script, '--ask', '--run', 'short-run', '--seconds', '30', ...targets])
    const granted = await asker.until(() => events(asker).find(e => e.event === 'granted'), 30_000, 'the asking run granted a node')
    const tookMs = granted.time - askedAt
    t.comment(`the asking run got a node ${tookMs} ms after it first asked`)
    // a tenure (3 s), then the node waits lease/3 + 1 s (2 s) for its holder, then is kept for the asker
    t.ok(tookMs < 10_000, 'within 10 s, the greedy holder never releasing anything')
    const lostIt = await greedy.until(() => events(greedy).find(e => e.event === 'lost' && e.target === granted.target), 10_000, 'the greedy run told it lost the node')
    t.equal(lostIt.code, 'NOT_CLAIMED', 'its renewals of that node are refused')
    t.ok(events(greedy).some(e => e.event === 'renewed' && e.target === granted.target && e.retiring === true), 'the node had said it was retiring')
    const other = targets.filter(a => a !== '--target').find(a => a !== granted.target)
    await greedy.until(() => events(greedy).filter(e => e.target === other && e.time > granted.time).length >= 2, 10_000, 'renewals of the other node')
    t.ok(events(greedy).filter(e => e.target === other && e.time > granted.time).every(e => e.event === 'renewed'), 'the greedy run keeps its other node (a run keeps one)')
    greedy.kill('SIGTERM')
    asker.kill('SIGTERM')
    await stopAll(daemons)
  })

  t.test('a node leaving for a fairer share does not wait past --max-retirement for a long job: the job is handed back', async t => {
    const daemons = await startDaemons(2, ['--always-available', '--slots', '1', '--max-retirement', '2'])
    const [lowHost, highHost] = [cluster.lab.addHost(), cluster.lab.addHost()]
    const low = submit(bag('long', 2, 25, 2), lowHost)
    await low.until(() => events(low).filter(e => e.event === 'job' && e.to === 'running').length >= 2, 30_000, 'both long jobs running')
    const highAt = Date.now()
    const high = submit(bag('urgent', 1, 0, 1), highHost, ['--priority', '10'])
    const { code } = await high.done(60_000)
    t.equal(code, 0, high.stderr)
    const tookMs = (events(high).find(e => e.event === 'finished')?.time as number) - highAt
    t.comment(`the priority-10 run ended ${tookMs} ms after its submit, the long jobs having 25 s to go`)
    // a tenure (3 s), the retirement time (2 s), the holder's release (at most lease/3 + 1 s), a claim
    t.ok(tookMs < 15_000, 'within 15 s')
    t.ok(events(low).some(e => e.event === 'job' && e.from === 'running' && e.to === 'ready'), 'the long run got its job back to run again')
    low.kill('SIGTERM')
    await low.done(30_000)
    await stopAll(daemons)
  })
}
