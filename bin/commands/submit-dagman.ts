// `bgrid submit FILE.dag [condor_submit_dag options]`: the DAG run as DAGMan runs it
// (middleware-adapters/condor/run-dagman.ts), its vanilla jobs on bgrid workers. The exit code is
// condor_dagman's: 0 the DAG succeeded, 1 it failed, 2 it was removed (interrupted), or an
// ABORT-DAG-ON RETURN value. A first Ctrl-C (or SIGTERM, SIGHUP) removes the DAG as
// condor_rm does (what runs is stopped, a rescue DAG written, FINAL still runs); a second
// one kills what is left at once.
import { readdirSync, renameSync } from 'node:fs'
import path from 'node:path'
import { BgridError } from '../../protocol/errors.ts'
import { createLogger } from '../../protocol/log.ts'
import { setBestEffortLog } from '../../protocol/best-effort.ts'
import { Progress } from '../../coordinator/progress.ts'
import { runDagman, writeCondorSub } from '../../middleware-adapters/condor/run-dagman.ts'
import type { DagmanRunOptions } from '../../middleware-adapters/condor/dag-run.ts'
import { adapterFor } from '../../middleware-adapters/registry.ts'
import { GridPool } from '../../middleware-adapters/condor/grid-pool.ts'
import { CSD_OPTIONS } from './csd-options.ts'
import { LINES_MAX, printable, printableJson, printableLines } from '../../protocol/printable.ts'

function whole (opt: string, v: string | undefined): number {
  if (v === undefined || !/^\d+$/.test(v)) throw new BgridError('INVALID_CONFIG', `${opt} needs a whole number (got ${v ?? 'nothing'})`)
  return Number(v)
}

/** what condor_submit_dag's options set: run-dagman.ts's settings, and what this command does itself */
type DagmanOptions = Pick<DagmanRunOptions, 'autoRescue' | 'doRescueFrom' | 'maxJobs' | 'maxPre' | 'maxPost' | 'outfileDir' | 'configFile' | 'dumpRescue'> & {
  verbose: boolean
  force: boolean
  noSubmit: boolean
  /** -priority: the run's priority among concurrent runs (bgrid's --priority wins) */
  priority?: number
}

/** condor_submit_dag's options, checked: an unknown one is named with the ones bgrid knows */
function readOptions (csd: string[]): DagmanOptions {
  const opts: DagmanOptions = { verbose: false, force: false, noSubmit: false, dumpRescue: false }
  for (let i = 0; i < csd.length; i++) {
    const a = csd[i].toLowerCase()
    const takes = CSD_OPTIONS.get(a)
    if (takes === undefined) throw new BgridError('INVALID_CONFIG', `${csd[i]}: not a condor_submit_dag option bgrid knows (it knows ${[...CSD_OPTIONS.keys()].join(' ')})`)
    const v = takes ? csd[++i] : undefined
    if (takes && v === undefined) throw new BgridError('INVALID_CONFIG', `${csd[i - 1]} needs a value`)
    switch (a) {
      case '-autorescue': opts.autoRescue = whole(a, v) !== 0; break
      // 0: not given (condor_submit_dag's default)
      case '-dorescuefrom': { const n = whole(a, v); if (n > 0) opts.doRescueFrom = n; break }
      case '-maxjobs': opts.maxJobs = whole(a, v); break
      case '-maxpre': opts.maxPre = whole(a, v); break
      case '-maxpost': opts.maxPost = whole(a, v); break
      case '-outfile_dir': opts.outfileDir = v; break
      case '-config': opts.configFile = v; break
      case '-verbose': opts.verbose = true; break
      case '-force': case '-f': opts.force = true; break
      case '-no_submit': opts.noSubmit = true; break
      case '-dumprescue': opts.dumpRescue = true; break
      case '-priority': {
        if (v === undefined || !/^-?\d+$/.test(v) || Math.abs(Number(v)) > 1000) {
          throw new BgridError('INVALID_CONFIG', `-priority needs a whole number from -1000 to 1000 (got ${v ?? 'nothing'})`)
        }
        opts.priority = Number(v)
        break
      }
    }
  }
  return opts
}

/** the dagman.out lines shown on the terminal without -verbose */
const SHOWN = /EXITING|Rescue DAG|failed with|ERROR|Submitting|completed|removed|ABORT-DAG-ON/

export async function dagmanSubmit (dag: string, o: any): Promise<number> {
  const csd: string[] = o.condorArgs !== undefined ? JSON.parse(o.condorArgs) : []
  const opts = readOptions(csd)
  if (o.detach === true) throw new BgridError('INVALID_CONFIG', `--detach is for dag.json runs: a DAGMan file runs here, as condor_dagman would (start it with nohup or in a terminal multiplexer; ${path.basename(dag)}.dagman.out says how it goes)`)
  if (o.rescue === false) opts.autoRescue = false
  const file = path.resolve(dag)
  if (opts.noSubmit) {
    writeCondorSub(file, csd)
    process.stderr.write(`${printableLines(file)}.condor.sub written; the DAG is not run (-no_submit)\n`)
    return 0
  }
  if (opts.force) {
    // start over: the rescue DAGs of earlier runs are kept aside, as condor_submit_dag -force does
    opts.autoRescue = false
    const base = path.basename(file) + '.rescue'
    for (const f of readdirSync(path.dirname(file))) if (f.startsWith(base) && /^\d{3}$/.test(f.slice(base.length))) renameSync(path.join(path.dirname(file), f), path.join(path.dirname(file), f + '.old'))
  }
  const mode = Progress.pick(o)
  const log = createLogger({ json: o.json, scope: 'coordinator', level: process.env.BGRID_LOG_LEVEL as any ?? 'warn' })
  setBestEffortLog(log)
  const pool = new GridPool({
    name: path.basename(dag).replace(/[^A-Za-z0-9_.-]/g, '_').slice(0, 100) || 'dagman',
    dataDir: o.dataDir, outDir: o.out, waitSec: o.wait, gridKeyFile: o.gridKey, mdnsInterface: o.mdnsInterface, leaseSec: o.lease, stallSec: o.stallAfter,
    ...((o.priority ?? opts.priority) !== undefined ? { priority: o.priority ?? opts.priority } : {}),
    prefetch: o.prefetch !== false, streamOutputs: true, progress: mode === 'json' ? 'json' : 'quiet', log, releaseAfterSec: o.releaseAfter,
    // the pool's run is native: DAGMan's nodes are vanilla jobs
    adapter: adapterFor
  })
  const interrupt = new AbortController()
  const kill = new AbortController()
  let signals = 0
  const onSignal = (sig: string): void => {
    if (++signals === 1) {
      process.stderr.write(`${printable(sig)}: removing the DAG ` +
        '(running jobs stopped, a rescue DAG written; again to kill everything at once)\n')
      interrupt.abort()
    } else {
      kill.abort()
      pool.cancel('killed')
    }
  }
  const handlers = (['SIGINT', 'SIGTERM', 'SIGHUP'] as const).map(sig => { const h = (): void => { onSignal(sig) }; process.on(sig, h); return [sig, h] as const })
  let code: number
  try {
    const r = await runDagman({
      dagFile: dag, csdArgs: csd, ...opts, signal: interrupt.signal, kill: kill.signal,
      grid: async () => pool,
      // dagman.out lines carry node names, scripts' and workers' words: escaped on the terminal
      echo: mode === 'quiet'
        ? undefined
        : (mode === 'json'
            ? (l) => { process.stdout.write(printableJson({ event: 'dagman', line: l }) + '\n') }
            : (l) => {
                if (opts.verbose || SHOWN.test(l)) {
                  process.stderr.write(printable(l, { max: LINES_MAX }) + '\n')
                }
              })
    })
    code = r.exitCode
    // a DAG that could not be run at all: why, here too (dagman.out has it)
    if (r.error !== undefined) {
      const why = r.error.split('\n').join('\n  ')
      process.stderr.write(printableLines(`bgrid: ${path.basename(dag)} cannot be run:\n  ${why}`) + '\n')
    }
    if (mode !== 'json') {
      const rescue = r.rescue !== null
        ? `; rescue DAG ${r.rescue} (the next \`bgrid submit ${dag}\` runs what is left)`
        : ''
      const outcome = `${r.exitCode === 0 ? 'succeeded' : 'FAILED'}: ${r.done} of ${r.nodes} node(s) done${rescue}`
      process.stderr.write(printableLines(`${path.basename(dag)}: ${outcome}`) + '\n')
    }
  } finally {
    await pool.close()
    for (const [sig, h] of handlers) process.off(sig, h)
  }
  setTimeout(() => { process.exit(code) }, 20).unref()
  return code
}
