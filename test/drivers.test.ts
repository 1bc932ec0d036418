// The worker side of the middleware seam, and what BOINC-style verification needs from
// workers: a claim names its middleware (a node without the driver says so and keeps
// serving), a cheating worker really cheats (and serves its wrong bytes consistently),
// attempts report their CPU time, nodes advertise their speed, and two daemons share a
// host (two colluding cheaters on one PC).
import t from 'tap'
import path from 'node:path'
import { createHash } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { stdoutJson, clusterOrSkip, CHEATING_DAEMON, type Proc, type DaemonProc } from '../testbed/cluster.ts'
import { runLocally, compareWithLocal } from '../testbed/local-run.ts'

const PROBE = path.join(import.meta.dirname, '..', 'testbed', 'probe.ts')
const lines = stdoutJson

// burns half a second of its own CPU (it reads its own clock, so a loaded machine makes
// it last longer, not burn less), in the shell itself and in children it waits for
const BURN = 'while :; do read -r l < /proc/$$/stat; set -- $l; [ $((${14}+${15}+${16}+${17})) -ge 50 ] && break; i=0; while [ $i -lt 2000 ]; do i=$((i+1)); done; /bin/true; done; echo burnt > b.txt'

const cluster = clusterOrSkip(t)
if (cluster !== undefined) {
  // honest (cost 0) on a host of its own; two cheaters on ONE host (cost 1 and 2)
  const honest = await cluster.startDaemon(['--always-available'])
  const cheatHost = cluster.lab.addHost()
  const cheaters = [
    await cluster.startDaemon(['--always-available', '--cheat', 'flip', '--cost', '1'], cheatHost, 'cheat1', { entry: CHEATING_DAEMON }),
    await cluster.startDaemon(['--always-available', '--cheat', 'flip', '--cost', '2'], cheatHost, 'cheat2', { entry: CHEATING_DAEMON })
  ]
  const viewer = cluster.lab.addHost()
  const probe = (args: string[]): Proc => cluster.spawn(viewer, [process.execPath, PROBE, ...args])
  const addrOf = (d: DaemonProc): string => `/ip4/${d.host.ip}/tcp/${d.port}/p2p/${d.peer}`
  const claimWith = async (d: DaemonProc, args: string[]): Promise<any> => {
    const p = probe(['--addr', addrOf(d), '--op', 'claim', '--lease', '1500', ...args])
    await p.done(20_000)
    return lines(p).find(e => e.op === 'claim')
  }
  const idle = async (d: DaemonProc): Promise<void> => {
    await d.until(() => d.events.filter(e => e.msg === 'state').at(-1)?.to !== 'worker', 15_000, 'the daemon idle again')
  }
  const writeDag = (dag: any, files: Record<string, string> = {}): string => cluster.writeDag(dag, files)
  const submit = async (dag: string, out: string): Promise<{ code: number | null, run: any, p: Proc }> => {
    const p = cluster.cli(viewer, ['submit', dag, '--out', out, '--data-dir', path.join(cluster.tmp, 'home'), '--json', '--wait', '20', '--lease', '3'])
    const { code } = await p.done(90_000)
    return { code, run: JSON.parse(readFileSync(path.join(out, 'run.json'), 'utf8')), p }
  }

  t.test('two daemons in one namespace: both advertised (same address, other ports, other names), with their speed; both can be claimed', async t => {
    const res = await cluster.runCli(viewer, ['peers', '--json', '--timeout', '2'])
    t.equal(res.code, 0, res.stderr)
    const nodes = JSON.parse(res.stdout) as any[]
    const seen = cheaters.map(c => nodes.find(x => x.peer === c.peer))
    t.ok(seen.every(x => x !== undefined), 'both daemons of the shared host are seen')
    t.equal(seen[0]?.addresses[0], cheatHost.ip)
    t.equal(seen[1]?.addresses[0], cheatHost.ip, 'at the same address')
    t.same(seen.map(x => x?.port).sort(), [4001, 4002], 'on their own ports')
    t.not(seen[0]?.name, seen[1]?.name, 'under their own instance names')
    for (const x of nodes) t.ok(typeof x.gflops === 'number' && x.gflops > 0, `${String(x.name)} advertises gflops=${String(x.gflops)}`)
    for (const c of cheaters) {
      const r = await claimWith(c, ['--run', `shared-${c.port}`])
      t.equal(r?.ok, true, `the daemon on port ${c.port} takes a claim`)
      await idle(c)
    }
  })

  t.test('a claim naming a middleware the node has no driver for is refused, saying which it has; the node keeps serving', async t => {
    const refused = await claimWith(honest, ['--run', 'condor-run', '--middleware', 'condor'])
    t.equal(refused?.ok, false)
    t.equal(refused?.code, 'VERSION')
    t.equal(refused?.message, 'this node has no driver for middleware "condor" (it has: native, boinc)')
    t.ok(honest.events.some(e => e.msg === 'refused' && /middleware "condor"/.test(String(e.message))), 'the refusal is logged')
    t.equal(honest.events.filter(e => e.msg === 'state' && e.to === 'worker').length, 0, 'the node was never taken')
    const boinc = await claimWith(honest, ['--run', 'boinc-run', '--middleware', 'boinc'])
    t.equal(boinc?.ok, true, 'boinc: the native pull driver')
    t.ok(boinc?.offer?.gflops > 0, `the offer carries gflops=${String(boinc?.offer?.gflops)}`)
    await idle(honest)
    const plain = await claimWith(honest, ['--run', 'after-condor'])
    t.equal(plain?.ok, true, 'a claim naming none (native) still works')
    await idle(honest)
  })

  t.test('a --cheat flip worker cheats: its outputs differ from a local run, and it serves the wrong bytes consistently', async t => {
    const dag = writeDag({
      name: 'cheat',
      workers: { min: 2, max: 2 },
      requirements: 'cost <= 1',
      collect: 'all',
      jobs: [
        { id: 'honest', cmd: 'echo honest work > out.txt', outputs: ['out.txt'], requirements: 'cost == 0' },
        { id: 'cheated', cmd: 'echo cheated work > out.txt', outputs: ['out.txt'], requirements: 'cost == 1' },
        { id: 'both', cmd: 'cat a.txt b.txt > both.txt', inputs: [{ src: 'job:honest/out.txt', as: 'a.txt' }, { src: 'job:cheated/out.txt', as: 'b.txt' }], outputs: ['both.txt'] }
      ]
    })
    const out = path.join(cluster.tmp, 'out-cheat')
    const { code, run, p } = await submit(dag, out)
    t.equal(code, 0, `the native middleware verifies nothing: the run succeeds\n${p.stderr}`)
    t.equal(run.jobs.cheated.worker, cheaters[0].peer, 'the cheater ran `cheated`')
    t.equal(run.jobs.honest.worker, honest.peer, 'the honest node ran `honest`')
    const local = runLocally(dag, cluster.tmp)
    t.teardown(local.cleanup)
    const diffs = compareWithLocal(local, run, out)
    t.ok(diffs.some(d => d.startsWith('cheated/out.txt')), `the cheater's output differs from the local run: ${diffs.join('; ')}`)
    t.notOk(diffs.some(d => d.startsWith('honest/')), 'the honest node\'s output is the local one')
    t.ok(diffs.some(d => d.startsWith('both/both.txt')), 'a child consumed the cheater\'s bytes')
    // what it reported is what it serves: the collected file hashes to the reported hash
    const got = readFileSync(path.join(out, 'cheated', 'out.txt'))
    t.equal(createHash('sha256').update(got).digest('hex'), run.jobs.cheated.outputs['out.txt'].sha256, 'served bytes match the reported hash')
    const want = Buffer.from('cheated work\n')
    want[0] ^= 0x01
    t.same(got, want, 'one byte flipped')
    t.ok(cheaters[0].events.some(e => e.msg === 'cheated' && e.job === 'cheated' && e.how === 'flip'), 'the cheater logs its lie')
    await Promise.all([idle(honest), idle(cheaters[0])])
  })

  t.test('a --cheat flaky worker reports a seeded share of its ok results as failed; retries make the run succeed', async t => {
    // a third daemon on the cheaters' host (port 4003)
    const flaky = await cluster.startDaemon(['--always-available', '--cheat', 'flaky', '--fail-rate', '0.5', '--seed', '7', '--cost', '3'], cheatHost, 'flaky', { entry: CHEATING_DAEMON })
    t.equal(flaky.port, 4003)
    const dag = writeDag({
      name: 'flaky', workers: { min: 1, max: 1 }, requirements: 'cost == 3', defaults: { retries: 20 },
      jobs: Array.from({ length: 8 }, (_, i) => ({ id: `j${i}`, cmd: `echo ${i} > v.txt`, outputs: ['v.txt'] }))
    })
    const out = path.join(cluster.tmp, 'out-flaky')
    const { code, run, p } = await submit(dag, out)
    t.equal(code, 0, p.stderr)
    const attempts = Object.values(run.jobs).flatMap((j: any) => j.attempts)
    const failed = attempts.filter((a: any) => a.exitCode === 1)
    const lies = flaky.events.filter(e => e.msg === 'cheated' && e.how === 'flaky')
    t.ok(lies.length > 0, `it failed ${lies.length} of ${attempts.length} attempts`)
    t.equal(failed.length, lies.length, 'every failure in run.json is one of its lies')
    const local = runLocally(dag, cluster.tmp)
    t.teardown(local.cleanup)
    t.same(compareWithLocal(local, run, out), [], 'what it reported ok is right')
    flaky.kill('SIGTERM')
    await flaky.done(15_000)
  })

  t.test('an attempt reports its CPU time (cpuMs): half a second of busy loop', async t => {
    const dag = writeDag({ name: 'burn', workers: { min: 1, max: 1 }, requirements: 'cost == 0', jobs: [{ id: 'burn', cmd: BURN, outputs: ['b.txt'] }] })
    const from = honest.events.length
    const { code, run, p } = await submit(dag, path.join(cluster.tmp, 'out-burn'))
    t.equal(code, 0, p.stderr)
    // the worker's own account (its debug log): run.json's attempt records are the coordinator's
    const ended = await honest.waitLog(e => e.msg === 'attempt ended' && e.job === 'burn', 10_000, 'the attempt\'s end in the worker log', from)
    const cpuMs = ended.cpuMs as number
    t.ok(typeof cpuMs === 'number' && cpuMs >= 300 && cpuMs <= 2000, `cpuMs=${String(cpuMs)} for a 0.5 s busy loop`)
    const recorded = run.jobs.burn.attempts?.[0]?.cpuMs
    if (recorded !== undefined) t.equal(recorded, cpuMs, 'run.json records what the worker reported')
    else t.comment('run.json has no cpuMs for attempts yet (the coordinator does not copy it)')
    await idle(honest)
  })
}
