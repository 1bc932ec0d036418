// A volunteer PC is safe to lend: hostile jobs, run through `bgrid submit` on a real
// daemon (root, in its own network namespace, default containment), try what was
// reproduced against earlier versions. Each attack must fail and leave the victim's
// data (decoy files under the test's directory, never real system files) as it was.
import t, { type Test } from 'tap'
import path from 'node:path'
import { createHash } from 'node:crypto'
import { readFileSync, writeFileSync, mkdirSync, existsSync, statSync, readdirSync, chmodSync } from 'node:fs'
import { stdoutJson, clusterOrSkip, type Proc } from '../testbed/cluster.ts'

const PROBE = path.join(import.meta.dirname, '..', 'testbed', 'probe.ts')
const sha256 = (b: string | Buffer): string => createHash('sha256').update(b).digest('hex')

/** processes whose command line matches, anywhere on this machine */
function processesMatching (re: RegExp): number[] {
  const out: number[] = []
  for (const pid of readdirSync('/proc').filter(p => /^\d+$/.test(p))) {
    try { if (re.test(readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' '))) out.push(Number(pid)) } catch {}
  }
  return out
}

const cluster = clusterOrSkip(t)
if (cluster !== undefined) {
  const worker = await cluster.startDaemon(['--always-available', '--max-job-disk', '256', '--max-job-pids', '64'])
  const user = cluster.lab.addHost()
  const probeHost = cluster.lab.addHost()
  const addr = `/ip4/${worker.host.ip}/tcp/${worker.port}/p2p/${worker.peer}`
  // limits need cgroups: where the machine mounts none, those tests say so and skip
  const cgroups = String(worker.events.find(e => e.msg === 'containment')?.cgroups ?? 'none')
  const noCgroups = cgroups === 'none' && 'no cgroup hierarchy with a memory controller is mounted here (the daemon logs "containment ... cgroups: none")'

  // the victim's files: root's, private
  const decoyDir = path.join(cluster.tmp, 'decoy')
  mkdirSync(decoyDir, { mode: 0o700 })
  const secret = path.join(decoyDir, 'secret.txt')
  writeFileSync(secret, 'TOP SECRET\n', { mode: 0o600 })
  const passwd = path.join(decoyDir, 'passwd')
  writeFileSync(passwd, 'root:x:0:0::/root:/bin/sh\n', { mode: 0o644 })
  const decoyIntact = (t: Test): void => {
    t.equal(readFileSync(secret, 'utf8'), 'TOP SECRET\n', 'the decoy secret is unchanged')
    t.equal(statSync(secret).mode & 0o777, 0o600, 'and still 0600')
    t.equal(readFileSync(passwd, 'utf8'), 'root:x:0:0::/root:/bin/sh\n', 'the decoy passwd is still there')
  }
  const storeHas = (hash: string): boolean => existsSync(path.join(worker.dataDir, 'cas', hash.slice(0, 2), hash))

  let k = 0
  const submit = async (dag: Record<string, unknown>, files: Record<string, string> = {}, home = 'home'): Promise<{ code: number | null, run: any, out: string, p: Proc }> => {
    const dir = path.join(cluster.tmp, `dag${++k}`)
    mkdirSync(dir)
    for (const [name, text] of Object.entries(files)) writeFileSync(path.join(dir, name), text)
    writeFileSync(path.join(dir, 'dag.json'), JSON.stringify({ name: `attack${k}`, defaults: { retries: 0 }, ...dag }))
    const out = path.join(cluster.tmp, `out${k}`)
    const p = cluster.cli(user, ['submit', path.join(dir, 'dag.json'), '--data-dir', path.join(cluster.tmp, home), '--json', '--out', out, '--wait', '20'])
    const { code } = await p.done(120_000)
    return { code, run: JSON.parse(readFileSync(path.join(out, 'run.json'), 'utf8')), out, p }
  }

  t.test('the node keeps its data private: data dir, database and store are root\'s alone', async t => {
    for (const d of ['', 'db', 'cas']) t.equal(statSync(path.join(worker.dataDir, d)).mode & 0o777, 0o700, `${d === '' ? 'data dir' : d} is 0700`)
    const started = worker.events.find(e => e.msg === 'containment')
    t.equal(started?.level, 'full', 'the daemon logs what it enforces')
    if (noCgroups === false) t.match(String(started?.cgroups), /^v[12]: memory, pids/)
  })

  t.test('a declared output that is a symlink is refused: its target is not shipped, moved or chmodded', async t => {
    const r = await submit({ jobs: [{ id: 'exfil', cmd: ['ln', '-s', secret, 'out.txt'], outputs: ['out.txt'] }] })
    t.equal(r.code, 1)
    t.equal(r.run.jobs.exfil.state, 'failed')
    t.match(r.run.jobs.exfil.reason, /out\.txt: it is a symbolic link/)
    t.notOk(existsSync(path.join(r.out, 'exfil', 'out.txt')), 'nothing reached --out')
    t.notOk(storeHas(sha256('TOP SECRET\n')), 'the secret never entered the blob store')
    decoyIntact(t)
  })

  t.test('an output below a symlinked directory is refused the same way', async t => {
    const r = await submit({ jobs: [{ id: 'exfil-dir', cmd: `rmdir d && ln -s ${decoyDir} d`, outputs: ['d/secret.txt'] }] })
    t.equal(r.run.jobs['exfil-dir'].state, 'failed')
    t.match(r.run.jobs['exfil-dir'].reason, /d\/secret\.txt: d\/ is a symbolic link/)
    t.notOk(storeHas(sha256('TOP SECRET\n')))
    decoyIntact(t)
  })

  t.test('clean-up never follows a link: an input directory swapped for a link to /etc-like files deletes nothing there', async t => {
    const r = await submit({
      jobs: [{ id: 'swap', cmd: `rm -rf d && ln -s ${decoyDir} d && echo swapped > note.txt`, inputs: [{ src: 'x.txt', as: 'd/passwd' }], outputs: ['note.txt'] }]
    }, { 'x.txt': 'input\n' })
    t.equal(r.code, 0, r.p.stderr)
    t.equal(readFileSync(path.join(r.out, 'swap', 'note.txt'), 'utf8'), 'swapped\n')
    decoyIntact(t)
    t.same(readdirSync(path.join(worker.dataDir, 'runs')).filter(f => !f.startsWith('.')), [], 'the run\'s sandboxes are gone (or moved aside, being deleted)')
  })

  t.test('nothing a job starts outlives it: setsid, double fork and nohup children all die with the attempt', async t => {
    const r = await submit({ jobs: [{ id: 'linger', cmd: 'setsid sleep 300 & (sh -c "sleep 301 &" &); nohup sleep 302 >/dev/null 2>&1 & echo started > s.txt', outputs: ['s.txt'] }] })
    t.equal(r.code, 0, r.p.stderr)
    // the attempt is over once the worker has left the run (an attempt declared lost
    // under load is killed when the session ends, after the submit may have exited)
    await worker.until(() => worker.events.some(e => e.msg === 'left the run' && e.run === r.run.run) ? true : undefined, 20_000, 'the worker to leave the run')
    // a SIGKILLed process may still be listed for a moment on a loaded machine: wait (10 s at
    // most) for the list to empty; one that escaped would live its 300 s
    let left = processesMatching(/^sleep 30[012] $/)
    for (let i = 0; i < 100 && left.length > 0; i++) { await new Promise(resolve => setTimeout(resolve, 100)); left = processesMatching(/^sleep 30[012] $/) }
    const about = (pid: number): string => { try { return `${pid}: ${readFileSync(`/proc/${pid}/status`, 'utf8').split('\n').filter(l => /^(State|PPid|NSpid|Uid):/.test(l)).join(' ')} cgroup ${readFileSync(`/proc/${pid}/cgroup`, 'utf8').trim().split('\n').slice(0, 3).join(' ')}` } catch { return `${pid}: gone` } }
    t.same(left, [], `no sleep left anywhere on the machine ${left.map(about).join('; ')}`)
  })

  t.test('a job sees neither the node\'s data nor another run\'s /tmp, cannot write outside its sandbox, and has a uid of its own run', async t => {
    const probe = `{ test -e ${worker.dataDir}/db && echo DB-VISIBLE; test -e ${worker.dataDir}/identity.key && echo KEY-VISIBLE; ` +
      'touch /etc/bgrid-x 2>/dev/null && echo ETC-WRITABLE; touch /usr/bgrid-x 2>/dev/null && echo USR-WRITABLE; ' +
      'for f in /tmp/leak /var/tmp/leak /dev/shm/leak; do test -e $f && echo SEEN-$f; done; ' +
      'echo leak > /tmp/leak; echo leak > /var/tmp/leak; echo leak > /dev/shm/leak; ' +
      'echo procs=$(ls /proc | grep -c "^[0-9]"); echo uid=$(id -u); } > report.txt'
    const first = await submit({ jobs: [{ id: 'look', cmd: probe, outputs: ['report.txt'] }] })
    const second = await submit({ jobs: [{ id: 'look', cmd: probe, outputs: ['report.txt'] }] }, {}, 'home2')
    t.equal(first.code, 0, first.p.stderr)
    t.equal(second.code, 0, second.p.stderr)
    const a = readFileSync(path.join(first.out, 'look', 'report.txt'), 'utf8')
    const b = readFileSync(path.join(second.out, 'look', 'report.txt'), 'utf8')
    for (const report of [a, b]) {
      t.notMatch(report, /VISIBLE|WRITABLE|SEEN/, report)
      t.ok(Number(/procs=(\d+)/.exec(report)?.[1]) <= 6, 'only its own processes in /proc')
    }
    const uidA = Number(/uid=(\d+)/.exec(a)?.[1])
    const uidB = Number(/uid=(\d+)/.exec(b)?.[1])
    t.ok(uidA >= 2130706432 && uidB >= 2130706432, 'uids of the job range, not an account')
    t.not(uidA, uidB, 'two runs, two uids')
    t.notOk(existsSync('/var/tmp/leak'), 'the host\'s /var/tmp is untouched')
  })

  t.test('a job cannot rewrite the cached blob it got as input; a later run still gets GOOD', async t => {
    const r = await submit({
      jobs: [
        { id: 'make', cmd: 'echo GOOD > g.txt', outputs: ['g.txt'] },
        { id: 'poison', cmd: 'chmod u+w in.txt; echo EVIL > in.txt; echo EVIL >> in.txt; cat in.txt > seen.txt', inputs: [{ src: 'job:make/g.txt', as: 'in.txt' }], outputs: ['seen.txt'] }
      ]
    })
    t.equal(readFileSync(path.join(r.out, 'poison', 'seen.txt'), 'utf8'), 'GOOD\n', 'the job read GOOD and could not change it')
    const good = sha256('GOOD\n')
    t.equal(sha256(readFileSync(path.join(worker.dataDir, 'cas', good.slice(0, 2), good))), good, 'the stored blob still hashes to its name')
    t.equal(statSync(path.join(worker.dataDir, 'cas', good.slice(0, 2), good)).uid, 0, 'and is root\'s')
    const later = await submit({ jobs: [{ id: 'use', cmd: 'cat in.txt > got.txt', inputs: [{ src: 'g.txt', as: 'in.txt' }], outputs: ['got.txt'] }] }, { 'g.txt': 'GOOD\n' }, 'home3')
    t.equal(later.code, 0, later.p.stderr)
    t.equal(readFileSync(path.join(later.out, 'use', 'got.txt'), 'utf8'), 'GOOD\n')
  })

  t.test('memory: a job declaring ram 64 that allocates 1 GiB fails with out of memory and its limit', { skip: noCgroups }, async t => {
    const r = await submit({ jobs: [{ id: 'hog', ram: 64, cmd: ['python3', '-c', 'b = bytearray(1 << 30); print(len(b))'] }] })
    t.equal(r.code, 1)
    t.equal(r.run.jobs.hog.state, 'failed')
    t.match(r.run.jobs.hog.reason, /out of memory \(limit 128 MiB\)/)
  })

  t.test('disk: writes past the limit are stopped while the job writes, in its directory and in /var/tmp', async t => {
    const r = await submit({
      jobs: [
        // one big file: the kernel refuses it at once (RLIMIT_FSIZE)
        { id: 'one-file', cmd: 'fallocate -l 2G big && echo wrote > r.txt', outputs: ['r.txt'] },
        { id: 'var-tmp', cmd: 'fallocate -l 2G /var/tmp/big && echo wrote > r.txt', outputs: ['r.txt'] },
        // many files adding up: the watcher stops the attempt while it still runs
        { id: 'many', cmd: 'for i in 1 2 3 4 5 6; do head -c 100M /dev/zero > f$i; done; sleep 60', timeout: 50 },
        // quick enough to end before the watcher looks: refused at the end all the same
        { id: 'quick', cmd: 'head -c 150M /dev/zero > a; head -c 150M /dev/zero > b' }
      ]
    })
    t.equal(r.code, 1)
    for (const id of ['one-file', 'var-tmp']) {
      t.equal(r.run.jobs[id].state, 'failed', id)
      t.notOk(existsSync(path.join(r.out, id, 'r.txt')), `${id}: its write failed`)
    }
    t.match(r.run.jobs.many.reason, /disk limit exceeded/)
    t.ok(r.run.jobs.many.attempts[0].endedAt - r.run.jobs.many.attempts[0].startedAt < 30_000, 'stopped long before its sleep ended')
    t.match(r.run.jobs.quick.reason, /disk limit exceeded/)
  })

  t.test('pids: a fork bomb stops at the attempt\'s process limit', { skip: noCgroups }, async t => {
    const bomb = 'import os, time\nn = 0\nfor i in range(300):\n    try:\n        pid = os.fork()\n    except OSError:\n        break\n    if pid == 0:\n        time.sleep(20)\n        os._exit(0)\n    n += 1\nprint(n)\n'
    const r = await submit({ jobs: [{ id: 'bomb', cmd: ['python3', '-c', `${bomb}open("n.txt", "w").write(str(n))`], outputs: ['n.txt'] }] })
    t.equal(r.code, 0, r.p.stderr)
    const n = Number(readFileSync(path.join(r.out, 'bomb', 'n.txt'), 'utf8'))
    t.ok(n > 0 && n < 64, `${n} forks before the limit of 64`)
    t.same(processesMatching(/python3 -c import os, time/), [], 'and they all died with the job')
  })

  t.test('"network": false gives a job loopback only', async t => {
    const count = 'grep -c ":" /proc/net/dev > n.txt'
    const r = await submit({ jobs: [{ id: 'off', network: false, cmd: count, outputs: ['n.txt'] }, { id: 'on', cmd: count, outputs: ['n.txt'] }] })
    t.equal(r.code, 0, r.p.stderr)
    t.equal(readFileSync(path.join(r.out, 'off', 'n.txt'), 'utf8').trim(), '1', 'lo only')
    t.equal(readFileSync(path.join(r.out, 'on', 'n.txt'), 'utf8').trim(), '2', 'lo and eth0 otherwise')
  })

  t.test('another run\'s blobs: a peer outside the run is refused, a later coordinator that knows only the hash gets nothing', async t => {
    const r = await submit({ jobs: [{ id: 'private', cmd: 'cat private.txt > copy.txt', inputs: ['private.txt'], outputs: ['copy.txt'] }] }, { 'private.txt': 'PRIVATE INPUT\n' }, 'home4')
    t.equal(r.code, 0, JSON.stringify(r.run.jobs))
    const hash = sha256('PRIVATE INPUT\n')
    t.ok(storeHas(hash), 'the worker cached the input')
    const outsider = cluster.spawn(probeHost, [process.execPath, PROBE, '--addr', addr, '--op', 'blob', '--hash', hash, '--blob-size', '14'])
    await outsider.done(20_000)
    t.equal(stdoutJson(outsider).find(e => e.op === 'blob')?.code, 'UNAUTHORISED', 'a peer in no run with the node is refused')
    const thief = cluster.spawn(probeHost, [process.execPath, PROBE, '--addr', addr, '--op', 'steal', '--hash', hash, '--blob-size', '14', '--timeout', '20000'])
    await thief.done(40_000)
    const res = stdoutJson(thief).find(e => e.op === 'steal')?.result
    t.ok(res !== undefined, thief.stdout + thief.stderr)
    t.equal(res?.status, 'lost', 'the job did not run')
    t.equal(res?.inputProblems?.[0]?.code, 'UNREACHABLE', 'no holder of that run proved it has the bytes')
    t.notMatch(JSON.stringify(res), /PRIVATE/, 'nothing of the input came back')
  })

  t.test('bgrid keygen writes a 0600 file and refuses to print a key to a terminal', async t => {
    const file = path.join(cluster.tmp, 'grid.key')
    const r = await cluster.runCli(user, ['keygen', file])
    t.equal(r.code, 0, r.stderr)
    t.equal(statSync(file).mode & 0o777, 0o600)
    t.match(readFileSync(file, 'utf8'), /^\/key\/swarm\/psk\/1\.0\.0\//)
    chmodSync(file, 0o600)
  })
}
