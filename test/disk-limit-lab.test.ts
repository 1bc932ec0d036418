// Disk limits the kernel enforces (issue 19): a real root daemon with full containment,
// in its own network namespace, gets jobs declaring "disk": 20 (MB) that try to take
// ten times that in ways a walk of the sandbox cannot see: trees nested deeper than a
// path can name, a flood of empty files, files deleted while kept open, fallocate on
// such a file, sparse outputs that the store and the submitter would receive whole,
// and logs. Each must fail with a clear "disk limit" reason, and once the daemon stops
// the volunteer's disk must be as it was: nothing mounted, no loop device, no image.
// A daemon killed mid-run leaves its file systems mounted: the next start removes them.
import t, { type Test } from 'tap'
import path from 'node:path'
import { readFileSync, writeFileSync, mkdirSync, existsSync, readdirSync } from 'node:fs'
import { execFileSync } from 'node:child_process'
import { clusterOrSkip, type Proc, type DaemonProc } from '../testbed/cluster.ts'
import { mountsUnder } from '../daemon/sandbox-fs.ts'

/** loop devices backed by a file under dir */
function loopsUnder (dir: string): string[] {
  const out: string[] = []
  for (const n of readdirSync('/sys/block').filter(n => n.startsWith('loop'))) {
    let backing = ''
    try { backing = readFileSync(`/sys/block/${n}/loop/backing_file`, 'utf8').trim() } catch { continue }
    if (backing.startsWith(dir + '/')) out.push(`${n} ${backing}`)
  }
  return out
}

/** blocks a directory tree takes on the disk, MiB (du: what the volunteer lost) */
function duMiB (dir: string): number {
  return Number(execFileSync('du', ['-sm', '-x', dir], { encoding: 'utf8' }).split('\t')[0])
}

// first, so that it runs before the cluster's teardown deletes its scratch directory:
// whatever a failed test left mounted there (the stray file system made below) goes
let scratch: string | undefined
t.teardown(() => {
  if (scratch === undefined) return
  for (const mp of mountsUnder(scratch)) execFileSync('umount', ['-l', mp])
})
const cluster = clusterOrSkip(t)
if (cluster !== undefined) {
  scratch = cluster.tmp
  const host = cluster.lab.addHost()
  const args = ['--always-available', '--max-job-disk', '256', '--max-job-pids', '64']
  let worker: DaemonProc = await cluster.startDaemon(args, host, 'w')
  const user = cluster.lab.addHost()
  const diskLine = (d: Proc): string => String(d.events.find(e => e.msg === 'containment')?.diskLimits)

  let k = 0
  type Submitted = { code: number | null, run: any, out: string, p: Proc }
  const submit = async (dag: Record<string, unknown>, files: Record<string, Buffer> = {}): Promise<Submitted> => {
    const dir = path.join(cluster.tmp, `dag${++k}`)
    mkdirSync(dir)
    for (const [name, bytes] of Object.entries(files)) writeFileSync(path.join(dir, name), bytes)
    const json = { name: `disk${k}`, defaults: { retries: 0, disk: 20 }, ...dag }
    writeFileSync(path.join(dir, 'dag.json'), JSON.stringify(json))
    const out = path.join(cluster.tmp, `out${k}`)
    const p = cluster.cli(user, ['submit', path.join(dir, 'dag.json'), '--data-dir', path.join(cluster.tmp, 'home'),
      '--json', '--out', out, '--wait', '20'])
    const { code } = await p.done(120_000)
    return { code, run: JSON.parse(readFileSync(path.join(out, 'run.json'), 'utf8')), out, p }
  }
  const failsOnDisk = (t: Test, r: { run: any }, id: string): void => {
    const job = r.run.jobs[id]
    t.equal(job?.state, 'failed', `${id} failed`)
    t.match(String(job?.reason), /disk limit of 20 MB reached/, `${id}: ${String(job?.reason)}`)
  }

  t.test('the daemon says how disk limits are enforced: a file system per attempt', async t => {
    t.equal(diskLine(worker), 'per-attempt filesystem (kernel-enforced)')
  })

  t.test('(a) files nested deeper than a path can name, and a flood of empty files, hit the limit', async t => {
    // 30 levels of 200-character names: 6,000 bytes of path, past PATH_MAX (4,096); then 200 MB there
    const deep = 'import os\nfor i in range(30):\n    os.mkdir("x" * 200)\n    os.chdir("x" * 200)\n' +
      'for i in range(40):\n    try:\n' +
      '        open(f"f{i}", "wb").write(bytes(5 << 20))\n    except OSError:\n        break\n'
    // 10,000 empty files: no bytes, but inodes (a walk capped its count at 200,000 entries)
    const flood = 'mkdir m; for i in $(seq 100); do seq -f "m/f$i-%g" 100 | xargs touch 2>/dev/null; done; exit 0'
    const r = await submit({ jobs: [{ id: 'deep', cmd: ['python3', '-c', deep] }, { id: 'flood', cmd: flood }] })
    t.equal(r.code, 1, 'the run fails')
    failsOnDisk(t, r, 'deep')
    failsOnDisk(t, r, 'flood')
    t.match(String(r.run.jobs.flood.reason), /inode|files/, 'the flood is told it made too many files')
  })

  t.test('(b, c) space held by files deleted while open, written or fallocated, is the job\'s', async t => {
    const r = await submit({
      jobs: [
        { id: 'unlinked', cmd: 'exec 3>held; rm held; head -c 200M /dev/zero >&3; sleep 8; exit 0', timeout: 60 },
        { id: 'fallocate', cmd: 'exec 3>held; rm held; fallocate -n -l 200M /dev/fd/3; sleep 8; exit 0', timeout: 60 }
      ]
    })
    t.equal(r.code, 1)
    for (const id of ['unlinked', 'fallocate']) {
      failsOnDisk(t, r, id)
      const a = r.run.jobs[id].attempts[0]
      const ms = a.endedAt - a.startedAt
      t.ok(ms < 7_000, `${id}: stopped while it held the space, not at its end (${ms} ms)`)
    }
  })

  t.test('(d) sparse outputs count by their apparent size: refused, neither stored nor sent', async t => {
    // fallocate --insert-range grows a file past RLIMIT_FSIZE without a block: 64 MiB each, 4 KiB on disk
    const sparse = 'for f in o1 o2 o3; do head -c 4096 /dev/zero > $f; for i in $(seq 14); do ' +
      'fallocate --insert-range -o 0 -l $(stat -c %s $f) $f || exit 4; done; done; ls -ls o1 >&2; exit 0'
    const casBefore = duMiB(path.join(worker.dataDir, 'cas'))
    const r = await submit({ jobs: [{ id: 'sparse', cmd: sparse, outputs: ['o1', 'o2', 'o3'] }] })
    t.equal(r.code, 1)
    failsOnDisk(t, r, 'sparse')
    t.match(String(r.run.jobs.sparse.reason), /apparent size/)
    t.notOk(existsSync(path.join(r.out, 'sparse', 'o1')), 'nothing reached --out')
    t.ok(duMiB(path.join(worker.dataDir, 'cas')) - casBefore < 5, 'the worker\'s store did not grow')
  })

  t.test('stdout and stderr count against the limit', async t => {
    const r = await submit({ jobs: [{ id: 'logs', cmd: 'head -c 12M /dev/zero; head -c 12M /dev/zero >&2; exit 0' }] })
    t.equal(r.code, 1)
    failsOnDisk(t, r, 'logs')
  })

  t.test('a job within its limit is not disturbed: 15 MB written, its output kept', async t => {
    const cmd = 'head -c 15M /dev/zero > big; mkdir -p /tmp/x; head -c 2M /dev/zero > /tmp/x/y; echo ok > r.txt'
    const r = await submit({ jobs: [{ id: 'fits', cmd, outputs: ['r.txt', 'big'] }] })
    t.equal(r.code, 0, JSON.stringify(r.run.jobs.fits))
    t.equal(readFileSync(path.join(r.out, 'fits', 'r.txt'), 'utf8'), 'ok\n')
  })

  t.test('inputs are in the box (copied: a link cannot cross file systems), not counted against the limit', async t => {
    const cmd = 'cmp in.bin sub/in2.bin && head -c 15M /dev/zero > big && wc -c < in.bin > n.txt'
    const big = Buffer.alloc(30 << 20, 7)
    const r = await submit({
      jobs: [{ id: 'reads', cmd, inputs: ['in.bin', { src: 'in.bin', as: 'sub/in2.bin' }], outputs: ['n.txt'] }]
    }, { 'in.bin': big })
    t.equal(r.code, 0, JSON.stringify(r.run.jobs.reads))
    const n = readFileSync(path.join(r.out, 'reads', 'n.txt'), 'utf8').trim()
    t.equal(n, String(30 << 20), '60 MB of inputs, 15 MB written')
  })

  t.test('a daemon killed mid-run leaves nothing mounted; what a crash left anyway goes at the next start', async t => {
    const sandfs = path.join(worker.dataDir, 'sandfs')
    t.ok(mountsUnder(sandfs).length > 0, 'the running daemon keeps ready file systems')
    worker.kill('SIGKILL')
    await worker.exited
    // its watchdog unmounts them once the daemon is gone (a condition waited for, 10 s at most)
    const cleaned = (): boolean => mountsUnder(sandfs).length === 0 && !existsSync(sandfs)
    for (let i = 0; i < 100 && !cleaned(); i++) await new Promise(resolve => setTimeout(resolve, 100))
    t.same(mountsUnder(sandfs), [], 'nothing left mounted by the killed daemon')
    t.same(loopsUnder(worker.dataDir), [], 'nor a loop device')
    t.notOk(existsSync(sandfs), 'nor an image')
    // what a crash of the watchdog too would leave: an image, its loop device, its mount
    mkdirSync(path.join(sandfs, 'f77'), { recursive: true, mode: 0o700 })
    const image = path.join(sandfs, 'f77.img')
    execFileSync('truncate', ['-s', '8M', image])
    execFileSync('mkfs.ext4', ['-q', '-F', image])
    execFileSync('mount', ['-o', 'loop', image, path.join(sandfs, 'f77')])
    t.equal(mountsUnder(sandfs).length, 1)
    worker = await cluster.startDaemon(args, host, 'w')
    t.equal(diskLine(worker), 'per-attempt filesystem (kernel-enforced)', 'the new daemon makes its own again')
    t.notOk(mountsUnder(sandfs).includes(path.join(sandfs, 'f77')), 'the stray mount is gone')
    t.notOk(loopsUnder(worker.dataDir).some(l => l.includes('f77.img')), 'its loop device too')
    t.notOk(existsSync(image), 'and its image')
    const r = await submit({ jobs: [{ id: 'after', cmd: 'echo ok > r.txt', outputs: ['r.txt'] }] })
    t.equal(r.code, 0, r.p.stderr)
  })

  t.test('once the daemon stops, the volunteer\'s disk is as it was: no mount, no loop device, no image', async t => {
    worker.kill('SIGTERM')
    const { code } = await worker.done(30_000)
    t.equal(code, 0, 'the daemon stopped cleanly')
    t.same(mountsUnder(worker.dataDir), [], 'nothing mounted under the data dir')
    t.same(loopsUnder(worker.dataDir), [], 'no loop device backed by a file there')
    t.notOk(existsSync(path.join(worker.dataDir, 'sandfs')), 'no image left')
    // the store holds what was kept on purpose (the jobs' logs, the 15 MB output): the rest is small
    const rest = duMiB(worker.dataDir) - duMiB(path.join(worker.dataDir, 'cas'))
    t.ok(rest < 10, `the data dir takes ${rest} MiB besides its store (the attacks tried 200 MB each)`)
  })
}
