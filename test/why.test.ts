// Queue semantics and the answer to "why", pure: a job waits for a worker that can run
// it, fails only when no node seen ever could (naming the clause), nothing is handed
// out while the run is held for workers.min, and every node seen has one cause.
import t from 'tap'
import { parseDag } from '../coordinator/dag-json.ts'
import { RunCore } from '../coordinator/core/run-core.ts'
import { parseExpr } from '../protocol/expr.ts'
import { jobFits, whyNotFits, describeNeeds, summariseMisfits } from '../coordinator/core/feasibility.ts'
import { accountNodes, summariseAccounts } from '../coordinator/why.ts'
import type { NodeAd } from '../protocol/txt.ts'
import type { Candidate } from '../coordinator/core/select.ts'

const attrs = (cost: number, ram = 8000): any => ({ ram, cores: 2, mhz: 2500, disk: 50000, load: 0, cost, os: 'linux', arch: 'x64' })

function twoJobs (): RunCore {
  const dag = parseDag({
    jobs: [
      { id: 'plain', cmd: ['x'] },
      { id: 'dear', cmd: ['x'], requirements: 'cost >= 5' }
    ]
  }, '/tmp/x.json', { checkFiles: false })
  const core = new RunCore(dag, { coordinatorId: 'C', prefetch: true, nonce: 'n' })
  core.addWorker({ id: 'W1', slots: 2, attrs: attrs(0), addrs: [] })
  core.replan()
  core.promote()
  return core
}

t.test('a job no claimed worker can run waits (it is not failed), and runs once one that can is claimed', async t => {
  const core = twoJobs()
  t.same(core.assign('W1', 4, 0).map(a => a.job), ['plain'])
  t.equal(core.jobs.get('dear')?.state, 'ready', 'still waiting')
  t.match(core.whyWaiting('dear'), /waits for a worker with 1 core, `cost >= 5`: none claimed has it/)
  t.same(core.unplaceable().map(u => u.job), ['dear'])
  t.same(core.failNeverPlaceable([{ name: 'dear-node', slots: 4, attrs: attrs(5) }]), [], 'a node seen can run it: it keeps waiting')
  core.addWorker({ id: 'W2', slots: 2, attrs: attrs(5), addrs: [] })
  core.replan()
  t.same(core.assign('W2', 4, 0).map(a => a.job), ['dear'])
})

t.test('a job no node seen can run fails, naming the clause and the values; its descendants are skipped', async t => {
  const core = twoJobs()
  const failed = core.failNeverPlaceable([{ name: 'n1', slots: 2, attrs: attrs(0) }, { name: 'n2', slots: 2, attrs: attrs(1) }])
  t.same(failed, ['dear'])
  const reason = core.jobs.get('dear')?.reason ?? ''
  t.match(reason, /unplaceable: no node seen on the network can run it \(it needs 1 core, `cost >= 5`\): `cost >= 5` fails on 2 node\(s\): n1 \(cost=0\), n2 \(cost=1\)/)
  t.notMatch(reason, /MiB/, 'no word of RAM it did not ask for')
  t.equal(core.jobs.get('plain')?.state, 'ready', 'the job a node can run is untouched')
})

t.test('held: nothing is handed out nor prefetched until the run has its workers.min', async t => {
  const core = twoJobs()
  core.held = true
  t.same(core.assign('W1', 4, 0), [])
  t.same(core.hintsFor('W1'), [])
  t.match(core.whyWaiting('plain'), /workers\.min/)
  core.held = false
  t.same(core.assign('W1', 4, 0).map(a => a.job), ['plain'])
})

t.test('feasibility says each unmet need with the node\'s values', async t => {
  const spec = { cores: 4, ram: 2048, requirements: parseExpr('cost >= 5 && arch == "arm64"') }
  const node = { name: 'n', slots: 2, attrs: attrs(0, 1000) }
  t.notOk(jobFits(spec, node))
  t.same(whyNotFits(spec, node), ['cores >= 4 (cores=2)', 'ram >= 2048 MiB (ram=1000)', '`cost >= 5` (cost=0)', '`arch == "arm64"` (arch=x64)'])
  t.equal(describeNeeds(spec), '4 cores, 2048 MiB of RAM, `cost >= 5 && arch == "arm64"`')
  t.equal(describeNeeds({ cores: 1, ram: 0, requirements: null }), '1 core')
  t.same(summariseMisfits(spec, [node, { name: 'm', slots: 8, attrs: attrs(9, 4096) }]), [
    'cores >= 4 fails on 1 node(s): n (cores=2)', 'ram >= 2048 MiB fails on 1 node(s): n (ram=1000)',
    '`cost >= 5` fails on 1 node(s): n (cost=0)', '`arch == "arm64"` fails on 2 node(s): n (arch=x64), m (arch=x64)'
  ])
})

const PEER = (c: string): string => `12D3KooW${c.repeat(44)}`
const node = (name: string, ad: Partial<NodeAd>): Candidate => ({
  name, addresses: [], ad: { v: 1, state: 'idle', peer: PEER(name[0]), port: 1, cores: 2, mhz: 2000, ram: 4000, disk: 1000, load: 0, cost: 0, arch: 'x64', os: 'linux', ...ad }
})

t.test('every node seen is accounted for by one cause', async t => {
  const nodes = [
    node('a', {}), node('b', {}), node('c', { state: 'worker', coord: PEER('z'), run: 'other-20261127-abcd' }),
    node('d', { state: 'owner' }), node('e', { grid: '0123456789ab' }), node('f', { cost: 9 }), node('g', {}), node('h', {}), node('s', {})
  ]
  const refusals = new Map([[PEER('g'), { name: 'g', code: 'UNREACHABLE', message: 'no answer' }], [PEER('h'), { name: 'h', code: 'POLICY', message: 'not this submitter' }]])
  const accounts = accountNodes({ nodes, claimed: new Set([PEER('a')]), refusals, requirements: parseExpr('cost < 5'), self: PEER('s') })
  t.same(accounts.map(a => [a.name, a.cause]), [['a', 'claimed'], ['b', 'untried'], ['c', 'busy'], ['d', 'owner'], ['e', 'grid-key'], ['f', 'requirements'], ['g', 'unreachable'], ['h', 'refused']], 'one cause each; the coordinator\'s own node left out')
  const lines = summariseAccounts(accounts)
  t.same(lines, [
    '1 node(s) are idle and not claimed yet: b (idle, not claimed yet)',
    '1 node(s) busy with run other-20261127-abcd (coordinator …zzzzzzzz): c',
    '1 node(s) are in use by their owners: d',
    '1 node(s) are in a private grid: this run needs its grid key (--grid-key): e',
    '1 node(s) fail `cost < 5`: f (cost=9)',
    '1 node(s) could not be reached: g (UNREACHABLE: no answer)',
    '1 node(s) refused by the node\'s policy: h (not this submitter)'
  ])
  // the same node seen from a keyed run: the open one is told apart too
  const keyed = accountNodes({ nodes: [node('b', {}), node('e', { grid: '0123456789ab' }), node('x', { grid: 'ffffffffffff' })], claimed: new Set(), refusals: new Map(), requirements: null, gridId: '0123456789ab', self: PEER('s') })
  t.same(keyed.map(a => [a.name, a.cause, a.detail]), [
    ['b', 'grid-key', 'is in the open grid: this run was given a --grid-key it does not have'],
    ['e', 'untried', 'idle, not claimed yet'],
    ['x', 'grid-key', 'is in another private grid (another --grid-key)']
  ])
})
