// The drivers a daemon has by default, and the lookup a claim goes through.
import { BgridError } from '../../protocol/errors.ts'
import { WorkerSession } from '../worker-session.ts'
import type { DriverFactory, DriverRegistry } from './driver.ts'

/** XtremWeb-style pull: the worker asks its coordinator for jobs (daemon/worker-session.ts). */
export const nativeDriver: DriverFactory = (ctx) => new WorkerSession(ctx)

/**
 * BOINC-style execution differs from native only on the coordinator's side (replicas
 * on distinct hosts, a quorum, validation, credit): the worker pulls the same way.
 */
export const DEFAULT_DRIVERS: DriverRegistry = new Map([
  ['native', nativeDriver],
  ['boinc', nativeDriver]
])

/**
 * The driver for a claim's middleware, or a VERSION refusal naming what this node has:
 * a capability this build lacks, like a protocol it does not speak (not the owner's
 * policy, which POLICY is for).
 */
export function driverFor (drivers: DriverRegistry, middleware: string): DriverFactory {
  const f = drivers.get(middleware)
  if (f === undefined) throw new BgridError('VERSION', `this node has no driver for middleware "${middleware}" (it has: ${[...drivers.keys()].join(', ')})`)
  return f
}
