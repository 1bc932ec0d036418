import t from 'tap'
import { DEFAULT_IDLE_POLICY as cfg, initialPolicyState, stepIdlePolicy, humanSeconds, type PolicyState } from '../daemon/idle-policy.ts'

const run = (samples: Array<[number, number, number]>, start = initialPolicyState(0)): { s: PolicyState, log: boolean[], vacate: boolean[] } => {
  let s = start
  const log: boolean[] = []
  const vacate: boolean[] = []
  for (const [sec, ownerLoad, userIdleSec] of samples) {
    const d = stepIdlePolicy(s, { now: sec * 1000, ownerLoad, userIdleSec }, cfg)
    s = d.state
    log.push(s.available)
    vacate.push(d.vacate)
  }
  return { s, log, vacate }
}

t.test('offered only after the owner has been away and the load low for startIdleSec', async t => {
  const quiet = Array.from({ length: 20 }, (_, i) => [i * 10, 0.05, 1000] as [number, number, number])
  const r = run(quiet)
  const firstAvailable = r.log.indexOf(true)
  t.equal(firstAvailable, 18, 'available at t=180 s, not before')
})

t.test('headless machine (no keyboard info) with low load becomes available', async t => {
  const r = run(Array.from({ length: 20 }, (_, i) => [i * 10, 0.1, Infinity] as [number, number, number]))
  t.equal(r.s.available, true)
})

t.test('keyboard use withdraws the node at once; load must stay high for suspendLoadSec', async t => {
  const up = run(Array.from({ length: 20 }, (_, i) => [i * 10, 0, 1000] as [number, number, number]))
  t.equal(up.s.available, true)
  const key = stepIdlePolicy(up.s, { now: 200_000, ownerLoad: 0, userIdleSec: 5 }, cfg)
  t.equal(key.state.available, false, 'owner typed 5 s ago')
  t.match(key.reason, /owner active/)
  // a short CPU burst by the owner is tolerated (hysteresis)
  let s = up.s
  for (let sec = 200; sec <= 300; sec += 10) s = stepIdlePolicy(s, { now: sec * 1000, ownerLoad: 0.9, userIdleSec: 1000 }, cfg).state
  t.equal(s.available, true, '100 s of high load is tolerated')
  for (let sec = 310; sec <= 330; sec += 10) s = stepIdlePolicy(s, { now: sec * 1000, ownerLoad: 0.9, userIdleSec: 1000 }, cfg).state
  t.equal(s.available, false, '120 s of high load withdraws the node')
})

t.test('a load spike resets the quiet period', async t => {
  const samples: Array<[number, number, number]> = []
  for (let sec = 0; sec <= 170; sec += 10) samples.push([sec, 0.1, 1000])
  samples.push([180, 0.6, 1000])
  for (let sec = 190; sec <= 350; sec += 10) samples.push([sec, 0.1, 1000])
  const r = run(samples)
  t.equal(r.log.indexOf(true), -1, 'not yet: quiet again only since t=190 s')
  const d = stepIdlePolicy(r.s, { now: 370_000, ownerLoad: 0.1, userIdleSec: 1000 }, cfg)
  t.equal(d.state.available, true, 'quiet for 180 s since the spike')
})

t.test('suspended longer than maxSuspendSec asks to vacate', async t => {
  const s = { ...initialPolicyState(0) }
  t.equal(stepIdlePolicy(s, { now: 599_000, ownerLoad: 0.9, userIdleSec: 1 }, cfg).vacate, false)
  t.equal(stepIdlePolicy(s, { now: 600_000, ownerLoad: 0.9, userIdleSec: 1 }, cfg).vacate, true)
})

t.test('every decision says why in words, with the numbers', async t => {
  const at = (sec: number, ownerLoad: number, userIdleSec: number, s = initialPolicyState(0)) => stepIdlePolicy(s, { now: sec * 1000, ownerLoad, userIdleSec }, cfg)
  t.equal(humanSeconds(40), '40 s')
  t.equal(humanSeconds(180), '3 min')
  t.equal(humanSeconds(150), '2 min 30 s')
  t.equal(humanSeconds(3900), '1 h 5 min')
  const active = at(10, 0.05, 40)
  t.equal(active.cause, 'active')
  t.equal(active.reason, 'owner active 40 s ago (keyboard/mouse; offered after 3 min idle)')
  // the owner away, but their CPU load too high since t=0
  let s = initialPolicyState(0)
  for (let sec = 0; sec <= 180; sec += 10) s = at(sec, 0.45, 1000, s).state
  const busy = at(190, 0.45, 1000, s)
  t.equal(busy.cause, 'load')
  t.equal(busy.reason, 'owner CPU load 0.45 > 0.3 for 3 min 10 s (offered after 3 min at or below it)')
  // load low again: a quiet period to wait out
  const settling = at(250, 0.1, 1000, busy.state)
  t.equal(settling.cause, 'settling')
  t.equal(settling.reason, 'owner away 16 min 40 s, CPU load 0.10 <= 0.3 for 0 s (offered after 3 min)')
  let up = settling.state
  for (let sec = 260; sec <= 420; sec += 10) up = at(sec, 0.1, 1000, up).state
  t.equal(up.available, false, 'not before 3 min of quiet')
  const offered = at(430, 0.1, 1000, up)
  t.equal(offered.state.available, true)
  t.equal(offered.cause, 'idle')
  t.equal(offered.reason, 'owner away 16 min 40 s, CPU load 0.10 <= 0.3 for 3 min')
  t.equal(at(450, 0.1, Infinity, offered.state).reason, 'no keyboard/mouse activity seen, CPU load 0.10', 'a headless machine says so')
  // withdrawn: keyboard, or sustained load
  t.equal(at(450, 0.1, 5, offered.state).reason, 'owner active 5 s ago (keyboard/mouse; offered after 3 min idle)')
  let hot = offered.state
  for (let sec = 450; sec < 570; sec += 10) hot = at(sec, 0.8, 1000, hot).state
  const back = at(570, 0.8, 1000, hot)
  t.equal(back.state.available, false)
  t.equal(back.reason, 'owner CPU load 0.80 >= 0.5 for 2 min (offered after 3 min at or below 0.3)')
})
