import { Coordinator } from '../../coordinator/coordinator.ts'
import { Progress } from '../../coordinator/progress.ts'
import { createLogger } from '../../protocol/log.ts'

export async function submitCommand (dag: string | undefined, o: any): Promise<number> {
  const mode = Progress.pick(o)
  const log = createLogger({ json: o.json, scope: 'coordinator', level: process.env.BGRID_LOG_LEVEL as any ?? (mode === 'json' ? 'warn' : 'warn') })
  const c = new Coordinator({
    dagFile: dag,
    resume: o.resume,
    runId: o.runId,
    dataDir: o.dataDir,
    outDir: o.out,
    waitSec: o.wait,
    gridKeyFile: o.gridKey,
    mdnsInterface: o.mdnsInterface,
    leaseSec: o.lease,
    prefetch: o.prefetch !== false,
    streamOutputs: o.streamOutputs === true,
    progress: mode,
    log
  })
  const onSignal = (): void => { c.cancel('interrupted') }
  process.once('SIGINT', onSignal)
  process.once('SIGTERM', onSignal)
  const s = await c.run()
  process.off('SIGINT', onSignal)
  process.off('SIGTERM', onSignal)
  if (mode !== 'json') {
    const k = s.counts
    process.stderr.write(`run ${s.runId}: ${s.ok ? 'succeeded' : 'FAILED'}: ${k.done} done, ${k.failed} failed, ${k.skipped} skipped${k.cancelled > 0 ? `, ${k.cancelled} cancelled` : ''} in ${(s.makespanMs / 1000).toFixed(1)}s on ${s.workers} worker(s); ${((s.bytesFetched + s.prefetchedBytes) / 1048576).toFixed(2)} MiB moved between nodes (${(s.prefetchedBytes / 1048576).toFixed(2)} prefetched), ${s.cacheHits} input(s) already in place\n`)
    process.stderr.write(`outputs and run.json in ${s.outDir}\n`)
  }
  // exit codes: 0 every job done, 1 a job failed, 5 cancelled (errors: see protocol/errors.ts)
  const code = s.ok ? 0 : s.cancelled ? 5 : 1
  // everything is closed and written; do not wait for stray library timers (mDNS, libp2p)
  setTimeout(() => { process.exit(code) }, 20).unref()
  return code
}
