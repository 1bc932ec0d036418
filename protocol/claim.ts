// /bgrid/claim/2.0.0: a coordinator claims, renews and releases a worker.
//
// The coordinator's transport identity is new for every run (its peer id, checked by
// Noise). Who it runs for is the submitter's persistent identity (`bgrid id`): a claim
// carries the submitter's signature over the run, the coordinator's and the worker's
// peer ids, so a daemon can allow submitters (--allow-coordinator) and a signed claim
// is good for that coordinator and that worker only.
import { peerIdFromString, peerIdFromPrivateKey } from '@libp2p/peer-id'
import type { PrivateKey } from '@libp2p/interface'
import { ajv, type ProtocolSpec } from './rpc.ts'
import { RUN_ID, MULTIADDR, PEER_ID } from './schemas.ts'

export const CLAIM_PROTOCOL = '/bgrid/claim/2.0.0'
/** what daemons of bgrid 0.1 spoke: still answered, with a VERSION refusal that says so */
export const CLAIM_PROTOCOL_V1 = '/bgrid/claim/1.0.0'
export const PROTOCOL_VERSION = 2
export const MIN_LEASE_MS = 1000
export const MAX_LEASE_MS = 120_000

export interface SubmitterProof { id: string, sig: string }

export type ClaimRequest =
  | { op: 'claim', v: number, run: string, leaseMs: number, addrs?: string[], submitter?: SubmitterProof }
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
        addrs: { type: 'array', maxItems: 16, items: MULTIADDR },
        submitter: {
          type: 'object',
          required: ['id', 'sig'],
          additionalProperties: false,
          properties: { id: PEER_ID, sig: { type: 'string', pattern: '^[A-Za-z0-9+/=]{1,512}$' } }
        }
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

/** What a submitter signs to send a coordinator to a worker for a run. */
function statement (run: string, coordinator: string, worker: string): Uint8Array {
  return new TextEncoder().encode(`bgrid-claim/2\n${run}\n${coordinator}\n${worker}`)
}

export async function signClaim (key: PrivateKey, run: string, coordinator: string, worker: string): Promise<SubmitterProof> {
  const sig = await key.sign(statement(run, coordinator, worker))
  return { id: peerIdFromPrivateKey(key).toString(), sig: Buffer.from(sig).toString('base64') }
}

/** The submitter's id if its signature holds for this run, coordinator and worker; else undefined. */
export async function verifyClaim (proof: SubmitterProof, run: string, coordinator: string, worker: string): Promise<string | undefined> {
  try {
    const pub = peerIdFromString(proof.id).publicKey
    if (pub === undefined) return undefined
    return await pub.verify(statement(run, coordinator, worker), Buffer.from(proof.sig, 'base64')) ? proof.id : undefined
  } catch { return undefined }
}

/** Anything on the old protocol id: refused with a VERSION that names the fix. */
export const legacyClaimSpec: ProtocolSpec<unknown, never> = {
  id: CLAIM_PROTOCOL_V1,
  request: ajv.compile<unknown>({}),
  reply: ajv.compile<never>({ not: {} }),
  maxBytes: 16 * 1024,
  timeoutMs: 5000,
  maxInboundStreams: 8
}
