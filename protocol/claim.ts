// /bgrid/claim/1.0.0: a coordinator claims, renews and releases a worker.
import { ajv, type ProtocolSpec } from './rpc.ts'
import { RUN_ID, MULTIADDR } from './schemas.ts'

export const CLAIM_PROTOCOL = '/bgrid/claim/1.0.0'
export const PROTOCOL_VERSION = 1
export const MIN_LEASE_MS = 1000
export const MAX_LEASE_MS = 120_000

export type ClaimRequest =
  | { op: 'claim', v: number, run: string, leaseMs: number, addrs?: string[] }
  | { op: 'renew', run: string }
  | { op: 'release', run: string }

export interface WorkerOffer {
  cores: number, mhz: number, ram: number, disk: number, load: number, cost: number, arch: string, os: string
}

export interface ClaimReply { ok: true, leaseMs: number, state: string, offer?: WorkerOffer }

const request = ajv.compile<ClaimRequest>({
  oneOf: [
    {
      type: 'object',
      required: ['op', 'v', 'run', 'leaseMs'],
      additionalProperties: false,
      properties: {
        op: { const: 'claim' },
        v: { type: 'integer', minimum: 0 },
        run: RUN_ID,
        leaseMs: { type: 'integer', minimum: MIN_LEASE_MS, maximum: MAX_LEASE_MS },
        addrs: { type: 'array', maxItems: 16, items: MULTIADDR }
      }
    },
    {
      type: 'object',
      required: ['op', 'run'],
      additionalProperties: false,
      properties: { op: { enum: ['renew', 'release'] }, run: RUN_ID }
    }
  ]
})

const reply = ajv.compile<ClaimReply>({
  type: 'object',
  required: ['ok', 'leaseMs', 'state'],
  additionalProperties: false,
  properties: {
    ok: { const: true },
    leaseMs: { type: 'integer', minimum: 0 },
    state: { type: 'string', maxLength: 16 },
    offer: {
      type: 'object',
      required: ['cores', 'mhz', 'ram', 'disk', 'load', 'cost', 'arch', 'os'],
      additionalProperties: false,
      properties: {
        cores: { type: 'integer', minimum: 0 },
        mhz: { type: 'number', minimum: 0 },
        ram: { type: 'number', minimum: 0 },
        disk: { type: 'number', minimum: 0 },
        load: { type: 'number', minimum: 0 },
        cost: { type: 'number', minimum: 0 },
        arch: { type: 'string', maxLength: 32 },
        os: { type: 'string', maxLength: 32 }
      }
    }
  }
})

export const claimSpec: ProtocolSpec<ClaimRequest, ClaimReply> = {
  id: CLAIM_PROTOCOL, request, reply, maxBytes: 16 * 1024, timeoutMs: 5000, maxInboundStreams: 32
}
