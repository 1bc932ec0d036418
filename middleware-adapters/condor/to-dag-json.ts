// A DAGMan DAG (dag-file.ts) and its nodes' submit descriptions (submit-file.ts) to a
// dag.json that coordinator/core/dag.ts accepts. docs/condor.md says what maps to what.
//
// Data moves through the submit directory in DAGMan: a parent's output files come back
// to its initialdir, a child's transfer_input_files take them from there. Here every
// file a job reads is either made by an ancestor job (input job:<id>/<file>) or on disk
// now (input relative to the dag.json); a job's outputs are its output and error files
// and its transfer_output_files. Without transfer_output_files HTCondor brings back every
// new file of the job's directory: bgrid needs names, so a file a descendant reads and
// nobody declares is taken as an output of the one ancestor without
// transfer_output_files in that directory (a warning says so), and is an error when
// there is no such ancestor or more than one.
//
// DAGMan features bgrid does not run yet are refused with file:line, all at once;
// `lenient` drops them with a warning each instead.
import { statSync, readdirSync, openSync, readSync, closeSync, type Stats } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { BgridError } from '../../protocol/errors.ts'
import { unsafeRelPath } from '../../protocol/paths.ts'
import type { DagmanDag, DagmanNode } from './dag-file.ts'
import type { Loc } from './lexer/lines.ts'
import { Problems } from './problems.ts'
import { readSubmitFile, parseSubmitLines, evaluateSubmit, parseQuantityMiB, canonicalKey, SubmitError, type SubmitDescription, type SubmitProc, type NodeMacros } from './submit-file.ts'
import { parseArguments, parseEnvironment } from './submit-args.ts'
import { translateClassAd, ClassAdError } from './classad.ts'
import { RETRY_MARK } from './vars.ts'
import { bestEffort } from '../../protocol/best-effort.ts'

export interface ConvertOptions {
  /** drop what bgrid does not run yet (a warning each) instead of refusing the DAG */
  lenient?: boolean
  /** the dag.json to be written: inputs are named relative to its directory */
  out: string
  /** the environment $ENV() reads (default: this process's) */
  env?: Record<string, string | undefined>
  /**
   * Running the DAG (run-dagman.ts), one node attempt at a time: $(RETRY), $(DAG_STATUS)
   * and $(FAILED_COUNT) are known, and scheduler/local universe jobs are the submitter's.
   */
  run?: { retry: number, dagStatus: number, failedCount: number }
  /** submit files read before (run mode: one DAG run reads each once, again only when it changed on disk) */
  submitFiles?: SubmitFileCache
}

/** submit files as read: path -> its size and mtime then, and what it says */
export type SubmitFileCache = Map<string, { size: number, mtimeMs: number, desc: SubmitDescription }>

/** One job of a node attempt, as run-dagman.ts runs it. */
export interface NodeJob {
  id: string
  /** vanilla (a worker runs it) or scheduler/local (the submitter does) */
  universe: 'vanilla' | 'local'
  /** initialdir: where output and error land, relative names start */
  iwd: string
  /** the executable: absolute, or a name looked up in PATH */
  exe: string
  args: string[]
  env: Record<string, string>
  stdin: string | null
  stdout: string | null
  stderr: string | null
  /** files brought back: the name in the job's directory, and where they go */
  outputs: Array<{ name: string, abs: string }>
  /** the job as dag.json has it (inputs relative to /) */
  record: Record<string, unknown>
}

export interface Converted {
  dag: Record<string, unknown>
  warnings: string[]
  /** pool-only settings and DAG commands accepted and not applied, once each */
  ignored: string[]
  /** submit keys that are no command bgrid knows and no macro anything uses */
  unknown: string[]
  /** DAGMan node (or node.proc) names that had to change to be job ids */
  renamed: Array<[string, string]>
  /** job id -> DAGMan PRIORITY (dag.json has no field for it yet) */
  priorities: Map<string, number>
  summary: { nodes: number, jobs: number, done: number, noop: number, edges: number }
}

/** the commands bgrid reads from a submit description */
const HONOURED = new Set(['universe', 'executable', 'arguments', 'environment', 'input', 'output', 'error', 'initialdir',
  'transfer_input_files', 'transfer_output_files', 'should_transfer_files', 'when_to_transfer_output', 'transfer_executable',
  'request_cpus', 'request_memory', 'request_disk', 'requirements', 'rank', 'allowed_execute_duration', 'allowed_job_duration'])
/** pool-only: accepted, not applied, listed once */
const POOL_ONLY = new Set(['log', 'log_xml', 'notification', 'notify_user', 'email_attributes', 'getenv', 'accounting_group',
  'accounting_group_user', 'priority', 'nice_user', 'submit_event_notes', 'batch_name', 'jobbatchname', 'stream_output', 'stream_error',
  'stream_input', 'skip_filechecks', 'image_size', 'job_max_vacate_time', 'max_job_retirement_time', 'want_graceful_removal',
  'coresize', 'leave_in_queue', 'keep_claim_idle', 'job_lease_duration', 'dagman_log', 'rendezvousdir', 'copy_to_spool',
  'run_as_owner', 'load_profile', 'match_list_length', 'encrypt_input_files', 'encrypt_output_files', 'dont_encrypt_input_files',
  'dont_encrypt_output_files', 'encrypt_execute_directory', 'max_transfer_input_mb', 'max_transfer_output_mb', 'description',
  'job_machine_attrs', 'job_machine_attrs_history_length', 'want_checkpoint', 'hold_kill_sig', 'kill_sig_timeout'])
/** submit commands whose meaning bgrid cannot honour */
const NOT_HONOURED = new Set(['periodic_hold', 'periodic_release', 'periodic_remove', 'periodic_vacate', 'periodic_hold_reason',
  'periodic_hold_subcode', 'on_exit_hold', 'on_exit_remove', 'on_exit_hold_reason', 'on_exit_hold_subcode', 'max_retries',
  'retry_until', 'success_exit_code', 'hold', 'deferral_time', 'deferral_window', 'deferral_prep_time', 'cron_minute', 'cron_hour',
  'cron_day_of_month', 'cron_month', 'cron_day_of_week', 'cron_prep_time', 'cron_window', 'docker_image', 'docker_network_type',
  'container_image', 'container_target_dir', 'transfer_container', 'require_gpus', 'gpus_minimum_capability',
  'gpus_minimum_memory', 'cuda_version', 'transfer_output_remaps', 'output_destination', 'transfer_plugins', 'x509userproxy',
  'use_x509userproxy', 'use_oauth_services', 'remote_initialdir', 'vm_type', 'vm_memory', 'vm_disk', 'vm_networking',
  'java_vm_args', 'jar_files', 'grid_resource', 'machine_count', 'kill_sig', 'remove_kill_sig', 'want_remote_io', 'stack_size',
  'concurrency_limits', 'noop_job', 'noop_job_exit_code', 'noop_job_exit_signal', 'next_job_start_delay', 'transfer_input',
  'transfer_output', 'transfer_error', 'append_files', 'buffer_size', 'buffer_block_size', 'local_files', 'want_io_proxy',
  'starter_debug', 'checkpoint_exit_code', 'transfer_checkpoint_files', 'preserve_relative_paths', 'max_idle', 'max_materialize'])
const VANILLA = new Set(['vanilla', '5'])
const ON_SUBMITTER = new Set(['scheduler', 'local', '7', '12'])

/** dag.json's job id rule (schema/dag.schema.json definitions.jobId) */
const JOB_ID = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/
/** a splice scope's `+` becomes `.`; anything else the rule refuses, `_` */
function jobIdOf (name: string): string {
  if (JOB_ID.test(name)) return name
  return name.replace(/\+/g, '.').replace(/[^A-Za-z0-9_.-]/g, '_').replace(/^[.-]/, '_').slice(0, 128) || '_'
}

/** DAGMan's macros for a node's submit description, $(JOB) aside: $(RETRY) is the attempt's; the DAG's status and failed count are 0 while it runs */
const DAGMAN_MACROS = { retry: RETRY_MARK, dag_status: '0', failed_count: '0' }

const NO_ARGS: string[] = []

const SYSTEM_DIRS = ['/bin/', '/usr/bin/', '/usr/local/bin/', '/sbin/', '/usr/sbin/']

/** path.resolve(dir, name), without its cost for the usual plain file name */
function resolveIn (dir: string, name: string): string {
  return dir.length > 1 && /^[^/.\\][^/\\]*$/.test(name) ? `${dir}/${name}` : path.resolve(dir, name)
}

interface InputDraft { abs: string, as: string, at: Loc, what: string }
interface JobDraft {
  id: string
  universe: 'vanilla' | 'local'
  node: DagmanNode
  proc: number
  iwd: string
  /** transfer_output_files given (HTCondor then brings back those files only) */
  declaredOutputs: boolean
  exe: { kind: 'path', path: string } | { kind: 'staged', name: string, abs: string, at: Loc }
  args: string[]
  env: Record<string, string>
  stdin: string | null
  stdinAbs?: string
  stdout: string | null
  stderr: string | null
  inputs: InputDraft[]
  /** name in the job's directory, and where HTCondor puts it on the submit side */
  outputs: Array<{ name: string, abs: string }>
  resolved: Array<string | { src: string, as: string }>
  /** the command, made as soon as the job is (its argv is garbage then, not kept to the end) */
  cmd: string[] | string
  cores?: number
  ram?: number
  disk?: number
  timeout?: number
  requirements?: string
  rank?: { text: string, at: Loc }
}

const SAFE = /^[A-Za-z0-9_./=:,+@%-]+$/
/** quote for sh (what needs it); $(RETRY) becomes the attempt's $BGRID_RETRY */
export function shq (s: string): string {
  if (SAFE.test(s)) return s
  if (!s.includes(RETRY_MARK)) return `'${s.replace(/'/g, "'\\''")}'`
  return s.split(RETRY_MARK).map(p => p === '' ? '' : shq(p)).join('"$BGRID_RETRY"')
}

function osArch (): string {
  const a = os.arch()
  return a === 'x64' ? 'X86_64' : a === 'arm64' ? 'aarch64' : a === 'ia32' ? 'INTEL' : a.toUpperCase()
}

export function dagmanToDagJson (dag: DagmanDag, opts: ConvertOptions): Converted {
  return new Converter(dag, opts).run()
}

/** One node attempt's jobs, to run now: $(RETRY) and the DAG's status known, inputs read from disk. */
export function dagmanNodeJobs (dag: DagmanDag, node: number, run: NonNullable<ConvertOptions['run']>, env?: Record<string, string | undefined>, submitFiles?: SubmitFileCache): NodeJob[] {
  return new Converter(dag, { out: '/dagman-node.json', lenient: true, run, env, submitFiles }).runNode(dag.nodes[node])
}

class Converter {
  private readonly problems: Problems
  private readonly lenient: boolean
  private readonly outDir: string
  private readonly env: Record<string, string | undefined>
  /** not yet supported features: message -> first place (refused, or warned with --lenient) */
  private readonly features = new Map<string, { at: Loc, count: number, note?: string }>()
  private readonly warned = new Map<string, number>()
  private readonly ignoredKeys = new Map<string, { at: Loc, count: number }>()
  private readonly unknown = new Map<string, Loc>()
  private readonly descs = new Map<string, SubmitDescription>()
  private readonly checked = new Set<SubmitDescription>()
  private readonly shebangs = new Map<string, string[] | null>()
  private readonly stats = new Map<string, Stats | null>()
  private readonly rels = new Map<string, string | null>()
  private readonly walks = new Map<string, string[]>()
  private readonly classads = new Map<string, string | ClassAdError>()
  private readonly dag: DagmanDag
  private readonly jobsOf = new Map<number, JobDraft[]>()
  private readonly producers = new Map<string, JobDraft[]>()
  /** input files not below the dag.json's directory, and where the first is named */
  private readonly outside = new Map<string, Loc>()
  private readonly runMode: ConvertOptions['run']
  private readonly submitFiles: SubmitFileCache | undefined
  private readonly dagmanMacros: typeof DAGMAN_MACROS

  constructor (dag: DagmanDag, opts: ConvertOptions) {
    this.dag = dag
    this.problems = new Problems(dag.dir)
    this.lenient = opts.lenient === true
    this.outDir = path.dirname(path.resolve(opts.out))
    this.env = opts.env ?? process.env
    this.runMode = opts.run
    this.submitFiles = opts.submitFiles
    this.dagmanMacros = opts.run === undefined ? DAGMAN_MACROS : { retry: String(opts.run.retry), dag_status: String(opts.run.dagStatus), failed_count: String(opts.run.failedCount) }
  }

  /** One node's jobs for one attempt (run mode): its inputs are files on disk now, as DAGMan's are. */
  runNode (n: DagmanNode): NodeJob[] {
    try { this.nodeJobs(n) } catch (err) {
      if (err instanceof SubmitError) this.problems.error(err.at, err.message, n.name)
      else throw err
    }
    this.problems.throwIfAny(`node ${n.name}: its job cannot be submitted`)
    this.assignIds()
    this.resolveInputs()
    this.problems.throwIfAny(`node ${n.name}: its job cannot be submitted`)
    return (this.jobsOf.get(n.index) ?? []).map(j => {
      const record: Record<string, unknown> = { id: j.id, cmd: j.cmd }
      if (j.resolved.length > 0) record.inputs = j.resolved
      if (j.outputs.length > 0) record.outputs = j.outputs.map(o => o.name)
      if (Object.keys(j.env).length > 0) record.env = j.env
      if (j.timeout !== undefined) record.timeout = j.timeout
      if (j.cores !== undefined) record.cores = j.cores
      if (j.ram !== undefined) record.ram = j.ram
      if (j.disk !== undefined) record.disk = j.disk
      if (j.requirements !== undefined) record.requirements = j.requirements
      const exe = j.exe.kind === 'path' ? j.exe.path : j.exe.abs
      const abs = (f: string | null): string | null => f === null ? null : resolveIn(j.iwd, f)
      return {
        id: j.id, universe: j.universe, iwd: j.iwd, exe, args: j.args, env: j.env,
        stdin: j.stdinAbs ?? null, stdout: abs(j.stdout), stderr: abs(j.stderr), outputs: j.outputs, record
      }
    })
  }

  /** a feature bgrid does not run yet; `note` says what --lenient makes of it */
  private feature (what: string, at: Loc, note?: string): void {
    const key = `${what} at ${this.problems.at(at)}`
    const f = this.features.get(key)
    if (f !== undefined) f.count++
    else this.features.set(key, { at, count: 1, note })
  }

  private warn (message: string): void { this.warned.set(message, (this.warned.get(message) ?? 0) + 1) }

  private ignore (what: string, at: Loc): void {
    const i = this.ignoredKeys.get(what)
    if (i !== undefined) i.count++
    else this.ignoredKeys.set(what, { at, count: 1 })
  }

  run (): Converted {
    const dag = this.dag
    this.checkCycle()
    for (const c of dag.commands) {
      switch (c.keyword) {
        case 'REJECT': this.problems.error(c.at, 'REJECT: this DAG is marked as not to be run'); break
        case 'CONNECT': case 'PIN_IN': case 'PIN_OUT': this.feature(c.keyword, c.at); break
        case 'DOT': this.ignore(`DOT ${c.args} (bgrid import --dot FILE writes the graph)`, c.at); break
        case 'CONFIG': this.ignore(`CONFIG ${c.args} (DAGMan configuration is not applied)`, c.at); break
        default: this.ignore(`${c.keyword} ${c.args}`.trim(), c.at)
      }
    }
    for (const m of dag.maxJobs) this.feature('MAXJOBS', m.at)
    for (const i of dag.inlined) this.warn(`${i.what} at ${this.problems.at(i.at)}`)

    let done = 0
    let noop = 0
    for (const n of dag.nodes) {
      if (n.kind === 'FINAL' || n.kind === 'PROVISIONER' || n.kind === 'SERVICE') { this.feature(`${n.kind} node ${n.name}`, n.at, 'the node is left out'); continue }
      if (n.kind === 'SUBDAG') { this.feature(`SUBDAG EXTERNAL ${n.name}`, n.at, 'the node is left out'); continue }
      for (const s of n.scripts) this.feature(`SCRIPT ${s.kind}`, s.at)
      if (n.abortDagOn !== null) this.feature('ABORT-DAG-ON', n.abortDagOn.at)
      if (n.category !== null) this.feature('CATEGORY', n.category.at)
      if (n.preSkip !== null) this.feature('PRE_SKIP', n.preSkip.at)
      if (n.retry !== null && n.retry.unlessExit !== null) this.feature('RETRY ... UNLESS-EXIT', n.retry.at, 'retried whatever the exit code')
      if (n.saveFile !== null) this.ignore('SAVE_POINT_FILE', n.saveFile.at)
      if (n.done !== null) { done++; continue }
      if (n.noop) {
        noop++
        this.jobsOf.set(n.index, [this.noopJob(n)])
        continue
      }
      try { this.nodeJobs(n) } catch (err) {
        if (err instanceof SubmitError) this.problems.error(err.at, err.message, n.name)
        else throw err
      }
    }
    this.assignIds()
    if (!this.problems.any) this.resolveInputs()

    const times = (f: { count: number }): string => f.count > 1 ? ` (${f.count} nodes)` : ''
    if (!this.lenient) for (const [k, f] of this.features) this.problems.add(`not yet supported by bgrid: ${k}${times(f)}`)
    this.problems.throwIfAny(`${dag.file}: cannot be run by bgrid as it is`, this.features.size > 0 && !this.lenient ? '(--lenient drops what is not yet supported, with a warning each)' : undefined)

    const warnings = [
      ...[...this.features].map(([k, f]) => `dropped, not yet supported by bgrid: ${k}${times(f)}${f.note !== undefined ? ` (${f.note})` : ''}`),
      ...[...this.warned].map(([m, n]) => n > 1 ? `${m} (${n} jobs)` : m)
    ]
    return this.assemble(warnings, done, noop)
  }

  // ---- the graph

  /** Kahn's order; a cycle is reported with its nodes and a PARENT line that closes it. */
  private checkCycle (): void {
    const nodes = this.dag.nodes
    const indeg = nodes.map(n => n.parents.length)
    const kids: number[][] = nodes.map(() => [])
    for (const n of nodes) for (const p of n.parents) kids[p].push(n.index)
    const queue = nodes.filter(n => indeg[n.index] === 0).map(n => n.index)
    for (let i = 0; i < queue.length; i++) for (const c of kids[queue[i]]) if (--indeg[c] === 0) queue.push(c)
    if (queue.length === nodes.length) return
    // walk parents among the nodes left until one repeats
    const left = new Set(nodes.map(n => n.index).filter(i => indeg[i] > 0))
    let at = [...left][0]
    const seen = new Map<number, number>()
    const pathIdx: number[] = []
    while (!seen.has(at)) {
      seen.set(at, pathIdx.length)
      pathIdx.push(at)
      at = nodes[at].parents.find(p => left.has(p)) ?? at
    }
    const cycle = pathIdx.slice(seen.get(at)).reverse()
    const first = nodes[cycle[0]]
    const last = nodes[cycle[cycle.length - 1]]
    const edgeAt = first.parentAt[first.parents.indexOf(last.index)]
    throw new BgridError('INVALID_DAG', `${this.dag.file}: the DAG has a cycle: ${[...cycle, cycle[0]].map(i => nodes[i].name).join(' -> ')} (PARENT ${last.name} CHILD ${first.name} at ${this.problems.at(edgeAt)}); nothing can run`)
  }

  private isAncestor (a: number, b: number): boolean {
    const nodes = this.dag.nodes
    if (nodes[b].parents.includes(a)) return true
    const seen = new Set<number>([b])
    const stack = [...nodes[b].parents]
    while (stack.length > 0) {
      const x = stack.pop() as number
      if (x === a) return true
      if (seen.has(x)) continue
      seen.add(x)
      for (const p of nodes[x].parents) if (!seen.has(p)) stack.push(p)
    }
    return false
  }

  // ---- nodes to jobs

  private noopJob (n: DagmanNode): JobDraft {
    return {
      id: '', universe: 'vanilla', node: n, proc: 0, iwd: n.dir, declaredOutputs: true, exe: { kind: 'path', path: '/bin/true' }, args: [], env: {},
      stdin: null, stdout: null, stderr: null, inputs: [], outputs: [], resolved: [], cmd: ['/bin/true']
    }
  }

  private description (n: DagmanNode): SubmitDescription {
    if (n.inline !== null) return parseSubmitLines(n.inline, n.at.file, true)
    const named = this.dag.descriptions.get(n.submit)
    const key = named !== undefined ? `desc:${n.submit}` : resolveIn(n.dir, n.submit)
    let d = this.descs.get(key)
    if (d === undefined) {
      if (named !== undefined) d = parseSubmitLines(named.lines, named.at.file, true)
      else {
        // read once per DAG run, again only once it changed (a node may write another's submit file)
        const st = this.submitFiles !== undefined ? this.stat(key) : null
        const known = st !== null ? this.submitFiles?.get(key) : undefined
        if (known !== undefined && st !== null && known.size === st.size && known.mtimeMs === st.mtimeMs) d = known.desc
        else {
          try { d = readSubmitFile(key) } catch (err) {
            if (err instanceof SubmitError && err.at.line === 0) throw new SubmitError(n.at, `submit file ${n.submit}: ${err.message.replace(/^cannot read the submit file: /, '')}`)
            throw err
          }
          if (st !== null) this.submitFiles?.set(key, { size: st.size, mtimeMs: st.mtimeMs, desc: d })
        }
      }
      this.descs.set(key, d)
    }
    return d
  }

  /** what each key of a description is: read, pool-only, not honoured, or neither a command nor a used macro */
  private checkDescription (d: SubmitDescription): void {
    if (this.checked.has(d)) return
    this.checked.add(d)
    for (const s of d.statements) {
      if (s.kind === 'attr') { this.ignore(`+${s.name} (job ClassAd attribute)`, s.at); continue }
      if (s.kind !== 'set') continue
      const k = canonicalKey(s.key)
      if (HONOURED.has(k)) continue
      if (POOL_ONLY.has(k)) { this.ignore(k, s.at); continue }
      if (NOT_HONOURED.has(k) || (/^request_/.test(k) && !d.referenced.has(s.key))) { this.feature(`submit command ${s.name}`, s.at); continue }
      if (!d.referenced.has(s.key) && !this.unknown.has(s.name.toLowerCase())) this.unknown.set(s.name.toLowerCase(), s.at)
    }
  }

  private readonly automatics = new Map<SubmitDescription, Record<string, string>>()
  /** condor_submit's automatic macros (lower-case names) */
  private automatic (desc: SubmitDescription): Record<string, string> {
    let a = this.automatics.get(desc)
    if (a === undefined) {
      a = { opsys: 'LINUX', arch: osArch(), islinux: 'true', iswindows: 'false', ismacos: 'false', submit_file: desc.file, spool: '' }
      this.automatics.set(desc, a)
    }
    return a
  }

  private nodeJobs (n: DagmanNode): void {
    const desc = this.description(n)
    this.checkDescription(desc)
    // DAGMan itself puts the node's name and retry count in VARS values
    const own = (v: string): string => v.includes('$(') ? v.replaceAll('$(JOB)', n.name).replaceAll('$(RETRY)', this.dagmanMacros.retry) : v
    const vars: NodeMacros['vars'] = []
    const attrs: NodeMacros['attrs'] = []
    for (const v of n.vars) {
      if (v.name.length > 3 && v.name[2] === '.' && /^my\./i.test(v.name)) attrs.push({ name: v.name.slice(3), value: own(v.value) })
      else vars.push({ name: v.name, value: own(v.value), prepend: v.prepend !== false, at: v.at })
    }
    const macros: NodeMacros = {
      vars,
      attrs,
      dagman: { job: n.name, ...this.dagmanMacros },
      automatic: this.automatic(desc),
      cluster: n.index + 1,
      env: this.env,
      cwd: n.dir
    }
    const procs = evaluateSubmit(desc, macros)
    if (procs.length === 0) throw new SubmitError(n.at, `submit file ${n.submit} queues no job`)
    this.jobsOf.set(n.index, procs.map(p => this.job(n, p)))
  }

  private job (n: DagmanNode, p: SubmitProc): JobDraft {
    const at = (k: string): Loc => p.at(k) ?? n.at
    const fileValue = (k: string): string | undefined => {
      const v = p.get(k)
      if (v === undefined) return undefined
      if (v.includes(RETRY_MARK)) throw new SubmitError(at(k), `${k}: $(RETRY) is known only when the job runs; bgrid names files before (use it in arguments or environment)`)
      if (v.includes('$$(')) throw new SubmitError(at(k), `${k}: $$() (substituted by HTCondor at match time) is not supported here`)
      return v.trim()
    }
    const universe = (p.get('universe') ?? 'vanilla').trim().toLowerCase()
    if (ON_SUBMITTER.has(universe) && this.runMode !== undefined) { /* the submitter runs it */ } else if (ON_SUBMITTER.has(universe)) this.feature(`universe ${universe}`, at('universe'), 'the job runs on a worker, as vanilla, not on the submitting machine')
    else if (!VANILLA.has(universe)) throw new SubmitError(at('universe'), `universe ${universe}: bgrid runs vanilla jobs (and scheduler/local ones with --lenient)`)

    const initialdir = fileValue('initialdir')
    const iwd = initialdir === undefined ? n.dir : resolveIn(n.dir, initialdir)
    const exeText = fileValue('executable')
    if (exeText === undefined || exeText === '') throw new SubmitError(n.at, `submit file ${n.submit}: no executable`)
    const transferExe = !/^(false|no|0)$/i.test(fileValue('transfer_executable') ?? 'true')
    // many jobs, one executable: worked out once
    const { exe, exeInput } = this.memo(transferExe ? 'exe' : 'exe-in-place', n.dir, exeText, () => {
      const exeAbs = resolveIn(n.dir, exeText)
      let exe: JobDraft['exe']
      if (!transferExe) exe = { kind: 'path', path: exeText }
      else if (path.isAbsolute(exeText) && (this.rel(exeAbs) === null || (this.runMode !== undefined && SYSTEM_DIRS.some(d => exeText.startsWith(d))))) {
        // a system program (or one outside the dag.json's directory) runs where it is on the worker
        exe = { kind: 'path', path: exeText }
        if (!SYSTEM_DIRS.some(d => exeText.startsWith(d))) this.warn(`executable ${exeText} at ${this.problems.at(at('executable'))} is outside the dag.json's directory: not sent, run where it is on the worker (it must be there)`)
      } else exe = { kind: 'staged', name: path.basename(exeAbs), abs: exeAbs, at: at('executable') }
      const exeInput: InputDraft | null = exe.kind === 'staged' ? { abs: exe.abs, as: exe.name, at: exe.at, what: 'executable' } : null
      return { exe, exeInput }
    })

    const stf = (fileValue('should_transfer_files') ?? 'YES').toUpperCase()
    if (stf === 'NO') throw new SubmitError(at('should_transfer_files'), 'should_transfer_files = NO needs a shared file system; bgrid always sends files: set YES and list the inputs in transfer_input_files')
    if (stf !== 'YES' && stf !== 'IF_NEEDED') throw new SubmitError(at('should_transfer_files'), `should_transfer_files = ${stf}: YES, NO or IF_NEEDED`)
    const wtto = (fileValue('when_to_transfer_output') ?? 'ON_EXIT').toUpperCase()
    if (wtto === 'ON_EXIT_OR_EVICT') this.warn(`when_to_transfer_output = ON_EXIT_OR_EVICT at ${this.problems.at(at('when_to_transfer_output'))}: bgrid brings outputs back when the job exits; an interrupted job starts again from scratch`)
    else if (wtto !== 'ON_EXIT') throw new SubmitError(at('when_to_transfer_output'), `when_to_transfer_output = ${wtto}: ON_EXIT or ON_EXIT_OR_EVICT`)

    const late = (k: string): string | undefined => {
      const v = p.get(k)
      return v === undefined ? undefined : this.lateBind(v, n, p, at(k))
    }
    let args: string[] = []
    const argText = late('arguments')
    if (argText !== undefined) try { args = parseArguments(argText) } catch (err: any) { throw new SubmitError(at('arguments'), `arguments: ${err.message}`) }
    let env: Record<string, string> = {}
    const envText = late('environment')
    if (envText !== undefined) try { env = parseEnvironment(envText) } catch (err: any) { throw new SubmitError(at('environment'), `environment: ${err.message}`) }

    const job: JobDraft = {
      id: '', universe: ON_SUBMITTER.has(universe) && this.runMode !== undefined ? 'local' : 'vanilla', node: n, proc: p.process, iwd, declaredOutputs: fileValue('transfer_output_files') !== undefined, exe, args, env,
      stdin: null, stdout: null, stderr: null, inputs: [], outputs: [], resolved: [], cmd: ''
    }
    if (exeInput !== null) job.inputs.push(exeInput)
    const input = fileValue('input')
    if (input !== undefined && input !== '' && input !== '/dev/null') {
      const abs = resolveIn(iwd, input)
      job.stdin = path.basename(abs)
      job.stdinAbs = abs
      job.inputs.push({ abs, as: job.stdin, at: at('input'), what: 'input' })
    }
    const tif = fileValue('transfer_input_files')
    if (tif !== undefined) {
      job.inputs.push(...this.memo('tif', iwd, tif, () => this.list(tif).map((f): InputDraft => {
        if (/^[a-z][a-z0-9+.-]*:\/\//i.test(f)) throw new SubmitError(at('transfer_input_files'), `transfer_input_files: ${f}: URLs are not supported by bgrid (list files)`)
        const abs = resolveIn(iwd, f)
        return f.endsWith('/') ? { abs, as: '', at: at('transfer_input_files'), what: 'directory' } : { abs, as: path.basename(abs), at: at('transfer_input_files'), what: 'transfer_input_files' }
      })))
    }
    const stdout = this.stdFile(fileValue('output'), iwd, at('output'))
    const stderr = this.stdFile(fileValue('error'), iwd, at('error'))
    if (stdout !== null) { job.stdout = stdout.name; job.outputs.push(stdout) }
    if (stderr !== null) { job.stderr = stderr.name; if (stderr.name !== stdout?.name) job.outputs.push(stderr) }
    const tof = fileValue('transfer_output_files')
    if (tof !== undefined) {
      const outs = this.memo('tof', iwd, tof, () => this.list(tof).map(f => {
        if (f.endsWith('/')) throw new SubmitError(at('transfer_output_files'), `transfer_output_files: ${f}: directories are not supported by bgrid (list the files)`)
        const name = path.posix.normalize(f)
        const why = unsafeRelPath(name)
        if (why !== null) throw new SubmitError(at('transfer_output_files'), `transfer_output_files: ${f}: ${why} (it names a file in the job's directory)`)
        return { name, abs: resolveIn(iwd, path.basename(name)) }
      }))
      for (const o of outs) if (!job.outputs.some(x => x.name === o.name)) job.outputs.push(o)
    }

    const cpus = fileValue('request_cpus')
    if (cpus !== undefined) {
      const c = Number(cpus)
      if (!Number.isFinite(c) || c <= 0 || c > 1024) throw new SubmitError(at('request_cpus'), `request_cpus = ${cpus}: bgrid needs a number of cores (0 < n <= 1024)`)
      job.cores = c
    }
    for (const [k, unit, field] of [['request_memory', 'M', 'ram'], ['request_disk', 'K', 'disk']] as const) {
      const v = fileValue(k)
      if (v === undefined) continue
      try { job[field] = parseQuantityMiB(v, unit) } catch (err: any) { throw new SubmitError(at(k), `${k}: ${err.message}${unit === 'K' ? ' (KiB by default)' : ' (MiB by default)'}`) }
    }
    for (const k of ['allowed_execute_duration', 'allowed_job_duration']) {
      const v = fileValue(k)
      if (v === undefined) continue
      const s = Number(v)
      if (!Number.isFinite(s) || s <= 0) throw new SubmitError(at(k), `${k} = ${v}: bgrid needs a number of seconds`)
      job.timeout = Math.min(job.timeout ?? Infinity, s)
    }
    const jobValues = { requestMemory: job.ram, requestCpus: job.cores, requestDisk: job.disk !== undefined ? job.disk * 1024 : undefined }
    for (const k of ['requirements', 'rank'] as const) {
      const v = fileValue(k)
      if (v === undefined || v === '') continue
      // one submit file, one expression, many jobs: translated once
      const key = `${v}\u0000${jobValues.requestMemory}\u0000${jobValues.requestCpus}\u0000${jobValues.requestDisk}`
      let text = this.classads.get(key)
      if (text === undefined) {
        try { text = translateClassAd(v, jobValues) } catch (err) {
          if (!(err instanceof ClassAdError)) throw err
          text = err
        }
        this.classads.set(key, text)
      }
      if (text instanceof ClassAdError) throw new SubmitError(at(k), `${k}: ${text.message}${text.column > 0 ? ` at column ${text.column + 1}` : ''}\n    ${v}\n    ${' '.repeat(text.column)}^`)
      if (k === 'requirements') job.requirements = text
      else job.rank = { text, at: at(k) }
    }
    // run mode: the submitter runs local-universe jobs itself, from these parts
    if (job.universe === 'local' && this.runMode !== undefined) { job.inputs = []; return job }
    job.cmd = this.command(job)
    if (this.runMode === undefined) job.args = NO_ARGS
    return job
  }

  private readonly memos = new Map<string, Map<string, Map<string, unknown>>>()
  /** what one submit file's value gives, worked out once for all its jobs (kind, context, value) */
  private memo<T> (kind: string, context: string, value: string, make: () => T): T {
    let byKind = this.memos.get(kind)
    if (byKind === undefined) { byKind = new Map(); this.memos.set(kind, byKind) }
    let byContext = byKind.get(context)
    if (byContext === undefined) { byContext = new Map(); byKind.set(context, byContext) }
    if (byContext.has(value)) return byContext.get(value) as T
    const v = make()
    byContext.set(value, v)
    return v
  }

  /** transfer lists: commas and/or white space between names */
  private list (v: string | undefined): string[] {
    return v === undefined ? [] : v.split(/[\s,]+/).filter(s => s !== '')
  }

  /** output/error: the name in the job's directory and where HTCondor would put it */
  private stdFile (v: string | undefined, iwd: string, at: Loc): { name: string, abs: string } | null {
    if (v === undefined || v === '' || v === '/dev/null') return null
    const abs = resolveIn(iwd, v)
    const rel = path.isAbsolute(v) ? null : path.posix.normalize(v)
    const name = rel !== null && unsafeRelPath(rel) === null ? rel : path.basename(abs)
    if (unsafeRelPath(name) !== null) throw new SubmitError(at, `${JSON.stringify(v)} cannot be an output file name`)
    return { name, abs }
  }

  /**
   * `$$([expr])` and `$$(attr)`, which HTCondor fills in at match time: bgrid knows the
   * node's DAGParentNodeNames and DAGNodeName, and the job's own attributes (+Attr,
   * MY.Attr, VARS My.Attr) when they are strings or numbers.
   */
  private lateBind (text: string, n: DagmanNode, p: SubmitProc, at: Loc): string {
    if (!text.includes('$$(')) return text
    return text.replace(/\$\$\(([^()]*(?:\([^()]*\)[^()]*)*)\)/g, (all, body: string) => {
      const b = body.trim()
      if (b.toUpperCase() === 'DOLLARDOLLAR') return '$$'
      const m = /^\[\s*(?:(my|target)\.)?([A-Za-z_][A-Za-z0-9_]*)\s*\]$/i.exec(b)
      if (m === null) throw new SubmitError(at, `${all}: bgrid fills in $$([attribute]) for the job's own attributes only (machine attributes and expressions are not known before the job runs)`)
      if (m[1]?.toUpperCase() === 'TARGET') throw new SubmitError(at, `${all}: machine attributes are not known before the job runs on bgrid`)
      const name = m[2].toLowerCase()
      if (name === 'dagparentnodenames') return [...n.parents].sort((x, y) => x - y).map(i => this.dag.nodes[i].name).join(',')
      if (name === 'dagnodename') return n.name
      if (name === 'dagmannoderetry') return this.dagmanMacros.retry
      const a = p.attrs.get(name)
      if (a === undefined) throw new SubmitError(at, `${all}: the job has no attribute ${m[2]}`)
      const v = p.expand(a.value, a.at).trim()
      const str = /^"((?:[^"\\]|\\.)*)"$/.exec(v)
      if (str !== null) return str[1].replace(/\\(.)/g, '$1')
      if (/^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(v) || /^(true|false)$/i.test(v) || v === RETRY_MARK) return v
      throw new SubmitError(a.at, `${all}: attribute ${m[2]} = ${v}: bgrid fills in strings and numbers only`)
    })
  }

  // ---- ids, inputs, commands

  private assignIds (): void {
    const taken = new Set<string>()
    // only the files someone reads need to know who makes them
    const read = new Set<string>()
    for (const [, jobs] of this.jobsOf) for (const j of jobs) for (const i of j.inputs) read.add(i.abs)
    for (const [, jobs] of this.jobsOf) {
      for (const j of jobs) {
        const name = jobs.length > 1 ? `${j.node.name}.${j.proc}` : j.node.name
        let id = jobIdOf(name)
        for (let k = 2; taken.has(id); k++) id = `${jobIdOf(name).slice(0, 120)}_${k}`
        taken.add(id)
        j.id = id
        for (const o of j.outputs) {
          if (!read.has(o.abs)) continue
          const list = this.producers.get(o.abs)
          if (list === undefined) this.producers.set(o.abs, [j])
          else list.push(j)
        }
      }
    }
  }

  private stat (file: string): Stats | null {
    const hit = this.stats.get(file)
    if (hit !== undefined) return hit
    let st: Stats | null
    try { st = statSync(file) } catch { st = null }
    this.stats.set(file, st)
    return st
  }

  /** a path relative to the dag.json's directory, or null when it is not below it */
  private rel (abs: string): string | null {
    let r = this.rels.get(abs)
    if (r === undefined) {
      const x = path.relative(this.outDir, abs)
      r = x === '' || x.startsWith('..') || path.isAbsolute(x) ? null : x.split(path.sep).join('/')
      this.rels.set(abs, r)
    }
    return r
  }

  private resolveInputs (): void {
    for (const [, jobs] of this.jobsOf) {
      for (const j of jobs) {
        const names = new Set<string>()
        const add = (item: string | { src: string, as: string }, as: string, at: Loc): void => {
          if (names.has(as)) throw new SubmitError(at, `two inputs of job ${j.id} would be named ${as} in its directory`)
          names.add(as)
          j.resolved.push(item)
        }
        try {
          for (const inp of j.inputs) {
            const maker = this.producer(j, inp)
            if (maker !== null) {
              const out = maker.outputs.find(o => o.abs === inp.abs)?.name ?? path.basename(inp.abs)
              const as = inp.as === '' ? path.basename(inp.abs) : inp.as
              add(as === out ? `job:${maker.id}/${out}` : { src: `job:${maker.id}/${out}`, as }, as, inp.at)
              continue
            }
            const st = this.stat(inp.abs)
            if (st === null) { this.missing(j, inp); continue }
            if (st.isDirectory()) {
              const base = inp.what === 'directory' ? '' : path.basename(inp.abs) + '/'
              for (const f of this.walk(inp.abs)) this.fileInput(j, path.join(inp.abs, f), base + f, inp.at, add)
              continue
            }
            this.fileInput(j, inp.abs, inp.as === '' ? path.basename(inp.abs) : inp.as, inp.at, add)
          }
        } catch (err) {
          if (err instanceof SubmitError) { this.problems.error(err.at, err.message, j.node.name); continue }
          throw err
        }
      }
    }
    if (this.outside.size > 0) {
      const files = [...this.outside.keys()]
      let common = path.dirname(files[0])
      for (const f of files) while (common !== path.dirname(common) && !f.startsWith(common + path.sep)) common = path.dirname(common)
      const [first, at] = [...this.outside][0]
      this.problems.add(`${files.length} input file(s) are not below ${this.outDir}, where the dag.json goes (bgrid names inputs relative to it), e.g. ${first} (${this.problems.at(at)}): write the dag.json in ${common} or a directory above it`)
    }
  }

  private fileInput (j: JobDraft, abs: string, as: string, at: Loc, add: (item: string | { src: string, as: string }, as: string, at: Loc) => void): void {
    const r = this.rel(abs)
    if (r === null) { if (!this.outside.has(abs)) this.outside.set(abs, at); return }
    add(r === as ? r : { src: r, as }, as, at)
  }

  /** the files below a directory, once per directory */
  private walk (dir: string): string[] {
    let w = this.walks.get(dir)
    if (w === undefined) { w = this.walkNow(dir, ''); this.walks.set(dir, w) }
    return w
  }

  private walkNow (dir: string, prefix: string): string[] {
    const out: string[] = []
    for (const e of readdirSync(dir, { withFileTypes: true }).sort((a, b) => a.name < b.name ? -1 : 1)) {
      const rel = prefix + e.name
      if (e.isDirectory()) out.push(...this.walkNow(path.join(dir, e.name), rel + '/'))
      else if (e.isFile()) out.push(rel)
    }
    return out
  }

  /** the ancestor job that makes this file, the nearest when several do; null: none does */
  private producer (j: JobDraft, inp: InputDraft): JobDraft | null {
    const makers = this.producers.get(inp.abs)
    if (makers === undefined) return null
    const mine = makers.filter(m => m.node !== j.node && this.isAncestor(m.node.index, j.node.index))
    if (mine.length === 0) {
      const other = makers.find(m => m.node !== j.node)
      if (other !== undefined && this.stat(inp.abs) === null) throw new SubmitError(inp.at, `${j.id} reads ${path.basename(inp.abs)}, which node ${other.node.name} makes, but ${other.node.name} is not an ancestor of ${j.node.name} (add PARENT ${other.node.name} CHILD ${j.node.name})`)
      return null
    }
    const latest = mine.filter(m => mine.every(o => o === m || o.node === m.node || this.isAncestor(o.node.index, m.node.index)))
    if (latest.length !== 1) throw new SubmitError(inp.at, `${j.id} reads ${path.basename(inp.abs)}, which several ancestors make (${mine.map(m => m.id).join(', ')}): bgrid cannot tell which copy DAGMan would have left`)
    return latest[0]
  }

  /** a file no job declares and that is not on disk: made by the one ancestor that declares no outputs? */
  private missing (j: JobDraft, inp: InputDraft): void {
    const candidates: JobDraft[] = []
    const seen = new Set<number>()
    const stack = [...j.node.parents]
    while (stack.length > 0) {
      const x = stack.pop() as number
      if (seen.has(x)) continue
      seen.add(x)
      for (const c of this.jobsOf.get(x) ?? []) if (!c.declaredOutputs && c.iwd === path.dirname(inp.abs)) candidates.push(c)
      stack.push(...this.dag.nodes[x].parents)
    }
    const name = path.basename(inp.abs)
    if (candidates.length !== 1) {
      const why = candidates.length === 0
        ? 'it does not exist and no ancestor node declares it (name it in the maker\'s transfer_output_files)'
        : `it does not exist, and ancestors ${candidates.map(c => c.id).join(', ')} declare no transfer_output_files: name it in the maker's`
      throw new SubmitError(inp.at, `${inp.what} ${path.relative(this.dag.dir, inp.abs) || inp.abs} of ${j.id}: ${why}`)
    }
    const maker = candidates[0]
    maker.outputs.push({ name, abs: inp.abs })
    this.producers.set(inp.abs, [...(this.producers.get(inp.abs) ?? []), maker])
    this.warn(`${maker.id} declares no transfer_output_files: ${name}, which ${j.id} reads, is taken as one of its outputs`)
    j.resolved.push(`job:${maker.id}/${name}`)
  }

  /** the job's command: argv when nothing needs a shell, else an sh -c line */
  private command (j: JobDraft): string[] | string {
    let argv0: string[]
    let copy: string | null = null
    if (j.exe.kind === 'path') argv0 = [j.exe.path]
    else {
      const interp = this.shebang(j.exe.abs)
      if (interp !== null) argv0 = [...interp, `./${j.exe.name}`]
      else {
        // inputs arrive read-only (0444): a binary is copied to a file it may execute
        const x = `./.${j.exe.name}.bgrid-exe`
        copy = `cp -- ${shq(`./${j.exe.name}`)} ${shq(x)} && chmod 755 ${shq(x)}`
        argv0 = [x]
      }
    }
    const argv = [...argv0, ...j.args]
    const retryEnv = Object.entries(j.env).filter(([, v]) => v.includes(RETRY_MARK))
    const needShell = copy !== null || j.stdin !== null || j.stdout !== null || j.stderr !== null || retryEnv.length > 0 || argv.some(a => a.includes(RETRY_MARK))
    if (!needShell) return argv
    const steps: string[] = []
    for (const [k, v] of retryEnv) { steps.push(`export ${k}=${shq(v)}`); delete j.env[k] }
    const dirs = new Set([j.stdout, j.stderr].filter((f): f is string => f !== null && f.includes('/')).map(f => path.posix.dirname(f)))
    if (dirs.size > 0) steps.push(`mkdir -p ${[...dirs].map(shq).join(' ')}`)
    if (copy !== null) steps.push(copy)
    let run = `exec ${argv.map(shq).join(' ')}`
    if (j.stdin !== null) run += ` < ${shq(j.stdin)}`
    if (j.stdout !== null) run += ` > ${shq(j.stdout)}`
    if (j.stderr !== null) run += j.stderr === j.stdout ? ' 2>&1' : ` 2> ${shq(j.stderr)}`
    steps.push(run)
    return steps.join(' && ')
  }

  /** a script's #! line as argv (interpreter and its one optional argument); null for anything else */
  private shebang (file: string): string[] | null {
    let v = this.shebangs.get(file)
    if (v !== undefined) return v
    v = null
    try {
      const fd = openSync(file, 'r')
      const buf = Buffer.alloc(256)
      const n = readSync(fd, buf, 0, 256, 0)
      closeSync(fd)
      const head = buf.subarray(0, n).toString('latin1')
      if (head.startsWith('#!')) {
        const line = head.slice(2).split('\n')[0].trim()
        const m = /^(\S+)(?:\s+(.*))?$/.exec(line)
        if (m !== null) v = m[2] !== undefined && m[2] !== '' ? [m[1], m[2]] : [m[1]]
      }
    } catch (err) { bestEffort('openSync()', err) }
    this.shebangs.set(file, v)
    return v
  }

  // ---- dag.json

  private assemble (warnings: string[], done: number, noop: number): Converted {
    const jobs: Array<Record<string, unknown>> = []
    const renamed: Array<[string, string]> = []
    const priorities = new Map<string, number>()
    const ranks = new Map<string, Loc>()
    let edges = 0
    for (const n of this.dag.nodes) {
      const mine = this.jobsOf.get(n.index)
      if (mine === undefined) continue
      const after: string[] = []
      for (const p of n.parents) for (const pj of this.jobsOf.get(p) ?? []) after.push(pj.id)
      edges += after.length * mine.length
      for (const j of mine) {
        const name = mine.length > 1 ? `${n.name}.${j.proc}` : n.name
        if (j.id !== name) renamed.push([name, j.id])
        if (n.priority !== null) priorities.set(j.id, n.priority.value)
        if (j.rank !== undefined && !ranks.has(j.rank.text)) ranks.set(j.rank.text, j.rank.at)
        const job: Record<string, unknown> = { id: j.id, cmd: j.cmd }
        if (after.length > 0) job.after = after
        if (j.resolved.length > 0) job.inputs = j.resolved
        if (j.outputs.length > 0) job.outputs = j.outputs.map(o => o.name)
        for (const _ in j.env) { job.env = j.env; break }
        if (n.retry !== null && n.retry.count > 0) job.retries = Math.min(100, n.retry.count)
        if (j.timeout !== undefined) job.timeout = j.timeout
        if (j.cores !== undefined) job.cores = j.cores
        if (j.ram !== undefined) job.ram = j.ram
        if (j.disk !== undefined) job.disk = j.disk
        if (j.requirements !== undefined) job.requirements = j.requirements
        jobs.push(job)
        if (n.retry !== null && n.retry.count > 100) warnings.push(`RETRY ${n.name} ${n.retry.count} at ${this.problems.at(n.retry.at)}: bgrid retries a job 100 times at most`)
      }
    }
    if (jobs.length === 0) throw new BgridError('INVALID_DAG', `${this.dag.file}: no node is left to run (every node is DONE or dropped)`)
    let rank: string | undefined
    if (ranks.size === 1) rank = [...ranks.keys()][0]
    else if (ranks.size > 1) {
      const [a, b] = [...ranks.values()]
      const msg = `rank differs between jobs (${this.problems.at(a)}, ${this.problems.at(b)}...): dag.json has one rank for the whole DAG`
      if (!this.lenient) throw new BgridError('INVALID_DAG', `${this.dag.file}: ${msg}`)
      warnings.push(`dropped: ${msg}`)
    }
    const ignored = [...this.ignoredKeys].map(([k, i]) => `${k} (${this.problems.at(i.at)}${i.count > 1 ? ` and ${i.count - 1} more` : ''})`)
    const unknown = [...this.unknown].map(([k, at]) => `${k} at ${this.problems.at(at)}: not a submit command bgrid knows, and no $(${k}) uses it`)
    const dag: Record<string, unknown> = {
      name: path.basename(this.dag.file).replace(/\.dag$/i, '').slice(0, 128) || 'dagman',
      // DAGMan brings every job's outputs back
      collect: 'all',
      // DAGMan retries a node only when RETRY says so
      defaults: { retries: 0 },
      ...(rank !== undefined ? { rank } : {}),
      jobs
    }
    return { dag, warnings, ignored, unknown, renamed, priorities, summary: { nodes: this.dag.nodes.length, jobs: jobs.length, done, noop, edges } }
  }
}
