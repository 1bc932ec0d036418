// `bgrid submit FILE.dag [condor_submit_dag options]`: the DAG run as DAGMan runs it
// (coordinator/dagman/run-dagman.ts), its vanilla jobs on bgrid workers. The exit code is
// condor_dagman's: 0 the DAG succeeded, 1 it failed, or an ABORT-DAG-ON RETURN value.
import { BgridError } from '../../protocol/errors.ts'
import { createLogger } from '../../protocol/log.ts'
import { Progress } from '../../coordinator/progress.ts'
import { runDagman } from '../../coordinator/dagman/run-dagman.ts'
import { GridPool } from '../../coordinator/dagman/grid-pool.ts'
import path from 'node:path'

const FLAGS = new Set(['-verbose', '-force', '-no_submit', '-allowversionmismatch', '-update_submit', '-import_env', '-usedagdir', '-no_recurse',
  '-do_recurse', '-allowlogerror', '-dont_use_default_node_log', '-dorecov', '-suppress_notification', '-dumprescue', '-f', '-notification',
  '-outfile_dir', '-autorescue', '-dorescuefrom', '-maxjobs', '-maxidle', '-maxpre', '-maxpost', '-config', '-batch-name', '-debug', '-priority'])

function whole (opt: string, v: string | undefined): number {
  const n = Number(v)
  if (v === undefined || !/^\d+$/.test(v)) throw new BgridError('INVALID_CONFIG', `${opt} needs a whole number (got ${v ?? 'nothing'})`)
  return n
}

export async function dagmanSubmit (dag: string, o: any): Promise<number> {
  const csd: string[] = o.condorArgs !== undefined ? JSON.parse(o.condorArgs) : []
  const opts: { autoRescue?: boolean, doRescueFrom?: number, maxJobs?: number, maxPre?: number, maxPost?: number, outfileDir?: string, verbose: boolean } = { verbose: false }
  for (let i = 0; i < csd.length; i++) {
    const a = csd[i].toLowerCase()
    if (!FLAGS.has(a)) throw new BgridError('INVALID_CONFIG', `${csd[i]}: not a condor_submit_dag option bgrid knows (it knows ${[...FLAGS].join(' ')})`)
    const v = csd[i + 1]
    switch (a) {
      case '-autorescue': opts.autoRescue = whole(a, v) !== 0; i++; break
      case '-dorescuefrom': opts.doRescueFrom = whole(a, v); i++; break
      case '-maxjobs': opts.maxJobs = whole(a, v); i++; break
      case '-maxpre': opts.maxPre = whole(a, v); i++; break
      case '-maxpost': opts.maxPost = whole(a, v); i++; break
      case '-outfile_dir': opts.outfileDir = v; i++; break
      case '-verbose': opts.verbose = true; break
      default: if (['-notification', '-maxidle', '-config', '-batch-name', '-debug', '-priority'].includes(a)) i++
    }
  }
  if (o.rescue === false) opts.autoRescue = false
  const mode = Progress.pick(o)
  const log = createLogger({ json: o.json, scope: 'coordinator', level: process.env.BGRID_LOG_LEVEL as any ?? 'warn' })
  const pool = new GridPool({
    name: path.basename(dag).replace(/[^A-Za-z0-9_.-]/g, '_').slice(0, 100) || 'dagman',
    dataDir: o.dataDir, outDir: o.out, waitSec: o.wait, gridKeyFile: o.gridKey, mdnsInterface: o.mdnsInterface, leaseSec: o.lease,
    prefetch: o.prefetch !== false, streamOutputs: true, progress: mode === 'json' ? 'json' : 'quiet', log
  })
  const ac = new AbortController()
  const onSignal = (): void => { ac.abort(); pool.cancel('interrupted') }
  process.once('SIGINT', onSignal)
  process.once('SIGTERM', onSignal)
  let code: number
  try {
    const r = await runDagman({
      dagFile: dag, csdArgs: csd, ...opts, signal: ac.signal,
      grid: async () => pool,
      echo: mode === 'quiet' ? undefined : (mode === 'json' ? (l) => { process.stdout.write(JSON.stringify({ event: 'dagman', line: l }) + '\n') } : (l) => { if (opts.verbose || /EXITING|Rescue|failed|ERROR|Submitting|completed/.test(l)) process.stderr.write(l + '\n') })
    })
    code = r.exitCode
    if (mode !== 'json') process.stderr.write(`${path.basename(dag)}: ${r.exitCode === 0 ? 'succeeded' : 'FAILED'}: ${r.done} of ${r.nodes} node(s) done${r.rescue !== null ? `; rescue DAG ${r.rescue} (the next \`bgrid submit ${dag}\` runs what is left)` : ''}\n`)
  } finally {
    await pool.close()
    process.off('SIGINT', onSignal)
    process.off('SIGTERM', onSignal)
  }
  setTimeout(() => { process.exit(code) }, 20).unref()
  return code
}
