// The node's LevelDB: one database per data dir, one sublevel per concern.
import { Level } from 'level'
import { mkdirSync, chmodSync, statSync, readFileSync } from 'node:fs'
import path from 'node:path'
import { BgridError } from './errors.ts'
import { bestEffort } from './best-effort.ts'

export type Db = Level<string, any>

export async function openDb (dataDir: string): Promise<Db> {
  mkdirSync(dataDir, { recursive: true, mode: 0o700 })
  const dir = path.join(dataDir, 'db')
  const db = new Level<string, any>(dir, { valueEncoding: 'json' })
  try {
    await db.open()
  } catch (err) {
    if (!isLocked(err)) throw err
    throw new BgridError('IN_USE', `the data dir ${dataDir} is in use by ${describeHolder(lockHolder(dir))}: stop it, or use another --data-dir`)
  }
  // what a node knows (claims, blob index, run journals) is nobody else's to read
  chmodSync(dir, 0o700)
  return db
}

export function sub (db: Db, name: string): Db {
  return db.sublevel<string, any>(name, { valueEncoding: 'json' }) as unknown as Db
}

/** level's error when another process (or another handle) holds the database */
export function isLocked (err: unknown): boolean {
  return (err as any)?.code === 'LEVEL_DATABASE_NOT_OPEN' && (err as any)?.cause?.code === 'LEVEL_LOCKED'
}

export interface LockHolder { pid: number, argv: string[] }

/**
 * Who holds a LevelDB: the POSIX lock on its LOCK file, as /proc/locks lists it (any
 * user may read it), and that process's command line when it can be read.
 */
export function lockHolder (dbDir: string): LockHolder | undefined {
  let ino: number
  let locks: string
  try {
    ino = statSync(path.join(dbDir, 'LOCK')).ino
    locks = readFileSync('/proc/locks', 'utf8')
  } catch { return undefined }
  for (const line of locks.split('\n')) {
    // "1: POSIX  ADVISORY  WRITE 3400 fe:00:2146918 0 EOF" (waiters have "->" before POSIX)
    const f = line.trim().split(/\s+/)
    const k = f.indexOf('POSIX')
    if (k < 0 || Number(f[k + 4]?.split(':')[2]) !== ino) continue
    const pid = Number(f[k + 3])
    if (!Number.isInteger(pid) || pid <= 0) continue
    let argv: string[] = []
    try { argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(a => a !== '') } catch (err) { bestEffort('readFileSync(`/proc/${pid}/cmdline`, \'utf8\').split(\'\\0\')....', err) }
    return { pid, argv }
  }
  return undefined
}

/** "a running daemon (pid 42)", "another bgrid process (pid 42: bgrid cache verify)"... */
export function describeHolder (h: LockHolder | undefined): string {
  if (h === undefined) return 'another process'
  if (h.pid === process.pid) return 'this process'
  const i = h.argv.findIndex(a => /(^|\/)bgrid(\.[jt]s)?$/.test(a))
  if (i < 0) return `another process (pid ${h.pid}${h.argv.length > 0 ? `: ${h.argv.slice(0, 4).join(' ')}` : ''})`
  const args = h.argv.slice(i + 1).filter(a => !a.startsWith('-'))
  if (args[0] === 'daemon') return `a running daemon (pid ${h.pid})`
  return `another bgrid process (pid ${h.pid}: bgrid ${args.slice(0, 2).join(' ')})`
}
