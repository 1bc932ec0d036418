// The XtremWeb style (bgrid's native middleware): workers pull work ("work request"),
// report results and prove they are alive in the same message ("work alive"). Pulling
// lets workers sit behind NAT: only the worker opens streams. The adapter serves the
// pulls and hands them to the run core through its port; the run core decides.
// Contract: `xtremweb(init)` returns a middleware factory that takes only the components
// it uses. Imports protocol/ and the run core's contracts.
import { serve } from '../../protocol/rpc.ts'
import { jobsSpec, PULL_WAIT_MS, type PullReply } from '../../protocol/jobs.ts'
import { BgridError } from '../../protocol/errors.ts'
import type { AdapterComponents, MiddlewareAdapter } from '../../coordinator/core/contracts.ts'
import { bestEffort } from '../../protocol/best-effort.ts'

/** a held pull looks for work again at least this often */
const RECHECK_MS = 1000

/** What the pull server uses of the run. */
export type XtremWebComponents =
  Pick<AdapterComponents, 'node' | 'core' | 'runId' | 'log' | 'isWorker' | 'onResult' | 'persist' | 'isClosing' | 'isOver'>

/** Nothing to configure yet: the pull protocol's timings are the protocol's. */
export type XtremWebInit = Record<string, never>

/** The XtremWeb-style middleware: workers pull their jobs from the submitter. */
export function xtremweb (_init: XtremWebInit = {}): (components: XtremWebComponents) => MiddlewareAdapter {
  return (components) => new PullServer(components)
}

class PullServer implements MiddlewareAdapter {
  readonly name = 'native'
  private readonly components: XtremWebComponents
  private started = false
  private waiters = new Set<() => void>()
  /** the worker-set version each worker last received the peer list at: resend only on change */
  private readonly peersSent = new Map<string, number>()

  constructor (components: XtremWebComponents) {
    this.components = components
  }

  async start (): Promise<void> {
    const ctx = this.components
    this.started = true
    await ctx.node.unhandle(jobsSpec.id).catch(err => { bestEffort('ctx.node.unhandle()', err) })
    await serve(ctx.node, jobsSpec, ctx.log.child('jobs'), async (req, hc) => {
      if (req.run !== ctx.runId) throw new BgridError('NOT_FOUND', `this coordinator runs ${ctx.runId}, not ${req.run}`)
      if (!ctx.isWorker(hc.peer)) throw new BgridError('UNAUTHORISED', 'not a claimed worker of this run')
      const { core } = ctx
      const now = Date.now()
      const reported = new Set<string>()
      for (const r of req.results) {
        reported.add(r.attempt)
        const outcome = core.complete(hc.peer, r)
        ctx.onResult(hc.peer, r, outcome)
      }
      core.announce(hc.peer, req.have ?? [])
      if (req.corrupt !== undefined) core.reportCorrupt(hc.peer, req.corrupt)
      core.addPrefetchedBytes(req.prefetchedBytes ?? 0)
      core.reconcileRunning(hc.peer, req.running, reported, now)
      // write-ahead: results are durable before they are acknowledged or unlock children
      await ctx.persist()
      // results unlock children; announced blobs unlock deferred prefetch hints
      if (req.results.length > 0 || (req.have?.length ?? 0) > 0) this.notify()
      let jobs = core.assign(hc.peer, req.want, now)
      let prefetch = core.hintsFor(hc.peer)
      // long poll: hold an empty answer until work appears, or PULL_WAIT_MS
      const deadline = now + PULL_WAIT_MS
      while (jobs.length === 0 && prefetch.length === 0 && req.want > 0 && req.results.length === 0 &&
        !ctx.isClosing() && !ctx.isOver() && Date.now() < deadline && !hc.signal.aborted) {
        // look again at least every second: time alone can make a job assignable (a staged
        // input's first copy that did not arrive in time, a job left to a slow planned worker)
        await this.waitForChange(Math.min(RECHECK_MS, deadline - Date.now()), hc.signal)
        if (!ctx.isWorker(hc.peer)) throw new BgridError('NOT_CLAIMED', 'worker was dropped from the run')
        await ctx.persist()
        jobs = core.assign(hc.peer, req.want, Date.now())
        prefetch = core.hintsFor(hc.peer)
      }
      const peers = this.peersSent.get(hc.peer) === core.workersVersion ? [] : core.peers()
      this.peersSent.set(hc.peer, core.workersVersion)
      const verify = core.takeVerify(hc.peer)
      return { jobs, prefetch, peers, done: ctx.isClosing() || ctx.isOver(), ...(verify.length > 0 ? { verify } : {}) } satisfies Omit<PullReply, 'ok'>
    })
  }

  private async waitForChange (ms: number, signal: AbortSignal): Promise<void> {
    await new Promise<void>(resolve => {
      const done = (): void => { clearTimeout(t); this.waiters.delete(done); signal.removeEventListener('abort', done); resolve() }
      const t = setTimeout(done, Math.max(0, ms))
      this.waiters.add(done)
      signal.addEventListener('abort', done)
    })
  }

  notify (): void {
    for (const w of [...this.waiters]) w()
  }

  async stop (): Promise<void> {
    this.notify()
    if (this.started) await this.components.node.unhandle(jobsSpec.id).catch(err => { bestEffort('this.components.node.unhandle()', err) })
  }
}
