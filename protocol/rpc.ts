// Request/response over one libp2p stream: length-prefixed JSON, schema-validated
// at the boundary, size-limited, every exchange bounded by an AbortSignal.
import { lpStream, type LengthPrefixedStream } from '@libp2p/utils'
import type { Stream, Connection, PeerId } from '@libp2p/interface'
import type { Multiaddr } from '@multiformats/multiaddr'
import { Ajv, type ValidateFunction, type ErrorObject } from 'ajv'
import { BgridError, type ErrorCode } from './errors.ts'
import type { BgridNode } from './node.ts'
import type { Logger } from '../daemon/log.ts'

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

/**
 * Register a handler. Bad messages get an error reply and a log line; the handler
 * itself never sees them, and the node keeps serving.
 */
export async function serve<Req, Res extends object> (
  node: BgridNode, spec: ProtocolSpec<Req, Res>, log: Logger,
  handler: (req: Req, ctx: HandlerContext) => Promise<Res>
): Promise<void> {
  await node.handle(spec.id, async (stream: Stream, connection: Connection) => {
    const signal = AbortSignal.timeout(spec.timeoutMs)
    const lp = lpStream(stream, { maxDataLength: spec.maxBytes })
    const peer = connection.remotePeer.toString()
    try {
      const req = validate(spec.request, await readJson(lp, signal))
      const res = await handler(req, { peer, connection, signal })
      await writeJson(lp, { ok: true, ...res }, signal)
    } catch (err: any) {
      const code: ErrorCode = err instanceof BgridError ? err.code : 'INTERNAL'
      const message = err instanceof Error ? err.message : String(err)
      log.warn('refused', { protocol: spec.id, peer, code, message })
      try { await writeJson(lp, { ok: false, error: { code, message } } satisfies ErrorReply, signal) } catch {}
    } finally {
      closeQuietly(stream)
    }
  }, { maxInboundStreams: spec.maxInboundStreams ?? 64, maxOutboundStreams: 256, runOnLimitedConnection: false })
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

/** One request, one reply. Error replies become BgridErrors with the peer's code. */
export async function call<Req, Res> (
  node: BgridNode, target: PeerId | Multiaddr | Multiaddr[], spec: ProtocolSpec<Req, Res>, req: Req,
  opts: { signal?: AbortSignal, timeoutMs?: number } = {}
): Promise<Res> {
  const deadline = AbortSignal.timeout(opts.timeoutMs ?? spec.timeoutMs)
  const signal = opts.signal !== undefined ? AbortSignal.any([opts.signal, deadline]) : deadline
  const stream = await openStream(node, target, spec.id, signal)
  try {
    const lp = lpStream(stream, { maxDataLength: spec.maxBytes })
    await writeJson(lp, req, signal)
    const res = await readJson(lp, signal) as any
    if (res?.ok === false && errorReply(res)) throw new BgridError(res.error.code, res.error.message)
    return validate(spec.reply, res, 'BAD_REQUEST')
  } catch (err) {
    stream.abort(err instanceof Error ? err : new Error(String(err)))
    throw err
  } finally {
    if (stream.status === 'open') closeQuietly(stream)
  }
}
