// DAGMan's node life, with no I/O: which PRE script, job or POST script to start next,
// and what each one's exit makes of its node and of the DAG. The shell (run-dagman.ts)
// starts what this says and reports back how it ended. As condor_dagman does
// (src/condor_dagman/dag.cpp): a node is ready when its parents are done; PRE, then the
// job, then POST; the last of them that ran decides the node (POST when there is one);
// ABORT-DAG-ON is looked at before RETRY; a failed node's descendants become futile; a
// FINAL node runs once everything else is over (or the DAG was aborted) and its result
// is the DAG's. Ready nodes start by PRIORITY (higher first), then in the order they
// became ready, under DAGMAN_MAX_JOBS_SUBMITTED, MAXJOBS per CATEGORY and the script limits.
import { ReadyQueue, type Waiting } from './ready-queue.ts'

/** DAGMan's node states, with the numbers the node status file uses */
export const NODE_STATUS = ['not_ready', 'ready', 'prerun', 'submitted', 'postrun', 'done', 'error', 'futile'] as const
export type NodeStatus = typeof NODE_STATUS[number]

/** The allowed changes of a node's state (anything else is a bug, refused loudly). */
const TRANSITIONS: Record<NodeStatus, readonly NodeStatus[]> = {
  not_ready: ['ready', 'done', 'futile'],
  ready: ['prerun', 'submitted', 'done', 'error'],
  prerun: ['ready', 'submitted', 'postrun', 'done', 'error'],
  submitted: ['postrun', 'done', 'error', 'ready'],
  postrun: ['done', 'error', 'ready'],
  done: [],
  error: [],
  futile: []
}

/** $DAG_STATUS, as DAGMan numbers it */
export const DAG_STATUS = { ok: 0, error: 1, nodeFailed: 2, abort: 3, removed: 4, cycle: 5, halted: 6 } as const
export type DagStatus = typeof DAG_STATUS[keyof typeof DAG_STATUS]

/** DAGMan gives a POST script this $RETURN when the PRE script failed (DAGMAN_ALWAYS_RUN_POST) */
export const PRE_FAILED_RETURN = -1004

export interface EngineNode {
  name: string
  parents: number[]
  final: boolean
  pre: boolean
  post: boolean
  /** RETRY n [UNLESS-EXIT v] */
  retryMax: number
  unlessExit: number | null
  /** ABORT-DAG-ON value [RETURN r] */
  abortOn: { value: number, returnValue: number | null } | null
  priority: number
  category: string | null
  preSkip: number | null
  /** DONE in the DAG file (or in the rescue DAG applied) */
  done: boolean
}

export interface EngineOptions {
  /** DAGMAN_MAX_JOBS_SUBMITTED / -maxjobs (0: no limit) */
  maxJobs: number
  /** DAGMAN_MAX_PRE_SCRIPTS, DAGMAN_MAX_POST_SCRIPTS (0: no limit) */
  maxPre: number
  maxPost: number
  /** MAXJOBS category n */
  categoryLimits: Map<string, number>
  /** DAGMAN_ALWAYS_RUN_POST: run POST even when PRE failed ($RETURN -1004) */
  alwaysRunPost: boolean
  /** DAGMAN_SUBMIT_DEPTH_FIRST: nodes that just became ready go first (among equal priorities) */
  depthFirst?: boolean
}

export const DEFAULT_ENGINE_OPTIONS: EngineOptions = { maxJobs: 0, maxPre: 20, maxPost: 20, categoryLimits: new Map(), alwaysRunPost: false }

export type Action =
  | { kind: 'pre', node: number, retry: number }
  | { kind: 'submit', node: number, retry: number }
  | { kind: 'post', node: number, retry: number, ret: number, preRet: number | null }

export interface NodeState {
  status: NodeStatus
  /** retries done so far ($RETRY of the next attempt) */
  retries: number
  /** the value that decided the node last (job exit, or POST's, or PRE's when it failed) */
  returnValue: number | null
  preReturn: number | null
  /** the job's own exit value of the last attempt ($RETURN for POST) */
  jobReturn: number | null
  details: string
  /** RETRY was cut short by UNLESS-EXIT */
  retryStopped: boolean
  /** how many times the node's job was submitted */
  submits: number
}

export interface Transition { node: string, from: NodeStatus, to: NodeStatus, why: string }

export interface DagResult {
  /** the exit code condor_dagman would end with */
  exitCode: number
  status: DagStatus
  failed: number
}

export class DagmanEngine {
  readonly nodes: readonly EngineNode[]
  readonly state: NodeState[]
  private readonly opts: EngineOptions
  private readonly children: number[][]
  /** nodes waiting for their PRE script, and nodes waiting to be submitted (each in DAGMan's order) */
  private readonly preQueue = new ReadyQueue()
  private readonly jobQueue = new ReadyQueue()
  /** nodes of a category at its MAXJOBS, waiting for one of its jobs to end */
  private readonly categoryQueue = new Map<string, ReadyQueue>()
  /** whether a node is waiting in one of the queues (one taken out lazily when it is not) */
  private readonly queued: boolean[]
  private queuedCount = 0
  private seq = 0
  /** nodes (FINAL aside) per state, kept by move(): the shell asks for them after every event */
  private readonly tally: Record<NodeStatus, number> = { not_ready: 0, ready: 0, prerun: 0, submitted: 0, postrun: 0, done: 0, error: 0, futile: 0 }
  private running = { jobs: 0, pre: 0, post: 0 }
  private readonly runningByCategory = new Map<string, number>()
  /** ABORT-DAG-ON, or the DAG removed (interrupt): nothing new starts but FINAL */
  private aborted: { exitCode: number, status: DagStatus, why: string } | null = null
  /** the DAG's outcome when its FINAL node(s) started (a rescue DAG is judged on it) */
  private beforeFinalOutcome: DagResult | null = null
  private finalStarted = false
  private over: DagResult | null = null
  /** every state change, in order (the shell logs them and writes the status files) */
  readonly transitions: Transition[] = []
  /** what happened to the DAG as a whole (aborted, removed), for the log */
  readonly notes: string[] = []
  private readonly finals: number[]

  constructor (nodes: EngineNode[], opts: EngineOptions = DEFAULT_ENGINE_OPTIONS) {
    this.nodes = nodes
    this.opts = opts
    this.children = nodes.map(() => [])
    for (let i = 0; i < nodes.length; i++) for (const p of nodes[i].parents) this.children[p].push(i)
    this.state = nodes.map(() => ({ status: 'not_ready', retries: 0, returnValue: null, preReturn: null, jobReturn: null, details: '', retryStopped: false, submits: 0 }))
    this.finals = nodes.flatMap((n, i) => n.final ? [i] : [])
    this.queued = nodes.map(() => false)
    this.tally.not_ready = nodes.length - this.finals.length
    for (let i = 0; i < nodes.length; i++) if (nodes[i].done) this.move(i, 'done', 'DONE in the DAG file')
    for (let i = 0; i < nodes.length; i++) this.tryReady(i)
  }

  // ---- what to start ------------------------------------------------------------

  /** Everything that may start now, in DAGMan's order, under its limits. */
  next (): Action[] {
    const out: Action[] = []
    // the rest being over lets the FINAL node(s) in
    this.checkOver()
    if (this.over !== null) return out
    const preFull = (): boolean => this.opts.maxPre > 0 && this.running.pre >= this.opts.maxPre
    const jobsFull = (): boolean => this.opts.maxJobs > 0 && this.running.jobs >= this.opts.maxJobs
    while (this.preQueue.size > 0 && !preFull()) {
      const i = this.take(this.preQueue)
      if (i === undefined) continue
      const s = this.state[i]
      this.running.pre++
      this.move(i, 'prerun', 'PRE script started')
      out.push({ kind: 'pre', node: i, retry: s.retries })
    }
    while (this.jobQueue.size > 0 && !jobsFull()) {
      const w = this.jobQueue.pop() as Waiting
      if (!this.queued[w.node]) continue
      const cat = this.nodes[w.node].category
      const limit = cat !== null ? this.opts.categoryLimits.get(cat) : undefined
      if (cat !== null && limit !== undefined && (this.runningByCategory.get(cat) ?? 0) >= limit) {
        // its category is full: it waits for one of the category's jobs to end
        let q = this.categoryQueue.get(cat)
        if (q === undefined) { q = new ReadyQueue(); this.categoryQueue.set(cat, q) }
        q.push(w)
        continue
      }
      this.dequeue(w.node)
      const s = this.state[w.node]
      this.running.jobs++
      if (cat !== null) this.runningByCategory.set(cat, (this.runningByCategory.get(cat) ?? 0) + 1)
      s.submits++
      this.move(w.node, 'submitted', 'job submitted')
      out.push({ kind: 'submit', node: w.node, retry: s.retries })
    }
    this.checkOver()
    return out
  }

  /** POST scripts waiting for a slot (DAGMAN_MAX_POST_SCRIPTS), first in first out from postHead */
  private readonly postQueue: Array<Extract<Action, { kind: 'post' }>> = []
  private postHead = 0

  /** POST scripts that may start now. */
  nextPosts (): Action[] {
    const out: Action[] = []
    while (this.postHead < this.postQueue.length && (this.opts.maxPost === 0 || this.running.post < this.opts.maxPost)) {
      const a = this.postQueue[this.postHead++]
      if (this.postHead === this.postQueue.length) { this.postQueue.length = 0; this.postHead = 0 }
      this.running.post++
      out.push(a)
    }
    return out
  }

  // ---- what ended ---------------------------------------------------------------

  /** an end reported for a node not in that step is a bug of the caller: refused loudly */
  private expect (i: number, st: NodeStatus, what: string): void {
    if (this.state[i].status !== st) throw new Error(`DAGMan engine: node ${this.nodes[i].name} cannot go from ${this.state[i].status} (${what} reported)`)
  }

  preDone (i: number, code: number): void {
    this.expect(i, 'prerun', 'PRE script end')
    const n = this.nodes[i]
    const s = this.state[i]
    this.running.pre--
    s.preReturn = code
    if (this.aborted !== null && !n.final) { s.details = `removed: ${this.aborted.why}`; this.move(i, 'error', s.details); return }
    if (n.preSkip !== null && code === n.preSkip) {
      s.returnValue = 0
      s.details = `PRE_SKIP: PRE script returned ${code}`
      this.notes.push(`PRE_SKIP return value ${code} indicates we are done with node ${n.name}`)
      this.succeed(i, `PRE script returned ${code} (PRE_SKIP): job and POST script skipped`)
      return
    }
    if (code !== 0) {
      s.details = `PRE script failed with status ${code}`
      if (n.post && this.opts.alwaysRunPost) {
        this.move(i, 'postrun', 'PRE script failed: POST script runs (DAGMAN_ALWAYS_RUN_POST)')
        this.postQueue.push({ kind: 'post', node: i, retry: s.retries, ret: PRE_FAILED_RETURN, preRet: code })
        return
      }
      this.failed(i, code, `PRE script failed with status ${code}`)
      return
    }
    this.move(i, 'ready', 'PRE script succeeded')
    this.enqueue(i)
  }

  /** The node's job ended with this exit value (a signal: its negated number). */
  jobDone (i: number, code: number, why = ''): void {
    this.expect(i, 'submitted', 'job end')
    const n = this.nodes[i]
    const s = this.state[i]
    this.running.jobs--
    if (n.category !== null) {
      this.runningByCategory.set(n.category, (this.runningByCategory.get(n.category) ?? 1) - 1)
      // a slot of its category is free: the first node waiting for one goes back in line
      const w = this.categoryQueue.get(n.category)?.pop()
      if (w !== undefined) this.jobQueue.push(w)
    }
    s.jobReturn = code
    // an aborted DAG removes its jobs: no POST script, no retry
    if (this.aborted !== null && !n.final) { s.returnValue = code; s.details = `removed: ${this.aborted.why}`; this.move(i, 'error', s.details); return }
    if (n.post) {
      this.move(i, 'postrun', `job ended with ${code}: POST script runs`)
      this.postQueue.push({ kind: 'post', node: i, retry: s.retries, ret: code, preRet: s.preReturn })
      return
    }
    s.returnValue = code
    if (code === 0) this.succeed(i, 'job succeeded')
    else {
      s.details = why !== '' ? why : `Job failed with status ${code}`
      this.failed(i, code, s.details)
    }
  }

  postDone (i: number, code: number): void {
    this.expect(i, 'postrun', 'POST script end')
    const s = this.state[i]
    this.running.post--
    s.returnValue = code
    if (code === 0) this.succeed(i, 'POST script succeeded')
    else {
      s.details = `POST script failed with status ${code}`
      this.failed(i, code, s.details)
    }
  }

  // ---- the DAG ------------------------------------------------------------------

  /** The DAG's end, once nothing runs and nothing more can start; null before. */
  result (): DagResult | null {
    this.checkOver()
    return this.over
  }

  /** $DAG_STATUS now (what a FINAL node is told) */
  dagStatus (): DagStatus {
    if (this.aborted !== null) return this.aborted.status
    return this.count('error') > 0 ? DAG_STATUS.nodeFailed : DAG_STATUS.ok
  }

  /** how many nodes (FINAL aside) are in this state */
  count (st: NodeStatus): number { return this.tally[st] }

  isAborted (): boolean { return this.aborted !== null }

  /** The DAG's outcome before its FINAL node ran (the result itself when it has none); null before. */
  beforeFinal (): DagResult | null { return this.beforeFinalOutcome ?? this.over }

  /**
   * The DAG is removed (Ctrl-C, SIGTERM: condor_rm of the DAGMan job): nothing new starts,
   * what runs is stopped (toStop) and ends without POST script or retry; FINAL still runs.
   */
  interrupt (why: string): void {
    if (this.over !== null || this.aborted !== null) return
    this.aborted = { exitCode: 2, status: DAG_STATUS.removed, why }
    this.notes.push(`the DAG is removed: ${why}`)
    this.dequeueAllButFinal()
  }

  /** Nodes to stop now (the DAG was aborted): what still runs, FINAL aside. */
  toStop (): number[] {
    if (this.aborted === null) return []
    return this.state.flatMap((s, i) => !this.nodes[i].final && (s.status === 'prerun' || s.status === 'submitted' || s.status === 'postrun') ? [i] : [])
  }

  // ---- inside -------------------------------------------------------------------

  private move (i: number, to: NodeStatus, why: string): void {
    const s = this.state[i]
    const from = s.status
    if (from === to) return
    if (!TRANSITIONS[from].includes(to)) throw new Error(`DAGMan engine: node ${this.nodes[i].name} cannot go from ${from} to ${to} (${why})`)
    s.status = to
    if (!this.nodes[i].final) { this.tally[from]--; this.tally[to]++ }
    this.transitions.push({ node: this.nodes[i].name, from, to, why })
  }

  private enqueue (i: number): void {
    if (this.queued[i]) return
    this.queued[i] = true
    this.queuedCount++
    const n = this.nodes[i]
    const s = this.state[i]
    // breadth first: in the order nodes became ready; depth first: the newest first
    const w: Waiting = { node: i, priority: n.priority, seq: this.opts.depthFirst === true ? -this.seq++ : this.seq++ }
    if (n.pre && s.status === 'ready' && s.preReturn === null) this.preQueue.push(w)
    else this.jobQueue.push(w)
  }

  private dequeue (i: number): void {
    if (!this.queued[i]) return
    this.queued[i] = false
    this.queuedCount--
  }

  /** the next node of a queue still waiting (taken out of the queues), or undefined */
  private take (q: ReadyQueue): number | undefined {
    const w = q.pop() as Waiting
    if (!this.queued[w.node]) return undefined
    this.dequeue(w.node)
    return w.node
  }

  /** an aborted or removed DAG starts nothing but FINAL: the others leave the queues (lazily) */
  private dequeueAllButFinal (): void {
    for (let i = 0; i < this.queued.length; i++) if (this.queued[i] && !this.nodes[i].final) this.dequeue(i)
  }

  /** A node whose parents are all done is ready (FINAL nodes wait for the end). */
  private tryReady (i: number): void {
    const n = this.nodes[i]
    if (n.final || this.state[i].status !== 'not_ready' || this.aborted !== null) return
    if (n.parents.every(p => this.state[p].status === 'done')) {
      this.move(i, 'ready', 'parents done')
      this.enqueue(i)
    }
  }

  private succeed (i: number, why: string): void {
    const n = this.nodes[i]
    this.move(i, 'done', why)
    if (n.abortOn !== null && n.abortOn.value === 0) { this.abort(i, 0); return }
    for (const c of this.children[i]) this.tryReady(c)
  }

  private failed (i: number, code: number, why: string): void {
    const n = this.nodes[i]
    const s = this.state[i]
    // ABORT-DAG-ON is looked at before RETRY
    if (n.abortOn !== null && n.abortOn.value === code) {
      this.move(i, 'error', `${why}; ABORT-DAG-ON ${n.abortOn.value}`)
      this.abort(i, code)
      return
    }
    if (s.retries < n.retryMax && this.aborted === null && !n.final) {
      if (n.unlessExit !== null && code === n.unlessExit) {
        s.retryStopped = true
      } else {
        s.retries++
        s.preReturn = null
        s.jobReturn = null
        this.notes.push(`Retrying node ${n.name} (retry #${s.retries} of ${n.retryMax})...`)
        this.move(i, 'ready', `${why}: retry ${s.retries} of ${n.retryMax}`)
        this.enqueue(i)
        return
      }
    }
    this.move(i, 'error', why)
    if (this.aborted !== null) return
    // its descendants can never run
    const stack = [...this.children[i]]
    while (stack.length > 0) {
      const c = stack.pop() as number
      if (this.state[c].status !== 'not_ready' || this.nodes[c].final) continue
      this.move(c, 'futile', `ancestor ${n.name} failed`)
      stack.push(...this.children[c])
    }
  }

  private abort (i: number, code: number): void {
    if (this.aborted !== null) return
    const n = this.nodes[i]
    const rv = n.abortOn?.returnValue ?? code
    // ABORT-DAG-ON ... RETURN 0 ends the DAG as a success (DAGMan: DAG_STATUS_OK)
    this.aborted = { exitCode: rv, status: rv === 0 ? DAG_STATUS.ok : DAG_STATUS.abort, why: `ABORT-DAG-ON of node ${n.name}` }
    this.notes.push(`node ${n.name} returned ${code}: ABORT-DAG-ON, the DAG is aborted (exit ${rv})`)
    this.dequeueAllButFinal()
  }

  private busy (): boolean {
    return this.running.jobs > 0 || this.running.pre > 0 || this.running.post > 0 || this.postHead < this.postQueue.length
  }

  /** the DAG's outcome from its non-FINAL nodes */
  private outcome (): DagResult {
    const failed = this.count('error')
    const stuck = this.state.some((s, i) => !this.nodes[i].final && s.status === 'not_ready')
    if (this.aborted !== null) return { exitCode: this.aborted.exitCode, status: this.aborted.status, failed }
    if (failed > 0) return { exitCode: 1, status: DAG_STATUS.nodeFailed, failed }
    if (stuck) return { exitCode: 1, status: DAG_STATUS.cycle, failed }
    return { exitCode: 0, status: DAG_STATUS.ok, failed }
  }

  private checkOver (): void {
    if (this.over !== null || this.busy()) return
    // nodes wait (after an abort, only FINAL ones are left in line)
    if (this.queuedCount > 0) return
    // everything else is over: the FINAL node(s) now
    if (!this.finalStarted && this.finals.length > 0) {
      this.finalStarted = true
      this.beforeFinalOutcome = this.outcome()
      for (const f of this.finals) if (this.state[f].status === 'not_ready') { this.move(f, 'ready', 'the rest of the DAG is over'); this.enqueue(f) }
      if (this.queuedCount > 0) return
    }
    const r = this.outcome()
    // a FINAL node's result is the DAG's (not when the DAG was removed: it did not finish)
    for (const f of this.aborted?.status === DAG_STATUS.removed ? [] : this.finals) {
      const st = this.state[f].status
      if (st === 'done') r.exitCode = 0
      else if (st === 'error') { r.exitCode = 1; r.failed++; if (r.status === DAG_STATUS.ok) r.status = DAG_STATUS.nodeFailed }
    }
    this.over = r
  }
}
