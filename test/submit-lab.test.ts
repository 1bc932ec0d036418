// `bgrid submit` end to end: daemons and coordinators as real processes in network
// namespaces; real files; failures injected with kill -9.
import t from 'tap'
import path from 'node:path'
import { readFileSync, writeFileSync, existsSync } from 'node:fs'
import { createHash } from 'node:crypto'
import { stdoutJson, clusterOrSkip, ROOT, type Proc } from '../testbed/cluster.ts'
import { runLocally, compareWithLocal } from '../testbed/local-run.ts'
import { Journal } from '../coordinator/journal.ts'

const events = stdoutJson

const cluster = clusterOrSkip(t)
if (cluster !== undefined) {
  const daemons = await cluster.startDaemons(3)
  const submitHost = cluster.lab.addHost()
  const writeDag = (dag: any, files: Record<string, string> = {}): string => cluster.writeDag(dag, files)
  const submit = (dag: string, args: string[] = [], host = submitHost): Proc =>
    cluster.cli(host, ['submit', dag, '--data-dir', path.join(cluster.tmp, `home-${host.ns}`), '--json', '--wait', '20', '--lease', '3', ...args])
  const allIdle = async (d: typeof daemons): Promise<void> => {
    await Promise.all(d.map(async x => await x.until(() => {
      const st = x.events.filter(e => e.msg === 'state').at(-1)
      return st === undefined || st.to === 'idle'
    }, 15_000, 'daemon idle again')))
  }

  t.test('diamond DAG: real files pass between jobs; outputs, logs and run.json come back; workers are idle again', async t => {
    const out = path.join(cluster.tmp, 'out-diamond')
    const p = submit(path.join(ROOT, 'examples', 'diamond', 'dag.json'), ['--out', out])
    const { code } = await p.done(60_000)
    t.equal(code, 0, p.stderr)
    t.equal(readFileSync(path.join(out, 'sum', 'total.txt'), 'utf8').trim(), '29', 'word count of the input, split and summed')
    const run = JSON.parse(readFileSync(path.join(out, 'run.json'), 'utf8'))
    t.equal(run.state, 'succeeded')
    for (const id of ['split', 'count-top', 'count-bottom', 'sum']) {
      const j = run.jobs[id]
      t.equal(j.state, 'done', id)
      t.equal(j.exitCode, 0)
      t.ok(daemons.some(d => d.peer === j.worker), `${id} ran on one of our workers`)
      t.ok(j.endedAt >= j.startedAt)
    }
    t.match(run.jobs.sum.outputs['total.txt'].sha256, /^[0-9a-f]{64}$/)
    const fin = events(p).find(e => e.event === 'finished')
    t.equal(fin.ok, true)
    const released = events(p).filter(e => e.event === 'worker' && e.state === 'released').length
    t.equal(released, events(p).filter(e => e.event === 'worker' && e.state === 'claimed').length, 'every claimed worker released')
    await allIdle(daemons)
  })

  t.test('retries: a job failing once succeeds on retry; one failing for good fails its descendants and the rest still runs', async t => {
    // a job sees nothing outside its sandbox: BGRID_RETRY (failed attempts so far) tells it this is a retry
    const dag = writeDag({
      name: 'retries',
      defaults: { retries: 2 },
      jobs: [
        { id: 'flaky', cmd: 'if [ "$BGRID_RETRY" -ge 1 ]; then echo ok > r.txt; else echo \'first try fails\' >&2; exit 3; fi', outputs: ['r.txt'] },
        { id: 'broken', cmd: 'echo boom >&2; exit 7', retries: 1 },
        { id: 'after-broken', cmd: ['true'], after: ['broken'] },
        { id: 'independent', cmd: 'echo fine > f.txt', outputs: ['f.txt'] }
      ]
    })
    const out = path.join(cluster.tmp, 'out-retries')
    const p = submit(dag, ['--out', out])
    const { code } = await p.done(60_000)
    t.equal(code, 1, 'not every job succeeded: exit 1')
    const run = JSON.parse(readFileSync(path.join(out, 'run.json'), 'utf8'))
    t.equal(run.jobs.flaky.state, 'done')
    t.equal(run.jobs.flaky.attempts.length, 2, 'flaky ran twice')
    t.equal(run.jobs.flaky.attempts[0].exitCode, 3)
    t.equal(run.jobs.broken.state, 'failed')
    t.equal(run.jobs.broken.attempts.length, 2, 'retries: 1 means two attempts')
    t.match(run.jobs.broken.stderrTail, /boom/, 'stderr tail kept')
    t.equal(run.jobs['after-broken'].state, 'skipped')
    t.equal(run.jobs.independent.state, 'done')
    t.equal(readFileSync(path.join(out, 'independent', 'f.txt'), 'utf8'), 'fine\n')
    t.ok(existsSync(path.join(out, 'logs', 'broken.stderr')), 'full stderr fetched')
    for (const a of [...run.jobs.flaky.attempts, ...run.jobs.broken.attempts]) t.ok(daemons.some(d => d.peer === a.worker), `attempt ${String(a.id)} ran on one of our daemons (${String(a.worker)})`)
  })

  t.test('kill -9 of a worker mid-job: its jobs are rescheduled and the DAG completes with correct outputs', async t => {
    const dag = writeDag({
      name: 'kill-worker',
      workers: { min: 3, max: 3 },
      jobs: [
        ...Array.from({ length: 6 }, (_, i) => ({ id: `w${i}`, cmd: `sleep 2; echo ${i} > v.txt`, outputs: ['v.txt'] })),
        { id: 'total', cmd: 'cat w*.txt | sort -n | tr "\\n" " " > all.txt', inputs: Array.from({ length: 6 }, (_, i) => ({ src: `job:w${i}/v.txt`, as: `w${i}.txt` })), outputs: ['all.txt'] }
      ]
    })
    const out = path.join(cluster.tmp, 'out-killw')
    const p = submit(dag, ['--out', out])
    const running = await p.until(() => events(p).find(e => e.event === 'job' && e.to === 'running'), 30_000, 'a job to start')
    const victim = daemons.find(d => running.reason.endsWith(d.peer.slice(-8)))
    t.ok(victim !== undefined, 'found the worker running a job')
    process.kill(victim!.pid, 'SIGKILL')
    const lost = await p.until(() => events(p).find(e => e.event === 'worker' && e.state === 'lost'), 20_000, 'the worker to be declared lost')
    t.equal(lost.worker, victim!.peer)
    const { code } = await p.done(90_000)
    t.equal(code, 0, p.stderr)
    t.equal(readFileSync(path.join(out, 'total', 'all.txt'), 'utf8'), '0 1 2 3 4 5 ', 'every value present once')
    const run = JSON.parse(readFileSync(path.join(out, 'run.json'), 'utf8'))
    t.ok(Object.values(run.jobs).some((j: any) => j.attempts.some((a: any) => a.status === 'lost')), 'an attempt was recorded as lost')
    // bring the worker back for the next tests, with the same identity and data dir
    daemons.splice(daemons.indexOf(victim!), 1, await cluster.startDaemon(['--always-available'], victim!.host, path.basename(victim!.dataDir)))
  })

  t.test('kill -9 of the coordinator, then --resume: completed jobs are not re-run', async t => {
    const dag = writeDag({
      name: 'resume',
      workers: { min: 2, max: 2 },
      jobs: [
        { id: 'first', cmd: 'date +%s%N > stamp.txt', outputs: ['stamp.txt'] },
        { id: 'slow', cmd: 'sleep 30; cp stamp.txt again.txt', inputs: ['job:first/stamp.txt'], outputs: ['again.txt'] }
      ]
    })
    const out = path.join(cluster.tmp, 'out-resume')
    const runId = 'resume-test-1'
    const p = submit(dag, ['--out', out, '--run-id', runId])
    await p.until(() => events(p).find(e => e.event === 'job' && e.job === 'slow' && e.to === 'running'), 30_000, 'slow to start')
    process.kill(p.pid, 'SIGKILL')
    await p.exited
    // what the first session made before it died, as its journal has it
    const home = path.join(cluster.tmp, `home-${submitHost.ns}`)
    const journal = new Journal(path.join(home, 'coordinator', 'runs', runId, 'journal'))
    await journal.open()
    const before = (await journal.jobs()).get('first')
    await journal.close()
    t.equal(before?.state, 'done', 'first was done before the kill')
    t.equal(before?.attempts.length, 1)
    const stamp = before?.outputs?.find(o => o.name === 'stamp.txt')?.hash
    t.match(stamp, /^[0-9a-f]{64}$/, 'with its output')
    // workers notice the silent coordinator: leases expire, they kill its task and go idle
    await allIdle(daemons)
    t.ok(daemons.some(d => d.events.some(e => e.msg === 'lease expired: coordinator silent')), 'a lease expired')
    const dag2 = JSON.parse(readFileSync(dag, 'utf8'))
    dag2.jobs[1].cmd = 'cp stamp.txt again.txt'
    writeFileSync(dag, JSON.stringify(dag2)) // the journal keeps the DAG it started with
    const r = cluster.cli(submitHost, ['submit', '--resume', runId, '--data-dir', home, '--json', '--wait', '20', '--lease', '3'])
    const { code } = await r.done(90_000)
    t.equal(code, 0, r.stderr)
    t.equal(events(r).find(e => e.event === 'resumed')?.restoredJobs, 1, 'one job restored from the journal')
    t.notOk(events(r).some(e => e.event === 'job' && e.job === 'first' && e.to === 'running'), 'first was not run again')
    const run = JSON.parse(readFileSync(path.join(out, 'run.json'), 'utf8'))
    t.equal(run.jobs.first.attempts.length, 1)
    t.equal(run.jobs.first.attempts[0].id, before?.attempts[0].id, 'the one attempt of first is the first session\'s')
    t.equal(run.jobs.first.outputs['stamp.txt'].sha256, stamp, 'first\'s output is the first session\'s')
    t.same([...new Set(events(r).filter(e => e.event === 'job' && e.to === 'running').map(e => e.job))], ['slow'], 'the resumed session ran slow only')
    t.equal(run.jobs.slow.state, 'done')
    // a stamp in nanoseconds: made again, it would differ
    t.equal(createHash('sha256').update(readFileSync(path.join(out, 'slow', 'again.txt'))).digest('hex'), stamp, 'slow copied the stamp the first session made')
  })

  t.test('three coordinators at once on six daemons: all finish, no worker ever serves two', async t => {
    await cluster.startDaemons(3)
    const hosts = [submitHost, cluster.lab.addHost(), cluster.lab.addHost()]
    const dags = hosts.map((_h, k) => writeDag({
      name: `multi${k}`,
      // each wants every node: they must compete for all six
      workers: { min: 1, max: 6 },
      jobs: Array.from({ length: 8 }, (_, i) => ({ id: `j${i}`, cmd: `sleep 0.3; echo ${k}-${i} > o.txt`, outputs: ['o.txt'] }))
    }))
    const outs = hosts.map((_h, k) => path.join(cluster.tmp, `out-multi${k}`))
    const runs = hosts.map((h, k) => submit(dags[k], ['--out', outs[k]], h))
    const codes = await Promise.all(runs.map(async r => (await r.done(90_000)).code))
    t.same(codes, [0, 0, 0], 'all three runs succeeded')
    // each coordinator's own record of when it held which worker: claimed .. released/lost
    const held = runs.flatMap((r, k) => {
      const evs = events(r).filter(e => e.event === 'worker')
      return evs.filter(e => e.state === 'claimed').map(c => ({
        run: k,
        worker: c.worker as string,
        from: c.time as number,
        to: ((end => end?.requestedAt ?? end?.time)(evs.find(e => e.worker === c.worker && e.time >= c.time && (e.state === 'released' || e.state === 'lost'))) ?? Infinity) as number
      }))
    })
    t.ok(held.length >= 3, `${held.length} claims made`)
    const overlaps = held.flatMap(a => held.filter(b => b.run > a.run && b.worker === a.worker && b.from < a.to && a.from < b.to).map(b => `${a.worker.slice(-8)}: run ${a.run} ${a.from}..${a.to}, run ${b.run} ${b.from}..${b.to}`))
    t.same(overlaps, [], 'no worker held by two coordinators at the same time')
    const workersPerRun = runs.map(r => new Set(events(r).filter(e => e.event === 'worker' && e.state === 'claimed').map(e => e.worker)))
    for (let k = 0; k < 3; k++) {
      const run = JSON.parse(readFileSync(path.join(outs[k], 'run.json'), 'utf8'))
      const local = runLocally(dags[k], cluster.tmp)
      t.same(compareWithLocal(local, run, outs[k]), [], `run ${k}: every output equals the local run's`)
      local.cleanup()
      for (let i = 0; i < 8; i++) {
        t.equal(readFileSync(path.join(outs[k], `j${i}`, 'o.txt'), 'utf8'), `${k}-${i}\n`)
        t.ok(workersPerRun[k].has(run.jobs[`j${i}`].worker), `run ${k}: j${i} ran on a worker it claimed`)
      }
    }
  })
}
