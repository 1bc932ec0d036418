// Two-sided matching (issue 10): a node's custom attributes (--attr) and START policy
// (--start), ClassAd's UNDEFINED and meta-equals in expressions, the TXT round trip of
// attributes, the claim offer carrying them, and the run core honouring both sides.
import t from 'tap'
import { parseExpr, evalBool, evalNumber, explainFailure, lookup } from '../protocol/expr.ts'
import { parseAttr, parseAttrs, parseStart, checkStart, startAttrs, nodeAttrs, refusalMessage, isStartRefusal, START_REFUSED } from '../protocol/start.ts'
import { encodeTxt, decodeTxt, MAX_TXT_TOTAL, type NodeAd } from '../protocol/txt.ts'
import { claimSpec } from '../protocol/claim.ts'
import { unranResult } from '../protocol/jobs.ts'
import { jobFits, whyNotFits, summariseMisfits } from '../coordinator/core/feasibility.ts'
import { parseDag } from '../coordinator/dag-json.ts'
import { RunCore } from '../coordinator/core/run-core.ts'
import { attrs as base, ok } from './helpers/core-fixtures.ts'

const matlab = { ...base, extra: { hasmatlab: true, site: 'lab-b' } }

t.test('--attr: names, typed values, refusals', async t => {
  t.same(parseAttr('HasMatlab=true'), ['HasMatlab', true])
  t.same(parseAttr('Site="lab-b"'), ['Site', 'lab-b'], 'a quoted string')
  t.same(parseAttr('Site=lab-b'), ['Site', 'lab-b'], 'an unquoted one')
  t.same(parseAttr("Site='x y'"), ['Site', 'x y'])
  t.same(parseAttr('Gpus=2'), ['Gpus', 2])
  t.same(parseAttr('Speed=-1.5e2'), ['Speed', -150])
  t.same(parseAttr('Flag=FALSE'), ['Flag', false])
  t.same(parseAttr('Num="12"'), ['Num', '12'], 'a quoted number stays a string')
  t.same(parseAttr('Empty='), ['Empty', ''])
  t.throws(() => parseAttr('HasMatlab'), /KEY=VALUE expected/)
  t.throws(() => parseAttr('ram=3'), /"ram" is not an attribute name \(ram is built in/)
  t.throws(() => parseAttr('hasMatlab=true'), /a capital letter first/)
  t.throws(() => parseAttr('Has-Matlab=true'), /not an attribute name/)
  t.throws(() => parseAttr('RequestMemory=4'), /the job's, not the machine's/)
  t.throws(() => parseAttr(`Long=${'x'.repeat(65)}`), /at most 64/)
  t.throws(() => parseAttrs(['A=1', 'a=2'].map(s => s.replace(/^a/, 'A'))), /given twice/)
  t.throws(() => parseAttrs(Array.from({ length: 33 }, (_, i) => `A${i}=1`)), /at most 32/)
  t.same(parseAttrs(['HasMatlab=true', 'Site="lab-b"']), { HasMatlab: true, Site: 'lab-b' })
  t.same(nodeAttrs({ ...base, attrs: { HasMatlab: true } }).extra, { hasmatlab: true }, 'looked up by lower-case name')
})

t.test('expressions: custom attributes, UNDEFINED, =?= and =!=, caseless string ==', async t => {
  const yes = (s: string, a: any = matlab): boolean => evalBool(parseExpr(s), a)
  t.ok(yes('HasMatlab == true'))
  t.ok(yes('HASMATLAB =?= true'), 'names ignore case')
  t.notOk(yes('HasMatlab == true', base), 'undefined == true is UNDEFINED: it does not hold')
  t.notOk(yes('!(HasMatlab == true)', base), '!UNDEFINED is UNDEFINED, not true')
  t.notOk(yes('HasMatlab =?= true', base))
  t.ok(yes('HasMatlab =!= true', base), 'meta-not-equals is never UNDEFINED')
  t.ok(yes('Nope =?= Other', base), 'UNDEFINED =?= UNDEFINED')
  t.notOk(yes('false && Nope', base))
  t.ok(yes('true || Nope', base), 'true || UNDEFINED is true')
  t.notOk(yes('Nope || false', base))
  t.notOk(yes('Nope > 3 ? true : true', base), 'a ternary on UNDEFINED is UNDEFINED')
  t.ok(yes('Site == "LAB-B"'), 'string == ignores case')
  t.notOk(yes('Site =?= "LAB-B"'), '=?= does not')
  t.ok(yes('os == "Linux"'), 'on built-in attributes too')
  t.equal(evalNumber(parseExpr('Nope * 2'), base), -Number.MAX_VALUE, 'an UNDEFINED rank ranks last')
  t.throws(() => parseExpr('gpus > 1'), /unknown attribute "gpus" .*custom ones, from `bgrid daemon --attr`, start with a capital letter/, 'a lower-case typo is still caught')
  t.same(explainFailure(parseExpr('cores >= 1 && HasMatlab =?= true'), base), ['HasMatlab =?= true (HasMatlab=undefined)'])
  t.same(explainFailure(parseExpr('Site == "x"'), matlab), ['Site == "x" (Site="lab-b")'])
})

t.test('START: parsed at daemon start, evaluated over the job, its submitter and the time of day', async t => {
  t.throws(() => parseStart('RequestMemory <='), /--start: .* at column 17/)
  t.throws(() => parseStart('requestMemory < 3'), /unknown attribute "requestMemory"/)
  t.throws(() => parseStart('x'.repeat(600)), /at most 512/)
  const s = parseStart('RequestMemory <= 512')
  t.same(checkStart(s, base, { ram: 256, cores: 1, disk: 0 }), { ok: true })
  const no = checkStart(s, base, { ram: 1024, cores: 1, disk: 0 })
  t.same(no, { ok: false, why: '`RequestMemory <= 512` (RequestMemory=1024)', clauses: ['`RequestMemory <= 512` (RequestMemory=1024)'] })
  t.ok(checkStart(undefined, base, { ram: 1e6, cores: 64, disk: 0 }).ok, 'no START: anything')
  const owner = parseStart('Owner == "12D3KooWalice" || RequestCpus <= 1')
  t.ok(checkStart(owner, base, { ram: 0, cores: 4, disk: 0, owner: '12D3KooWalice' }).ok)
  t.notOk(checkStart(owner, base, { ram: 0, cores: 4, disk: 0, owner: '12D3KooWbob' }).ok)
  t.notOk(checkStart(owner, base, { ram: 0, cores: 4, disk: 0 }).ok, 'an unsigned claim has no Owner: UNDEFINED refuses')
  t.ok(checkStart(parseStart('RequestCpus == 1'), base, { ram: 0, cores: 0, disk: 0 }).ok, 'a job of 0 cores asks for one')
  const night = parseStart('ClockHour < 8 || ClockHour >= 19')
  t.ok(checkStart(night, base, { ram: 0, cores: 1, disk: 0 }, new Date(2026, 0, 1, 22, 30)).ok)
  t.notOk(checkStart(night, base, { ram: 0, cores: 1, disk: 0 }, new Date(2026, 0, 1, 12, 0)).ok)
  t.equal(startAttrs(base, { ram: 0, cores: 1, disk: 0 }, new Date(2026, 0, 1, 1, 5)).extra?.clockmin, 65, 'ClockMin: minutes since midnight')
  t.ok(checkStart(parseStart('HasMatlab && ram >= RequestMemory && RequestDisk < 10'), matlab, { ram: 100, cores: 1, disk: 5 }).ok, 'the node\'s own attributes too')
  const msg = refusalMessage(s, (no as any).why)
  t.ok(msg.startsWith(START_REFUSED) && isStartRefusal(msg))
  t.equal(msg, 'refused by the node\'s START policy: RequestMemory <= 512: `RequestMemory <= 512` (RequestMemory=1024)')
  t.notOk(isStartRefusal('inputs: gone'))
})

const ad: NodeAd = {
  v: 1, state: 'idle', peer: '12D3KooWP9mSr9pKDnrgzrDbkurTw2VZVaUULsmXfs99pqJc3nkR', port: 4001,
  cores: 8, mhz: 2596, ram: 15000, disk: 80000, load: 0.13, cost: 0.5, arch: 'x64', os: 'linux'
}

t.test('TXT: one a.KEY entry per attribute, typed; START when it fits; decoding tolerant', async t => {
  const withAttrs = { ...ad, attrs: { HasMatlab: true, Site: 'lab "b"', Gpus: 2 }, start: 'RequestMemory <= 512' }
  const txt = encodeTxt(withAttrs)
  t.equal(txt['a.HasMatlab'], 'true')
  t.equal(txt['a.Site'], '"lab \\"b\\""', 'strings JSON-quoted')
  t.equal(txt['a.Gpus'], '2')
  t.equal(txt.start, 'RequestMemory <= 512')
  const back = decodeTxt(txt)
  t.same(back.ok && back.ad, withAttrs, 'round trip')
  const bad = decodeTxt({ ...txt, 'a.bad-name': '1', 'a.lower': '1', 'a.Broken': '"unterminated', 'a.Nan': 'abc' })
  t.same(bad.ok && bad.ad.attrs, withAttrs.attrs, 'bad entries dropped, the node kept')
  t.same(decodeTxt(encodeTxt(ad)).ok && (decodeTxt(encodeTxt(ad)) as any).ad.attrs, undefined, 'none: no entry')
  // more than fits: the record stays within its limits, the rest dropped (the offer carries all)
  const many = Object.fromEntries(Array.from({ length: 32 }, (_, i) => [`Attr${i}`, 'v'.repeat(60)]))
  const big = encodeTxt({ ...ad, attrs: many, start: 'x'.repeat(300) })
  let total = 0
  for (const [k, v] of Object.entries(big)) { t.ok(Buffer.byteLength(`${k}=${v}`) <= 255); total += Buffer.byteLength(`${k}=${v}`) + 1 }
  t.ok(total <= MAX_TXT_TOTAL, `${total} bytes`)
  t.equal(big.start, undefined, 'a START too long for one string is not advertised')
  t.ok(Object.keys(big).some(k => k.startsWith('a.')) && Object.keys(big).filter(k => k.startsWith('a.')).length < 32, 'as many attributes as fit')
})

t.test('the claim offer carries attrs and start, bounded', async t => {
  const offer = { cores: 2, mhz: 1, ram: 1, disk: 1, load: 0, cost: 0, arch: 'x64', os: 'linux' }
  t.ok(claimSpec.reply({ ok: true, leaseMs: 1, state: 'worker', offer: { ...offer, attrs: { HasMatlab: true, Site: 'b', N: 1 }, start: 'RequestMemory <= 512' } }))
  t.notOk(claimSpec.reply({ ok: true, leaseMs: 1, state: 'worker', offer: { ...offer, attrs: { 'bad name': 1 } } }), 'names checked')
  t.notOk(claimSpec.reply({ ok: true, leaseMs: 1, state: 'worker', offer: { ...offer, attrs: { A: { nested: 1 } } } }), 'values are scalars')
  t.notOk(claimSpec.reply({ ok: true, leaseMs: 1, state: 'worker', offer: { ...offer, attrs: { A: 'x'.repeat(65) } } }), 'values bounded')
  t.notOk(claimSpec.reply({ ok: true, leaseMs: 1, state: 'worker', offer: { ...offer, start: 'x'.repeat(513) } }), 'START bounded')
})

t.test('feasibility: both sides have a say, and each refusal is explained', async t => {
  const start = { expr: parseStart('RequestMemory <= 512') }
  const small = { cores: 1, ram: 256, requirements: null }
  const big = { cores: 1, ram: 1024, requirements: null }
  const node = { name: 's', slots: 2, attrs: base, start }
  t.ok(jobFits(small, node))
  t.notOk(jobFits(big, node), 'the node refuses the 1 GiB job')
  t.same(whyNotFits(big, node), ['the node\'s START `RequestMemory <= 512` (RequestMemory=1024)'])
  const wantsMatlab = { cores: 1, ram: 0, requirements: parseExpr('HasMatlab =?= true') }
  t.ok(jobFits(wantsMatlab, { slots: 1, attrs: matlab }))
  t.notOk(jobFits(wantsMatlab, { slots: 1, attrs: base }))
  t.match(summariseMisfits(big, [node, { ...node, name: 't' }]), [/^the node's START `RequestMemory <= 512` fails on 2 node\(s\): s \(RequestMemory=1024\), t/])
})

t.test('the run core: a START the coordinator knows keeps the job away; a refusal reported by a node is no failure of the job', async t => {
  const dag = parseDag({ jobs: [{ id: 'big', cmd: ['x'], ram: 1024, retries: 0 }, { id: 'small', cmd: ['x'], ram: 256 }] }, '/tmp/x.json', { checkFiles: false })
  const core = new RunCore(dag, { coordinatorId: 'C', prefetch: false, nonce: 'n' })
  core.addWorker({ id: 'S', slots: 2, attrs: base, addrs: [], start: { expr: parseStart('RequestMemory <= 512') } })
  core.replan(); core.promote()
  t.same(core.assign('S', 2, 0).map(a => a.job), ['small'], 'only the job its START lets in')
  // a node whose START the coordinator could not read refuses the job itself
  core.addWorker({ id: 'U', slots: 2, attrs: base, addrs: [] })
  const [b] = core.assign('U', 2, 0)
  t.equal(b.job, 'big')
  t.equal(core.complete('U', unranResult(b.attempt, 'lost', `${START_REFUSED}: RequestMemory <= 100: ...`)), 'ready', 'back to ready, not failed (retries: 0)')
  t.equal(core.jobs.get('big')!.failures, 0)
  t.same(core.assign('U', 2, 0), [], 'never to that node again, even with no other')
  core.addWorker({ id: 'P', slots: 2, attrs: base, addrs: [] })
  const [b2] = core.assign('P', 2, 0)
  t.equal(b2.job, 'big')
  t.equal(core.complete('P', ok(b2.attempt)), 'done')
})

t.test('the worker side: a job the node\'s START refuses is not run, and goes back as refused', async t => {
  const { WorkerSession } = await import('../daemon/worker-session.ts')
  const start = parseStart('RequestMemory <= 512')
  const logged: any[] = []
  const log: any = { info: (msg: string, f: any) => logged.push({ msg, ...f }), debug: () => {}, warn: () => {}, error: () => {}, child: () => log }
  const session = new WorkerSession({
    node: { peerId: { toString: () => 'me' } } as any,
    claim: { coordinator: 'C', submitter: 'S', run: 'r', leaseMs: 6000, grantedAt: 0, expiresAt: 6000, addrs: [] },
    store: { has: () => true } as any,
    containment: { forRun: async () => await new Promise(() => {}) } as any,
    slots: 1,
    log,
    onDone: () => {},
    admit: (job) => {
      const v = checkStart(start, base, { ram: job.ram, cores: job.cores, disk: job.disk, owner: 'S' })
      return v.ok ? undefined : refusalMessage(start, v.why)
    }
  })
  const job = (attempt: string, ram: number): any => ({ attempt, job: attempt, cmd: ['true'], env: {}, timeoutMs: 0, cores: 1, ram, disk: 0, network: true, inputs: [], outputs: [] })
  ;(session as any).launch(job('big', 1024))
  ;(session as any).launch(job('small', 256))
  const results = (session as any).results
  t.equal(results.length, 1)
  t.equal(results[0].attempt, 'big')
  t.equal(results[0].status, 'lost')
  t.ok(isStartRefusal(results[0].error), results[0].error)
  t.notOk(session.running.has('big'), 'not run')
  t.ok(session.running.has('small'), 'the one it lets in is taken')
  t.equal(logged[0].msg, 'job refused by the START policy')
})

t.test('a START policy from a peer cannot reach Object.prototype: no crash, no inherited "attribute"', async t => {
  for (const src of ['__proto__(1)', 'constructor(1) > 0', 'valueOf() == 1', '__defineSetter__(1, 2)', 'hasOwnProperty(1)']) {
    t.throws(() => parseStart(src), { code: 'INVALID_CONFIG', message: /unknown function/ }, `${src}: refused when parsed`)
  }
  // a custom attribute the node does not have is UNDEFINED, even named like a prototype member
  const node = nodeAttrs({ cores: 2, mhz: 2000, ram: 4000, disk: 1000, load: 0, cost: 0, os: 'linux', arch: 'x64' } as any)
  t.equal(lookup(node, 'Constructor'), undefined, 'Constructor is UNDEFINED, not Object')
  t.equal(lookup({ ...node, extra: { hasmatlab: true } }, 'HasMatlab'), true, 'an attribute it has is found')
})
