// When a node tells the LAN again: changes coordinators act on go out at once, drifting
// resources only when they moved enough, at most every RESOURCE_READVERTISE_MS.
import t from 'tap'
import { announcement, RESOURCE_READVERTISE_MS } from '../daemon/advert-policy.ts'
import type { NodeAd } from '../protocol/txt.ts'

const base: NodeAd = { v: 1, state: 'idle', peer: '12D3KooWabc', port: 4001, cores: 4, mhz: 2600, ram: 8000, disk: 50_000, load: 0.1, cost: 0, arch: 'x64', os: 'linux' } as NodeAd
const later = RESOURCE_READVERTISE_MS

t.test('the first advertisement, and any change of state, run or what jobs are matched on, are changes: told at once, and repeated', async t => {
  t.equal(announcement(undefined, base, 0, 0), 'change', 'nothing told yet')
  t.equal(announcement(base, { ...base, state: 'worker', run: 'r1', coord: '12D3KooWx' } as NodeAd, 0, 1), 'change', 'idle to worker, 1 ms later')
  t.equal(announcement(base, { ...base, prio: 5 } as NodeAd, 0, 1), 'change', 'a priority')
  t.equal(announcement(base, { ...base, cost: 2 }, 0, 1), 'change', 'a cost')
  t.equal(announcement(base, { ...base, slots: 2 } as NodeAd, 0, 1), 'change', 'free slots')
})

t.test('resource noise is not announced; a real move is a resource update, told once, when the last announcement is old enough', async t => {
  t.equal(announcement(base, { ...base, load: 0.3 }, 0, later * 10), 'none', 'load 0.1 to 0.3: noise')
  t.equal(announcement(base, { ...base, ram: 7800 }, 0, later * 10), 'none', 'RAM 8000 to 7800 MiB: noise')
  t.equal(announcement(base, { ...base, disk: 49_500 }, 0, later * 10), 'none', 'disk down 500 MiB: noise')
  t.equal(announcement(base, { ...base, load: 0.9 }, 0, later), 'resources', 'load 0.1 to 0.9, 30 s on: told')
  t.equal(announcement(base, { ...base, load: 0.9 }, 0, later - 1), 'none', 'but not within 30 s of the last')
  t.equal(announcement(base, { ...base, ram: 2000 }, 0, later), 'resources', 'RAM 8000 to 2000 MiB: told')
  t.equal(announcement(base, { ...base, disk: 10_000 }, 0, later), 'resources', 'disk 50 to 10 GiB: told')
  t.equal(announcement(base, { ...base }, 0, later * 100), 'none', 'nothing changed: never')
})
