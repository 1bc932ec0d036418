// The node daemon for real: processes in network namespaces, real mDNS, real libp2p.
import t from 'tap'
import path from 'node:path'
import { writeFileSync, readFileSync, mkdirSync, statSync, existsSync } from 'node:fs'
import { spawnSync } from 'node:child_process'
import { stdoutJson, clusterOrSkip, type Proc } from '../testbed/cluster.ts'
import { newGridKey } from '../protocol/grid-key.ts'
import { measureStatic } from '../daemon/resources.ts'

function hasZeroconf (): boolean {
  return spawnSync('/usr/bin/python3', ['-c', 'import zeroconf'], { stdio: 'ignore' }).status === 0
}

const PROBE = path.join(import.meta.dirname, '..', 'testbed', 'probe.ts')

const lines = stdoutJson

const cluster = clusterOrSkip(t)
if (cluster !== undefined) {
  const viewer = cluster.lab.addHost()
  const probeHost = cluster.lab.addHost()
  const probe = (args: string[]): Proc => cluster.spawn(probeHost, [process.execPath, PROBE, ...args])
  const addrOf = (d: { host: { ip: string }, port: number, peer: string }): string => `/ip4/${d.host.ip}/tcp/${d.port}/p2p/${d.peer}`

  const daemons = await cluster.startDaemons(3)

  t.test('three daemons appear in `bgrid peers --json` run from a fourth namespace', async t => {
    const res = await cluster.runCli(viewer, ['peers', '--json', '--timeout', '2'])
    t.equal(res.code, 0, res.stderr)
    const nodes = JSON.parse(res.stdout) as any[]
    t.same(nodes.map(n => n.peer).sort(), daemons.map(d => d.peer).sort(), 'exactly our three daemons')
    // the daemons run on this very machine: its clock speed, as systeminformation (else /proc/cpuinfo) gives it
    const mhz = (await measureStatic()).mhz
    t.ok(mhz > 0, `this machine's clock speed is known (${mhz} MHz)`)
    for (const n of nodes) {
      t.equal(n.state, 'idle')
      t.ok(n.cores >= 1 && n.ram > 0, 'resources advertised')
      t.equal(n.mhz, mhz, 'the MHz advertised is this machine\'s')
      t.equal(n.mhz, daemons.find(d => d.peer === n.peer)?.events.find(e => e.msg === 'daemon started')?.mhz, 'and the one the daemon logged')
      t.equal(n.port, 4001)
      t.match(n.addresses[0], /^10\./, 'address inside the lab')
    }
    const table = await cluster.runCli(viewer, ['peers', '--timeout', '1.5'])
    t.match(table.stdout, /NAME\s+STATE\s+CORES/, 'condor_status-like table')
    t.match(table.stdout, /3 node\(s\): 3 idle/)
  })

  t.test('a standard DNS-SD browser (python3-zeroconf) reads the advertisement', { skip: !hasZeroconf() && 'python3-zeroconf is not installed (apt-get install python3-zeroconf)' }, async t => {
    const p = cluster.spawn(viewer, ['/usr/bin/python3', path.join(import.meta.dirname, 'helpers', 'zeroconf-browse.py'), '3'])
    const { code } = await p.done(30_000)
    t.equal(code, 0, p.stderr)
    const found = lines(p).filter(e => daemons.some(d => d.peer === e.txt?.peer))
    t.equal(found.length, 3, 'all three daemons resolved by zeroconf')
    for (const f of found) {
      t.equal(f.port, 4001)
      t.match(f.name, /\._bgrid\._tcp\.local\.$/)
      t.equal(f.txt.v, '1')
      t.equal(f.txt.p2p, '4001')
      t.match(f.txt.cores, /^\d+$/)
      t.match(f.addresses[0], /^10\./)
    }
  })

  t.test('a claim is seen by a browser as a state change; only the holder may release; a lapsed lease makes the node idle again', async t => {
    const d = daemons[0]
    const watch = cluster.cli(viewer, ['peers', '--watch', '--json', '--timeout', '30'])
    const seen = (state: string) => () => lines(watch).find(e => e.peer === d.peer && e.state === state && e.event !== 'down')
    await watch.until(seen('idle'), 10_000, 'the watcher to see the idle node')
    const claim = probe(['--addr', addrOf(d), '--op', 'hold', '--run', 'r1', '--lease', '3000', '--hold', '2500'])
    const connected = await claim.until(() => lines(claim).find(e => e.op === 'claim'), 15_000, 'the claim reply')
    t.equal(connected.ok, true, 'claim granted')
    t.equal(connected.state, 'worker')
    t.ok(connected.offer.cores >= 1, 'the grant carries a fresh resource offer')
    const tClaim = Date.now()
    const ev = await watch.until(seen('worker'), 5000, 'the watcher to see state worker')
    t.ok(Date.now() - tClaim < 2000, `state change seen in ${Date.now() - tClaim} ms`)
    t.equal(ev.coord !== undefined, true, 'coordinator peer id advertised while claimed')
    await claim.done(15_000)
    const rel = probe(['--addr', addrOf(d), '--op', 'release', '--run', 'r1'])
    await rel.done(15_000)
    // the prober is a new identity: its release is refused; the lease then expires
    t.equal(lines(rel).find(e => e.op === 'release')?.code, 'NOT_CLAIMED', 'only the claimant may release')
    await d.waitLog(e => e.msg === 'lease expired: coordinator silent', 10_000, 'lease expiry')
    await watch.until(() => lines(watch).filter(e => e.peer === d.peer && e.state === 'idle').length >= 2 ? true : undefined, 10_000, 'idle again')
    watch.kill()
  })

  t.test('adverts tell the truth: through a 12 s claim a browser never sees the node idle again (no stale re-announce)', async t => {
    // a fresh daemon: its library re-announces at about 1, 3 and 9 s after publishing
    const d = await cluster.startDaemon(['--always-available'])
    const watch = cluster.cli(viewer, ['peers', '--watch', '--json', '--timeout', '40'])
    const states = (): string[] => lines(watch).filter(e => e.peer === d.peer && e.event !== 'down').map(e => String(e.state))
    await watch.until(() => states().includes('idle') ? true : undefined, 10_000, 'the node seen idle')
    const claim = probe(['--addr', addrOf(d), '--op', 'hold', '--run', 'truth', '--lease', '3000', '--hold', '12000'])
    await watch.until(() => states().includes('worker') ? true : undefined, 10_000, 'the node seen as a worker')
    const from = states().lastIndexOf('idle')
    await claim.done(30_000)
    t.equal(lines(claim).find(e => e.op === 'held')?.op, 'held', 'the claim was held for 12 s')
    const during = states().slice(from + 1)
    t.ok(during.length >= 1, `states seen while claimed: ${during.join(', ')}`)
    // the release (the probe lets the lease lapse) may show idle at the very end only
    const lastWorker = during.lastIndexOf('worker')
    t.same(during.slice(0, lastWorker + 1).filter(x => x !== 'worker'), [], 'only worker until the claim ended')
    watch.kill()
  })

  t.test('a machine that cannot tell when its owner is there is not offered, and says why', { skip: existsSync('/dev/input') && '/dev/input exists here' }, async t => {
    const d = await cluster.startDaemon(['--idle-start', '0', '--sample', '200'])
    const why = await d.waitLog(e => e.msg?.startsWith('no way to tell when the owner'), 10_000, 'the reason in the log')
    t.match(why.msg, /--always-available/)
    // several idle-policy samples later, still the owner's
    await d.waitLog(e => e.msg === 'idle policy', 5000, 'a policy decision').catch(() => {})
    await new Promise(resolve => setTimeout(resolve, 1500))
    t.notOk(d.events.some(e => e.msg === 'state' && e.to === 'idle'), 'never offered')
    const st = await cluster.runCli(d.host, ['status', '--json', '--data-dir', d.dataDir])
    t.match(JSON.parse(st.stdout).daemon.policy.notOffered, /no way to tell/, 'bgrid status --json says why')
    const human = await cluster.runCli(d.host, ['status', '--data-dir', d.dataDir])
    t.match(human.stdout, /not offered: no way to tell/, 'and so does bgrid status')
    d.kill('SIGTERM')
    await d.done(15_000)
  })

  t.test('five concurrent claimants for one worker: exactly one grant', async t => {
    const d = daemons[1]
    const at = Date.now() + 2500
    // a lease long enough that a claimant started late on a loaded machine still meets the winner's
    const ps = Array.from({ length: 5 }, (_, i) => probe(['--addr', addrOf(d), '--op', 'claim', '--run', `race${i}`, '--lease', '8000', '--at', String(at)]))
    await Promise.all(ps.map(async p => await p.done(20_000)))
    const replies = ps.map(p => lines(p).find(e => e.op === 'claim'))
    t.equal(replies.filter(r => r?.ok === true).length, 1, 'one winner')
    t.equal(replies.filter(r => r?.ok === false && r.code === 'BUSY').length, 4, 'four told BUSY')
    await d.waitLog(e => e.msg === 'state' && e.to === 'idle', 20_000, 'lease expiry back to idle')
  })

  t.test('malformed, oversize, wrong-version and unauthorised messages are refused; the daemon keeps serving', async t => {
    const d = daemons[2]
    const run = async (args: string[]): Promise<any> => {
      const p = probe(['--addr', addrOf(d), ...args])
      await p.done(20_000)
      return lines(p).find(e => e.op !== undefined && e.event === undefined)
    }
    const notJson = await run(['--op', 'raw', '--payload', Buffer.from('{"op": claim').toString('hex')])
    t.equal(notJson.reply.error.code, 'BAD_REQUEST')
    const wrongShape = await run(['--op', 'raw', '--payload', Buffer.from(JSON.stringify({ op: 'claim', v: 1, run: '../../etc', leaseMs: 5 })).toString('hex')])
    t.equal(wrongShape.reply.error.code, 'BAD_REQUEST')
    const unknownField = await run(['--op', 'raw', '--payload', Buffer.from(JSON.stringify({ op: 'release', run: 'x', extra: 1 })).toString('hex')])
    t.equal(unknownField.reply.error.code, 'BAD_REQUEST')
    // past the claim protocol's 128 KiB (a renewal names up to 1,024 attempts)
    const oversize = await run(['--op', 'raw', '--size', String(256 * 1024)])
    t.equal(oversize.reply.error.code, 'TOO_LARGE')
    const version = await run(['--op', 'claim', '--v', '9'])
    t.equal(version.code, 'VERSION')
    const ok = await run(['--op', 'claim', '--run', 'after-bad', '--lease', '1500'])
    t.equal(ok.ok, true, 'a good claim is still served')
    t.ok(d.events.filter(e => e.msg === 'refused').length >= 5, 'each refusal logged')
    await d.waitLog(e => e.msg === 'state' && e.to === 'idle', 10_000, 'back to idle')
  })

  t.test('allow-list: claims from other coordinators are refused with `policy`', async t => {
    const d = await cluster.startDaemon(['--always-available', '--allow-coordinator', daemons[0].peer])
    const p = probe(['--addr', addrOf(d), '--op', 'claim'])
    await p.done(20_000)
    t.equal(lines(p).find(e => e.op === 'claim')?.code, 'POLICY')
  })

  t.test('allow-list by submitter identity: `bgrid id` is stable across runs; that submitter runs, another is refused and told why', async t => {
    const home = path.join(cluster.tmp, 'allowed-home')
    const id1 = await cluster.runCli(viewer, ['id', '--data-dir', home])
    const id2 = await cluster.runCli(viewer, ['id', '--data-dir', home])
    t.equal(id1.code, 0, id1.stderr)
    t.match(id1.stdout.trim(), /^12D3KooW[1-9A-HJ-NP-Za-km-z]+$/)
    t.equal(id1.stdout, id2.stdout, 'the same identity every time')
    t.equal(statSync(path.join(home, 'submitter.key')).mode & 0o777, 0o600, 'its key is private')
    const d = await cluster.startDaemon(['--always-available', '--allow-coordinator', id1.stdout.trim(), '--cost', '42'])
    const dir = path.join(cluster.tmp, 'allow-dag')
    mkdirSync(dir)
    writeFileSync(path.join(dir, 'dag.json'), JSON.stringify({ name: 'allowed', requirements: 'cost == 42', jobs: [{ id: 'hi', cmd: 'echo hi > h.txt', outputs: ['h.txt'] }] }))
    const ok = await cluster.runCli(viewer, ['submit', path.join(dir, 'dag.json'), '--data-dir', home, '--quiet', '--out', path.join(cluster.tmp, 'allow-out'), '--wait', '15'], 60_000)
    t.equal(ok.code, 0, ok.stderr)
    t.equal(readFileSync(path.join(cluster.tmp, 'allow-out', 'hi', 'h.txt'), 'utf8'), 'hi\n', 'the allowed submitter\'s job ran')
    await d.waitLog(e => e.msg === 'state' && e.to === 'idle' && String(e.reason).includes('released'), 10_000, 'released')
    const other = await cluster.runCli(viewer, ['submit', path.join(dir, 'dag.json'), '--data-dir', path.join(cluster.tmp, 'other-home'), '--out', path.join(cluster.tmp, 'other-out'), '--wait', '4'], 60_000)
    t.equal(other.code, 3, 'no worker for another submitter')
    t.match(other.stderr, /refused by the node's policy/, other.stderr)
    t.match(other.stderr, new RegExp(d.host.ns === '' ? '' : 'POLICY|allow-list'), 'with the node\'s own reason')
  })

  t.test('private grid: a peer without the grid key cannot connect; with it, it can', async t => {
    const keyFile = path.join(cluster.tmp, 'grid.key')
    writeFileSync(keyFile, newGridKey())
    const d = await cluster.startDaemon(['--always-available', '--grid-key', keyFile])
    const without = probe(['--addr', addrOf(d), '--op', 'claim', '--timeout', '3000'])
    await without.done(20_000)
    const r1 = lines(without).find(e => e.op === 'claim')
    t.equal(r1?.code, 'UNREACHABLE', 'no connection without the key')
    const withKey = probe(['--addr', addrOf(d), '--op', 'claim', '--grid-key', keyFile, '--lease', '1500'])
    await withKey.done(20_000)
    t.equal(lines(withKey).find(e => e.op === 'claim')?.ok, true, 'claim works with the key')
  })

  t.test('a connect flood from one address does not lock others out: a real submit still claims within 3 s', async t => {
    const d = await cluster.startDaemon(['--always-available', '--cost', '77'])
    // four times the rate that filled libp2p's pending-connection limit
    const flood = cluster.spawn(probeHost, [process.execPath, path.join(import.meta.dirname, '..', 'testbed', 'flood.ts'), '--host', d.host.ip, '--port', String(d.port), '--rate', '20', '--seconds', '20'])
    // let the flood fill whatever it can first
    await new Promise(resolve => setTimeout(resolve, 3000))
    const dir = path.join(cluster.tmp, 'flood-dag')
    mkdirSync(dir)
    writeFileSync(path.join(dir, 'dag.json'), JSON.stringify({ name: 'flooded', requirements: 'cost == 77', jobs: [{ id: 'hi', cmd: ['true'] }] }))
    const t0 = Date.now()
    const p = cluster.cli(viewer, ['submit', path.join(dir, 'dag.json'), '--data-dir', path.join(cluster.tmp, 'flood-home'), '--json', '--out', path.join(cluster.tmp, 'flood-out'), '--wait', '15'])
    const claimed = await p.until(() => lines(p).find(e => e.event === 'worker' && e.state === 'claimed'), 15_000, 'a claim during the flood')
    const started = lines(p).find(e => e.event === 'started')
    t.equal(claimed.worker, d.peer)
    t.ok(Date.now() - t0 < 3000 + 2000, `claimed ${Date.now() - t0} ms after submit started (discovery included)`)
    t.ok(started !== undefined)
    const { code } = await p.done(30_000)
    t.equal(code, 0, p.stderr)
    t.ok(flood.alive, 'the flood was still running')
    flood.kill('SIGKILL')
  })

  t.test('SIGTERM sends a goodbye: the node disappears from `bgrid peers`', async t => {
    const d = await cluster.startDaemon(['--always-available'])
    const watch = cluster.cli(viewer, ['peers', '--watch', '--json', '--timeout', '30'])
    await watch.until(() => lines(watch).find(e => e.peer === d.peer), 10_000, 'the node to be seen')
    d.kill('SIGTERM')
    const { code } = await d.done(15_000)
    t.equal(code, 0, 'clean exit')
    await watch.until(() => lines(watch).find(e => e.peer === d.peer && e.event === 'down'), 5000, 'a down event')
    watch.kill()
    const res = await cluster.runCli(viewer, ['peers', '--json', '--timeout', '1.5'])
    t.notOk((JSON.parse(res.stdout) as any[]).some(n => n.peer === d.peer), 'gone from the listing')
  })
}
