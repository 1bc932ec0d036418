// /bgrid/blob/1.1.0: fetch a blob (or a byte range of it) by SHA-256 from any holder.
// Request: one length-prefixed JSON message. Reply: a JSON header, then the bytes as
// length-prefixed frames. The requester verifies the whole blob's hash at the end.
import { lpStream } from '@libp2p/utils'
import { setTimeout as sleep } from 'node:timers/promises'
import type { Stream, Connection } from '@libp2p/interface'
import { peerIdFromString } from '@libp2p/peer-id'
import { open, stat, type FileHandle } from 'node:fs/promises'
import { TrailingHash, INLINE_MAX } from './hasher.ts'
import { ajv, readJson, writeJson, validate, openStream } from '../protocol/rpc.ts'
import { HASH, SIZE } from '../protocol/schemas.ts'
import { BgridError, type ErrorCode } from '../protocol/errors.ts'
import type { BgridNode } from '../protocol/node.ts'
import type { Logger } from '../protocol/log.ts'
import type { BlobStore } from './store.ts'
import { bestEffort } from '../protocol/best-effort.ts'

/** Anything that can serve blobs by hash: a node's store, or the submitter's staged files. */
export interface BlobSource {
  sizeOf: (hash: string) => number | undefined
  /** the file to read, after checking it still holds those bytes */
  openPath: (hash: string) => Promise<string>
  touch?: (hash: string) => void
}

/** A holder of these bytes could not give them: the holders that failed, by peer id. */
export function failedHolders (err: unknown): string[] {
  const d = (err as any)?.details
  return Array.isArray(d?.holders) ? d.holders.filter((h: unknown) => typeof h === 'string') : []
}

export const BLOB_PROTOCOL = '/bgrid/blob/1.1.0'
const CHUNK = 1024 * 1024
/** receiver back-pressure: pause the stream above HIGH bytes not yet on disk, resume below LOW */
const HIGH = 16 * 1024 * 1024
const LOW = 4 * 1024 * 1024
const WRITE_BATCH = 1024 * 1024
/** flush to disk every so many bytes while the rest arrives, so the final fsync is short */
const SYNC_EVERY = 64 * 1024 * 1024
const MAX_HEADER = 4096
/**
 * A holder that sends nothing for this long while bytes are due has stalled: its range
 * goes to another holder and it is not asked again for this blob (a busy holder says
 * BUSY at once; one that goes quiet mid-transfer is stopped, overloaded or lying).
 */
export const STALL_MS = 10_000
/** ... and so has one whose range does not arrive at this rate at least, bytes/s (a trickle is no transfer) */
export const MIN_RATE = 64 * 1024

/** get: bytes to keep; prove: a few bytes (at most 64) that show a holder has the blob, not a transfer */
export interface BlobRequest { op: 'get' | 'prove', hash: string, offset: number, length?: number }
export const PROVE_MAX = 64
interface BlobHeader { ok: true, size: number, offset: number, length: number }

const checkRequest = ajv.compile<BlobRequest>({
  type: 'object',
  required: ['op', 'hash', 'offset'],
  additionalProperties: false,
  properties: { op: { enum: ['get', 'prove'] }, hash: HASH, offset: SIZE, length: SIZE }
})
const checkHeader = ajv.compile<BlobHeader>({
  type: 'object',
  required: ['ok', 'size', 'offset', 'length'],
  additionalProperties: false,
  properties: { ok: { const: true }, size: SIZE, offset: SIZE, length: SIZE }
})

export interface BlobServerOptions {
  /** May this peer read anything here at all? (a peer of the run this node serves; may ask the run's coordinator) */
  canRead: (peer: string) => boolean | Promise<boolean>
  /** May it read this blob? (the run entered or proved it): else the blob is "not found" */
  canReadBlob?: (peer: string, hash: string) => boolean
  /** a transfer finished (for accounting) */
  onServed?: (peer: string, hash: string, bytes: number) => void
  /** Streams served at once, all peers together. */
  maxConcurrent?: number
  log: Logger
}

export async function serveBlobs (node: BgridNode, store: BlobSource, opts: BlobServerOptions): Promise<void> {
  let active = 0
  const max = opts.maxConcurrent ?? 32
  await node.handle(BLOB_PROTOCOL, async (stream: Stream, connection: Connection) => {
    const peer = connection.remotePeer.toString()
    const lp = lpStream(stream, { maxDataLength: MAX_HEADER })
    // a request must arrive quickly; the transfer itself is bounded by an inactivity timeout
    const signal = AbortSignal.timeout(10_000)
    let fh: FileHandle | undefined
    try {
      const req = validate(checkRequest, await readJson(lp, signal))
      if (req.op === 'prove' && (req.length ?? Infinity) > PROVE_MAX) throw new BgridError('BAD_REQUEST', `a proof reads at most ${PROVE_MAX} bytes`)
      if (!(await opts.canRead(peer))) throw new BgridError('UNAUTHORISED', 'not in a run with this node')
      if (active >= max) throw new BgridError('BUSY', `serving ${active} transfers already`)
      const size = store.sizeOf(req.hash)
      // a blob of another run is not there, as far as this peer can tell
      if (size === undefined || opts.canReadBlob?.(peer, req.hash) === false) throw new BgridError('NOT_FOUND', `no blob ${req.hash.slice(0, 12)}`)
      if (req.offset > size) throw new BgridError('BAD_REQUEST', `offset ${req.offset} past end ${size}`)
      const length = Math.min(req.length ?? size - req.offset, size - req.offset)
      active++
      try {
        fh = await open(await store.openPath(req.hash), 'r')
        await writeJson(lp, { ok: true, size, offset: req.offset, length } satisfies BlobHeader, signal)
        let pos = req.offset
        const end = req.offset + length
        while (pos < end) {
          const n = Math.min(CHUNK, end - pos)
          // a fresh buffer each time: the send queue may still hold the previous one
          const buf = Buffer.allocUnsafe(n)
          const { bytesRead } = await fh.read(buf, 0, n, pos)
          if (bytesRead === 0) throw new BgridError('INTERNAL', 'blob shorter than its index says')
          // raw bytes after the header
          if (!stream.send(buf.subarray(0, bytesRead))) await stream.onDrain({ signal: AbortSignal.timeout(30_000) })
          pos += bytesRead
        }
        store.touch?.(req.hash)
        if (req.op === 'get') opts.onServed?.(peer, req.hash, length)
      } finally { active-- }
      await stream.close()
    } catch (err: any) {
      const code: ErrorCode = err instanceof BgridError ? err.code : 'INTERNAL'
      opts.log.warn('blob request refused', { peer, code, message: err?.message })
      try { await writeJson(lp, { ok: false, error: { code, message: String(err?.message ?? err) } }, AbortSignal.timeout(2000)) } catch (err) { bestEffort('writeJson()', err) }
      stream.abort(new Error(code))
    } finally {
      await fh?.close()
    }
  }, { maxInboundStreams: 16, maxOutboundStreams: 64 })
}

/**
 * A few bytes of a blob from one holder (at most PROVE_MAX): how a node that already
 * has a blob checks that a holder of another run has the same bytes before letting
 * that run use its copy (proof of possession, without moving the blob).
 */
export async function readRange (node: BgridNode, holder: string, hash: string, offset: number, length: number, signal: AbortSignal): Promise<Uint8Array> {
  if (length > PROVE_MAX) throw new BgridError('BAD_REQUEST', `a proof reads at most ${PROVE_MAX} bytes`)
  const stream = await openStream(node, peerIdFromString(holder), BLOB_PROTOCOL, AbortSignal.any([signal, AbortSignal.timeout(10_000)]))
  try {
    const lp = lpStream(stream, { maxDataLength: MAX_HEADER })
    const deadline = AbortSignal.any([signal, AbortSignal.timeout(10_000)])
    await writeJson(lp, { op: 'prove', hash, offset, length } satisfies BlobRequest, deadline)
    const head = await readJson(lp, deadline) as any
    if (head?.ok === false) throw new BgridError(head.error?.code ?? 'INTERNAL', `holder ${holder.slice(-8)}: ${head.error?.message}`, { holders: [holder] })
    validate(checkHeader, head)
    if (head.offset !== offset || head.length !== length) throw new BgridError('BAD_REQUEST', 'holder answered another range')
    const raw = lp.unwrap()
    const parts: Uint8Array[] = []
    let got = 0
    // nothing to read: waiting for a first chunk would wait for ever (the holder sends none)
    if (length > 0) {
      // the deadline ends the read too, not only the header: a holder that stops sending is abandoned
      const stop = (): void => { stream.abort(new BgridError('TIMEOUT', `holder ${holder.slice(-8)}: no proof within 10 s`)) }
      deadline.addEventListener('abort', stop, { once: true })
      try {
        for await (const chunk of raw as AsyncIterable<Uint8Array | { subarray: () => Uint8Array }>) {
          const buf = chunk instanceof Uint8Array ? chunk : chunk.subarray()
          parts.push(buf)
          got += buf.byteLength
          if (got >= length) break
        }
      } finally { deadline.removeEventListener('abort', stop) }
      if (deadline.aborted && got < length) throw new BgridError('TIMEOUT', `holder ${holder.slice(-8)}: no proof within 10 s`, { holders: [holder] })
    }
    await stream.close().catch(err => { bestEffort('stream.close()', err) })
    if (got < length) throw new BgridError('UNREACHABLE', `holder ${holder.slice(-8)} sent ${got} of ${length} bytes`, { holders: [holder] })
    return Buffer.concat(parts).subarray(0, length)
  } catch (err) {
    stream.abort(err instanceof Error ? err : new Error(String(err)))
    throw err
  }
}

/** Fetch bytes [start, end) of a blob from one holder into `fh` at the same offsets, reporting each write to `progress`. */
async function fetchRange (node: BgridNode, holder: string, hash: string, start: number, end: number,
  fh: FileHandle, progress: (n: number) => void, signal: AbortSignal, stallMs: number, minRate: number): Promise<void> {
  const stream = await openStream(node, peerIdFromString(holder), BLOB_PROTOCOL, AbortSignal.any([signal, AbortSignal.timeout(10_000)]))
  try {
    const lp = lpStream(stream, { maxDataLength: MAX_HEADER, maxBufferSize: HIGH + CHUNK })
    const headDeadline = AbortSignal.any([signal, AbortSignal.timeout(10_000)])
    await writeJson(lp, { op: 'get', hash, offset: start, length: end - start } satisfies BlobRequest, headDeadline)
    const head = await readJson(lp, headDeadline) as any
    if (head?.ok === false) throw new BgridError(head.error?.code ?? 'INTERNAL', `holder ${holder.slice(-8)}: ${head.error?.message}`)
    validate(checkHeader, head)
    if (head.offset !== start || head.length !== end - start) throw new BgridError('BAD_REQUEST', 'holder answered another range')
    // the bytes follow the header raw; take the stream back (with anything already buffered)
    const raw = lp.unwrap()
    await new Promise<void>((resolve, reject) => {
      let written = start
      let queued = start
      let paused = false
      let writing: Promise<void> = Promise.resolve()
      let idle: NodeJS.Timeout | undefined
      const cleanup = (): void => {
        clearTimeout(idle)
        clearSlow()
        raw.removeEventListener('message', onMessage)
        raw.removeEventListener('close', onClose)
        raw.removeEventListener('remoteCloseWrite', onClose)
        signal.removeEventListener('abort', onAbort)
      }
      const fail = (err: Error): void => { cleanup(); reject(err) }
      // armed while bytes are due and we are not holding them back ourselves (paused)
      const armIdle = (): void => {
        clearTimeout(idle)
        idle = setTimeout(() => {
          fail(new BgridError('TIMEOUT', `holder ${holder.slice(-8)} stalled: nothing for ${stallMs / 1000} s after ${written - start} of ${end - start} bytes`, { holders: [holder], stalled: true }))
        }, stallMs)
      }
      const onMessage = (evt: any): void => {
        if (!paused) armIdle()
        // a list's buffers go to writev as they are: joining them would copy every byte once more
        const parts: Iterable<Uint8Array> = evt.data instanceof Uint8Array ? [evt.data] : evt.data
        const length: number = evt.data.byteLength
        if (queued + length > end) { fail(new BgridError('BAD_REQUEST', 'holder sent too many bytes')); return }
        queued += length
        if (!paused && queued - written > HIGH) { paused = true; raw.pause(); clearTimeout(idle) }
        // gather small network chunks into writes of about 1 MiB (fewer syscalls)
        for (const part of parts) batch.push(part)
        batchBytes += length
        if (batchBytes >= WRITE_BATCH || queued === end) flush()
      }
      let batch: Uint8Array[] = []
      let batchBytes = 0
      const flush = (): void => {
        if (batchBytes === 0) return
        const parts = batch
        const n = batchBytes
        const at = queued - n
        batch = []
        batchBytes = 0
        writing = writing.then(async () => {
          await fh.writev(parts, at)
          written += n
          progress(n)
          if (paused && queued - written < LOW) { paused = false; raw.resume(); armIdle() }
          if (written === end) { cleanup(); resolve() }
        }).catch(err => { fail(err instanceof Error ? err : new Error(String(err))) })
      }
      const onClose = (): void => {
        // the holder is done sending: deliver what we held back while paused
        if (paused) { paused = false; try { raw.resume() } catch (err) { bestEffort('raw.resume()', err) } }
        // let queued writes land, then check we got everything
        flush()
        writing.then(() => { if (written < end) fail(new BgridError('UNREACHABLE', `holder ${holder.slice(-8)} closed after ${written - start} of ${end - start} bytes`)) }, () => {})
      }
      const onAbort = (): void => { fail(new BgridError('TIMEOUT', 'fetch aborted')) }
      if (start === end) { resolve(); return }
      // a holder that trickles (a byte now and then, never silent for long) is stalled too:
      // the range must come at MIN_RATE at least
      const slowMs = stallMs + (end - start) / minRate * 1000
      const slow = setTimeout(() => {
        fail(new BgridError('TIMEOUT', `holder ${holder.slice(-8)} stalled: under ${minRate / 1024} KiB/s (${written - start} of ${end - start} bytes in ${Math.round(slowMs / 1000)} s)`, { holders: [holder], stalled: true }))
      }, slowMs)
      const clearSlow = (): void => { clearTimeout(slow) }
      raw.addEventListener('message', onMessage)
      raw.addEventListener('close', onClose)
      raw.addEventListener('remoteCloseWrite', onClose)
      signal.addEventListener('abort', onAbort)
      armIdle()
      // deliver bytes that arrived with the header
      raw.pause()
      raw.resume()
    })
    await stream.close().catch(err => { bestEffort('stream.close()', err) })
  } catch (err) {
    stream.abort(err instanceof Error ? err : new Error(String(err)))
    throw err
  }
}

export interface FetchStats { bytes: number, holdersUsed: number, failures: string[] }

/**
 * Fetch a whole blob into the store from any of its holders. Large blobs are split
 * into ranges fetched from several holders at once; a range whose holder fails goes
 * back to the queue for another holder; a resumed download starts where the .part
 * file ends; the result is hash-checked before it becomes visible.
 */
export interface FetchOptions {
  signal?: AbortSignal
  rangeBytes?: number
  /** the run the blob is fetched for: it may read the copy */
  run?: string
  /** a holder silent this long mid-transfer is abandoned (STALL_MS) */
  stallMs?: number
  /** ... and one slower than this, bytes/s (MIN_RATE) */
  minRate?: number
  /** bytes landed (the caller's sign of life for whoever waits on this fetch) */
  onBytes?: (n: number) => void
}

export async function fetchBlob (node: BgridNode, store: BlobStore, hash: string, size: number,
  holders: string[], opts: FetchOptions = {}): Promise<FetchStats> {
  // one download per blob and store, however many callers want it at once
  let inflight = downloads.get(store)
  if (inflight === undefined) { inflight = new Map(); downloads.set(store, inflight) }
  const running = inflight.get(hash)
  if (running !== undefined) {
    await running
    if (opts.run !== undefined) await store.grant(hash, opts.run)
    return { bytes: 0, holdersUsed: 0, failures: [] }
  }
  const p = fetchOnce(node, store, hash, size, holders, opts)
  inflight.set(hash, p)
  try { return await p } finally { inflight.delete(hash) }
}

const downloads = new WeakMap<BlobStore, Map<string, Promise<FetchStats>>>()

/** Is this blob on its way into this store right now? */
export function isDownloading (store: BlobStore, hash: string): boolean {
  return downloads.get(store)?.has(hash) === true
}

async function fetchOnce (node: BgridNode, store: BlobStore, hash: string, size: number,
  holders: string[], opts: FetchOptions): Promise<FetchStats> {
  const stats: FetchStats = { bytes: 0, holdersUsed: 0, failures: [] }
  if (store.has(hash) && await store.intact(hash)) return stats
  const candidates = holders.filter(h => h !== node.peerId.toString())
  if (candidates.length === 0) throw new BgridError('NOT_FOUND', `no holder for blob ${hash.slice(0, 12)}`, { holders: [] })
  await store.ensureRoom(size)
  const part = store.partPath(hash)
  let have = 0
  try { have = Math.min((await stat(part)).size, size) } catch (err) { bestEffort('Math.min()', err) }
  const signal = opts.signal ?? new AbortController().signal
  const fh = await open(part, have > 0 ? 'r+' : 'w', 0o600)
  // a big blob that arrives in order from offset 0 is hashed as it lands, on the hashing
  // thread; anything else is hashed once complete
  let inOrder = have === 0 && size >= INLINE_MAX ? new TrailingHash(part) : undefined
  let nextOffset = 0
  let hashed: string | undefined
  // the blob must be on disk before it becomes visible; start the flushing early, one at a time
  let unsynced = 0
  let syncing: Promise<void> | undefined
  const wrote = (n: number): void => {
    unsynced += n
    if (unsynced < SYNC_EVERY || syncing !== undefined) return
    unsynced = 0
    syncing = fh.datasync().catch(err => { bestEffort('fh.datasync()', err) }).finally(() => { syncing = undefined })
  }
  try {
    const rangeBytes = opts.rangeBytes ?? 16 * 1024 * 1024
    const queue: Array<[number, number]> = []
    if (candidates.length > 1 && size - have > 2 * rangeBytes) {
      for (let s = have; s < size; s += rangeBytes) queue.push([s, Math.min(size, s + rangeBytes)])
    } else if (have < size) {
      queue.push([have, size])
    }
    const bad = new Set<string>()
    const strikes = new Map<string, number>()
    const used = new Set<string>()
    // ranges taken by a lane and not yet done: one may come back to the queue if its holder fails
    let inFlight = 0
    let changed: () => void = () => {}
    const rangeSettled = (): void => { const f = changed; changed = () => {}; f() }
    const lane = async (holder: string): Promise<void> => {
      while (!bad.has(holder)) {
        if (queue.length === 0) {
          // nothing to take now; stay while another lane's range may fail back to the queue
          if (inFlight === 0) return
          await new Promise<void>(resolve => { const prev = changed; changed = () => { prev(); resolve() } })
          continue
        }
        const [s, e] = queue.shift() as [number, number]
        inFlight++
        let done = 0
        try {
          used.add(holder)
          await fetchRange(node, holder, hash, s, e, fh, n => {
            done += n
            stats.bytes += n
            wrote(n)
            opts.onBytes?.(n)
            if (inOrder === undefined) return
            if (s + done - n === nextOffset) {
              nextOffset += n
              inOrder.advance(nextOffset)
            } else { inOrder.cancel(); inOrder = undefined }
          }, signal, opts.stallMs ?? STALL_MS, opts.minRate ?? MIN_RATE)
          inFlight--
          rangeSettled()
        } catch (err: any) {
          stats.failures.push(`${holder.slice(-8)}: ${err?.message ?? err}`)
          queue.unshift([s + done, e])
          inFlight--
          rangeSettled()
          if (signal.aborted) throw err
          // a busy or briefly unreachable holder gets three chances, with back-off; then it is bad
          const n = (strikes.get(holder) ?? 0) + 1
          strikes.set(holder, n)
          // one that stalled is not asked again: another stall would cost the same wait
          if (n >= 3 || (err instanceof BgridError && (err.code === 'NOT_FOUND' || err.code === 'UNAUTHORISED' || err.code === 'HASH_MISMATCH' || (err.details as { stalled?: boolean } | undefined)?.stalled === true))) bad.add(holder)
          else await sleep(100 * 4 ** (n - 1), undefined, { signal }).catch(err => { bestEffort('sleep()', err) })
        }
      }
    }
    // one lane per holder, at most 4; failed ranges move to the lanes still standing
    const lanes = candidates.slice(0, Math.min(4, Math.max(1, queue.length)))
    let rest = candidates.slice(lanes.length)
    await Promise.all(lanes.map(async h => {
      await lane(h)
      while (queue.length > 0 && rest.length > 0) { const next = rest[0]; rest = rest.slice(1); await lane(next) }
    }))
    if (queue.length > 0) {
      throw new BgridError('UNREACHABLE', `blob ${hash.slice(0, 12)}: every holder failed (${stats.failures.join('; ')})`, { holders: [...bad, ...candidates.filter(h => !bad.has(h) && used.has(h))] })
    }
    stats.holdersUsed = used.size
    await fh.sync()
    // (a hashing thread that failed only costs a second read: commitPart hashes the file)
    if (inOrder !== undefined && nextOffset === size) hashed = await inOrder.digest(size).catch(() => undefined)
  } finally {
    inOrder?.cancel()
    await syncing
    await fh.close()
  }
  await store.commitPart(hash, size, hashed, opts.run)
  return stats
}

/**
 * fetchBlob; if the bytes arrived corrupt, from one holder at a time, so that the
 * holder(s) that sent bad bytes are known (`badHolders`: the caller reports them).
 * Throws HASH_MISMATCH, with every holder that sent bad bytes in its details, when no
 * holder has good ones.
 */
export async function fetchBlobVerified (node: BgridNode, store: BlobStore, hash: string, size: number,
  holders: string[], opts: FetchOptions = {}): Promise<FetchStats & { badHolders: string[] }> {
  try {
    return { ...await fetchBlob(node, store, hash, size, holders, opts), badHolders: [] }
  } catch (err) {
    if (!(err instanceof BgridError && err.code === 'HASH_MISMATCH')) throw err
    const bad: string[] = []
    const failures = [err.message]
    for (const h of holders.filter(x => x !== node.peerId.toString())) {
      try {
        const st = await fetchBlob(node, store, hash, size, [h], opts)
        st.failures.unshift(...failures)
        return { ...st, badHolders: bad }
      } catch (e) {
        if (e instanceof BgridError && e.code === 'HASH_MISMATCH') bad.push(h)
        failures.push(e instanceof Error ? e.message : String(e))
        if (opts.signal?.aborted === true) throw e
      }
    }
    throw new BgridError('HASH_MISMATCH', `blob ${hash.slice(0, 12)}: no holder sent good bytes (${failures.join('; ')})`, { holders: bad })
  }
}
