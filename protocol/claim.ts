// /bgrid/claim/2.3.0: a coordinator claims, renews and releases a worker.
//
// The coordinator's transport identity is new for every run (its peer id, checked by
// Noise). Who it runs for is the submitter's persistent identity (`bgrid id`): a claim
// carries the submitter's signature over the run, the coordinator's and the worker's
// peer ids, so a daemon can allow submitters (--allow-coordinator) and a signed claim
// is good for that coordinator and that worker only.
import { peerIdFromString, peerIdFromPrivateKey } from '@libp2p/peer-id'
import type { PrivateKey } from '@libp2p/interface'
import { ajv, type ProtocolSpec } from './rpc.ts'
import { RUN_ID, MULTIADDR, PEER_ID, ATTEMPT_ID } from './schemas.ts'
import { CUSTOM_NAME } from './expr.ts'
import { MAX_ATTRS, MAX_ATTR_VALUE, MAX_START_SOURCE } from './start.ts'

// 2.3.0 over 2.2.0: a claim carries the run's priority, and, from a coordinator short of
// workers, how many it holds (`held`): a node working for another run then weighs the two
// (fair sharing, protocol/fair-share.ts) and may answer YIELDING: it leaves its run at a
// job boundary and is reserved for the asker, who asks again.
// 2.2.0 over 2.1.0: a renewal carries the attempts the coordinator counts on that
// worker, and its reply the attempts the worker really holds, each with its phase (the
// lease proves the worker alive; this proves it busy with what it was given).
// 2.1.0 over 2.0.0: a claim may name the middleware (`middleware`), the offer carries
// `gflops`. A 2.0.0 daemon refuses unknown fields, hence the new id. The offer's
// optional `attrs` and `start` (two-sided matching) kept the id: only the coordinator
// validates a reply, and a daemon sends them only when given --attr or --start (a
// coordinator older than them refuses such an offer: it validates it strictly).
export const CLAIM_PROTOCOL = '/bgrid/claim/2.3.0'
/** what daemons of bgrid 0.1 spoke: still answered, with a VERSION refusal that says so */
export const CLAIM_PROTOCOL_V1 = '/bgrid/claim/1.0.0'
/**
 * what daemons spoke before middlewares could be named: still answered, with a VERSION
 * refusal (a coordinator that old also speaks a jobs protocol this worker no longer does)
 */
export const CLAIM_PROTOCOL_V2_0 = '/bgrid/claim/2.0.0'
/** before renewals carried attempts: refused with VERSION as well (its coordinator could not see dropped attempts) */
export const CLAIM_PROTOCOL_V2_1 = '/bgrid/claim/2.1.0'
/** before fair sharing: refused with VERSION (its coordinators would keep every node they took) */
export const CLAIM_PROTOCOL_V2_2 = '/bgrid/claim/2.2.0'
/** a run's priority is one of these (the DAG's `priority`, DAGMan's -priority) */
export const MIN_PRIORITY = -1000
export const MAX_PRIORITY = 1000
export const PROTOCOL_VERSION = 2
export const MIN_LEASE_MS = 1000
export const MAX_LEASE_MS = 120_000

export interface SubmitterProof { id: string, sig: string }

/**
 * How the claimed worker is to run the coordinator's work: the name of a worker-side
 * driver (daemon/drivers). `native` (XtremWeb-style pull) when a claim names none;
 * `boinc` pulls the same way (replicas and validation are the coordinator's business).
 */
export const DEFAULT_MIDDLEWARE = 'native'
export const MIDDLEWARE_NAME = { type: 'string', pattern: '^[a-z][a-z0-9_-]{0,31}$' } as const

export type ClaimRequest =
  | {
    op: 'claim', v: number, run: string, leaseMs: number, addrs?: string[], submitter?: SubmitterProof, middleware?: string
    /** the run's priority (default 0) */
    priority?: number
    /** workers the asking run holds: given, a node busy with another run weighs the two (fair sharing) */
    held?: number
  }
  /** `attempts`: those the coordinator counts on this worker; the worker drops any other it holds */
  | { op: 'renew', run: string, attempts?: string[] }
  | { op: 'release', run: string }

/**
 * An attempt younger than this is never judged by a renewal, on either side: its
 * assignment and the renewal may cross on the wire.
 */
export const ASSIGNMENT_GRACE_MS = 3000
/** attempts a renewal names at most: a worker holds a short queue per slot (MAX_QUEUE_FACTOR), 128 slots' worth */
export const MAX_HELD_ATTEMPTS = 1024

/**
 * Where an attempt held by a worker is: queued for a slot, getting its inputs, running
 * its command, or ended with its result not yet acknowledged by the coordinator.
 */
export type AttemptPhase = 'queued' | 'inputs' | 'running' | 'reporting'
export interface HeldAttempt { attempt: string, phase: AttemptPhase, /** ms in this phase */ forMs: number }

export interface WorkerOffer {
  cores: number, mhz: number, ram: number, disk: number, load: number, cost: number, arch: string, os: string
  /** floating-point speed of one core, GFLOPS (daemon/benchmark.ts): what BOINC credit is counted in */
  gflops?: number
  /**
   * the node's custom attributes (`bgrid daemon --attr`), for job requirements and rank.
   * Sent only when the node has some, as is `start`: coordinators before these fields
   * validate the offer with additionalProperties false and refuse such a reply
   */
  attrs?: Record<string, number | string | boolean>
  /** the node's START policy, its source (`--start`): the coordinator parses it and hands out only jobs it lets in */
  start?: string
}

export interface ClaimReply {
  ok: true, leaseMs: number, state: string, offer?: WorkerOffer
  /** a renewal's reply: the attempts this worker holds for the run (absent from a driver that cannot tell) */
  attempts?: HeldAttempt[]
  /**
   * a renewal's reply: the node is leaving the run for a fairer share (it takes no new
   * job); its coordinator releases it once its attempts are reported, or the node goes
   * by itself a moment later
   */
  retiring?: boolean
}

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
        },
        middleware: MIDDLEWARE_NAME,
        priority: { type: 'integer', minimum: MIN_PRIORITY, maximum: MAX_PRIORITY },
        held: { type: 'integer', minimum: 0, maximum: 100_000 }
      }
    },
    {
      type: 'object',
      required: ['op', 'run'],
      additionalProperties: false,
      properties: { op: { const: 'renew' }, run: RUN_ID, attempts: { type: 'array', maxItems: MAX_HELD_ATTEMPTS, items: ATTEMPT_ID } }
    },
    {
      type: 'object',
      required: ['op', 'run'],
      additionalProperties: false,
      properties: { op: { const: 'release' }, run: RUN_ID }
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
    retiring: { type: 'boolean' },
    attempts: {
      type: 'array',
      maxItems: MAX_HELD_ATTEMPTS,
      items: {
        type: 'object',
        required: ['attempt', 'phase', 'forMs'],
        additionalProperties: false,
        properties: { attempt: ATTEMPT_ID, phase: { enum: ['queued', 'inputs', 'running', 'reporting'] }, forMs: { type: 'integer', minimum: 0 } }
      }
    },
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
        os: { type: 'string', maxLength: 32 },
        // a core's GFLOPS: bounded, so that no offer can claim unbounded credit
        gflops: { type: 'number', minimum: 0, maximum: 1000 },
        attrs: {
          type: 'object',
          maxProperties: MAX_ATTRS,
          propertyNames: { pattern: CUSTOM_NAME.source },
          additionalProperties: { type: ['number', 'boolean', 'string'], maxLength: MAX_ATTR_VALUE }
        },
        start: { type: 'string', minLength: 1, maxLength: MAX_START_SOURCE }
      }
    }
  }
})

export const claimSpec: ProtocolSpec<ClaimRequest, ClaimReply> = {
  id: CLAIM_PROTOCOL, request, reply, maxBytes: 128 * 1024, timeoutMs: 5000, maxInboundStreams: 32
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

const anything = ajv.compile<unknown>({})
const nothing = ajv.compile<never>({ not: {} })

/** Anything on an old protocol id: refused with a VERSION that names the fix. */
export const legacyClaimSpecs: Array<ProtocolSpec<unknown, never>> = [CLAIM_PROTOCOL_V1, CLAIM_PROTOCOL_V2_0, CLAIM_PROTOCOL_V2_1, CLAIM_PROTOCOL_V2_2].map(id => ({
  id, request: anything, reply: nothing, maxBytes: 16 * 1024, timeoutMs: 5000, maxInboundStreams: 8
}))
