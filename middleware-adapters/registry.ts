// Middleware adapters: how a run's jobs reach workers, in the style of a middleware
// BonjourGrid wrapped (XtremWeb's pull, BOINC's replicas and quorum, Condor's DAGMan).
// Each style is a folder exporting a factory, `style(init) => (components) => adapter`,
// that declares only the run components it uses. This file is the registry: a DAG's
// middleware name picks its factory (as a daemon's drivers are looked up by a claim's).
// The CLI hands the lookup to the coordinator, which imports no adapter.
// Contract of the folder: implements the run core's adapter interface; imports protocol/,
// cache/, the run core, and coordinator/ (only the Condor style's grid pool does).
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
  if (f === undefined) {
    throw new BgridError('VERSION', `this build has no adapter for middleware "${name}" (it has: ${[...adapters.keys()].join(', ')})`)
  }
  return f
}
