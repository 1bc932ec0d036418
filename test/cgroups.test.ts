// cgroup detection and layout. The v1 path runs for real in the lab tests (this
// machine mounts v1 controllers); its v2 hierarchy has no controllers, so the v2 path
// (today's desktops) is checked here against a directory laid out like cgroupfs: what is
// detected from /proc/self/mountinfo and /proc/self/cgroup, and what is written where.
import t from 'tap'
import { mkdirSync, writeFileSync, readFileSync, existsSync, mkdtempSync, rmSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { detectLayout, CgroupTree, statValue } from '../daemon/cgroups.ts'

const root = mkdtempSync(path.join(os.tmpdir(), 'bgrid-cgroups-'))
t.teardown(() => { rmSync(root, { recursive: true, force: true }) })

function fakeProc (name: string, mountinfo: string, cgroup: string): { mountinfo: string, cgroup: string } {
  const dir = path.join(root, name)
  mkdirSync(dir, { recursive: true })
  writeFileSync(path.join(dir, 'mountinfo'), mountinfo)
  writeFileSync(path.join(dir, 'cgroup'), cgroup)
  return { mountinfo: path.join(dir, 'mountinfo'), cgroup: path.join(dir, 'cgroup') }
}

t.test('v2 (a systemd desktop): the daemon\'s own group, its leaf, controllers enabled down the tree, limits in memory.max and pids.max', async t => {
  const fs = path.join(root, 'v2fs')
  const own = path.join(fs, 'system.slice', 'bgrid.service')
  mkdirSync(own, { recursive: true })
  writeFileSync(path.join(fs, 'cgroup.controllers'), 'cpuset cpu io memory hugetlb pids rdma misc\n')
  writeFileSync(path.join(own, 'cgroup.controllers'), 'cpu memory pids\n')
  writeFileSync(path.join(own, 'cgroup.procs'), '4242\n')
  writeFileSync(path.join(own, 'cgroup.subtree_control'), '')
  const proc = fakeProc('v2', `30 1 0:26 / ${fs} rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot\n`, '0::/system.slice/bgrid.service\n')
  const layout = detectLayout('tag', proc)
  t.equal(layout?.version, 2)
  t.equal(layout?.roots.memory, path.join(own, 'bgrid-tag'))
  const tree = new CgroupTree(layout!)
  t.same(tree.controllers(), ['memory', 'pids', 'cpu', 'cpuacct', 'freezer'])
  tree.setup()
  t.equal(readFileSync(path.join(own, 'daemon', 'cgroup.procs'), 'utf8'), '4242', 'the daemon moved into a leaf of its own group')
  t.equal(readFileSync(path.join(own, 'cgroup.subtree_control'), 'utf8'), '+memory +pids +cpu', 'controllers enabled for its children')
  t.equal(readFileSync(path.join(own, 'bgrid-tag', 'cpu.weight'), 'utf8'), '1', 'jobs below everything else')
  const run = tree.run('r1')
  t.equal(readFileSync(path.join(own, 'bgrid-tag', 'r1', 'cgroup.subtree_control'), 'utf8'), '+memory +pids +cpu')
  t.same(run.procsFiles(), [], 'v2: the job joins one group, its attempt\'s')
  const g = run.slot('b1')
  g.begin({ memoryBytes: 128 * 1048576, pids: 64 })
  const dir = path.join(own, 'bgrid-tag', 'r1', 'b1')
  t.equal(readFileSync(path.join(dir, 'memory.max'), 'utf8'), String(128 * 1048576))
  t.equal(readFileSync(path.join(dir, 'memory.swap.max'), 'utf8'), '0', 'no swapping past the limit')
  t.equal(readFileSync(path.join(dir, 'pids.max'), 'utf8'), '64')
  t.same(g.procsFiles(), [path.join(dir, 'cgroup.procs')])
  // an OOM kill shows in memory.events, counted from the attempt's start
  writeFileSync(path.join(dir, 'memory.events'), 'low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n')
  t.equal(g.oomKilled(), true)
  g.begin({ memoryBytes: 128 * 1048576, pids: 64 })
  t.equal(g.oomKilled(), false, 'the next attempt in the slot starts from the count it found')
  t.ok(run.freeze())
  t.equal(readFileSync(path.join(own, 'bgrid-tag', 'r1', 'cgroup.freeze'), 'utf8'), '1', 'the run freezes as one')
})

t.test('v1 (this machine): one hierarchy per controller; where there is no memory controller, no layout', async t => {
  const mounts = ['memory', 'pids', 'cpu,cpuacct', 'freezer'].map((c, i) => `${40 + i} 31 0:${30 + i} / /sys/fs/cgroup/${c} rw,relatime - cgroup cgroup rw,${c}`).join('\n')
  const proc = fakeProc('v1', mounts + '\n41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n', '4:memory:/user.slice\n3:pids:/\n2:cpu,cpuacct:/\n1:freezer:/\n0::/\n')
  const layout = detectLayout('x', proc)
  t.equal(layout?.version, 1)
  t.equal(layout?.roots.memory, '/sys/fs/cgroup/memory/user.slice/bgrid-x')
  t.equal(layout?.roots.cpu, '/sys/fs/cgroup/cpu,cpuacct/bgrid-x')
  t.equal(layout?.roots.cpuacct, '/sys/fs/cgroup/cpu,cpuacct/bgrid-x', 'co-mounted controllers share a directory')
  const none = fakeProc('none', '', '0::/\n')
  t.equal(detectLayout('x', none), undefined, 'nothing mounted (a container, `ip netns exec`): no cgroups, said at start-up')
  t.equal(statValue('oom 2\noom_kill 7\n', 'oom_kill'), 7)
  t.equal(statValue(undefined, 'oom_kill'), 0)
  t.notOk(existsSync('/sys/fs/cgroup/memory/user.slice/bgrid-x'), 'detection writes nothing')
})
