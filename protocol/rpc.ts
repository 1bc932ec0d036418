// Request/response over libp2p streams: length-prefixed JSON, schema-validated at the
// boundary, size-limited, every exchange bounded by an AbortSignal. A stream may carry
// several exchanges in turn (a client that talks to a peer often keeps it open).
import { lpStream, type LengthPrefixedStream } from '@libp2p/utils'
import type { Stream, Connection, PeerId } from '@libp2p/interface'
import type { Multiaddr } from '@multiformats/multiaddr'
import { Ajv, type ValidateFunction, type ErrorObject } from 'ajv'
import { BgridError, type ErrorCode } from './errors.ts'
import type { BgridNode } from './node.ts'
import type { Logger } from './log.ts'
import { bestEffort } from './best-effort.ts'

export const ajv = new Ajv({ allErrors: false, strict: true, allowUnionTypes: true })

const encoder = new TextEncoder()
const decoder = new TextDecoder('utf-8', { fatal: true })

export interface ProtocolSpec<Req, Res> {
  id: string
  request: ValidateFunction<Req>
  reply: ValidateFunction<Res>
  /** Largest message accepted in either direction, bytes. */
  maxBytes: number
  /** Deadline for one whole exchange, ms. */
  timeoutMs: number
  maxInboundStreams?: number
}

export interface HandlerContext {
  peer: string
  connection: Connection
  /** the stream this request came on (one stream may carry several exchanges) */
  streamId: string
  signal: AbortSignal
}

export interface ErrorReply { ok: false, error: { code: ErrorCode, message: string } }

export function describeAjvErrors (errors: ErrorObject[] | null | undefined): string {
  if (errors == null || errors.length === 0) return 'invalid'
  const e = errors[0]
  const where = e.instancePath === '' ? 'message' : e.instancePath
  const extra = e.keyword === 'additionalProperties' ? ` (${String((e.params as any).additionalProperty)})` : ''
  return `${where} ${e.message ?? 'invalid'}${extra}`
}

export async function writeJson (lp: LengthPrefixedStream<any>, msg: unknown, signal: AbortSignal): Promise<void> {
  await lp.write(encoder.encode(JSON.stringify(msg)), { signal })
}

/** Read one JSON message; errors are BgridErrors with TOO_LARGE or BAD_REQUEST. */
export async function readJson (lp: LengthPrefixedStream<any>, signal: AbortSignal): Promise<unknown> {
  let raw
  try {
    raw = await lp.read({ signal })
  } catch (err: any) {
    if (err?.name === 'InvalidDataLengthError' || err?.name === 'InvalidDataLengthLengthError') {
      throw new BgridError('TOO_LARGE', 'message exceeds the size limit')
    }
    if (signal.aborted) throw new BgridError('TIMEOUT', 'no message before the deadline')
    throw err
  }
  try {
    return JSON.parse(decoder.decode(raw.subarray()))
  } catch {
    throw new BgridError('BAD_REQUEST', 'message is not UTF-8 JSON')
  }
}

export function validate<T> (check: ValidateFunction<T>, msg: unknown, code: ErrorCode = 'BAD_REQUEST'): T {
  if (!check(msg)) throw new BgridError(code, describeAjvErrors(check.errors))
  return msg
}

function closeQuietly (stream: Stream): void {
  stream.close().catch(() => { stream.abort(new Error('close failed')) })
}

/** how long a server keeps an idle stream open for the client's next request */
export const STREAM_IDLE_MS = 60_000

/**
 * Register a handler. Bad messages get an error reply and a log line; the handler
 * itself never sees them, and the node keeps serving. After a reply the stream stays
 * open for the client's next request (up to STREAM_IDLE_MS); an error ends it.
 */
export async function serve<Req, Res extends object> (
  node: BgridNode, spec: ProtocolSpec<Req, Res>, log: Logger,
  handler: (req: Req, ctx: HandlerContext) => Promise<Res>
): Promise<void> {
  await node.handle(spec.id, async (stream: Stream, connection: Connection) => {
    const lp = lpStream(stream, { maxDataLength: spec.maxBytes })
    const peer = connection.remotePeer.toString()
    let first = true
    try {
      while (true) {
        let raw: unknown
        if (first) raw = await readJson(lp, AbortSignal.timeout(spec.timeoutMs))
        else {
          // between exchanges: the client closing its end (or going quiet) ends the stream;
          // a malformed or oversize message still gets its error reply
          try { raw = await readJson(lp, AbortSignal.timeout(STREAM_IDLE_MS)) } catch (err) {
            if (err instanceof BgridError && err.code !== 'TIMEOUT') throw err
            return
          }
        }
        first = false
        // the deadline of one exchange starts when its request has arrived
        const signal = AbortSignal.timeout(spec.timeoutMs)
        try {
          const req = validate(spec.request, raw)
          const res = await handler(req, { peer, connection, streamId: stream.id, signal })
          await writeJson(lp, { ok: true, ...res }, signal)
        } catch (err) {
          await refuse(lp, err, spec, peer, log, signal)
          return
        }
      }
    } catch (err) {
      await refuse(lp, err, spec, peer, log, AbortSignal.timeout(spec.timeoutMs))
    } finally {
      closeQuietly(stream)
    }
  }, { maxInboundStreams: spec.maxInboundStreams ?? 64, maxOutboundStreams: 256, runOnLimitedConnection: false })
}

/** The error reply a server sends for what went wrong (a BgridError keeps its code; anything else is INTERNAL). */
export function refusal (err: unknown): ErrorReply {
  const code: ErrorCode = err instanceof BgridError ? err.code : 'INTERNAL'
  const message = err instanceof Error ? err.message : String(err)
  return { ok: false, error: { code, message } }
}

async function refuse (lp: LengthPrefixedStream<any>, err: unknown, spec: ProtocolSpec<any, any>, peer: string, log: Logger, signal: AbortSignal): Promise<void> {
  const reply = refusal(err)
  log.warn('refused', { protocol: spec.id, peer, code: reply.error.code, message: reply.error.message })
  try { await writeJson(lp, reply, signal) } catch (err) { bestEffort('writeJson()', err) }
}

export const errorReply = ajv.compile<ErrorReply>({
  type: 'object',
  required: ['ok', 'error'],
  properties: {
    ok: { const: false },
    error: {
      type: 'object',
      required: ['code', 'message'],
      properties: { code: { type: 'string', maxLength: 32 }, message: { type: 'string', maxLength: 4096 } }
    }
  }
})

/**
 * A client's reading of a reply: an error reply becomes a BgridError with the peer's
 * code, anything else must be a valid reply of the protocol (else BAD_REQUEST).
 */
export function acceptReply<Res> (spec: Pick<ProtocolSpec<unknown, Res>, 'reply'>, res: any): Res {
  if (res?.ok === false && errorReply(res)) throw new BgridError(res.error.code, res.error.message)
  return validate(spec.reply, res, 'BAD_REQUEST')
}

/** Open a stream to a peer, with a clear error when it cannot be reached. */
export async function openStream (node: BgridNode, target: PeerId | Multiaddr | Multiaddr[], protocol: string, signal: AbortSignal): Promise<Stream> {
  try {
    return await node.dialProtocol(target as any, protocol, { signal })
  } catch (err: any) {
    const what = Array.isArray(target) ? target.map(String).join(',') : String(target)
    if (signal.aborted) {
      throw new BgridError('UNREACHABLE', `no answer from ${what} on ${protocol} (a wrong or missing --grid-key looks like this)`)
    }
    throw new BgridError('UNREACHABLE', `cannot reach ${what} on ${protocol}: ${err?.message ?? err}`)
  }
}

/** a stream kept open after an exchange, for the next one with the same peer */
interface IdleStream { stream: Stream, lp: LengthPrefixedStream<Stream>, since: number }
/** a client drops an idle stream well before the server would (STREAM_IDLE_MS) */
const CLIENT_IDLE_MS = STREAM_IDLE_MS / 3
const idleStreams = new WeakMap<BgridNode, Map<string, IdleStream[]>>()

function takeIdle (node: BgridNode, key: string): IdleStream | undefined {
  const list = idleStreams.get(node)?.get(key)
  while (list !== undefined && list.length > 0) {
    const s = list.pop() as IdleStream
    const usable = s.stream.status === 'open' && s.stream.writeStatus === 'writable' &&
      s.stream.remoteWriteStatus === 'writable' && Date.now() - s.since < CLIENT_IDLE_MS
    if (usable) return s
    closeQuietly(s.stream)
  }
  return undefined
}

function putIdle (node: BgridNode, key: string, stream: Stream, lp: LengthPrefixedStream<Stream>): void {
  let byKey = idleStreams.get(node)
  if (byKey === undefined) { byKey = new Map(); idleStreams.set(node, byKey) }
  let list = byKey.get(key)
  if (list === undefined) { list = []; byKey.set(key, list) }
  // a few per peer: more would only be concurrent exchanges that have ended
  if (list.length >= 4) { closeQuietly(stream); return }
  list.push({ stream, lp, since: Date.now() })
}

/** Close the streams kept open to a peer (its session is over). */
export function dropIdleStreams (node: BgridNode, peer: string): void {
  const byKey = idleStreams.get(node)
  if (byKey === undefined) return
  for (const [key, list] of byKey) {
    if (!key.endsWith(` ${peer}`)) continue
    for (const s of list) closeQuietly(s.stream)
    byKey.delete(key)
  }
}

/**
 * One request, one reply. Error replies become BgridErrors with the peer's code.
 * With `reuse`, the stream is kept for the next call to the same peer (saves opening,
 * negotiating and closing one per exchange); a kept stream the peer has closed in the
 * meantime is replaced by a new one, once.
 */
export async function call<Req, Res> (
  node: BgridNode, target: PeerId | Multiaddr | Multiaddr[], spec: ProtocolSpec<Req, Res>, req: Req,
  opts: { signal?: AbortSignal, timeoutMs?: number, reuse?: boolean } = {}
): Promise<Res> {
  const deadline = AbortSignal.timeout(opts.timeoutMs ?? spec.timeoutMs)
  const signal = opts.signal !== undefined ? AbortSignal.any([opts.signal, deadline]) : deadline
  const key = opts.reuse === true && !Array.isArray(target) ? `${spec.id} ${target.toString()}` : undefined
  let kept = key !== undefined ? takeIdle(node, key) : undefined
  while (true) {
    const reused = kept !== undefined
    const stream = kept?.stream ?? await openStream(node, target, spec.id, signal)
    const lp = kept?.lp ?? lpStream(stream, { maxDataLength: spec.maxBytes })
    kept = undefined
    let res: any
    try {
      await writeJson(lp, req, signal)
      res = await readJson(lp, signal)
    } catch (err) {
      stream.abort(err instanceof Error ? err : new Error(String(err)))
      // the peer closed a kept stream while it was idle: try once on a new one
      if (reused && !signal.aborted && !(err instanceof BgridError)) continue
      throw err
    }
    try {
      const valid = acceptReply(spec, res)
      if (key !== undefined && stream.status === 'open') putIdle(node, key, stream, lp)
      else closeQuietly(stream)
      return valid
    } catch (err) {
      stream.abort(err instanceof Error ? err : new Error(String(err)))
      throw err
    }
  }
}
