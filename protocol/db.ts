// The node's LevelDB: one database per data dir, one sublevel per concern.
import { Level } from 'level'
import { mkdirSync, chmodSync } from 'node:fs'
import path from 'node:path'

export type Db = Level<string, any>

export async function openDb (dataDir: string): Promise<Db> {
  mkdirSync(dataDir, { recursive: true, mode: 0o700 })
  const dir = path.join(dataDir, 'db')
  const db = new Level<string, any>(dir, { valueEncoding: 'json' })
  await db.open()
  // what a node knows (claims, blob index, run journals) is nobody else's to read
  chmodSync(dir, 0o700)
  return db
}

export function sub (db: Db, name: string): Db {
  return db.sublevel<string, any>(name, { valueEncoding: 'json' }) as unknown as Db
}
