// bgrid: the one CLI (bin/bgrid.ts checks the Node version, then loads this). The top of
// the import graph: it may import every folder, and it is where a run's middleware
// adapter is picked (from the registry) and handed to the coordinator.
// Subcommands map typed errors to messages and exit codes.
import { Command, Option, InvalidArgumentError } from 'commander'
import os from 'node:os'
import path from 'node:path'
import { BgridError, errorMessage, exitCodeFor } from '../protocol/errors.ts'
import { DAEMON_NODE_FLAGS } from '../daemon/node-flags.ts'
import { takeCsdOptions } from './commands/csd-options.ts'
import { inspect } from 'node:util'
import { printable, printableJson, printableLines } from '../protocol/printable.ts'

// The daemon's V8 flags must be set before the heap exists: re-exec (same PID) with them.
const missingFlags = DAEMON_NODE_FLAGS.filter(f => !process.execArgv.includes(f))
if (process.argv[2] === 'daemon' && missingFlags.length > 0 && typeof (process as any).execve === 'function') {
  (process as any).execve(process.execPath, [process.execPath, ...missingFlags, ...process.execArgv, ...process.argv.slice(1)], process.env)
}

// `bgrid status | head -1`: the reader is gone, nothing more to say (and nothing to crash on)
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') process.exit(process.exitCode ?? 0)
    throw err
  })
}

const program = new Command()

// `bgrid submit FILE.dag -maxjobs 4 -verbose`: condor_submit_dag's single-dash options are
// taken out before commander reads the line
if (process.argv[2] === 'submit') {
  const rest = process.argv.slice(3)
  const { kept, csd } = takeCsdOptions(rest)
  if (csd.length > 0) process.argv.splice(3, rest.length, ...kept, '--condor-args', JSON.stringify(csd))
}

export function defaultDataDir (): string {
  return process.env.BGRID_HOME ?? path.join(os.homedir(), '.bgrid')
}

export function num (name: string, opts: { min?: number, max?: number, integer?: boolean } = {}) {
  return (value: string): number => {
    const n = Number(value)
    if (value.trim() === '' || !Number.isFinite(n)) throw new InvalidArgumentError(`${name} must be a number`)
    if (opts.integer === true && !Number.isInteger(n)) throw new InvalidArgumentError(`${name} must be a whole number`)
    if (opts.min !== undefined && n < opts.min) throw new InvalidArgumentError(`${name} must be >= ${opts.min}`)
    if (opts.max !== undefined && n > opts.max) throw new InvalidArgumentError(`${name} must be <= ${opts.max}`)
    return n
  }
}

function collect (value: string, previous: string[]): string[] { return [...previous, value] }

/** `--watch [seconds]` takes the next word if it can: say so when that word was meant as the run id */
function watchSeconds (value: string): number {
  if (!/^\s*[0-9.]+\s*$/.test(value)) throw new InvalidArgumentError(`"${value}" is not a number of seconds (give the run id before --watch: bgrid status RUN --watch)`)
  return num('--watch', { min: 0.1, max: 3600 })(value)
}

/**
 * Run a command: its result is the exit code; an error is one line on stderr and its
 * exit code, and with --json also a last NDJSON event on stdout, so that a script
 * reading stdout learns why it ended.
 */
async function run (fn: () => Promise<number | void>, o: { json?: boolean } = {}): Promise<void> {
  try {
    const code = await fn()
    if (typeof code === 'number') process.exitCode = code
  } catch (err) {
    const exitCode = exitCodeFor(err)
    // an error may carry what a worker or a node said (NO_WORKERS names every node seen)
    process.stderr.write(`bgrid: ${printableLines(errorMessage(err))}\n`)
    if (o.json === true) {
      const code = err instanceof BgridError ? err.code : 'INTERNAL'
      const message = err instanceof BgridError ? err.message : errorMessage(err)
      process.stdout.write(printableJson({ time: Date.now(), event: 'error', code, message, exitCode }) + '\n')
    }
    if (!(err instanceof BgridError) && process.env.BGRID_DEBUG !== undefined) {
      console.error(printableLines(inspect(err)))
    }
    process.exitCode = exitCode
  }
}

program
  .name('bgrid')
  .description('Peer-to-peer desktop grid: idle PCs advertise themselves over mDNS/DNS-SD; `bgrid submit` runs a DAG on them.')
  .version('0.1.0')
  .showHelpAfterError()
  .configureOutput({ outputError: (str, write) => { write(`bgrid: ${str.replace(/^error: /, '')}`) } })
  .exitOverride((err) => {
    // commander errors (bad options) are the user's input: exit 2
    process.exit(err.exitCode === 0 ? 0 : 2)
  })

program.command('daemon')
  .description('run this machine\'s volunteer node in the foreground (Ctrl-C stops it cleanly)')
  .option('--data-dir <dir>', 'identity, database, blob store (env BGRID_HOME)', defaultDataDir())
  .option('--port <n>', 'libp2p TCP port (0 = any free)', num('--port', { min: 0, max: 65535, integer: true }), 0)
  .option('--host <ip>', 'address to listen on', '0.0.0.0')
  .option('--cost <x>', 'price per core-hour advertised to coordinators', num('--cost', { min: 0 }), 0)
  .option('--slots <n>', 'jobs run at once (default: logical cores)', num('--slots', { min: 1, max: 1024, integer: true }))
  .option('--grid-key <file>', 'private grid: only peers with this key can connect (make one with `bgrid keygen`)')
  .option('--allow-coordinator <id>', 'accept claims only from this submitter (its `bgrid id`; repeatable)', collect, [])
  .option('--prefer-coordinator <id>', 'runs of this submitter (its `bgrid id`) take this node from others\' at a job boundary, as HTCondor\'s RANK (repeatable)', collect, [])
  .option('--max-retirement <s>', 'leaving a run for a fairer share, the time its running jobs have to finish before they are preempted', num('--max-retirement', { min: 0 }), 600)
  .option('--attr <KEY=VALUE>', 'a custom attribute job requirements and rank may use (HasMatlab=true, Site="lab-b"; repeatable)', collect, [])
  .option('--start <expr>', 'START policy: run only jobs it holds for (RequestMemory, RequestCpus, RequestDisk, Owner, ClockHour, ClockMin, the node\'s own attributes)')
  .option('--always-available', 'dedicated machine: ignore the owner idle policy', false)
  .option('--idle-start <s>', 'owner away this long before the node is offered', num('--idle-start', { min: 0 }), 180)
  .option('--idle-load <x>', 'owner CPU load (0..1, our tasks excluded) counted as idle', num('--idle-load', { min: 0, max: 1 }), 0.3)
  .option('--suspend-active <s>', 'keyboard/mouse used within this many seconds: owner is back', num('--suspend-active', { min: 0 }), 60)
  .option('--suspend-load <x>', 'owner load that, sustained, means the owner is back', num('--suspend-load', { min: 0, max: 1 }), 0.5)
  .option('--suspend-load-time <s>', 'how long --suspend-load must last', num('--suspend-load-time', { min: 0 }), 120)
  .option('--max-suspend <s>', 'suspended longer than this: give tasks back to their coordinator', num('--max-suspend', { min: 0 }), 600)
  .option('--activity-file <file>', 'a file touched on owner activity (default: /dev/input access times)')
  .option('--mdns-interface <ip>', 'IPv4 address of the interface for mDNS (default: all)')
  .option('--run-as <user>', 'when root, run every run\'s jobs as this user (default: a uid of its own for each run)')
  .addOption(new Option('--isolation <mode>', 'auto: jobs contained (namespaces, cgroups, a uid per run) when the daemon is root; none: unconfined, for trusted grids only').choices(['auto', 'none']).default('auto'))
  .option('--max-job-ram <MiB>', 'memory limit of a job that declares no ram (default: 90% of RAM over the slots)', num('--max-job-ram', { min: 16, integer: true }))
  .option('--max-job-disk <MiB>', 'the most a job may write in its sandbox (default: a quarter of the free disk)', num('--max-job-disk', { min: 1, integer: true }))
  .option('--max-job-pids <n>', 'processes and threads per job', num('--max-job-pids', { min: 8, integer: true }), 1024)
  .option('--cache-quota <MiB>', 'blob store quota; unpinned blobs are evicted LRU', num('--cache-quota', { min: 1 }))
  .option('--sample <ms>', 'resource and idle-policy sampling period', num('--sample', { min: 100, integer: true }), 2000)
  .option('--scrub-interval <hours>', 're-hash the whole blob store this often, in the background (0: never)', num('--scrub-interval', { min: 0 }), 24)
  .option('--json-logs', 'NDJSON logs for machines', false)
  .action(async (o) => { await run(async () => { const { daemonCommand } = await import('./commands/daemon.ts'); return await daemonCommand(o) }, o) })

const service = program.command('service').description('run the daemon from boot as a systemd service (Linux; see docs/service.md)')
for (const [sub, desc] of [
  ['install', 'write bgrid.service and enable it (system unit: root, jobs contained)'],
  ['uninstall', 'disable and remove the unit; the data dir is kept'],
  ['status', 'is the unit installed, enabled, running?']
] as const) {
  const c = service.command(sub).description(desc)
    .option('--user', 'a unit of your own for `systemctl --user` (no root; jobs not contained)', false)
    .option('--unit-dir <dir>', 'the unit goes (or is looked for) here, and systemctl is not run: for packagers')
  if (sub === 'install') {
    c.option('--data-dir <dir>', 'the daemon\'s data dir (default /var/lib/bgrid; --user: ~/.bgrid)')
      .option('--cache-quota <MiB>', 'blob store quota (default: 10% of the data dir\'s free disk now)', num('--cache-quota', { min: 1 }))
      .option('--no-enable', 'only write the unit file')
      .option('--daemon-arg <arg>', 'more `bgrid daemon` arguments, in order (repeatable: --daemon-arg=--cost --daemon-arg=2)', collect, [])
      .option('--json-logs', 'the daemon logs NDJSON to the journal', false)
  }
  c.action(async (o) => { await run(async () => { const { serviceCommand } = await import('./commands/service.ts'); return await serviceCommand(sub, o) }, o) })
}

program.command('peers')
  .description('list the nodes advertised on the LAN, like condor_status')
  .option('--json', 'one JSON array', false)
  .option('--watch', 'keep listing changes as they are seen', false)
  .option('--timeout <s>', 'how long to listen (default 2 s; with --watch, until Ctrl-C)', num('--timeout', { min: 0.1, max: 86400 }))
  .option('--state <state>', 'only nodes in this state')
  .option('--mdns-interface <ip>', 'IPv4 address of the interface for mDNS (default: all)')
  .action(async (o) => { await run(async () => { const { peersCommand } = await import('./commands/peers.ts'); return await peersCommand(o) }, o) })

program.command('keygen')
  .description('make a new private-grid key (give it to every node and submitter with --grid-key): written to FILE with mode 0600')
  .argument('[file]', 'where to write it (new file, 0600); without it the key goes to standard output, never to a terminal')
  .option('--force', 'replace an existing FILE', false)
  .action(async (file, o) => { await run(async () => { const { keygenCommand } = await import('../protocol/grid-key.ts'); keygenCommand(file, o.force) }) })

program.command('id')
  .description('print this data dir\'s submitter identity (give it to daemons with --allow-coordinator)')
  .option('--data-dir <dir>', 'data dir (env BGRID_HOME)', defaultDataDir())
  .option('--node', 'print the node\'s identity instead (the daemon\'s peer id)', false)
  .action(async (o) => {
    await run(async () => {
      const { peerIdFromPrivateKey } = await import('@libp2p/peer-id')
      const { loadOrCreateIdentity, submitterKey } = await import('../protocol/identity.ts')
      const key = o.node === true ? await loadOrCreateIdentity(o.dataDir) : await submitterKey(o.dataDir)
      process.stdout.write(`${printable(peerIdFromPrivateKey(key).toString())}\n`)
    })
  })

program.command('submit')
  .description('run a DAG (dag.json, or an HTCondor DAGMan file with condor_submit_dag\'s options) on idle nodes, with a coordinator created here for this run')
  .argument('[dag]', 'the DAG file: dag.json, or FILE.dag (DAGMan; see docs/condor.md)')
  .option('--resume <run-id>', 'continue a run whose coordinator crashed or was interrupted (a unique prefix will do; completed jobs are not re-run)')
  .option('--detach', 'run in the background, beyond this terminal: print the run id and return (see bgrid status, logs, report, cancel)', false)
  .option('--out <dir>', 'where outputs and run.json go (default ./bgrid-runs/<run-id>)')
  .option('--wait <s>', 'how long to wait for workers.min idle nodes', num('--wait', { min: 0 }), 30)
  .option('--data-dir <dir>', 'the coordinator\'s journal and blob store (env BGRID_HOME)', defaultDataDir())
  .option('--grid-key <file>', 'private grid key')
  .option('--mdns-interface <ip>', 'IPv4 address of the interface for mDNS (default: all)')
  .option('--lease <s>', 'worker lease; a silent worker is declared lost after it', num('--lease', { min: 1, max: 120 }), 6)
  .option('--priority <n>', 'this run\'s priority among concurrent runs (default: the DAG\'s `priority`, else 0): a higher one takes workers from lower ones, which keep one each', num('--priority', { min: -1000, max: 1000, integer: true }))
  .option('--stall-after <s>', 'no job ended and no command ran for this long: say why, and re-run elsewhere what workers hold without running (0: never)', num('--stall-after', { min: 0 }), 60)
  .option('--no-prefetch', 'do not move inputs ahead of time (for comparison)')
  .option('--stream-outputs', 'pull final outputs as they appear, not at the end', false)
  .option('--json', 'NDJSON events on stdout', false)
  .option('--quiet', 'only errors and the final summary', false)
  .option('--no-rescue', 'DAGMan files: start over, ignoring the rescue DAG a failed run left (condor_submit_dag -autorescue 0)')
  .option('--release-after <s>', 'DAGMan files: give the workers back after this long with no vanilla job to run (claimed again for the next one)', num('--release-after', { min: 0 }), 30)
  .addOption(new Option('--run-id <id>', 'choose the run id').hideHelp())
  .addOption(new Option('--condor-args <json>', 'condor_submit_dag options given').hideHelp())
  .action(async (dag, o) => { await run(async () => { const { submitCommand } = await import('./commands/submit.ts'); return await submitCommand(dag, o) }, o) })

program.command('status')
  .description('show a run (its id or any unique prefix of it), or the local daemon and the runs known here, newest first')
  .argument('[run-id]', 'a run id, or a unique prefix of one')
  .option('--data-dir <dir>', 'data dir (env BGRID_HOME)', defaultDataDir())
  .option('--json', 'JSON output (with --watch: one line per refresh)', false)
  .option('--watch [seconds]', 'refresh every N seconds (default 2) until Ctrl-C, or until the run given is over', watchSeconds)
  .option('--analyze [job]', 'why the run (or this job) waits: every node seen accounted for, and a job\'s fit on each, clause by clause')
  .action(async (id, o) => {
    await run(async () => {
      if (o.analyze !== undefined) {
        if (id === undefined) throw new BgridError('INVALID_CONFIG', '--analyze needs a run: bgrid status RUN --analyze [JOB]')
        const { analyzeCommand } = await import('./commands/analyze.ts')
        return await analyzeCommand(id, o.analyze === true ? undefined : o.analyze, o)
      }
      const { statusCommand } = await import('./commands/status.ts'); return await statusCommand(id, o)
    }, o)
  })

program.command('logs')
  .description('print a job\'s stdout (to stdout) and stderr (to stderr): its last attempt, or --attempt N')
  .argument('<run-id>', 'a run id, or a unique prefix of one')
  .argument('<job>', 'the job id')
  .option('--data-dir <dir>', 'data dir (env BGRID_HOME)', defaultDataDir())
  .option('--attempt <n>', 'which attempt (1 = the first)', num('--attempt', { min: 1, integer: true }))
  .option('--follow', 'wait for a running (or not yet started) attempt to end, then print it', false)
  .option('--stdout', 'only its stdout', false)
  .option('--stderr', 'only its stderr', false)
  .action(async (id, job, o) => { await run(async () => { const { logsCommand } = await import('./commands/logs.ts'); return await logsCommand(id, job, o) }, o) })

program.command('credit')
  .description('the workers of this submitter\'s BOINC-style runs: valid, invalid, errored and late results, trust, credit')
  .option('--data-dir <dir>', 'data dir (env BGRID_HOME)', defaultDataDir())
  .option('--json', 'JSON output', false)
  .action(async (o) => { await run(async () => { const { creditCommand } = await import('./commands/credit.ts'); return await creditCommand(o) }, o) })

program.command('report')
  .description('write the run\'s report.html (timeline, summary, jobs) and trace.tsv now, while it runs or after')
  .argument('<run-id>', 'a run id, or a unique prefix of one')
  .option('--data-dir <dir>', 'data dir (env BGRID_HOME)', defaultDataDir())
  .option('--out <dir>', 'where to write them (default: the run\'s --out)')
  .action(async (id, o) => { await run(async () => { const { reportCommand } = await import('./commands/report.ts'); return await reportCommand(id, o) }, o) })

program.command('cancel')
  .description('stop a running submit and release its workers')
  .argument('<run-id>', 'a run id, or a unique prefix of one')
  .option('--data-dir <dir>', 'data dir (env BGRID_HOME)', defaultDataDir())
  .action(async (id, o) => { await run(async () => { const { cancelCommand } = await import('./commands/status.ts'); return await cancelCommand(id, o) }, o) })

const cache = program.command('cache').description('this node\'s blob store')
// each subcommand has its own options: `cache ls --help` shows no gc option
for (const [name, desc] of [['ls', 'list blobs, most recently used first'], ['du', 'total size, pinned size and quota use'], ['gc', 'evict unpinned blobs, least recently used first, down to --target MiB'], ['verify', 're-hash every blob; corrupt ones are quarantined (exit 1 if any)']] as const) {
  const c = cache.command(name).description(desc)
    .option('--data-dir <dir>', 'data dir (env BGRID_HOME)', defaultDataDir())
  if (name === 'gc') c.requiredOption('--target <MiB>', 'keep at most this much (0: evict every unpinned blob)', num('--target', { min: 0 }))
  c.option('--json', 'JSON output', false)
    .action(async (o) => { await run(async () => { const { cacheCommand } = await import('./commands/cache.ts'); return await cacheCommand(name, o) }, o) })
}

program.command('import')
  .description('turn a workflow trace or an HTCondor DAGMan file into a runnable dag.json')
  .argument('<format>', 'wfcommons | dagman')
  .argument('<trace>', 'the trace file (wfcommons) or the .dag file (dagman)')
  .requiredOption('-o, --output <file>', 'the dag.json to write (wfcommons: inputs go beside it; dagman: put it where every input is below it, e.g. next to the .dag)')
  .option('--time-scale <f>', 'wfcommons: multiply recorded runtimes', num('--time-scale', { min: 0 }), 1)
  .option('--size-scale <f>', 'wfcommons: multiply recorded file sizes', num('--size-scale', { min: 0 }), 1)
  .option('--sleep', 'wfcommons: sleep instead of burning CPU', false)
  .option('--lenient', 'dagman: drop what bgrid does not run yet (SCRIPT, FINAL, ABORT-DAG-ON, universe scheduler...), a warning each, instead of refusing the DAG', false)
  .option('--dot <file>', 'dagman: also write the graph as a Graphviz file, in DAGMan\'s DOT style')
  .action(async (format, trace, o) => { await run(async () => { const { importCommand } = await import('./commands/import.ts'); return await importCommand(format, trace, o) }, o) })

program.command('export')
  .description('write a dag.json as an HTCondor DAGMan DAG that condor_submit_dag accepts: FILE.dag, and a directory per job with its submit file')
  .argument('<format>', 'dagman')
  .argument('<dag>', 'the dag.json')
  .requiredOption('-o, --output <dir>', 'the directory to write into (made if missing): NAME.dag, NAME.log, and <job>/<job>.sub; outputs come back to <job>/')
  .option('--force', 'replace an existing NAME.dag and its submit files', false)
  .action(async (format, dag, o) => { await run(async () => { const { exportCommand } = await import('./commands/export.ts'); return await exportCommand(format, dag, o) }, o) })

await program.parseAsync(process.argv)
