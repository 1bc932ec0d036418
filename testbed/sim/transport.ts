// The simulation's in-process transport for the claim protocol (/bgrid/claim): no sockets,
// messages delivered by the virtual clock after a seeded latency. What travels is what
// the real transport carries: each message is serialised to JSON and parsed back on the
// other side (so nothing but JSON crosses), held to the protocol's size limit, the request
// validated by the real schema before the handler sees it, and the answer read by the
// real client code (protocol/rpc.ts: `validate`, `refusal`, `acceptReply`): a refusal
// arrives as the BgridError the real `call` throws, a malformed reply as BAD_REQUEST.
// Contract: `serve(node, handler)` registers a daemon's claim handler (it throws a
// BgridError to refuse, as with protocol/rpc.ts serve); `call(from, to, req, done)`
// delivers one exchange. `exchange` is one exchange at once (the transport test).
// Imports protocol/ only.
import { claimSpec, type ClaimRequest, type ClaimReply } from '../../protocol/claim.ts'
import { validate, refusal, acceptReply } from '../../protocol/rpc.ts'
import { BgridError } from '../../protocol/errors.ts'
import type { VirtualClock } from './clock.ts'

/** a daemon's answer to one claim request from `peer` (throw a BgridError to refuse) */
export type ClaimHandler = (req: ClaimRequest, peer: string) => Omit<ClaimReply, 'ok'>

export type CallOutcome = { ok: true, reply: ClaimReply } | { ok: false, error: BgridError }

/** The server's side of one exchange: the request's bytes in, the reply's bytes out. */
export function answerBytes (text: string, handler: ClaimHandler, peer: string): string {
  let out: unknown
  try {
    if (text.length > claimSpec.maxBytes) throw new BgridError('TOO_LARGE', 'message exceeds the size limit')
    const req = validate(claimSpec.request, JSON.parse(text))
    out = { ok: true, ...handler(req, peer) }
  } catch (err) {
    out = refusal(err)
  }
  return JSON.stringify(out)
}

/** The client's side: the reply's bytes read as the real `call` reads them. */
export function readReply (text: string): CallOutcome {
  try {
    return { ok: true, reply: acceptReply(claimSpec, JSON.parse(text)) }
  } catch (err) {
    return { ok: false, error: err instanceof BgridError ? err : new BgridError('INTERNAL', String(err)) }
  }
}

/** One exchange with no delay: what `call` delivers, minus the clock. */
export function exchange (req: ClaimRequest, handler: ClaimHandler, peer: string): CallOutcome {
  return readReply(answerBytes(JSON.stringify(req), handler, peer))
}

export class SimClaimTransport {
  private readonly handlers = new Map<string, ClaimHandler>()
  private readonly clock: VirtualClock
  private readonly latencyMs: () => number
  /** messages carried, each way */
  messages = 0

  constructor (clock: VirtualClock, latencyMs: () => number) {
    this.clock = clock
    this.latencyMs = latencyMs
  }

  serve (node: string, handler: ClaimHandler): void { this.handlers.set(node, handler) }

  /** one request from `from` to `to`; `done` runs when the reply (or the refusal) is back */
  call (from: string, to: string, req: ClaimRequest, done: (o: CallOutcome) => void): void {
    const text = JSON.stringify(req)
    this.messages++
    this.clock.after(this.latencyMs(), () => {
      const handler = this.handlers.get(to)
      const back = handler === undefined
        ? JSON.stringify(refusal(new BgridError('UNREACHABLE', `cannot reach ${to}`)))
        : answerBytes(text, handler, from)
      this.messages++
      this.clock.after(this.latencyMs(), () => { done(readReply(back)) })
    })
  }
}
