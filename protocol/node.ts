// protocol/: what every bgrid node shares, daemon and coordinator alike: the libp2p node,
// framing and message schemas, DNS-SD and its TXT records, errors, and the node-wide
// primitives (identities, grid keys, the local control socket). Imports no other folder.
//
// libp2p node factory: TCP + noise + yamux + identify, optional private-network key.
import { createLibp2p, type Libp2p } from 'libp2p'
import { tcp } from '@libp2p/tcp'
import { bulkNoise } from './noise.ts'
import { yamux } from '@chainsafe/libp2p-yamux'
import { identify } from '@libp2p/identify'
import { preSharedKey } from '@libp2p/pnet'
import type { PrivateKey, PeerId } from '@libp2p/interface'
import { multiaddr, type Multiaddr } from '@multiformats/multiaddr'
import type { ConnectionGater, MultiaddrConnection } from '@libp2p/interface'
import { peerIdFromString } from '@libp2p/peer-id'

export type BgridNode = Libp2p<{ identify: unknown }>

export interface NodeOptions {
  privateKey: PrivateKey
  /** TCP port to listen on; 0 picks a free one. */
  port?: number
  /** Address to listen on (default all IPv4 interfaces). */
  host?: string
  /** Contents of a grid key file (libp2p pnet swarm key). */
  gridKey?: Uint8Array
  /** Do not listen at all (a pure client such as `bgrid peers`). */
  noListen?: boolean
}

/**
 * Connections not yet upgraded (TCP accepted, Noise not done): at most this many from
 * one address at a time, and this many in all. An idle connect holds its place until
 * the upgrade times out: with libp2p's defaults (10 pending in all, 10 s) five idle
 * connects a second from one host locked everyone else out.
 */
export const MAX_PENDING_PER_ADDRESS = 8
export const MAX_PENDING = 128
/** a Noise handshake on a LAN takes milliseconds; a peer that has not finished in this long is dropped */
export const UPGRADE_TIMEOUT_MS = 3000

/** Counts the upgrades under way per remote address and refuses past the cap. */
export function pendingPerAddressGater (cap = MAX_PENDING_PER_ADDRESS): ConnectionGater {
  const pending = new Map<string, Set<MultiaddrConnection>>()
  const hostOf = (c: MultiaddrConnection): string => c.remoteAddr.toString().split('/').slice(0, 3).join('/')
  const done = (c: MultiaddrConnection): void => {
    const host = hostOf(c)
    const set = pending.get(host)
    if (set === undefined) return
    set.delete(c)
    if (set.size === 0) pending.delete(host)
  }
  return {
    denyInboundConnection: (c) => {
      const host = hostOf(c)
      let set = pending.get(host)
      if (set === undefined) { set = new Set(); pending.set(host, set) }
      if (set.size >= cap) return true
      set.add(c)
      c.addEventListener('close', () => { done(c) }, { once: true })
      return false
    },
    denyInboundUpgradedConnection: (_peer, c) => { done(c); return false }
  }
}

export async function createBgridNode (opts: NodeOptions): Promise<BgridNode> {
  const listen = opts.noListen === true ? [] : [`/ip4/${opts.host ?? '0.0.0.0'}/tcp/${opts.port ?? 0}`]
  const node = await createLibp2p({
    privateKey: opts.privateKey,
    addresses: { listen },
    transports: [tcp()],
    connectionEncrypters: [bulkNoise()],
    // Bigger frames and windows: blobs stream at several hundred MB/s instead of ~100.
    streamMuxers: [yamux({
      maxMessageSize: 256 * 1024,
      streamOptions: { initialStreamWindowSize: 4 * 1024 * 1024, maxStreamWindowSize: 16 * 1024 * 1024, maxReadBufferLength: 32 * 1024 * 1024 }
    } as any)],
    ...(opts.gridKey !== undefined ? { connectionProtector: preSharedKey({ psk: opts.gridKey, timeout: 2000 }) } : {}),
    connectionManager: { maxConnections: 1000, maxIncomingPendingConnections: MAX_PENDING, inboundUpgradeTimeout: UPGRADE_TIMEOUT_MS },
    connectionGater: pendingPerAddressGater(),
    services: { identify: identify() }
  })
  return node as unknown as BgridNode
}

/** A dialable address for a peer: ip + port + peer id (noise then checks the identity). */
export function peerAddr (ip: string, port: number, peer: string): Multiaddr {
  const family = ip.includes(':') ? 'ip6' : 'ip4'
  return multiaddr(`/${family}/${ip}/tcp/${port}/p2p/${peer}`)
}

export function parsePeerId (s: string): PeerId {
  return peerIdFromString(s)
}

/** The node's listen addresses as strings, unspecified hosts expanded by libp2p. */
export function listenAddrs (node: BgridNode): string[] {
  return node.getMultiaddrs().map(ma => ma.toString())
}

export function tcpPort (node: BgridNode): number {
  for (const ma of node.getMultiaddrs()) {
    const m = /\/tcp\/(\d+)/.exec(ma.toString())
    if (m !== null) return Number(m[1])
  }
  return 0
}
