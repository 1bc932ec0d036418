// Noise (libp2p's encrypted channel), with two costs of bulk transfer taken out. The
// cipher, the nonces and the bytes on the wire are unchanged: peers running the stock
// @chainsafe/libp2p-noise interoperate.
// - Noise seals every transport message (at most 64 KiB) with a fresh ChaCha20-Poly1305
//   cipher, and Node builds a key object from the raw key for each one (~35 us, a third
//   of the work at 64 KiB). A direction's key is fixed for the whole connection, so its
//   key object is built once (cached per key array, checked against the key's bytes).
// - Noise hands the socket a list per muxer frame: a 2-byte length and a ciphertext for
//   each 64 KiB message. The TCP connection writes each buffer with its own syscall, and
//   a 256 KiB frame went out in 8-10 writes. Joined into one buffer (a copy of 256 KiB
//   costs less than one system call here), it leaves in one. (Corking the socket instead
//   does not help: under back-pressure the connection sends later, outside the cork.)
import crypto, { type KeyObject } from 'node:crypto'
import { Uint8ArrayList } from 'uint8arraylist'
import { defaultCrypto } from '@chainsafe/libp2p-noise/crypto'
import { noise, type ICryptoInterface } from '@chainsafe/libp2p-noise'
import type { ConnectionEncrypter, MessageStream } from '@libp2p/interface'

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
    // not joined here: the connection below joins each frame's messages into one write
    const out = new Uint8ArrayList()
    for (const part of plaintext instanceof Uint8Array ? [plaintext] : plaintext) out.append(cipher.update(part))
    const final = cipher.final()
    if (final.byteLength > 0) out.append(final)
    out.append(cipher.getAuthTag())
    // noise keeps its own (older) uint8arraylist; the two recognise each other's lists
    // by a registered symbol, so this list is taken as it is
    return out as unknown as Uint8Array
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
    return parts.length === 1 ? parts[0] : new Uint8ArrayList(...parts) as unknown as Uint8Array
  }
}

/**
 * The connection under noise, with send() joining a list into one buffer. A proxy, so
 * that everything else (events, status, close) is the connection's own; its class
 * methods are bound to it (it keeps private state that a proxy as `this` could not reach).
 */
function oneWritePerSend (conn: MessageStream): MessageStream {
  const bound = new Map<PropertyKey, unknown>()
  const send = (data: Uint8Array | { byteLength: number, subarray: () => Uint8Array }): boolean =>
    conn.send(data instanceof Uint8Array ? data : data.subarray())
  return new Proxy(conn, {
    get (target, prop) {
      if (prop === 'send') return send
      const v = Reflect.get(target, prop, target)
      // own fields as they are (a logger is a function with methods); class methods bound
      if (typeof v !== 'function' || Object.prototype.hasOwnProperty.call(target, prop)) return v
      let b = bound.get(prop)
      if (b === undefined) { b = v.bind(target); bound.set(prop, b) }
      return b
    },
    set (target, prop, value) { return Reflect.set(target, prop, value, target) }
  })
}

/** libp2p's noise encrypter, set up as described at the top of this file. */
export function bulkNoise (): (components: any) => ConnectionEncrypter {
  const factory = noise({ crypto: noiseCrypto })
  return (components) => {
    const enc = factory(components)
    return {
      protocol: enc.protocol,
      secureInbound: async (conn, opts) => await enc.secureInbound(oneWritePerSend(conn), opts),
      secureOutbound: async (conn, opts) => await enc.secureOutbound(oneWritePerSend(conn), opts)
    }
  }
}
