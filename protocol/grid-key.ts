// Private grid keys: the libp2p pnet swarm-key format (/key/swarm/psk/1.0.0/).
import { generateKey } from '@libp2p/pnet'
import { readFileSync, writeFileSync, fstatSync, fchmodSync, chmodSync } from 'node:fs'
import { createHash } from 'node:crypto'
import { BgridError } from './errors.ts'
import { bestEffort } from './best-effort.ts'

export function newGridKey (): string {
  const buf = new Uint8Array(95)
  generateKey(buf)
  return new TextDecoder().decode(buf)
}

export function readGridKey (file: string): Uint8Array {
  let text: string
  try { text = readFileSync(file, 'utf8') } catch (err: any) {
    throw new BgridError('INVALID_CONFIG', `cannot read grid key ${file}: ${err.message}`)
  }
  const lines = text.trim().split(/\r?\n/)
  if (lines.length !== 3 || lines[0] !== '/key/swarm/psk/1.0.0/' || lines[1] !== '/base16/' || !/^[0-9a-f]{64}$/i.test(lines[2])) {
    throw new BgridError('INVALID_CONFIG', `${file} is not a grid key (make one with \`bgrid keygen > grid.key\`)`)
  }
  return new TextEncoder().encode(lines.join('\n') + '\n')
}

/**
 * A short public fingerprint of a grid key, advertised in TXT records: a coordinator
 * can then tell "this node needs a grid key" or "another grid key" from "unreachable"
 * (a wrong key fails the handshake silently). 48 bits of a hash: it reveals nothing of the key.
 */
export function gridKeyId (key: Uint8Array): string {
  return createHash('sha256').update('bgrid grid key id\0').update(key).digest('hex').slice(0, 12)
}

/**
 * `bgrid keygen [FILE]`: the key is a secret. To a file: created 0600 (never replacing
 * one unless forced). To standard output: refused on a terminal; a file it was
 * redirected to (`> grid.key`) is made 0600 before the key is written.
 */
export function keygenCommand (file: string | undefined, force = false): void {
  const key = newGridKey()
  if (file !== undefined) {
    try { writeFileSync(file, key, { mode: 0o600, flag: force ? 'w' : 'wx' }) } catch (err: any) {
      throw new BgridError('INVALID_CONFIG', err?.code === 'EEXIST' ? `${file} exists: not replaced (use --force)` : `cannot write ${file}: ${err.message}`)
    }
    chmodSync(file, 0o600)
    return
  }
  if (process.stdout.isTTY) throw new BgridError('INVALID_CONFIG', 'not printing a secret key to a terminal: give a file (`bgrid keygen grid.key`) or redirect the output')
  try { if (fstatSync(1).isFile()) fchmodSync(1, 0o600) } catch (err) { bestEffort('fstatSync(1).isFile()', err) }
  process.stdout.write(key)
}
