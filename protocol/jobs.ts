// /bgrid/jobs/1.3.0, served by a coordinator: its workers pull jobs (XtremWeb's
// "work request"), report results and say they are alive ("work alive") in one message.
import { ajv, type ProtocolSpec } from './rpc.ts'
import { RUN_ID, HASH, ATTEMPT_ID, JOB_ID, REL_PATH, SIZE, PEER_ID, MULTIADDR } from './schemas.ts'

// 1.3.0 over 1.2.0: results may carry `cpuMs`
export const JOBS_PROTOCOL = '/bgrid/jobs/1.3.0'
/** the most CPU time a result may claim, ms (about 300 core-years: a bound, not a limit anyone meets) */
export const MAX_CPU_MS = 1e13

/**
 * A worker whose pull or report fails tries again after PULL_RETRY_FIRST_MS, doubling up
 * to PULL_RETRY_MAX_MS: a coordinator busy or restarting is not a reason to leave the run
 * (its release or the lease ends the session).
 */
export const PULL_RETRY_FIRST_MS = 100
export const PULL_RETRY_MAX_MS = 2000
/** the wait after one that failed */
export function nextPullRetryMs (lastMs: number): number { return Math.min(PULL_RETRY_MAX_MS, lastMs * 2) }

export interface BlobRef { hash: string, size: number, holders: string[] }
/** a prefetch hint: `order` is the job's place in the worker's plan (lower is needed sooner) */
export interface PrefetchHint extends BlobRef { order?: number }
export interface InputRef extends BlobRef { name: string }

export interface Assignment {
  attempt: string
  job: string
  cmd: string[]
  env: Record<string, string>
  timeoutMs: number
  cores: number
  /** MiB the job declared (its memory limit is this plus a margin); 0: none declared */
  ram: number
  /** MiB it may write; 0: the worker's own limit */
  disk: number
  /** false: no network for the job */
  network: boolean
  inputs: InputRef[]
  outputs: string[]
}

export interface FileResult { name: string, hash: string, size: number }
/**
 * An input the worker could not get, or got wrong: not the job's failure. `holders`
 * are the nodes that failed it (they leave the blob's holder list); `local` says the
 * worker's own copy was the corrupt one.
 */
export interface InputProblem { hash: string, code: 'HASH_MISMATCH' | 'NOT_FOUND' | 'UNREACHABLE' | 'UNAUTHORISED' | 'DISK_FULL', holders: string[], local?: boolean, message: string }
export interface LogResult { hash: string, size: number, tail: string }

export interface AttemptResult {
  attempt: string
  /**
   * ok: exit 0 and every output present; failed: ran and failed; lost: could not run
   * (inputs, sandbox); preempted: owner came back; cancelled: the run or claim ended
   */
  status: 'ok' | 'failed' | 'lost' | 'preempted'
  exitCode: number | null
  signal: string | null
  error?: string
  outputs: FileResult[]
  /** why inputs could not be had (status lost): the coordinator drops those holders */
  inputProblems?: InputProblem[]
  /** the kernel killed the job for going over its memory limit (MiB) */
  oomLimitMiB?: number
  stdout?: LogResult
  stderr?: LogResult
  startedAt: number
  endedAt: number
  /**
   * the job's CPU time, user + system, of its process and every descendant it waited
   * for, ms (as the kernel accounts it when the starter reaps the job). Absent when the
   * worker could not measure it (the coordinator then counts wall time)
   */
  cpuMs?: number
  /** ms spent waiting for input bytes before the process started */
  inputWaitMs: number
  /** input bytes fetched over the network / served from the local cache */
  bytesFetched: number
  cacheHits: number
}

/** The result of an attempt whose process never ran to an end of its own. */
export function unranResult (attempt: string, status: 'lost' | 'preempted', error: string, now = Date.now()): AttemptResult {
  return { attempt, status, exitCode: null, signal: null, error, outputs: [], startedAt: now, endedAt: now, inputWaitMs: 0, bytesFetched: 0, cacheHits: 0 }
}

/** a holder whose copy of a blob is bad or gone (the reporting worker itself, or a peer that sent bad bytes) */
export interface CorruptReport { hash: string, holder: string }

export interface PullRequest {
  op: 'pull', run: string, want: number, running: string[], results: AttemptResult[], have?: string[], prefetchedBytes?: number
  corrupt?: CorruptReport[]
}
export interface PeerInfo { id: string, addrs: string[] }
export interface PullReply {
  ok: true, jobs: Assignment[], prefetch: PrefetchHint[], peers: PeerInfo[], done: boolean
  /** blobs another node says this worker served corrupt: re-hash them (and announce the good ones again) */
  verify?: string[]
}

const blobRef = {
  type: 'object',
  required: ['hash', 'size', 'holders'],
  additionalProperties: false,
  properties: { hash: HASH, size: SIZE, holders: { type: 'array', maxItems: 64, items: PEER_ID } }
} as const

const logResult = {
  type: 'object',
  required: ['hash', 'size', 'tail'],
  additionalProperties: false,
  properties: { hash: HASH, size: SIZE, tail: { type: 'string', maxLength: 8192 } }
} as const

const result = {
  type: 'object',
  required: ['attempt', 'status', 'exitCode', 'signal', 'outputs', 'startedAt', 'endedAt', 'inputWaitMs', 'bytesFetched', 'cacheHits'],
  additionalProperties: false,
  properties: {
    attempt: ATTEMPT_ID,
    status: { enum: ['ok', 'failed', 'lost', 'preempted'] },
    exitCode: { type: ['integer', 'null'] },
    signal: { type: ['string', 'null'], maxLength: 16 },
    error: { type: 'string', maxLength: 4096 },
    outputs: {
      type: 'array',
      maxItems: 4096,
      items: { type: 'object', required: ['name', 'hash', 'size'], additionalProperties: false, properties: { name: REL_PATH, hash: HASH, size: SIZE } }
    },
    inputProblems: {
      type: 'array',
      maxItems: 4096,
      items: {
        type: 'object',
        required: ['hash', 'code', 'holders', 'message'],
        additionalProperties: false,
        properties: {
          hash: HASH,
          code: { enum: ['HASH_MISMATCH', 'NOT_FOUND', 'UNREACHABLE', 'UNAUTHORISED', 'DISK_FULL'] },
          holders: { type: 'array', maxItems: 64, items: PEER_ID },
          local: { type: 'boolean' },
          message: { type: 'string', maxLength: 4096 }
        }
      }
    },
    oomLimitMiB: SIZE,
    stdout: logResult,
    stderr: logResult,
    // epoch ms, within what a Date can hold (a crafted 1e20 would break every report)
    startedAt: { type: 'number', minimum: 0, maximum: 8.64e15 },
    endedAt: { type: 'number', minimum: 0, maximum: 8.64e15 },
    cpuMs: { type: 'integer', minimum: 0, maximum: MAX_CPU_MS },
    inputWaitMs: { type: 'number', minimum: 0 },
    bytesFetched: SIZE,
    cacheHits: SIZE
  }
} as const

const request = ajv.compile<PullRequest>({
  type: 'object',
  required: ['op', 'run', 'want', 'running', 'results'],
  additionalProperties: false,
  properties: {
    op: { const: 'pull' },
    run: RUN_ID,
    want: { type: 'integer', minimum: 0, maximum: 1024 },
    running: { type: 'array', maxItems: 1024, items: ATTEMPT_ID },
    results: { type: 'array', maxItems: 1024, items: result },
    have: { type: 'array', maxItems: 4096, items: HASH },
    prefetchedBytes: SIZE,
    corrupt: {
      type: 'array',
      maxItems: 1024,
      items: { type: 'object', required: ['hash', 'holder'], additionalProperties: false, properties: { hash: HASH, holder: PEER_ID } }
    }
  }
})

const assignment = {
  type: 'object',
  required: ['attempt', 'job', 'cmd', 'env', 'timeoutMs', 'cores', 'ram', 'disk', 'network', 'inputs', 'outputs'],
  additionalProperties: false,
  properties: {
    attempt: ATTEMPT_ID,
    job: JOB_ID,
    cmd: { type: 'array', minItems: 1, maxItems: 4096, items: { type: 'string', maxLength: 65536 } },
    env: { type: 'object', maxProperties: 256, additionalProperties: { type: 'string', maxLength: 32768 } },
    timeoutMs: { type: 'integer', minimum: 0 },
    cores: { type: 'number', minimum: 0 },
    ram: SIZE,
    disk: SIZE,
    network: { type: 'boolean' },
    inputs: {
      type: 'array',
      maxItems: 4096,
      items: { ...blobRef, required: [...blobRef.required, 'name'], properties: { ...blobRef.properties, name: REL_PATH } }
    },
    outputs: { type: 'array', maxItems: 4096, items: REL_PATH }
  }
} as const

const reply = ajv.compile<PullReply>({
  type: 'object',
  required: ['ok', 'jobs', 'prefetch', 'peers', 'done'],
  additionalProperties: false,
  properties: {
    ok: { const: true },
    jobs: { type: 'array', maxItems: 1024, items: assignment },
    prefetch: { type: 'array', maxItems: 4096, items: { ...blobRef, properties: { ...blobRef.properties, order: SIZE } } },
    peers: {
      type: 'array',
      maxItems: 4096,
      items: { type: 'object', required: ['id', 'addrs'], additionalProperties: false, properties: { id: PEER_ID, addrs: { type: 'array', maxItems: 16, items: MULTIADDR } } }
    },
    done: { type: 'boolean' },
    verify: { type: 'array', maxItems: 1024, items: HASH }
  }
})

export const jobsSpec: ProtocolSpec<PullRequest, PullReply> = {
  id: JOBS_PROTOCOL, request, reply, maxBytes: 16 * 1024 * 1024, timeoutMs: 30_000, maxInboundStreams: 64
}

/** How long a coordinator may hold a pull open when it has nothing to give (long poll). */
export const PULL_WAIT_MS = 10_000
/** a worker holds at most this many times its slots (running + queued), and its coordinator assigns as much */
export const MAX_QUEUE_FACTOR = 8
