// Private grid keys: the libp2p pnet swarm-key format (/key/swarm/psk/1.0.0/).
import { generateKey } from '@libp2p/pnet'
import { readFileSync } from 'node:fs'
import { BgridError } from '../protocol/errors.ts'

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
