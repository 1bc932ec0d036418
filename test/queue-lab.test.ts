// Runs that wait and explain themselves (issue 13): a job only some nodes can run waits
// for one of them; a run short of workers.min starts nothing and says what to change;
// every node seen is accounted for; detached runs, their logs, and Ctrl-C then --resume.
// Real daemons in network namespaces; outputs compared with a local run of the same jobs.
import t from 'tap'
import path from 'node:path'
import { readFileSync, existsSync } from 'node:fs'
import { stdoutJson, clusterOrSkip, type Proc, type DaemonProc } from '../testbed/cluster.ts'
import { runLocally, compareWithLocal } from '../testbed/local-run.ts'

const cluster = clusterOrSkip(t)
if (cluster !== undefined) {
  // three plain nodes, one dearer (the only one with cost >= 5), one in a private grid,
  // one whose owner is there (no --always-available: not offered)
  const plain = await cluster.startDaemons(3)
  const dear = await cluster.startDaemon(['--always-available', '--cost', '5'])
  const keyFile = path.join(cluster.tmp, 'other-grid.key')
  await cluster.runCli(plain[0].host, ['keygen', keyFile])
  const keyed = await cluster.startDaemon(['--always-available', '--grid-key', keyFile])
  const owned = await cluster.startDaemon(['--activity-file', path.join(cluster.tmp, 'activity')])
  const open = [...plain, dear]
  const user = cluster.lab.addHost()
  const home = path.join(cluster.tmp, 'home')
  const dagFile = (dag: any, files: Record<string, string> = {}): string => cluster.writeDag(dag, files)
  const submit = (file: string, args: string[] = []): Proc =>
    cluster.cli(user, ['submit', file, '--data-dir', home, '--json', '--lease', '3', ...args])
  const cli = async (args: string[], timeoutMs = 30_000): ReturnType<typeof cluster.runCli> => await cluster.runCli(user, [...args, '--data-dir', home], timeoutMs)
  const runJson = (out: string): any => JSON.parse(readFileSync(path.join(out, 'run.json'), 'utf8'))
  const idle = async (ds: DaemonProc[] = open): Promise<void> => {
    await Promise.all(ds.filter(d => d.alive).map(async d => await d.until(() => {
      const st = d.events.filter(e => e.msg === 'state').at(-1)
      return st === undefined || st.to === 'idle' ? true : undefined
    }, 20_000, 'idle')))
  }
  const detachedPids: number[] = []
  t.teardown(() => { for (const pid of detachedPids) { try { process.kill(pid, 'SIGKILL') } catch {} } })

  const special = {
    name: 'special',
    workers: { min: 1, max: 2 },
    jobs: [
      { id: 'a', cmd: 'seq 1 1000 > a.txt', outputs: ['a.txt'] },
      { id: 'b', cmd: 'seq 5 5000 > b.txt', outputs: ['b.txt'] },
      { id: 'special', cmd: 'sort -r a.txt > s.txt', inputs: ['job:a/a.txt'], outputs: ['s.txt'], requirements: 'cost >= 5' },
      { id: 'c', cmd: 'cat s.txt b.txt | wc -l > c.txt', inputs: ['job:special/s.txt', 'job:b/b.txt'], outputs: ['c.txt'] }
    ]
  }

  t.test('a job only one node can run waits for it (even at workers.max), four runs out of four; its outputs equal a local run', async t => {
    const file = dagFile(special)
    const local = runLocally(file, cluster.tmp)
    t.teardown(local.cleanup)
    for (let round = 0; round < 4; round++) {
      const out = path.join(cluster.tmp, `special-${round}`)
      const p = submit(file, ['--out', out, '--wait', '20'])
      const { code } = await p.done(90_000)
      t.equal(code, 0, `round ${round}: succeeded ${p.stderr.slice(-800)}`)
      const run = runJson(out)
      t.equal(run.jobs.special.worker, dear.peer, `round ${round}: the job needing cost >= 5 ran on the one node with cost 5`)
      t.same(compareWithLocal(local, run, out), [], `round ${round}: outputs equal the local ones`)
      await idle()
    }
  })

  t.test('a job no node seen can ever run fails after --wait, naming the clause and the nodes\' values; the rest of the run goes on', async t => {
    const file = dagFile({
      name: 'impossible',
      jobs: [
        { id: 'fine', cmd: 'echo fine > f.txt', outputs: ['f.txt'] },
        { id: 'never', cmd: 'echo never > n.txt', outputs: ['n.txt'], requirements: 'cost >= 100' },
        { id: 'after-never', cmd: 'cat n.txt > m.txt', inputs: ['job:never/n.txt'], outputs: ['m.txt'] }
      ]
    })
    const out = path.join(cluster.tmp, 'impossible')
    const p = submit(file, ['--out', out, '--wait', '3'])
    const { code } = await p.done(60_000)
    t.equal(code, 1, 'the run fails (a job failed)')
    const run = runJson(out)
    t.equal(run.jobs.fine.state, 'done', 'the job that can run ran')
    t.equal(run.jobs.never.state, 'failed')
    t.match(run.jobs.never.reason, /unplaceable: no node seen on the network can run it/)
    t.match(run.jobs.never.reason, /`cost >= 100` fails on 5 node\(s\)/, 'the clause, on every node of this grid seen (not the one in another grid)')
    t.match(run.jobs.never.reason, /\(cost=5\)/, 'with the nodes\' values')
    t.notMatch(run.jobs.never.reason, /MiB/, 'no word of RAM the job did not ask for')
    t.equal(run.jobs['after-never'].state, 'skipped')
    t.same(run.jobs.never.attempts, [], 'never started')
    await idle()
  })

  t.test('a run short of workers.min starts nothing, accounts for every node seen, says what to change; status and run.json tell the same', async t => {
    // a run of ours keeps one node busy meanwhile (detached, so that its id can be named)
    const busyFile = dagFile({ name: 'busy', workers: { min: 1, max: 1 }, requirements: 'cost >= 5', jobs: [{ id: 'long', cmd: 'sleep 120' }] })
    const busyOut = path.join(cluster.tmp, 'busy')
    const d = await cli(['submit', busyFile, '--detach', '--lease', '3', '--out', busyOut, '--wait', '20'])
    t.equal(d.code, 0, d.stderr)
    const busyId = d.stdout.trim()
    t.match(busyId, /^busy-\d{14}-[0-9a-f]{4}$/, 'the run id, alone on stdout')
    const pid = Number(/pid (\d+)/.exec(d.stderr)?.[1])
    t.ok(pid > 0, 'the background coordinator\'s pid is said')
    detachedPids.push(pid)
    await dear.until(() => dear.events.some(e => e.msg === 'state' && e.to === 'worker'), 20_000, 'the dear node claimed by the busy run')

    const file = dagFile({ name: 'too-few', workers: { min: 10, max: 10 }, jobs: [{ id: 'x', cmd: 'echo x > x.txt', outputs: ['x.txt'] }, { id: 'y', cmd: 'cat x.txt > y.txt', inputs: ['job:x/x.txt'], outputs: ['y.txt'] }] })
    const out = path.join(cluster.tmp, 'too-few')
    const p = submit(file, ['--out', out, '--wait', '4'])
    const { code } = await p.done(60_000)
    t.equal(code, 3, 'NO_WORKERS exits 3')
    const ev = stdoutJson(p)
    t.notOk(ev.some(e => e.event === 'job' && e.to === 'running'), 'no job started')
    const run = runJson(out)
    t.equal(run.error.code, 'NO_WORKERS')
    t.same(Object.values(run.jobs).map((j: any) => j.attempts.length), [0, 0], 'no attempt in run.json')
    const msg: string = run.error.message
    t.match(msg, /only 3 of 10 worker\(s\) claimed after 4s; 6 node\(s\) seen/)
    t.match(msg, new RegExp(`1 node\\(s\\) busy with run ${busyId}`), 'the busy node, with the run it works for')
    t.match(msg, /1 node\(s\) are in a private grid: this run needs its grid key/, 'the node of another grid, not "unreachable"')
    t.match(msg, /1 node\(s\) are in use by their owners/, 'the node whose owner is there')
    t.match(msg, /lower workers\.min in the DAG to 3/, 'what to change')
    t.match(msg, /--wait \d+/)
    const causes = Object.fromEntries(run.nodes.map((a: any) => [a.peer, a.cause]))
    t.same([causes[keyed.peer], causes[owned.peer], causes[dear.peer], ...plain.map(d => causes[d.peer])], ['grid-key', 'owner', 'busy', 'claimed', 'claimed', 'claimed'], 'run.json accounts for every node seen')
    // status, by a prefix of the run id, after the coordinator is gone
    const st = await cli(['status', run.run.slice(0, 12), '--json'])
    t.equal(st.code, 0, st.stderr)
    t.equal(JSON.parse(st.stdout).error?.code, 'NO_WORKERS', 'bgrid status tells the same')
    await idle(plain)

    // while the busy run goes: --analyze says why its job runs where it does, then cancel by prefix
    const an = await cli(['status', busyId.slice(0, 10), '--analyze', 'long'])
    t.equal(an.code, 0, an.stderr)
    t.match(an.stdout, /1 of \d+ node\(s\) seen can run it/, an.stdout)
    t.match(an.stdout, /`cost >= 5` fails on 5 node\(s\)/, 'per clause, the nodes that fail it')
    const c = await cli(['cancel', busyId.slice(0, 10)])
    t.equal(c.code, 0, c.stderr)
    await idle()
    const busyRun = await (async () => {
      const deadline = Date.now() + 20_000
      while (Date.now() < deadline) {
        if (existsSync(path.join(busyOut, 'run.json'))) return runJson(busyOut)
        await new Promise(resolve => setTimeout(resolve, 200))
      }
      return undefined
    })()
    t.equal(busyRun?.state, 'cancelled', 'the detached run was cancelled and wrote its run.json')
  })

  t.test('--detach returns the run id at once; status, logs --follow and the outputs work on the run in the background', async t => {
    const file = dagFile({
      name: 'detached',
      jobs: [
        { id: 'hello', cmd: 'echo "hello from $BGRID_JOB"; echo to-stderr >&2; seq 1 300 > h.txt', outputs: ['h.txt'] },
        { id: 'slow', cmd: 'sleep 2; echo slow-done; wc -l h.txt > w.txt', inputs: ['job:hello/h.txt'], outputs: ['w.txt'] }
      ]
    })
    const local = runLocally(file, cluster.tmp)
    t.teardown(local.cleanup)
    const out = path.join(cluster.tmp, 'detached')
    const d = await cli(['submit', file, '--detach', '--lease', '3', '--out', out, '--wait', '20'])
    t.equal(d.code, 0, d.stderr)
    const id = d.stdout.trim()
    detachedPids.push(Number(/pid (\d+)/.exec(d.stderr)?.[1]))
    const st = await cli(['status', id, '--json'])
    t.equal(st.code, 0, st.stderr)
    t.equal(JSON.parse(st.stdout).state, 'running', 'status answers while it runs')
    const logs = await cli(['logs', id, 'slow', '--follow'], 60_000)
    t.equal(logs.code, 0, logs.stderr)
    t.equal(logs.stdout, 'slow-done\n', 'logs --follow waits for the attempt and prints its stdout')
    const hello = await cli(['logs', id, 'hello'], 30_000)
    t.equal(hello.stdout, 'hello from hello\n')
    t.match(hello.stderr, /to-stderr/)
    // the background run ends by itself
    const deadline = Date.now() + 60_000
    while (!existsSync(path.join(out, 'run.json')) && Date.now() < deadline) await new Promise(resolve => setTimeout(resolve, 200))
    const run = runJson(out)
    t.equal(run.state, 'succeeded')
    t.same(compareWithLocal(local, run, out), [], 'outputs equal the local ones')
    const after = await cli(['logs', id.slice(0, 14), 'hello'])
    t.equal(after.stdout, 'hello from hello\n', 'logs after the run, by a prefix')
    await idle()
  })

  t.test('Ctrl-C stops a run and says how to resume it; --resume finishes it without re-running what was done', async t => {
    const file = dagFile({
      name: 'interrupted',
      workers: { min: 1, max: 2 },
      jobs: [
        { id: 'first', cmd: 'seq 1 50 > f.txt', outputs: ['f.txt'] },
        // long enough to be interrupted while it runs (the local reference does not wait)
        { id: 'second', cmd: 'sleep ${PAUSE:-6}; tac f.txt > s.txt', inputs: ['job:first/f.txt'], outputs: ['s.txt'] }
      ]
    })
    const local = runLocally(file, cluster.tmp, { PAUSE: '0' })
    t.teardown(local.cleanup)
    const out = path.join(cluster.tmp, 'interrupted')
    const p = cluster.cli(user, ['submit', file, '--data-dir', home, '--lease', '3', '--out', out, '--wait', '20'])
    // wait until `first` is done (the run's status says so), then interrupt
    const runsDir = path.join(home, 'coordinator', 'runs')
    const until = Date.now() + 30_000
    let id = ''
    while (Date.now() < until) {
      const st = await cli(['status', '--json'])
      const runs = JSON.parse(st.stdout).runs as any[]
      const r = runs.find(x => String(x.id).startsWith('interrupted-'))
      if (r !== undefined && r.counts?.done >= 1) { id = r.id; break }
      await new Promise(resolve => setTimeout(resolve, 300))
    }
    t.ok(id !== '' && existsSync(path.join(runsDir, id)), 'first job done')
    // the attempt that made `first` (its id carries this session's nonce): the resume must keep it
    const firstAttempt = JSON.parse((await cli(['status', id, '--json'])).stdout).jobs.first.attempts[0].id
    p.kill('SIGINT')
    const { code } = await p.done(30_000)
    t.equal(code, 5, 'cancelled exits 5')
    t.match(p.stderr, new RegExp(`bgrid submit --resume ${id}`), 'it says how to go on')
    const r = await cluster.runCli(user, ['submit', '--resume', id, '--data-dir', home, '--lease', '3', '--wait', '20', '--json'], 90_000)
    t.equal(r.code, 0, r.stderr)
    const run = runJson(out)
    t.same(run.jobs.first.attempts.map((a: any) => a.id), [firstAttempt], 'the done job was not run again: its one attempt is the first session\'s')
    t.same(compareWithLocal(local, run, out), [], 'outputs equal the local ones')
  })
}
