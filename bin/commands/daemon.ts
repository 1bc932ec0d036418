import { Daemon, DEFAULT_DAEMON_CONFIG } from '../../daemon/daemon.ts'
import { createLogger } from '../../protocol/log.ts'
import { setBestEffortLog } from '../../protocol/best-effort.ts'
import { BgridError } from '../../protocol/errors.ts'
import { parsePeerId } from '../../protocol/node.ts'
import { parseAttrs, parseStart } from '../../protocol/start.ts'

export async function daemonCommand (o: any): Promise<number> {
  for (const [flag, ids] of [['--allow-coordinator', o.allowCoordinator], ['--prefer-coordinator', o.preferCoordinator ?? []]] as const) {
    for (const p of ids as string[]) {
      try { parsePeerId(p) } catch { throw new BgridError('INVALID_CONFIG', `${flag}: not a peer id: ${p}`) }
    }
  }
  // machines have a say: parsed before anything starts (a bad one exits 2, INVALID_CONFIG)
  const attrs = parseAttrs(o.attr ?? [])
  if (o.start !== undefined) parseStart(o.start)
  const log = createLogger({ json: o.jsonLogs, scope: 'daemon' })
  setBestEffortLog(log)
  const daemon = new Daemon({
    ...DEFAULT_DAEMON_CONFIG,
    dataDir: o.dataDir,
    port: o.port,
    host: o.host,
    cost: o.cost,
    slots: o.slots,
    gridKeyFile: o.gridKey,
    allowCoordinators: o.allowCoordinator,
    prefer: o.preferCoordinator ?? [],
    maxRetirementSec: o.maxRetirement,
    ...(Object.keys(attrs).length > 0 ? { attrs } : {}),
    ...(o.start !== undefined ? { start: o.start } : {}),
    alwaysAvailable: o.alwaysAvailable,
    policy: {
      startIdleSec: o.idleStart,
      startMaxLoad: o.idleLoad,
      suspendActiveSec: o.suspendActive,
      suspendLoad: o.suspendLoad,
      suspendLoadSec: o.suspendLoadTime,
      maxSuspendSec: o.maxSuspend
    },
    activityFile: o.activityFile,
    mdnsInterface: o.mdnsInterface,
    runAs: o.runAs,
    isolation: o.isolation,
    maxJobRamMiB: o.maxJobRam,
    maxJobDiskMiB: o.maxJobDisk,
    maxJobPids: o.maxJobPids,
    scrubHours: o.scrubInterval,
    cacheQuotaMiB: o.cacheQuota,
    sampleMs: o.sample,
    log
  })
  await daemon.start()
  await new Promise<void>(resolve => {
    const stop = (sig: string): void => {
      log.info('stopping', { signal: sig })
      process.off('SIGINT', onInt); process.off('SIGTERM', onTerm)
      const force = setTimeout(() => { log.error('clean stop took too long: exiting'); process.exit(1) }, 10_000)
      daemon.stop().finally(() => { clearTimeout(force); resolve() })
    }
    const onInt = (): void => { stop('SIGINT') }
    const onTerm = (): void => { stop('SIGTERM') }
    process.on('SIGINT', onInt)
    process.on('SIGTERM', onTerm)
  })
  return 0
}
