// Noise (libp2p's encrypted channel) with the main cost of bulk transfer taken out. The
// cipher, the nonces and the bytes on the wire are unchanged: peers running the stock
// @chainsafe/libp2p-noise interoperate.
// - Noise seals every transport message (at most 64 KiB) with a fresh ChaCha20-Poly1305
//   cipher, and Node builds a key object from the raw key for each one (~35 us, a third
//   of the work at 64 KiB). A direction's key is fixed for the whole connection, so its
//   key object is built once (cached per key array, checked against the key's bytes).
// - A message that arrived in two socket reads decrypts to two buffers, handed on as a
//   list rather than joined (a copy of every byte received). Noise itself also joins
//   such a message's parts into a buffer for an in-place decryption this cipher does not
//   use; its connection's decrypt step is replaced by one that does not (see below).
// - A sealed message goes out as its ciphertext and its tag, a list, not joined.
// (Joining each muxer frame's messages into one socket write was tried: fewer system
// calls, but no gain on a 1 GiB transfer and ~10 % off the short-job dispatch rate.)
import crypto, { type KeyObject } from 'node:crypto'
import { Uint8ArrayList } from 'uint8arraylist'
import { defaultCrypto } from '@chainsafe/libp2p-noise/crypto'
import { noise, type ICryptoInterface } from '@chainsafe/libp2p-noise'

const CHACHA = 'chacha20-poly1305'
/** under this size the default (WebAssembly) code is faster than setting up a Node cipher */
const SMALL = 1200

const keyObjects = new WeakMap<Uint8Array, { bytes: Buffer, key: KeyObject }>()

function keyObject (k: Uint8Array): KeyObject {
  const cached = keyObjects.get(k)
  if (cached !== undefined && cached.bytes.equals(k)) return cached.key
  const bytes = Buffer.from(k)
  const key = crypto.createSecretKey(bytes)
  keyObjects.set(k, { bytes, key })
  return key
}

export const noiseCrypto: ICryptoInterface = {
  ...defaultCrypto,
  chaCha20Poly1305Encrypt (plaintext, nonce, ad, k) {
    if (plaintext.byteLength < SMALL) return defaultCrypto.chaCha20Poly1305Encrypt(plaintext, nonce, ad, k)
    const cipher = crypto.createCipheriv(CHACHA, keyObject(k), nonce, { authTagLength: 16 })
    cipher.setAAD(ad, { plaintextLength: plaintext.byteLength })
    const parts: Buffer[] = []
    for (const part of plaintext instanceof Uint8Array ? [plaintext] : plaintext) parts.push(cipher.update(part))
    const final = cipher.final()
    if (final.byteLength > 0) parts.push(final)
    parts.push(cipher.getAuthTag())
    // the ciphertext and its tag as a list: noise frames lists as they are (no copy)
    return new Uint8ArrayList(...parts) as unknown as Uint8Array
  },
  chaCha20Poly1305Decrypt (ciphertext, nonce, ad, k, dst) {
    if (ciphertext.byteLength < SMALL) return defaultCrypto.chaCha20Poly1305Decrypt(ciphertext, nonce, ad, k, dst)
    const tagAt = ciphertext.byteLength - 16
    const decipher = crypto.createDecipheriv(CHACHA, keyObject(k), nonce, { authTagLength: 16 })
    decipher.setAAD(ad, { plaintextLength: tagAt })
    decipher.setAuthTag(ciphertext.subarray(tagAt))
    const parts: Buffer[] = []
    if (ciphertext instanceof Uint8Array) parts.push(decipher.update(ciphertext.subarray(0, tagAt)))
    else for (const part of ciphertext.sublist(0, tagAt)) parts.push(decipher.update(part))
    const final = decipher.final()
    if (final.byteLength > 0) parts.push(final)
    // a message that arrived in two socket reads decrypts to two buffers: a list, not a copy
    // (noise keeps an older uint8arraylist; both recognise lists by a registered symbol)
    return parts.length === 1 ? parts[0] : new Uint8ArrayList(...parts) as unknown as Uint8Array
  }
}

/** the most ciphertext one noise transport message holds (the spec's 65535 bytes) */
const NOISE_MAX = 65535
const TAG = 16

/**
 * Replace a noise connection's decrypt step (noise 17's EncryptedMessageStream) with the
 * same loop minus its `dst` argument: building `dst` joins a message split across socket
 * reads into a new buffer, a copy of most bytes received, for nothing with this cipher.
 * A connection of another shape is left alone (the stock step still works, only slower).
 */
function decryptWithoutJoining (connection: any): void {
  const handshake = connection?.handshake
  if (typeof connection?.decrypt !== 'function' || typeof handshake?.decrypt !== 'function') return
  connection.decrypt = (chunk: Uint8Array | Uint8ArrayList): Uint8ArrayList => {
    const output = new Uint8ArrayList()
    for (let i = 0; i < chunk.byteLength; i += NOISE_MAX) {
      const end = Math.min(i + NOISE_MAX, chunk.byteLength)
      if (end - TAG < i) throw new Error('Invalid chunk')
      const sealed = chunk instanceof Uint8Array ? chunk.subarray(i, end) : chunk.sublist(i, end)
      output.append(handshake.decrypt(sealed))
    }
    return output
  }
}

/** libp2p's noise encrypter, set up as described at the top of this file. */
export function bulkNoise (): ReturnType<typeof noise> {
  const make = noise({ crypto: noiseCrypto })
  return components => {
    const encrypter = make(components)
    for (const side of ['secureInbound', 'secureOutbound'] as const) {
      const secure = encrypter[side].bind(encrypter) as (...args: unknown[]) => ReturnType<typeof encrypter.secureInbound>
      encrypter[side] = async (...args: unknown[]) => {
        const secured = await secure(...args)
        decryptWithoutJoining(secured.connection)
        return secured
      }
    }
    return encrypter
  }
}
