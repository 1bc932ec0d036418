// Persistent libp2p Ed25519 identity in the data dir (mode 0600).
import { generateKeyPair, privateKeyFromProtobuf, privateKeyToProtobuf } from '@libp2p/crypto/keys'
import type { PrivateKey } from '@libp2p/interface'
import { readFile, writeFile, mkdir, rename } from 'node:fs/promises'
import path from 'node:path'
import { BgridError } from '../protocol/errors.ts'

export async function loadOrCreateIdentity (dataDir: string): Promise<PrivateKey> {
  const file = path.join(dataDir, 'identity.key')
  try {
    return privateKeyFromProtobuf(await readFile(file))
  } catch (err: any) {
    if (err?.code !== 'ENOENT') throw new BgridError('INVALID_CONFIG', `cannot read identity ${file}: ${err.message}`)
  }
  await mkdir(dataDir, { recursive: true, mode: 0o700 })
  const key = await generateKeyPair('Ed25519')
  const tmp = `${file}.${process.pid}.tmp`
  await writeFile(tmp, privateKeyToProtobuf(key), { mode: 0o600 })
  await rename(tmp, file)
  return key
}
