// A misbehaving worker for tests (BOINC-style verification must catch it), never a
// switch of the shipped daemon: a real Daemon whose native and boinc drivers wrap the
// real one (WorkerSession) with an executor that lies about what the job did.
//   --cheat flip   every output of every ok result gets one byte flipped: the modified
//                  copy enters the store under its own hash, and that hash and size are
//                  reported, so the node serves the wrong bytes consistently (a real
//                  cheater does not get caught by a hash check)
//   --cheat flaky  a share (--fail-rate, default 0.3) of ok results is reported failed
//                  (exit 1, no outputs), drawn from a PRNG seeded with --seed
//   --cheat drop   a worker that goes silent: the attempts it starts are forgotten (never run,
//                  never reported) and it stops pulling, while its daemon keeps renewing
//                  the lease. Only the renewal's list of held attempts can reveal it.
//   --cheat hold   a worker that takes attempts and never starts them, while it goes on
//                  pulling and renewing: only the run's stall watch can free them.
// Every lie is logged (`cheated`, with job and attempt), so a test can count them.
// usage: node testbed/cheating-daemon.ts daemon --data-dir D --cheat flip|flaky|drop|hold [--fail-rate X] [--seed N]
//          [--port N] [--host IP] [--cost X] [--slots N] [--always-available] [--isolation auto|none]
//          [--sample ms] [--json-logs] [--grid-key F] [--allow-coordinator ID]... (as `bgrid daemon`)
import { parseArgs } from 'node:util'
import { readFile } from 'node:fs/promises'
import { Daemon, DEFAULT_DAEMON_CONFIG } from '../daemon/daemon.ts'
import { WorkerSession } from '../daemon/worker-session.ts'
import { runAttempt } from '../daemon/executor.ts'
import type { DriverContext, DriverFactory, WorkerDriver } from '../daemon/drivers/driver.ts'
import type { AttemptResult, FileResult } from '../protocol/jobs.ts'
import { createLogger, type Logger } from '../protocol/log.ts'
import type { BlobStore } from '../cache/store.ts'

const { values: o, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    cheat: { type: 'string' }, 'fail-rate': { type: 'string', default: '0.3' }, seed: { type: 'string', default: '1' },
    'data-dir': { type: 'string' }, port: { type: 'string', default: '0' }, host: { type: 'string', default: '0.0.0.0' },
    cost: { type: 'string', default: '0' }, slots: { type: 'string' }, 'always-available': { type: 'boolean', default: false },
    isolation: { type: 'string', default: 'auto' }, sample: { type: 'string', default: '2000' }, 'json-logs': { type: 'boolean', default: false },
    'grid-key': { type: 'string' }, 'allow-coordinator': { type: 'string', multiple: true, default: [] }
  }
})

function usage (why: string): never {
  process.stderr.write(`cheating-daemon: ${why}\nusage: node testbed/cheating-daemon.ts daemon --data-dir D --cheat flip|flaky|drop|hold [--fail-rate X] [--seed N] [bgrid daemon flags]\n`)
  process.exit(2)
}
if (positionals[0] !== 'daemon' || positionals.length !== 1) usage('the first word is `daemon`, as for bgrid')
if (o['data-dir'] === undefined) usage('--data-dir is required')
if (!['flip', 'flaky', 'drop', 'hold'].includes(String(o.cheat))) usage('--cheat flip, flaky, drop or hold')
if (o.isolation !== 'auto' && o.isolation !== 'none') usage('--isolation auto or none')
const failRate = Number(o['fail-rate'])
if (!(failRate >= 0 && failRate <= 1)) usage('--fail-rate is a fraction, 0..1')

/** mulberry32: a small seeded PRNG, so that a flaky run can be replayed */
function prng (seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let x = a
    x = Math.imul(x ^ (x >>> 15), x | 1)
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61)
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296
  }
}
const random = prng(Number(o.seed))

/** One byte of every output flipped (an empty output gets one): stored, and reported instead. */
async function flip (res: AttemptResult, store: BlobStore, run: string): Promise<AttemptResult> {
  const outputs: FileResult[] = []
  for (const out of res.outputs) {
    // test outputs are small: read whole
    const bytes = Buffer.from(await readFile(await store.openPath(out.hash)))
    const bad = bytes.length > 0 ? bytes : Buffer.from([0x0a])
    if (bytes.length > 0) bad[0] ^= 0x01
    outputs.push({ name: out.name, ...await store.putBuffer(bad, run) })
  }
  return { ...res, outputs }
}

function liar (log: Logger): DriverFactory {
  return (ctx: DriverContext): WorkerDriver => {
    const lie = async (r: Parameters<typeof runAttempt>[0], opts: Parameters<typeof runAttempt>[1]): Promise<AttemptResult> => {
      const res = await runAttempt(r, opts)
      if (res.status !== 'ok') return res
      const a = r.assignment
      if (o.cheat === 'flip') {
        const bad = await flip(res, ctx.store, ctx.claim.run)
        log.info('cheated', { how: 'flip', job: a.job, attempt: a.attempt, outputs: bad.outputs.map(f => f.hash) })
        return bad
      }
      if (random() >= failRate) return res
      log.info('cheated', { how: 'flaky', job: a.job, attempt: a.attempt })
      return { ...res, status: 'failed', exitCode: 1, outputs: [] }
    }
    const session: WorkerSession = new WorkerSession({
      ...ctx,
      execute: async (r, opts) => {
        if (o.cheat === 'hold') {
          log.info('cheated', { how: 'hold', job: r.assignment.job, attempt: r.assignment.attempt })
          return await new Promise<never>(() => {})
        }
        if (o.cheat !== 'drop') return await lie(r, opts)
        // forget the attempt and fall silent: no more pulls, no result, ever
        session.running.delete(r.assignment.attempt)
        Object.assign(session, { exchange: async () => await new Promise(() => {}) })
        log.info('cheated', { how: 'drop', job: r.assignment.job, attempt: r.assignment.attempt })
        return await new Promise<never>(() => {})
      }
    })
    return session
  }
}

const log = createLogger({ json: o['json-logs'], scope: 'daemon' })
const cheater = liar(log.child('cheat'))
const daemon = new Daemon({
  ...DEFAULT_DAEMON_CONFIG,
  dataDir: o['data-dir'],
  port: Number(o.port),
  host: o.host,
  cost: Number(o.cost),
  ...(o.slots !== undefined ? { slots: Number(o.slots) } : {}),
  gridKeyFile: o['grid-key'],
  allowCoordinators: o['allow-coordinator'],
  alwaysAvailable: o['always-available'],
  isolation: o.isolation,
  sampleMs: Number(o.sample),
  log,
  drivers: new Map([['native', cheater], ['boinc', cheater]])
})
log.info('a cheating daemon: for tests only', { cheat: o.cheat, ...(o.cheat === 'flaky' ? { failRate, seed: Number(o.seed) } : {}) })
await daemon.start()
const stop = (signal: string): void => {
  log.info('stopping', { signal })
  const force = setTimeout(() => { process.exit(1) }, 10_000)
  daemon.stop().finally(() => { clearTimeout(force); process.exit(0) })
}
process.once('SIGINT', () => { stop('SIGINT') })
process.once('SIGTERM', () => { stop('SIGTERM') })
