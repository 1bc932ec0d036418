// A run's id and directory (<data dir>/coordinator/runs/<id>). Apart from the
// coordinator so that `bgrid status` and `submit --detach` get them without loading libp2p.
import path from 'node:path'
import { randomBytes } from 'node:crypto'
import { BgridError } from '../protocol/errors.ts'

/** what a run id may be: a directory name, never a path */
export const RUN_ID = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/

function slug (s: string): string {
  return s.toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-|-$/g, '').slice(0, 32) || 'run'
}

export function newRunId (name: string): string {
  const t = new Date().toISOString().replace(/[-:T]/g, '').slice(0, 14)
  return `${slug(name)}-${t}-${randomBytes(2).toString('hex')}`
}

/** where a data dir keeps its runs */
export function runsDirOf (dataDir: string): string { return path.join(dataDir, 'coordinator', 'runs') }

export function runDirOf (dataDir: string, runId: string): string {
  if (!RUN_ID.test(runId)) throw new BgridError('INVALID_CONFIG', `not a run id: ${runId}`)
  return path.join(runsDirOf(dataDir), runId)
}
