// A uid (and gid of the same number) for each run's jobs, from a range no account
// uses: jobs of different runs cannot read, signal or write each other's files, and a
// job owns nothing outside its attempt's directories (the root is read-only to it).
// A uid comes back into use only after a whole turn of the range (65,536 runs), and
// never while a process still has it.
import { readFileSync, readdirSync } from 'node:fs'
import type { Db } from '../protocol/db.ts'
import { bestEffort } from '../protocol/best-effort.ts'

export interface RunAs { uid: number, gid: number, name: string }

/** 0x7F000000: above the ranges of accounts, systemd's dynamic users and container maps */
export const JOB_UID_FIRST = 2130706432
export const JOB_UID_COUNT = 65536

/** uids of the accounts in /etc/passwd (never handed to a job) */
function accountUids (passwd = '/etc/passwd'): Set<number> {
  const out = new Set<number>()
  let text = ''
  try { text = readFileSync(passwd, 'utf8') } catch (err) { bestEffort('readFileSync()', err) }
  for (const line of text.split('\n')) { const f = line.split(':'); if (f.length >= 4) out.add(Number(f[2])) }
  return out
}

/** uids that own a live process */
function busyUids (): Set<number> {
  const out = new Set<number>()
  let pids: string[] = []
  try { pids = readdirSync('/proc').filter(p => /^\d+$/.test(p)) } catch (err) { bestEffort('readdirSync(\'/proc\').filter()', err) }
  for (const pid of pids) {
    try {
      const m = /^Uid:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
      if (m !== null) out.add(Number(m[1]))
    } catch (err) { bestEffort('/^Uid:\\s+(\\d+)/m.exec()', err) }
  }
  return out
}

export class JobUsers {
  private readonly meta: Db
  private readonly first: number
  private readonly count: number

  constructor (meta: Db, first = JOB_UID_FIRST, count = JOB_UID_COUNT) {
    this.meta = meta
    this.first = first
    this.count = count
  }

  /** The next free uid of the range, persisted so that a restart does not hand it out again at once. */
  async next (): Promise<RunAs> {
    const taken = accountUids()
    const busy = busyUids()
    let k: number = (await this.meta.get('jobUidNext')) ?? 0
    for (let tries = 0; tries < this.count; tries++, k = (k + 1) % this.count) {
      const uid = this.first + k
      if (taken.has(uid) || busy.has(uid)) continue
      await this.meta.put('jobUidNext', (k + 1) % this.count)
      return { uid, gid: uid, name: `bgrid-${k}` }
    }
    throw new Error('every job uid of the range is in use')
  }
}

/** uid/gid of a named user from /etc/passwd (no native lookup in Node). */
export function lookupUser (name: string, passwd = '/etc/passwd'): RunAs | undefined {
  let text = ''
  try { text = readFileSync(passwd, 'utf8') } catch (err) { bestEffort('readFileSync()', err) }
  for (const line of text.split('\n')) {
    const f = line.split(':')
    if (f[0] === name && f.length >= 4) return { name, uid: Number(f[2]), gid: Number(f[3]) }
  }
  return undefined
}
