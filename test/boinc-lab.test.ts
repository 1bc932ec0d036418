// BOINC-style verified execution on real daemons in network namespaces: a worker that
// flips a byte of every output is outvoted; two colluding daemons on one host cannot
// form a quorum; a flaky worker and a frozen one past the deadline get their replicas
// reissued; a compare command accepts float results a bitwise check refuses. Outputs
// are compared with a local run of the same jobs wherever they are deterministic.
import t from 'tap'
import path from 'node:path'
import { readFileSync } from 'node:fs'
import { clusterOrSkip, stdoutJson, CHEATING_DAEMON, type Proc, type DaemonProc } from '../testbed/cluster.ts'
import { runLocally, compareWithLocal } from '../testbed/local-run.ts'

const cluster = clusterOrSkip(t)
if (cluster !== undefined) {
  // five honest nodes (two of them dearer: the pool of the collusion test), one cheater
  const honest = [
    ...await cluster.startDaemons(3),
    ...await Promise.all([0, 1].map(async () => await cluster.startDaemon(['--always-available', '--cost', '1'])))
  ]
  const cheater = await cluster.startDaemon(['--always-available', '--cheat', 'flip'], undefined, 'cheater', { entry: CHEATING_DAEMON })
  const user = cluster.lab.addHost()
  const home = path.join(cluster.tmp, 'home')
  const dagFile = (dag: any, files: Record<string, string> = {}): string => cluster.writeDag(dag, files)
  const submit = (file: string, out: string, args: string[] = []): Proc =>
    cluster.cli(user, ['submit', file, '--data-dir', home, '--json', '--wait', '20', '--lease', '4', '--out', out, ...args])
  const runJson = (out: string): any => JSON.parse(readFileSync(path.join(out, 'run.json'), 'utf8'))
  const idle = async (ds: DaemonProc[]): Promise<void> => {
    await Promise.all(ds.filter(d => d.alive).map(async d => await d.until(() => {
      const st = d.events.filter(e => e.msg === 'state').at(-1)
      return st === undefined || st.to === 'idle' ? true : undefined
    }, 20_000, 'idle')))
  }
  const cheaterPeers = new Set([cheater.peer])
  /** jobs whose canonical result a cheater counted for */
  const cheatedCanonical = (run: any): string[] => Object.entries(run.jobs).filter(([, j]: any) => j.attempts.some((a: any) => cheaterPeers.has(a.worker) && a.validation === 'valid')).map(([id]) => id)

  t.test('5 honest + 1 cheating worker, 200 jobs, quorum 2: every output equals a local run; the cheater\'s results are invalid and its trust 0; replicas per job fall as trust builds', async t => {
    // 150 producers, 50 consumers of three of them each: children consume only canonical outputs
    const jobs: any[] = []
    for (let i = 0; i < 150; i++) jobs.push({ id: `p${i}`, cmd: `seq ${i} ${i + 400} | sha256sum > p.txt`, outputs: ['p.txt'] })
    for (let i = 0; i < 50; i++) jobs.push({ id: `c${i}`, cmd: 'cat a b c | sort | sha256sum > c.txt', inputs: [0, 1, 2].map(k => ({ src: `job:p${i * 3 + k}/p.txt`, as: 'abc'[k] })), outputs: ['c.txt'] })
    const file = dagFile({ name: 'verified', middleware: 'boinc', defaults: { quorum: 2, replicas: 2 }, workers: { min: 6, max: 6 }, jobs })
    const local = runLocally(file, cluster.tmp)
    t.teardown(local.cleanup)
    const out = path.join(cluster.tmp, 'verified')
    const p = submit(file, out)
    const { code } = await p.done(240_000)
    t.equal(code, 0, p.stderr.slice(-1500))
    const run = runJson(out)
    t.same(compareWithLocal(local, run, out), [], 'every output (intermediate and final) equals the local one')
    t.same(cheatedCanonical(run), [], '0 canonical results with a cheater\'s vote')
    const mine = Object.values(run.jobs).flatMap((j: any) => j.attempts).filter((a: any) => a.worker === cheater.peer)
    t.ok(mine.length > 0, `the cheater got replicas (${mine.length})`)
    t.same([...new Set(mine.filter((a: any) => a.status === 'ok').map((a: any) => a.validation ?? 'undecided'))].filter(v => v !== 'undecided'), ['invalid'], 'its results are INVALID in run.json')
    t.ok(cheater.events.some(e => e.msg === 'cheated'), 'the cheater did cheat')
    const credit = await cluster.runCli(user, ['credit', '--json', '--data-dir', home])
    const rows = JSON.parse(credit.stdout)
    const c = rows.find((r: any) => r.peer === cheater.peer)
    t.same([c?.trust, c?.credit, c?.valid], [0, 0, 0], 'the cheater: trust 0, no credit, nothing valid')
    t.ok(c?.invalid > 0)
    t.ok(honest.every(h => rows.find((r: any) => r.peer === h.peer)?.credit > 0), 'every honest worker earned credit')
    // adaptive replication: honest workers, once trusted, get unreplicated work now and then
    const perJob = (Object.values(run.jobs) as any[]).map(j => ({ at: Math.max(...j.attempts.map((a: any) => a.reportedAt ?? 0)), n: j.attempts.length })).sort((a, b) => a.at - b.at).map(x => x.n)
    const mean = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length
    const curve = Array.from({ length: 4 }, (_, k) => mean(perJob.slice(k * 50, k * 50 + 50)).toFixed(2))
    t.ok(mean(perJob.slice(150)) < mean(perJob.slice(0, 50)), `replicas per job by 50s of jobs: ${curve.join(' ')}`)
    await idle([...honest, cheater])
  })

  t.test('two colluding cheaters on one host cannot form a quorum', async t => {
    cheater.kill('SIGTERM')
    await cheater.done(15_000)
    // the pool: two honest nodes and two cheaters sharing one machine (cost 1 picks them)
    const host = cluster.lab.addHost()
    const colluders = await Promise.all(['c1', 'c2'].map(async name => await cluster.startDaemon(['--always-available', '--cost', '1', '--cheat', 'flip'], host, name, { entry: CHEATING_DAEMON })))
    for (const c of colluders) cheaterPeers.add(c.peer)
    const jobs = Array.from({ length: 24 }, (_, i) => ({ id: `q${i}`, cmd: `seq ${i} ${i * 7 + 100} | sha256sum > q.txt`, outputs: ['q.txt'] }))
    // no adaptive replication: every job is replicated, so every pair is a chance to collude
    const file = dagFile({ name: 'collusion', middleware: 'boinc', requirements: 'cost == 1', defaults: { quorum: 2, replicas: 2, adaptive: false }, workers: { min: 4, max: 4 }, jobs })
    const local = runLocally(file, cluster.tmp)
    t.teardown(local.cleanup)
    const out = path.join(cluster.tmp, 'collusion')
    const p = submit(file, out)
    const { code } = await p.done(180_000)
    t.equal(code, 0, p.stderr.slice(-1500))
    const run = runJson(out)
    t.same(compareWithLocal(local, run, out), [], 'every output equals the local one')
    t.same(cheatedCanonical(run), [], 'no canonical result with a colluder\'s vote')
    const pairs = Object.values(run.jobs).filter((j: any) => j.attempts.filter((a: any) => colluders.some(c => c.peer === a.worker)).length > 1)
    t.equal(pairs.length, 0, 'never two replicas of one job on the colluders\' host')
    t.ok(colluders.every(c => c.events.some(e => e.msg === 'cheated')), 'both colluders got work, and cheated')
    await idle([...honest, ...colluders])
    for (const c of colluders) { c.kill('SIGTERM'); await c.done(15_000) }
  })

  t.test('a flaky worker (30 % failures) and a worker frozen past the deadline: replicas reissued, the run succeeds', async t => {
    const flaky = await cluster.startDaemon(['--always-available', '--cheat', 'flaky', '--fail-rate', '0.3', '--seed', '7'], undefined, 'flaky', { entry: CHEATING_DAEMON })
    const jobs = Array.from({ length: 40 }, (_, i) => ({ id: `f${i}`, cmd: `sleep 0.3; seq ${i} ${i + 50} > f.txt`, outputs: ['f.txt'] }))
    const file = dagFile({ name: 'flaky', middleware: 'boinc', defaults: { quorum: 2, replicas: 2, deadline: 4, adaptive: false, maxErrors: 6 }, workers: { min: 6, max: 6 }, jobs })
    const local = runLocally(file, cluster.tmp)
    t.teardown(local.cleanup)
    const out = path.join(cluster.tmp, 'flaky')
    // a lease longer than the deadline (4 s): the frozen worker's replicas time out before it is declared lost
    const p = submit(file, out, ['--lease', '10'])
    const frozen = honest[0]
    // frozen the moment a replica is handed to it: that replica never reports
    const tail = frozen.peer.slice(-8)
    await p.until(() => stdoutJson(p).some(e => e.event === 'job' && e.to === 'running' && String(e.reason).endsWith(tail)) ? true : undefined, 60_000, 'a replica handed to the worker to freeze')
    process.kill(frozen.pid, 'SIGSTOP')
    try {
      const { code } = await p.done(180_000)
      t.equal(code, 0, p.stderr.slice(-1500))
    } finally { process.kill(frozen.pid, 'SIGCONT') }
    const run = runJson(out)
    t.same(compareWithLocal(local, run, out), [], 'every output equals the local one')
    const attempts = Object.values(run.jobs).flatMap((j: any) => j.attempts)
    t.ok(attempts.some((a: any) => a.worker === flaky.peer && a.status === 'failed'), 'the flaky worker\'s failures were replaced')
    t.ok(attempts.some((a: any) => a.timedOut === true && a.worker === frozen.peer), 'the frozen worker\'s replicas timed out and were replaced')
    await idle([...honest, flaky])
    flaky.kill('SIGTERM')
    await flaky.done(15_000)
  })

  t.test('compare: a float-tolerant validator accepts results that differ in the 12th digit; bitwise refuses them', async t => {
    // each replica differs past the 11th decimal (from /dev/urandom); the validator allows 1e-9
    const cmd = 'n=$(od -An -N4 -tu4 /dev/urandom | tr -d " "); awk -v n="$n" \'BEGIN { printf "%.15f\\n", 1 + n / 4294967296 * 1e-11 }\' > x.txt'
    const validator = 'a=$(cat "$1/x.txt"); b=$(cat "$2/x.txt"); awk -v a="$a" -v b="$b" \'BEGIN { d = a - b; if (d < 0) d = -d; exit !(d < 1e-9) }\'\n'
    const base = { middleware: 'boinc', workers: { min: 3, max: 3 }, requirements: 'cost == 0', jobs: [{ id: 'pi', cmd, outputs: ['x.txt'] }] }
    const tolerant = dagFile({ ...base, name: 'tolerant', defaults: { quorum: 2, replicas: 2, adaptive: false, compare: ['sh', 'same.sh'] } }, { 'same.sh': validator })
    const bitwise = dagFile({ ...base, name: 'bitwise', defaults: { quorum: 2, replicas: 2, adaptive: false, maxTotal: 3 } })
    const outT = path.join(cluster.tmp, 'tolerant')
    const a = submit(tolerant, outT)
    t.equal((await a.done(90_000)).code, 0, a.stderr.slice(-1500))
    const rt = runJson(outT)
    t.equal(rt.jobs.pi.validation.outcome, 'canonical')
    t.equal(rt.jobs.pi.validation.valid.length, 2, 'two results agreed, by the validator')
    const hashes = rt.jobs.pi.attempts.map((x: any) => x.outputs?.['x.txt']?.sha256)
    t.not(hashes[0], hashes[1], 'their bytes differ')
    t.match(readFileSync(path.join(outT, 'pi', 'x.txt'), 'utf8'), /^1\.00000000000\d{4}\n$/)
    await idle(honest)
    const outB = path.join(cluster.tmp, 'bitwise')
    const b = submit(bitwise, outB)
    t.equal((await b.done(90_000)).code, 1, 'bitwise: the job fails')
    const rb = runJson(outB)
    t.match(rb.jobs.pi.reason, /no consensus after 3 replica\(s\)/, rb.jobs.pi.reason)
    await idle(honest)
  })
}
