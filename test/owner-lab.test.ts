// One real daemon (in a network namespace) whose owner is at the keyboard: it says why it
// is not offered (in `bgrid status`, its status reply and its log); a second daemon on
// its data dir, and the cache commands beside it, get a clear answer, not a LevelDB lock.
import t from 'tap'
import path from 'node:path'
import { writeFileSync, utimesSync } from 'node:fs'
import { clusterOrSkip } from '../testbed/cluster.ts'
import { openDb } from '../protocol/db.ts'
import { BlobStore } from '../cache/store.ts'
import { next, type NodeEvent } from '../daemon/node-state.ts'
import { type NodeState } from '../protocol/node-states.ts'

const cluster = clusterOrSkip(t)
if (cluster !== undefined) {
  const activity = path.join(cluster.tmp, 'activity')
  writeFileSync(activity, '')
  // a blob in its store before it starts, for `cache ls` to find
  const dataDir = path.join(cluster.tmp, 'owned')
  const db = await openDb(dataDir)
  const store = new BlobStore(dataDir, db)
  await store.load()
  const blob = await store.putBuffer(Buffer.from('kept by the daemon\n'))
  await db.close()
  // --isolation none: the reason must be the owner's, not containment's
  const d = await cluster.startDaemon(['--isolation', 'none', '--activity-file', activity, '--idle-start', '600'], undefined, 'owned')
  const bgrid = async (args: string[]) => await cluster.runCli(d.host, [...args, '--data-dir', dataDir], 30_000)
  const ACTIVE = /^owner active \d+ s ago \(keyboard\/mouse; offered after 10 min idle\)$/

  t.test('the owner is told why the node is not offered, with the numbers', async t => {
    const logged = await d.waitLog(e => e.msg === 'idle policy', 10_000, 'the idle policy in the log')
    t.equal(logged.level, 'info')
    t.equal(logged.available, false)
    t.match(String(logged.reason), ACTIVE, 'logged at the first sample, though nothing changed')
    const text = await bgrid(['status'])
    t.equal(text.code, 0, text.stderr)
    t.match(text.stdout, new RegExp(`^daemon ${d.peer}: owner, `))
    t.match(text.stdout.split('\n')[1], /^ {2}not offered: owner active \d+ s ago \(keyboard\/mouse; offered after 10 min idle\)$/)
    const json = JSON.parse((await bgrid(['status', '--json'])).stdout)
    t.match(json.daemon.policy, { available: false, reason: ACTIVE }, 'policy.reason in the status reply')
    // the owner leaves: now the reason is their CPU load, or the quiet period to wait out
    utimesSync(activity, new Date(0), new Date(0))
    await new Promise(resolve => setTimeout(resolve, 1500))
    const later = JSON.parse((await bgrid(['status', '--json'])).stdout)
    t.match(later.daemon.policy.reason, /^(owner CPU load [0-9.]+ > 0\.3 for \d+ s|owner away \d+ h( \d+ min)?, CPU load [0-9.]+ <= 0\.3 for \d+ s) \(offered after 10 min( at or below it)?\)$/)
  })

  t.test('a second daemon on the same data dir: who holds it, and exit 2', async t => {
    const r = await cluster.runCli(d.host, ['daemon', '--data-dir', dataDir, '--isolation', 'none', '--port', '0'], 30_000)
    t.equal(r.code, 2)
    t.equal(r.stderr, `bgrid: IN_USE: the data dir ${dataDir} is in use by a running daemon (pid ${d.pid}): stop it, or use another --data-dir\n`)
    t.equal((await bgrid(['status'])).code, 0, 'the first one still answers')
  })

  t.test('cache ls and du while the daemon runs: answered by the daemon', async t => {
    const ls = await bgrid(['cache', 'ls', '--json'])
    t.equal(ls.code, 0, ls.stderr)
    t.match(JSON.parse(ls.stdout), [{ hash: blob.hash, size: blob.size, pins: 0 }])
    const du = await bgrid(['cache', 'du', '--json'])
    t.same(JSON.parse(du.stdout), { blobs: 1, bytes: blob.size, pinnedBytes: 0 })
    const gc = await bgrid(['cache', 'gc', '--target', '0'])
    t.equal(gc.code, 2)
    t.match(gc.stderr, /IN_USE: a daemon is running with the data dir .*: stop it first to evict by hand, or give it --cache-quota/)
  })

  t.test('a local submit while the owner types: the daemon coordinates, then is its owner\'s again, as next() says', async t => {
    utimesSync(activity, new Date(), new Date())
    const dag = path.join(cluster.tmp, 'local-dag.json')
    writeFileSync(dag, JSON.stringify({ name: 'local', jobs: [{ id: 'a', cmd: ['true'] }] }))
    const from = d.events.length
    // no node is offered: the run gives up after --wait (exit 3), and the daemon stops coordinating
    const r = await cluster.runCli(d.host, ['submit', dag, '--data-dir', dataDir, '--wait', '1', '--out', path.join(cluster.tmp, 'local-out')], 60_000)
    t.equal(r.code, 3, r.stderr)
    await d.waitLog(e => e.msg === 'state' && e.from === 'coordinator', 10_000, 'the daemon to stop coordinating', from)
    const logged = d.events.slice(from).filter(e => e.msg === 'state')
    t.same(logged.map(e => [e.from, e.event, e.to]), [['owner', 'coordinate', 'coordinator'], ['coordinator', 'coordinate-end-owner-here', 'owner']])
    for (const e of logged) t.equal(next(e.from as NodeState, e.event as NodeEvent), e.to, `logged ${String(e.from)} -${String(e.event)}-> ${String(e.to)} is the table's`)
    t.notOk(d.events.some(e => e.msg === 'illegal state transition refused'))
  })
}
