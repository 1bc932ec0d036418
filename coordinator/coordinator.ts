// One run, on the submitter's machine: the coordinator created on the fly, told top-down.
// Set up (a new run or a resumed one) -> recruit (idle nodes ranked, claimed under leases)
// -> plan and stage (the run core plans; staged inputs served from here) -> dispatch (the
// middleware adapter it was handed serves the workers; the run core decides) -> collect
// -> release. Imports protocol/, cache/ and the run core; never a middleware adapter.
import { randomBytes } from 'node:crypto'
import { createBgridNode, type BgridNode } from '../protocol/node.ts'
import { submitterKey } from '../protocol/identity.ts'
import { BgridError } from '../protocol/errors.ts'
import { hasMulticastRoute, MULTICAST_ROUTE_HINT } from '../protocol/dnssd.ts'
import { readGridKey, gridKeyId } from '../protocol/grid-key.ts'
import type { Logger } from '../protocol/log.ts'
import type { BlobStore } from '../cache/store.ts'
import { serveBlobs } from '../cache/blob-protocol.ts'
import { StagedFiles, combineSources, type StatCache } from '../cache/staged-files.ts'
import type { openDb } from '../protocol/db.ts'
import type { Dag, JobRec } from './core/model.ts'
import { RunCore } from './core/run-core.ts'
import { parseDag } from './dag-json.ts'
import path from 'node:path'
import type { Journal, RunMeta } from './journal.ts'
import { Progress } from './progress.ts'
import type { AdapterComponents, MiddlewareAdapter, ReplicationPolicy } from './core/contracts.ts'
import { prepare, openRunStore, loadRunIdentity, hashInputs, openStatCache, restoreJournal, leaveLocalDaemon } from './setup.ts'
import { Recruiter } from './recruit.ts'
import { Collector, resultDir } from './collect.ts'
import { RunStatus } from './run-status.ts'
import { StallWatch, DEFAULT_STALL_SEC } from './stall-watch.ts'
import type { SubmitOptions, RunSummary, RunContext, RunOutcome } from './run-context.ts'
import { bestEffort } from '../protocol/best-effort.ts'
import { Alarm } from '../protocol/sleep.ts'

export class Coordinator {
  readonly opts: SubmitOptions
  readonly log: Logger
  runId!: string
  runDir!: string
  outDir!: string
  dag!: Dag
  core!: RunCore
  node!: BgridNode
  /** BOINC-style runs: the replication policy its middleware hands the run core */
  replication?: ReplicationPolicy
  private journal!: Journal
  private meta!: RunMeta
  private store!: BlobStore
  private storeDb!: Awaited<ReturnType<typeof openDb>>
  private readonly staged = new StagedFiles()
  private adapter!: MiddlewareAdapter
  private recruiter!: Recruiter
  private collector!: Collector
  private status!: RunStatus
  private stallWatch!: StallWatch
  private progress!: Progress
  private readonly outcome: RunOutcome = { cancelled: false, failure: undefined }
  private closing = false
  /** an open run takes more jobs until closeJobs() */
  private openJobs: boolean
  /** the stat cache an open run hashes its added jobs' inputs with (saved when the run ends) */
  private addedInputs?: Promise<StatCache>
  private markStarted: () => void = () => {}
  private failStarted: (err: unknown) => void = () => {}
  /** resolved once the run can take jobs (addJobs); rejected when the run fails before */
  readonly started = new Promise<void>((resolve, reject) => { this.markStarted = resolve; this.failStarted = reject })
  /** the main loop sleeps on it between ticks; what changes the run wakes it */
  private readonly alarm = new Alarm()
  private localDaemon?: { end: () => void }
  private startedAt = Date.now()

  constructor (opts: SubmitOptions) {
    this.opts = opts
    this.log = opts.log
    this.openJobs = opts.open !== undefined
  }

  /** Jobs for an open run (their ids new, no parents): checked as dag.json jobs, inputs hashed, then queued. */
  async addJobs (rawJobs: unknown[]): Promise<JobRec[]> {
    if (!this.openJobs) throw new BgridError('INVALID_CONFIG', 'this run takes no more jobs')
    const more = parseDag({ name: this.dag.name, collect: 'all', defaults: { retries: 0 }, jobs: rawJobs }, path.join(this.dag.dir, 'added.json'))
    this.addedInputs ??= openStatCache(this.opts.dataDir)
    await hashInputs(more, this.opts.dataDir, this.staged, this.core, this.log, await this.addedInputs)
    const recs = more.jobs.map(spec => this.core.addJob(spec))
    this.adapter.notify()
    this.alarm.wake()
    return recs
  }

  /** An open run takes no more jobs: it ends once those it has are over. */
  closeJobs (): void { this.openJobs = false; this.alarm.wake() }

  private emit (ev: Record<string, unknown>, human?: string): void { this.progress.event({ run: this.runId, ...ev }, human) }

  async run (): Promise<RunSummary> {
    // nobody may be waiting on `started`: its rejection is not an unhandled one
    this.started.catch(err => { bestEffort('the run before it started', err) })
    try { return await this.runSteps() } catch (err) { this.failStarted(err); throw err }
  }

  private async runSteps (): Promise<RunSummary> {
    const o = this.opts
    // dag: a new run, or the one a crashed coordinator left
    ;({ runId: this.runId, runDir: this.runDir, outDir: this.outDir, dag: this.dag, journal: this.journal, meta: this.meta } = await prepare(o))
    this.progress = new Progress(o.progress)
    ;({ store: this.store, db: this.storeDb } = await openRunStore(this.runDir))
    const gridKey = o.gridKeyFile !== undefined ? readGridKey(o.gridKeyFile) : undefined
    const submitter = await submitterKey(o.dataDir)
    this.node = await createBgridNode({ privateKey: await loadRunIdentity(this.runDir), gridKey })
    await this.makeCore()
    const ctx = this.context()
    this.collector = new Collector(ctx)
    this.recruiter = new Recruiter(ctx, { submitter, ...(gridKey !== undefined ? { gridId: gridKeyId(gridKey) } : {}) })
    this.status = new RunStatus(ctx, this.recruiter, this.collector, this.outcome)
    this.stallWatch = new StallWatch(ctx, this.opts.stallSec ?? DEFAULT_STALL_SEC, peer => this.recruiter.nameOf(peer))
    await hashInputs(this.dag, o.dataDir, this.staged, this.core, this.log)
    if (o.resume !== undefined) {
      const restored = await restoreJournal(this.journal, this.core)
      this.emit({ event: 'resumed', restoredJobs: restored, restored: [...this.core.jobs.values()].filter(j => j.state === 'done').map(j => j.spec.id) }, `resuming run ${this.runId}: ${restored} job(s) already done`)
    }

    // stage: the submitter serves the input files (and what it collected) to its workers only
    await serveBlobs(this.node, combineSources(this.store, this.staged), {
      log: this.log.child('blob'),
      canRead: (peer) => gridKey !== undefined || this.recruiter.claimed.has(peer),
      onServed: (_peer, hash, bytes) => { this.status.served(hash, bytes) }
    })
    // dispatch: workers pull their jobs from the adapter
    await this.adapter.start()
    this.markStarted()
    this.localDaemon = await leaveLocalDaemon(o.dataDir, this.runId, this.log)
    // `bgrid cancel`, `bgrid status RUN` and `bgrid logs` talk to the run's own socket
    await this.status.serve(() => { this.cancel('cancelled by bgrid cancel') })

    // select and claim: idle nodes as they are found
    if (!hasMulticastRoute()) this.emit({ event: 'warning', message: MULTICAST_ROUTE_HINT }, `warning: ${MULTICAST_ROUTE_HINT}`)
    this.recruiter.start(o.resume !== undefined)
    this.startedAt = Date.now()
    this.emit({ event: 'started', jobs: this.dag.jobs.length, outDir: this.outDir, coordinator: this.node.peerId.toString() },
      o.progress === 'quiet' ? undefined : `run ${this.runId}: ${this.dag.jobs.length} job(s), outputs in ${this.outDir}`)

    let failure: unknown
    try {
      await this.waitForWorkers()
      // plan, and check the workers can hold what is staged for them
      this.recruiter.checkDisk(need => { this.status.inputBytesStaged += need })
      this.core.held = false
      // after a resume: outputs whose holders were not claimed again are made again (once they had their chance)
      if (this.recruiter.settled()) this.core.reconcile('run starts')
      this.adapter.notify()
      await this.runToTheEnd()
    } catch (err) {
      failure = err
    } finally {
      await this.shutdown()
    }
    return await this.finish(failure)
  }

  /**
   * The DAG's middleware adapter (the one the CLI picked), then the run core with the
   * adapter's replication policy (BOINC-style DAGs); every job change journaled and said.
   */
  private async makeCore (): Promise<void> {
    this.adapter = this.opts.adapter(this.dag)(this.components())
    this.replication = await this.adapter.replication?.()
    this.core = new RunCore(this.dag, {
      coordinatorId: this.node.peerId.toString(), prefetch: this.opts.prefetch, nonce: randomBytes(3).toString('hex'), replication: this.replication,
      hooks: {
        onTransition: (job, from, to, reason) => {
          this.status.announce(job, from, to, reason)
          this.collector.jobChanged(job, to)
          this.alarm.wake()
        },
        onIllegal: (job, from, to, reason) => { this.log.error('illegal job transition refused', { job, from, to, reason }) }
      }
    })
    // nothing starts before the run has its workers.min (see RunCore.held)
    this.core.held = true
  }

  /** What the run offers its middleware adapter (the run core is read once the adapter starts). */
  private components (): AdapterComponents {
    const run = this
    return {
      node: this.node, get core () { return run.core }, runId: this.runId, log: this.log, dag: this.dag,
      dataDir: this.opts.dataDir,
      isWorker: (peer) => this.recruiter.claimed.has(peer),
      isClosing: () => this.closing,
      // not over while final outputs may still have to be made again (see runToTheEnd)
      isOver: () => this.collector.collected && this.core.finished(),
      persist: async () => { await this.journal.flush() },
      onResult: () => { this.alarm.wake() },
      gflopsOf: (peer) => this.recruiter.claimed.get(peer)?.offer.gflops,
      nameOf: (peer) => this.recruiter.nameOf(peer),
      resultDir: async (a) => await resultDir(this.collector, this.runDir, a),
      classified: (attempt, key) => { this.core.classified(attempt, key); this.adapter.notify(); this.alarm.wake() },
      emit: (ev, human) => { this.emit(ev, human) }
    }
  }

  /** What the parts of the run share (run-context.ts). */
  private context (): RunContext {
    return {
      opts: this.opts, log: this.log, runId: this.runId, runDir: this.runDir, outDir: this.outDir, dag: this.dag,
      core: this.core, node: this.node, journal: this.journal, store: this.store,
      emit: (ev, human) => { this.emit(ev, human) }, wake: () => { this.alarm.wake() }, notify: () => { this.adapter.notify() },
      isClosing: () => this.closing, startedAt: () => this.startedAt
    }
  }

  /** Until the run has its workers.min (recruiting: NO_WORKERS says why it has not). */
  private async waitForWorkers (opts: { patient?: boolean } = {}): Promise<void> {
    const patient = opts.patient === true
    const done = (): boolean => this.outcome.cancelled || (patient && !this.openJobs && this.core.finished())
    await this.recruiter.waitForWorkers(done, patient, async ms => { await this.alarm.sleep(ms) })
  }

  /**
   * Run the jobs, then bring the final outputs back; an output no holder can give any
   * more sends its job back to run, then collection again (collect.ts: three rounds at most).
   */
  private async runToTheEnd (): Promise<void> {
    for (let round = 1; ; round++) {
      await this.mainLoop()
      if (this.outcome.cancelled) return
      const over = await this.collector.round(round)
      this.adapter.notify()
      if (over) break
    }
    this.progress.stop()
    await this.collector.collectLogs()
  }

  private async mainLoop (): Promise<void> {
    let lastStatus = 0
    let placeableSeen = ''
    while ((!this.core.finished() || this.openJobs) && !this.outcome.cancelled) {
      this.progress.update({ counts: this.core.counts(), total: this.core.jobs.size, workers: this.core.aliveWorkers().length, startedAt: this.startedAt })
      if (Date.now() - lastStatus > 1000) {
        lastStatus = Date.now()
        this.status.writeStatus().catch(err => { bestEffort('the status file', err) })
      }
      // replicas past their deadline count as no reply (BOINC-style jobs)
      this.core.tick(Date.now())
      this.stallWatch.check(Date.now())
      // the grid has been looked at for --wait: a job no node seen can ever run fails, naming why
      placeableSeen = this.recruiter.failNeverPlaceable(placeableSeen)
      if (this.core.aliveWorkers().length === 0 && this.recruiter.claimed.size === 0) {
        // every worker was lost: wait for new ones, as at the start (an open run, for as long as it takes)
        await this.waitForWorkers({ patient: this.opts.open !== undefined })
      }
      // jobs left to a planned worker become stealable after a while: let waiting workers look again
      if (this.core.ready.size > 0) this.adapter.notify()
      await this.alarm.sleep(500)
    }
    this.progress.update({ counts: this.core.counts(), total: this.core.jobs.size, workers: this.core.aliveWorkers().length, startedAt: this.startedAt })
  }

  cancel (why: string): void {
    if (this.outcome.cancelled) return
    this.outcome.cancelled = true
    this.core?.cancelAll(why)
    this.emit({ event: 'cancelled', reason: why }, `cancelling: ${why}`)
    this.alarm.wake()
  }

  /** Release: workers told the run is over, every claim given back, the node stopped. */
  private async shutdown (): Promise<void> {
    this.closing = true
    this.recruiter.stop()
    this.progress.stop()
    this.adapter?.notify()
    await this.recruiter.releaseAll()
    await this.adapter?.stop()
    await this.status.stop()
    this.localDaemon?.end()
    await this.node?.stop()
  }

  /** Whatever happened, the report and the final status are written, and the journal closed. */
  private async finish (failure: unknown): Promise<RunSummary> {
    await this.addedInputs?.then(async c => { await c.save() }).catch(err => { bestEffort('the stat cache', err) })
    // what this run learnt (BOINC-style runs: of its workers): kept for the next runs
    await this.adapter.save?.()
    const counts = this.core.counts()
    const cancelled = this.outcome.cancelled
    const ok = failure === undefined && !cancelled && counts.done === this.core.jobs.size && this.collector.collectErrors.size === 0
    if (failure !== undefined) this.outcome.failure = failure
    this.outcome.final = cancelled ? 'cancelled' : ok ? 'succeeded' : 'failed'
    await this.status.writeFinal()
    this.meta.state = cancelled ? 'cancelled' : ok ? 'finished' : 'failed'
    this.meta.finishedAt = Date.now()
    await this.journal.setMeta(this.meta)
    await this.journal.close()
    await this.storeDb.close()
    if (failure !== undefined) throw failure
    const summary = this.status.summary(ok, cancelled, counts)
    this.emit({ event: 'finished', ...summary })
    return summary
  }
}
