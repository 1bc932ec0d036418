// What a submitter knows of each worker it used for BOINC-style runs: results valid,
// invalid, errored or late; consecutive valid results (adaptive replication trusts a
// worker with many); credit granted. Kept in the submitter's LevelDB
// (<data dir>/coordinator/trust), read when a run starts and merged back when it ends:
// several runs of one submitter may go at once, and LevelDB admits one process.
import path from 'node:path'
import { openDb, isLocked, type Db } from '../../protocol/db.ts'
import { BgridError } from '../../protocol/errors.ts'
import { bestEffort } from '../../protocol/best-effort.ts'
import { sleep } from '../../protocol/sleep.ts'

export interface TrustRecord {
  name: string
  valid: number
  invalid: number
  errors: number
  timeouts: number
  /** reset by an invalid result, an error or a timeout (BOINC's consecutive_valid) */
  consecutiveValid: number
  /** cobblestones: 200 a day of a 1 GFLOPS core */
  credit: number
  updatedAt: number
}

const EMPTY: Omit<TrustRecord, 'name' | 'updatedAt'> = { valid: 0, invalid: 0, errors: 0, timeouts: 0, consecutiveValid: 0, credit: 0 }

/** One peer's change during a run, merged into what another run may have written meanwhile. */
type Delta = Omit<TrustRecord, 'updatedAt'> & { reset: boolean }

export function trustDir (dataDir: string): string { return path.join(dataDir, 'coordinator', 'trust') }

/** Open the trust database, waiting (bounded) while another run of this submitter holds it. */
async function openTrust (dataDir: string, waitMs = 10_000): Promise<Db> {
  const deadline = Date.now() + waitMs
  for (let delay = 50; ; delay = Math.min(delay * 2, 1000)) {
    try { return await openDb(trustDir(dataDir)) } catch (err) {
      if (!(err instanceof BgridError && err.code === 'IN_USE') && !isLocked(err)) throw err
      if (Date.now() >= deadline) throw err
      await sleep(delay)
    }
  }
}

export async function readTrust (dataDir: string): Promise<Map<string, TrustRecord>> {
  const out = new Map<string, TrustRecord>()
  let db: Db
  try { db = await openTrust(dataDir) } catch (err) {
    if (err instanceof BgridError && err.code === 'IN_USE') throw err
    return out
  }
  try { for await (const [peer, rec] of db.iterator()) out.set(peer, rec) } finally { await db.close() }
  return out
}

export class TrustBook {
  private readonly known = new Map<string, TrustRecord>()
  private readonly deltas = new Map<string, Delta>()

  private readonly dataDir: string

  constructor (dataDir: string) { this.dataDir = dataDir }

  async load (): Promise<void> {
    try { for (const [p, r] of await readTrust(this.dataDir)) this.known.set(p, r) } catch (err) { bestEffort('readTrust()', err) }
  }

  get (peer: string): TrustRecord {
    return this.known.get(peer) ?? { name: peer.slice(-8), ...EMPTY, updatedAt: 0 }
  }

  consecutiveValid (peer: string): number { return this.get(peer).consecutiveValid }

  private change (peer: string, name: string | undefined, f: (r: TrustRecord, d: Delta) => void): void {
    const r = { ...this.get(peer), updatedAt: Date.now() }
    if (name !== undefined) r.name = name
    const d = this.deltas.get(peer) ?? { name: r.name, ...EMPTY, reset: false }
    d.name = r.name
    f(r, d)
    this.known.set(peer, r)
    this.deltas.set(peer, d)
  }

  valid (peer: string, name: string | undefined, credit: number): void {
    this.change(peer, name, (r, d) => { r.valid++; d.valid++; r.consecutiveValid++; d.consecutiveValid++; r.credit += credit; d.credit += credit })
  }

  invalid (peer: string, name: string | undefined): void {
    this.change(peer, name, (r, d) => { r.invalid++; d.invalid++; r.consecutiveValid = 0; d.consecutiveValid = 0; d.reset = true })
  }

  error (peer: string, name: string | undefined, kind: 'error' | 'timeout'): void {
    this.change(peer, name, (r, d) => {
      if (kind === 'error') { r.errors++; d.errors++ } else { r.timeouts++; d.timeouts++ }
      r.consecutiveValid = 0; d.consecutiveValid = 0; d.reset = true
    })
  }

  /** Merge this run's changes into the database (another run may have written since load). */
  async save (): Promise<void> {
    if (this.deltas.size === 0) return
    const db = await openTrust(this.dataDir)
    try {
      const batch: Array<{ type: 'put', key: string, value: TrustRecord }> = []
      for (const [peer, d] of this.deltas) {
        const cur: TrustRecord = (await db.get(peer)) ?? { name: d.name, ...EMPTY, updatedAt: 0 }
        batch.push({
          type: 'put',
          key: peer,
          value: {
            name: d.name, valid: cur.valid + d.valid, invalid: cur.invalid + d.invalid, errors: cur.errors + d.errors, timeouts: cur.timeouts + d.timeouts,
            // a reset during this run wins: what counts is the streak since the last bad result
            consecutiveValid: d.reset ? d.consecutiveValid : cur.consecutiveValid + d.consecutiveValid,
            credit: cur.credit + d.credit, updatedAt: Date.now()
          }
        })
      }
      await db.batch(batch)
      this.deltas.clear()
    } finally { await db.close() }
  }
}
