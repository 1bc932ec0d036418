import t from 'tap'
import { encodeTxt, decodeTxt, type NodeAd } from '../protocol/txt.ts'

const ad: NodeAd = {
  v: 1, state: 'idle', peer: '12D3KooWP9mSr9pKDnrgzrDbkurTw2VZVaUULsmXfs99pqJc3nkR', port: 4001,
  cores: 8, mhz: 2596, ram: 15000, disk: 80000, load: 0.126, cost: 0.5, arch: 'x64', os: 'linux'
}

t.test('round trip', async t => {
  const txt = encodeTxt(ad)
  t.equal(txt.load, '0.13', 'load rounded to 2 decimals')
  const back = decodeTxt(txt)
  t.ok(back.ok)
  if (back.ok) t.same(back.ad, { ...ad, load: 0.13 })
  const claimed = decodeTxt(encodeTxt({ ...ad, state: 'worker', coord: ad.peer }))
  t.equal(claimed.ok && claimed.ad.coord, ad.peer)
  // a worker says which run it serves; a private grid's node its key's fingerprint
  const busy = decodeTxt(encodeTxt({ ...ad, state: 'worker', coord: ad.peer, run: 'montage-20261127052101-ab12', grid: '0a1b2c3d4e5f' }))
  t.same(busy.ok && [busy.ad.run, busy.ad.grid], ['montage-20261127052101-ab12', '0a1b2c3d4e5f'])
  const bad = decodeTxt({ ...encodeTxt(ad), run: '../etc', grid: 'not-hex' })
  t.same(bad.ok && [bad.ad.run, bad.ad.grid], [undefined, undefined], 'malformed run or grid values are dropped, the ad kept')
})

t.test('every string within 255 bytes, whole record small', async t => {
  const txt = encodeTxt({ ...ad, coord: ad.peer, slots: 8, run: 'r'.repeat(64), grid: 'f'.repeat(12) })
  let total = 0
  for (const [k, v] of Object.entries(txt)) { t.ok(`${k}=${v}`.length <= 255, k); total += k.length + v.length + 2 }
  t.ok(total < 1300, `${total} bytes`)
  t.throws(() => encodeTxt({ ...ad, arch: 'x'.repeat(300) }), /max 255/)
})

t.test('bad records are rejected with a reason, unknown keys ignored', async t => {
  const txt = encodeTxt(ad)
  t.same(decodeTxt({ ...txt, v: '2' }), { ok: false, reason: 'unsupported version v=2' })
  t.same(decodeTxt({ ...txt, state: 'busy' }), { ok: false, reason: 'bad state=busy' })
  t.same(decodeTxt({ ...txt, peer: 'not a peer' }), { ok: false, reason: 'bad peer id' })
  t.same(decodeTxt({ ...txt, ram: '-5' }), { ok: false, reason: 'bad ram=-5' })
  t.same(decodeTxt({ ...txt, cores: '2.5' }), { ok: false, reason: 'bad cores=2.5' })
  t.same(decodeTxt({ ...txt, p2p: '70000' }), { ok: false, reason: 'bad p2p=70000' })
  const { mhz: _drop, ...noMhz } = txt
  t.same(decodeTxt(noMhz), { ok: false, reason: 'missing mhz' })
  t.equal(decodeTxt({ ...txt, future: 'x' }).ok, true)
  t.equal(decodeTxt(undefined).ok, false)
})

t.test('gflops: one core\'s speed, 2 decimals, optional, a bad value dropped and the node kept', async t => {
  const txt = encodeTxt({ ...ad, gflops: 3.14159 })
  t.equal(txt.gflops, '3.14', 'encoded with 2 decimals')
  const back = decodeTxt(txt)
  t.equal(back.ok && back.ad.gflops, 3.14)
  const old = decodeTxt(encodeTxt(ad))
  t.ok(old.ok, 'an older daemon without gflops is still a node')
  t.equal(old.ok && 'gflops' in old.ad, false, 'and has no gflops')
  t.notOk('gflops' in encodeTxt(ad), 'nothing sent when not measured')
  for (const badValue of ['-1', 'fast', '', 'NaN', 'Infinity']) {
    const bad = decodeTxt({ ...txt, gflops: badValue })
    t.ok(bad.ok, `gflops=${badValue}: the node is kept`)
    t.equal(bad.ok && bad.ad.gflops, undefined, `gflops=${badValue}: the value dropped`)
  }
  t.equal(decodeTxt({ ...txt, gflops: '0' }).ok && (decodeTxt({ ...txt, gflops: '0' }) as any).ad.gflops, 0, 'zero is a value')
})
