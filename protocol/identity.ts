// Persistent Ed25519 identities in the data dir (mode 0600): the node's libp2p identity
// (identity.key), and the submitter's (submitter.key), which signs the claims of its
// runs' coordinators (`bgrid id` prints it; daemons allow it with --allow-coordinator).
import { generateKeyPair, privateKeyFromProtobuf, privateKeyToProtobuf } from '@libp2p/crypto/keys'
import type { PrivateKey } from '@libp2p/interface'
import { readFile, writeFile, mkdir, rename } from 'node:fs/promises'
import path from 'node:path'
import { BgridError } from './errors.ts'

export async function loadOrCreateIdentity (dataDir: string, name = 'identity.key'): Promise<PrivateKey> {
  const file = path.join(dataDir, name)
  try {
    return privateKeyFromProtobuf(await readFile(file))
  } catch (err: any) {
    if (err?.code !== 'ENOENT') throw new BgridError('INVALID_CONFIG', `cannot read identity ${file}: ${err.message}`)
  }
  await mkdir(dataDir, { recursive: true, mode: 0o700 })
  const key = await generateKeyPair('Ed25519')
  const tmp = `${file}.${process.pid}.tmp`
  await writeFile(tmp, privateKeyToProtobuf(key), { mode: 0o600, flag: 'wx' })
  await rename(tmp, file)
  return key
}

/** The submitter identity of a data dir (made on first use). */
export async function submitterKey (dataDir: string): Promise<PrivateKey> {
  return await loadOrCreateIdentity(dataDir, 'submitter.key')
}
