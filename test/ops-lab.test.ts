// Operations people rely on: the owner's idle policy, job timeouts, status and cancel,
// a local daemon turning coordinator, streamed outputs, the cache commands.
import t from 'tap'
import path from 'node:path'
import { writeFileSync, readFileSync, utimesSync, readdirSync } from 'node:fs'
import { createHash } from 'node:crypto'
import { stdoutJson, clusterOrSkip, type Proc, type DaemonProc } from '../testbed/cluster.ts'

const events = stdoutJson
const PROBE = path.join(import.meta.dirname, '..', 'testbed', 'probe.ts')

const cluster = clusterOrSkip(t)
if (cluster !== undefined) {
  const daemons = await cluster.startDaemons(2)
  const user = cluster.lab.addHost()
  const home = path.join(cluster.tmp, 'home')
  const dagFile = (dag: any, files: Record<string, string> = {}): string => cluster.writeDag(dag, files)
  const lastState = (d: Proc): string | undefined => d.events.filter(e => e.msg === 'state').at(-1)?.to as string | undefined
  /** A machine with an owner (an activity file to touch), short idle-policy times, a cost that singles it out; once offered. */
  const ownedMachine = async (name: string, cost: number): Promise<{ d: DaemonProc, activity: string }> => {
    const activity = path.join(cluster.tmp, name)
    writeFileSync(activity, '')
    utimesSync(activity, new Date(0), new Date(0))
    const d = await cluster.startDaemon(['--cost', String(cost), '--activity-file', activity, '--idle-start', '1', '--suspend-active', '1', '--idle-load', '1', '--suspend-load', '1', '--max-suspend', '2'])
    await d.until(() => lastState(d) === 'idle' ? true : undefined, 15_000, 'offered')
    return { d, activity }
  }

  t.test('the owner\'s idle policy: offered after the owner left, withdrawn when they are back, claims refused meanwhile', async t => {
    const activity = path.join(cluster.tmp, 'activity')
    writeFileSync(activity, '')
    const d = await cluster.startDaemon(['--activity-file', activity, '--idle-start', '1', '--suspend-active', '1', '--idle-load', '1', '--suspend-load', '1'])
    t.equal(d.events.find(e => e.msg === 'daemon started')?.state, 'owner', 'not offered at start')
    await d.until(() => lastState(d) === 'idle' ? true : undefined, 15_000, 'offered once the owner is away')
    // the owner keeps using the keyboard while a coordinator tries to claim the machine
    const typing = setInterval(() => { utimesSync(activity, new Date(), new Date()) }, 100)
    try {
      const back = await d.waitLog(e => e.msg === 'state' && e.to === 'owner', 10_000, 'owner state')
      t.match(String(back.reason), /owner active/)
      const p = cluster.spawn(user, [process.execPath, PROBE, '--addr', `/ip4/${d.host.ip}/tcp/${d.port}/p2p/${d.peer}`, '--op', 'claim'])
      await p.done(20_000)
      t.equal(events(p).find(e => e.op === 'claim')?.code, 'OWNER', 'claim refused: the owner uses the machine')
    } finally {
      clearInterval(typing)
    }
    // and once they leave, it is offered again
    await d.until(() => lastState(d) === 'idle' ? true : undefined, 15_000, 'offered again')
    d.kill('SIGTERM')
    await d.done(15_000)
  })

  t.test('the owner comes back mid-job: the job is suspended, then given back and run again once the machine is idle', async t => {
    // a distinctive cost lets the DAG's requirements pick this very machine
    const { d, activity } = await ownedMachine('activity2', 7)
    const out = path.join(cluster.tmp, 'out-owner')
    const dag = dagFile({ name: 'owner', requirements: 'cost == 7', workers: { min: 1, max: 1 }, jobs: [{ id: 'work', cmd: 'sleep 2; echo done > r.txt', outputs: ['r.txt'] }] })
    const p = cluster.cli(user, ['submit', dag, '--data-dir', path.join(cluster.tmp, 'home-owner'), '--json', '--out', out, '--lease', '3'])
    const running = await p.until(() => events(p).find(e => e.event === 'job' && e.to === 'running'), 30_000, 'the job to start')
    t.ok(String(running.reason).endsWith(d.peer.slice(-8)), 'it runs on the owner\'s machine')
    const typing = setInterval(() => { utimesSync(activity, new Date(), new Date()) }, 100)
    try {
      await d.waitLog(e => e.msg === 'state' && e.from === 'worker' && e.to === 'owner', 10_000, 'owner back: tasks suspended')
      await d.waitLog(e => e.msg === 'suspended too long: giving tasks back to the coordinator', 15_000, 'vacate')
      await p.until(() => events(p).find(e => e.event === 'job' && e.from === 'running' && e.to === 'ready'), 15_000, 'the job back in the queue')
        .catch((err: Error) => { throw new Error(`${err.message}\n--- the daemon ---\n${d.stderr.slice(-6000)}`) })
    } finally {
      clearInterval(typing)
    }
    const { code } = await p.done(60_000)
    const run = JSON.parse(readFileSync(path.join(out, 'run.json'), 'utf8'))
    t.equal(code, 0, `${p.stderr} ${JSON.stringify(run.jobs.work)}`)
    t.equal(run.jobs.work.attempts[0].status, 'preempted', 'first attempt given back')
    t.equal(run.jobs.work.attempts.at(-1).status, 'ok', 'run again to the end')
    t.equal(readFileSync(path.join(out, 'work', 'r.txt'), 'utf8'), 'done\n')
    d.kill('SIGTERM')
    await d.done(15_000)
  })

  t.test('a node whose owner stays back is handed back: the coordinator takes another and the run ends there', async t => {
    const { d: owned, activity } = await ownedMachine('activity3', 9)
    const out = path.join(cluster.tmp, 'out-handback')
    const dag = dagFile({ name: 'handback', requirements: 'cost == 9', workers: { min: 1, max: 1 }, jobs: [{ id: 'work', cmd: 'sleep 8; echo done > r.txt', outputs: ['r.txt'] }] })
    const p = cluster.cli(user, ['submit', dag, '--data-dir', path.join(cluster.tmp, 'home-handback'), '--json', '--out', out, '--lease', '3'])
    await p.until(() => events(p).find(e => e.event === 'job' && e.to === 'running'), 30_000, 'the job to start on the owner\'s machine')
    // a second machine fit for the run appears; the owner of the first comes back and stays
    const other = await cluster.startDaemon(['--always-available', '--cost', '9'])
    const typing = setInterval(() => { utimesSync(activity, new Date(), new Date()) }, 100)
    try {
      const left = await owned.waitLog(e => e.msg === 'left the run' && String(e.reason).includes('handed back'), 20_000, 'the node leaves the run')
      const vacated = owned.events.find(e => e.msg === 'suspended too long: giving tasks back to the coordinator')
      const took = Date.parse(String(left.time)) - Date.parse(String(vacated?.time))
      t.ok(took < 3000, `left the run ${took} ms after giving its tasks back`)
      const { code } = await p.done(60_000)
      t.equal(code, 0, p.stderr)
    } finally {
      clearInterval(typing)
    }
    const ev = events(p)
    t.ok(ev.some(e => e.event === 'worker' && e.worker === owned.peer && e.state === 'lost'), 'the coordinator let the handed-back node go')
    t.ok(ev.some(e => e.event === 'worker' && e.worker === other.peer && e.state === 'claimed'), 'and took the other one')
    const run = JSON.parse(readFileSync(path.join(out, 'run.json'), 'utf8'))
    t.equal(run.jobs.work.attempts.at(-1).worker, other.peer, 'the job ended on the other node')
    t.equal(readFileSync(path.join(out, 'work', 'r.txt'), 'utf8'), 'done\n')
    for (const d of [owned, other]) { d.kill('SIGTERM'); await d.done(15_000) }
  })

  t.test('a job timeout kills its whole process group; the job fails with the reason', async t => {
    const out = path.join(cluster.tmp, 'out-timeout')
    const dag = dagFile({ name: 'timeout', jobs: [{ id: 'slow', cmd: 'sleep 60 & sleep 60; wait', timeout: 1, retries: 0 }] })
    const t0 = Date.now()
    const r = await cluster.runCli(user, ['submit', dag, '--data-dir', home, '--quiet', '--out', out], 60_000)
    t.equal(r.code, 1)
    t.ok(Date.now() - t0 < 20_000, 'did not wait for the sleeps')
    const run = JSON.parse(readFileSync(path.join(out, 'run.json'), 'utf8'))
    t.equal(run.jobs.slow.state, 'failed')
    t.match(run.jobs.slow.reason, /timed out after 1000 ms/)
    t.equal(run.jobs.slow.attempts[0].signal, 'SIGKILL')
  })

  t.test('bgrid status shows a running run; bgrid cancel stops it and releases its workers', async t => {
    const out = path.join(cluster.tmp, 'out-cancel')
    const dag = dagFile({ name: 'cancel', workers: { min: 2, max: 2 }, jobs: Array.from({ length: 4 }, (_, i) => ({ id: `long${i}`, cmd: ['sleep', '60'] })) })
    const p = cluster.cli(user, ['submit', dag, '--data-dir', home, '--json', '--out', out, '--run-id', 'cancel-me'])
    await p.until(() => events(p).filter(e => e.event === 'job' && e.to === 'running').length >= 2 ? true : undefined, 30_000, 'jobs running')
    const st = await cluster.runCli(user, ['status', 'cancel-me', '--data-dir', home, '--json'])
    t.equal(st.code, 0, st.stderr)
    const s = JSON.parse(st.stdout)
    t.equal(s.state, 'running')
    t.ok(s.counts.running >= 2)
    const human = await cluster.runCli(user, ['status', 'cancel-me', '--data-dir', home])
    t.match(human.stdout, /run cancel-me \(cancel\): running/)
    const c = await cluster.runCli(user, ['cancel', 'cancel-me', '--data-dir', home])
    t.equal(c.code, 0, c.stderr)
    const { code } = await p.done(30_000)
    t.equal(code, 5, 'a cancelled run exits with its own code')
    const run = JSON.parse(readFileSync(path.join(out, 'run.json'), 'utf8'))
    t.equal(run.state, 'cancelled')
    const open = Object.values(run.jobs).flatMap((j: any) => j.attempts).filter((a: any) => a.status === 'running')
    t.same(open, [], 'no attempt left running in run.json: those under way ended cancelled')
    t.ok(Object.values(run.jobs).some((j: any) => j.attempts.some((a: any) => a.status === 'cancelled')))
    t.equal(events(p).filter(e => e.event === 'worker' && e.state === 'released').length, 2)
    for (const d of daemons) await d.until(() => lastState(d) === 'idle' ? true : undefined, 15_000, 'idle after cancel')
    const gone = await cluster.runCli(user, ['cancel', 'cancel-me', '--data-dir', home])
    t.equal(gone.code, 1)
    t.match(gone.stderr, /not running/)
  })

  t.test('a submit next to a local daemon puts it in state coordinator, then idle again; outputs stream back', async t => {
    const local = daemons[0]
    const out = path.join(cluster.tmp, 'out-local')
    const dag = dagFile({ name: 'local', workers: { min: 1, max: 2 }, jobs: [{ id: 'a', cmd: 'sleep 0.5; echo A > a.txt', outputs: ['a.txt'] }, { id: 'b', cmd: 'sleep 0.5; echo B > b.txt', outputs: ['b.txt'] }] })
    const from = local.events.length
    const r = await cluster.runCli(local.host, ['submit', dag, '--data-dir', local.dataDir, '--json', '--stream-outputs', '--out', out], 60_000)
    t.equal(r.code, 0, r.stderr)
    const trans = local.events.slice(from).filter(e => e.msg === 'state')
    t.ok(trans.some(e => e.to === 'coordinator'), 'the local daemon became coordinator')
    t.equal(trans.at(-1)?.to, 'idle', 'and idle again')
    t.notOk(stdoutJson({ stdout: r.stdout } as Proc).some(e => e.event === 'worker' && e.worker === local.peer), 'it did not claim itself')
    t.equal(readFileSync(path.join(out, 'a', 'a.txt'), 'utf8'), 'A\n')
    t.equal(readFileSync(path.join(out, 'b', 'b.txt'), 'utf8'), 'B\n')
  })

  t.test('bgrid cache du/ls on a worker\'s store', async t => {
    const d = daemons[1]
    const du = await cluster.runCli(d.host, ['cache', 'du', '--data-dir', d.dataDir])
    t.equal(du.code, 0, du.stderr)
    t.match(du.stdout, /\d+ blob\(s\), [\d.]+ MiB/)
    const gc = await cluster.runCli(d.host, ['cache', 'gc', '--target', '0', '--data-dir', d.dataDir])
    t.equal(gc.code, 2, 'gc refuses while the daemon runs')
    t.match(gc.stderr, /stop it first/)
    // what its store holds: the outputs it made for the local run (the only worker there), by hash
    const sha256 = (b: Buffer | string): string => createHash('sha256').update(b).digest('hex')
    const cas = path.join(d.dataDir, 'cas')
    const stored = new Map(readdirSync(cas).filter(f => /^[0-9a-f]{2}$/.test(f)).flatMap(dir => readdirSync(path.join(cas, dir)).map(f => [f, path.join(cas, dir, f)] as const)))
    const local = JSON.parse(readFileSync(path.join(cluster.tmp, 'out-local', 'run.json'), 'utf8'))
    for (const [job, text] of [['a', 'A\n'], ['b', 'B\n']]) {
      t.equal(local.jobs[job].worker, d.peer, `${job} ran here`)
      const want = sha256(text)
      t.equal(local.jobs[job].outputs[`${job}.txt`].sha256, want)
      t.ok(stored.has(want), `${job}.txt is in the store, by its hash`)
    }
    // and every blob's bytes hash to its name
    t.ok(stored.size >= 2)
    for (const [hash, file] of stored) t.equal(sha256(readFileSync(file)), hash, `blob ${hash.slice(0, 12)}…`)
  })
}
