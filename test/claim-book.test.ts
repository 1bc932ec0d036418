import t from 'tap'
import { ClaimBook } from '../daemon/claim-book.ts'
import { claimSpec } from '../protocol/claim.ts'

const ctx = (now: number, extra = {}) => ({ now, state: 'idle' as const, allow: [], version: 1, supportedVersion: 1, ...extra })

t.test('one coordinator at a time', async t => {
  const b = new ClaimBook()
  const a = b.claim('A', 'r1', 5000, [], ctx(0))
  t.ok(a.ok && a.fresh)
  const other = b.claim('B', 'r2', 5000, [], ctx(10))
  t.same(other.ok ? null : other.code, 'BUSY')
  const again = b.claim('A', 'r1', 5000, [], ctx(20))
  t.ok(again.ok && !again.fresh, 'idempotent for the holder')
  t.same(b.claim('A', 'r9', 5000, [], ctx(30)).ok, false, 'same coordinator, other run: busy')
  t.equal(b.renew('B', 'r2', 40).ok, false, 'only the holder renews')
  t.ok(b.renew('A', 'r1', 4000).ok)
  t.equal(b.expire(8999), undefined, 'renewed lease still live')
  t.equal(b.expire(9000)?.coordinator, 'A', 'expires at renew + lease')
  t.ok(b.claim('B', 'r2', 5000, [], ctx(9001)).ok, 'free again')
  t.equal(b.release('A', 'r1'), undefined, 'A cannot release B\'s claim')
  t.equal(b.release('B', 'r2')?.coordinator, 'B')
})

t.test('a fresh claim remembers its middleware; the holder\'s renewing claim keeps the first', async t => {
  const b = new ClaimBook()
  const a = b.claim('A', 'r', 5000, [], ctx(0, { middleware: 'boinc' }))
  t.equal(a.ok && a.claim.middleware, 'boinc')
  const again = b.claim('A', 'r', 5000, [], ctx(10, { middleware: 'native' }))
  t.equal(again.ok && again.claim.middleware, 'boinc')
})

t.test('refusal reasons', async t => {
  const b = new ClaimBook()
  const code = (d: ReturnType<ClaimBook['claim']>) => d.ok ? 'ok' : d.code
  t.equal(code(b.claim('A', 'r', 5000, [], ctx(0, { state: 'owner' }))), 'OWNER')
  t.equal(code(b.claim('A', 'r', 5000, [], ctx(0, { state: 'coordinator' }))), 'BUSY')
  t.equal(code(b.claim('A', 'r', 5000, [], ctx(0, { version: 2 }))), 'VERSION')
  t.equal(code(b.claim('A', 'r', 5000, [], ctx(0, { allow: ['B'] }))), 'POLICY')
  t.equal(code(b.claim('B', 'r', 5000, [], ctx(0, { allow: ['B'] }))), 'ok')
})

t.test('claim message schema', async t => {
  const ok = (m: unknown) => claimSpec.request(m)
  t.ok(ok({ op: 'claim', v: 1, run: 'run-1', leaseMs: 5000 }))
  t.ok(ok({ op: 'renew', run: 'run-1' }))
  t.notOk(ok({ op: 'claim', v: 1, run: 'run-1', leaseMs: 10 }), 'lease too short')
  t.notOk(ok({ op: 'claim', v: 1, run: '../x', leaseMs: 5000 }), 'run id with a path')
  t.notOk(ok({ op: 'claim', run: 'r', leaseMs: 5000 }), 'no version')
  t.notOk(ok({ op: 'steal', run: 'r' }), 'unknown op')
  t.notOk(ok({ op: 'renew', run: 'r', extra: true }), 'unknown field')
  t.notOk(ok({ op: 'claim', v: 1, run: 'r', leaseMs: 5000, addrs: Array(17).fill('/ip4/1.2.3.4/tcp/1') }), 'too many addresses')
  t.ok(ok({ op: 'claim', v: 1, run: 'r', leaseMs: 5000, middleware: 'boinc' }), 'a claim may name its middleware')
  t.ok(ok({ op: 'claim', v: 1, run: 'r', leaseMs: 5000, middleware: 'condor' }), 'any token: whether the node has it is the daemon\'s answer')
  t.notOk(ok({ op: 'claim', v: 1, run: 'r', leaseMs: 5000, middleware: 'Condor!' }), 'not a token')
  t.notOk(ok({ op: 'claim', v: 1, run: 'r', leaseMs: 5000, middleware: 'x'.repeat(33) }), 'too long')
  t.notOk(ok({ op: 'renew', run: 'r', middleware: 'boinc' }), 'only a claim names it')
})
