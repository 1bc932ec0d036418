// The network-namespace labs clean up after themselves, even after a process that
// made one was killed with SIGKILL: the next lab removes what a dead owner left.
import t from 'tap'
import { spawnSync } from 'node:child_process'
import { canMakeNamespaces, sweepStaleLabs, Lab } from '../testbed/netns.ts'

const exists = (ns: string): boolean => spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' }).stdout.split('\n').some(l => l.split(' ')[0] === ns)

t.test('namespaces of a dead lab owner are swept; a live owner\'s are kept', { skip: canMakeNamespaces() ? false : 'needs root and ip netns' }, async t => {
  // a pid that was alive and is not any more
  const dead = spawnSync('true').pid as number
  const orphan = `bg${dead}x7-hub`
  spawnSync('ip', ['netns', 'add', orphan])
  t.teardown(() => { spawnSync('ip', ['netns', 'del', orphan], { stdio: 'ignore' }) })
  const lab = new Lab()
  t.teardown(() => { lab.destroySync() })
  const h = lab.addHost()
  t.ok(exists(h.ns) && exists(lab.hub), 'this process\'s lab')
  t.notOk(exists(orphan), 'the dead owner\'s namespace went when this lab was made')
  t.same(sweepStaleLabs(), [], 'a second sweep finds nothing; the live lab is kept')
  t.ok(exists(h.ns))
  lab.destroySync()
  t.notOk(exists(h.ns) || exists(lab.hub), 'destroy removes every namespace of the lab')
})
