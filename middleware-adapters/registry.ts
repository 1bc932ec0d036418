// The middleware styles a submitter has, and the lookup a run goes through: a DAG's
// middleware name picks its adapter's factory (as a daemon's drivers are looked up by a
// claim's middleware). The CLI hands the lookup to the coordinator, which imports no adapter.
import { BgridError } from '../protocol/errors.ts'
import type { Dag } from '../coordinator/core/model.ts'
import type { MiddlewareFactory } from '../coordinator/core/contracts.ts'
import { xtremweb } from './xtremweb/index.ts'
import { boinc } from './boinc/index.ts'

export type AdapterRegistry = ReadonlyMap<string, MiddlewareFactory>

/**
 * Native (XtremWeb-style) pull, and BOINC-style replication on top of it. (The Condor
 * style is a client of the coordinator: DAGMan submits its nodes to a run through its
 * grid pool, which runs them natively.)
 */
export const DEFAULT_ADAPTERS: AdapterRegistry = new Map<string, MiddlewareFactory>([
  ['native', xtremweb()],
  ['boinc', boinc()]
])

/** A DAG's middleware name: boinc as soon as one of its jobs is replicated, else the DAG's own. */
export function middlewareOf (dag: Dag): string {
  return dag.jobs.some(j => j.verify !== null) ? 'boinc' : dag.middleware
}

/** The adapter factory for a DAG's middleware, or a VERSION error naming what this build has. */
export function adapterFor (dag: Dag, adapters: AdapterRegistry = DEFAULT_ADAPTERS): MiddlewareFactory {
  const name = middlewareOf(dag)
  const f = adapters.get(name)
  if (f === undefined) throw new BgridError('VERSION', `this build has no adapter for middleware "${name}" (it has: ${[...adapters.keys()].join(', ')})`)
  return f
}
