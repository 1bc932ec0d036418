import t from 'tap'
import { DEFAULT_IDLE_POLICY as cfg, initialPolicyState, stepIdlePolicy, type PolicyState } from '../daemon/idle-policy.ts'

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
