// The node's LevelDB: one database per data dir, one sublevel per concern.
import { Level } from 'level'
import { mkdirSync } from 'node:fs'
import path from 'node:path'

export type Db = Level<string, any>

export async function openDb (dataDir: string): Promise<Db> {
  mkdirSync(dataDir, { recursive: true, mode: 0o700 })
  const db = new Level<string, any>(path.join(dataDir, 'db'), { valueEncoding: 'json' })
  await db.open()
  return db
}

export function sub (db: Db, name: string): Db {
  return db.sublevel<string, any>(name, { valueEncoding: 'json' }) as unknown as Db
}
