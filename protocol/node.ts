// libp2p node factory: TCP + noise + yamux + identify, optional private-network key.
import { createLibp2p, type Libp2p } from 'libp2p'
import { tcp } from '@libp2p/tcp'
import { bulkNoise } from './noise.ts'
import { yamux } from '@chainsafe/libp2p-yamux'
import { identify } from '@libp2p/identify'
import { preSharedKey } from '@libp2p/pnet'
import type { PrivateKey, PeerId } from '@libp2p/interface'
import { multiaddr, type Multiaddr } from '@multiformats/multiaddr'
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
    connectionManager: { maxConnections: 1000 },
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
