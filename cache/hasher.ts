// SHA-256 of files on a helper thread. Hashing runs at ~1 GB/s, so a 1 GiB blob would
// hold the daemon's event loop for a second: heartbeats, pulls and the transfer itself
// would wait. Big files are hashed by one worker thread instead (started when first
// needed, stopped when idle); small ones inline, where a message would cost more.
import { Worker } from 'node:worker_threads'
import { readFile, stat } from 'node:fs/promises'
import { createHash } from 'node:crypto'
import { fileURLToPath } from 'node:url'
import path from 'node:path'
import { BgridError } from '../protocol/errors.ts'

export type HashRequest =
  | { op: 'open', id: number, file: string }
  | { op: 'advance', id: number, upTo: number }
  | { op: 'digest', id: number, size?: number }
  | { op: 'cancel', id: number }
export type HashReply = { id: number, hash: string, size: number } | { id: number, error: string, code?: string }

/** Files under this size are hashed on the calling thread. */
export const INLINE_MAX = 4 * 1024 * 1024
/** a TrailingHash tells the thread how far the file is written every so many bytes */
const ADVANCE_STEP = 4 * 1024 * 1024
/** the thread stops after this long with nothing to hash (an idle daemon keeps no spare heap) */
const IDLE_MS = 10_000

const self = fileURLToPath(import.meta.url)
const WORKER = path.join(path.dirname(self), `hash-worker${path.extname(self)}`)

let worker: Worker | undefined
let nextId = 1
interface Waiter { worker: Worker, resolve: (r: { hash: string, size: number }) => void, reject: (e: Error) => void }
const waiting = new Map<number, Waiter>()
/** hashing jobs not finished (the thread stops when there are none for IDLE_MS) */
let open = 0
let idleTimer: NodeJS.Timeout | undefined

function start (): Worker {
  const w = new Worker(WORKER)
  w.unref()
  w.on('message', (r: HashReply) => {
    const wait = waiting.get(r.id)
    if (wait === undefined) return
    waiting.delete(r.id)
    // the same kind of error as a read on this thread would give (ENOENT stays ENOENT)
    if ('error' in r) wait.reject(Object.assign(new Error(r.error), { code: r.code }))
    else wait.resolve({ hash: r.hash, size: r.size })
  })
  const lost = (err: Error): void => {
    if (worker === w) worker = undefined
    for (const [id, wait] of waiting) {
      if (wait.worker !== w) continue
      waiting.delete(id)
      wait.reject(new BgridError('INTERNAL', `hashing thread stopped: ${err.message}`))
    }
  }
  w.on('error', lost)
  w.on('exit', code => { lost(new Error(`exit code ${code}`)) })
  return w
}

function post (msg: HashRequest, reply?: Omit<Waiter, 'worker'>): void {
  clearTimeout(idleTimer)
  worker ??= start()
  // a hash being computed keeps the process alive (a CLI may wait on nothing else)
  worker.ref()
  if (reply !== undefined) waiting.set(msg.id, { worker, ...reply })
  worker.postMessage(msg)
}

function request (msg: HashRequest): Promise<{ hash: string, size: number }> {
  return new Promise((resolve, reject) => { post(msg, { resolve, reject }) })
}

function jobDone (): void {
  open = Math.max(0, open - 1)
  if (open > 0) return
  worker?.unref()
  clearTimeout(idleTimer)
  idleTimer = setTimeout(() => {
    const w = worker
    worker = undefined
    void w?.terminate()
  }, IDLE_MS)
  idleTimer.unref()
}

/**
 * Hash a file that is being written in order, while it is written: say how far the
 * bytes are on disk with `advance`, and get the hash of the first `size` bytes at the end.
 */
export class TrailingHash {
  private readonly id = nextId++
  private done = false
  /** the offset last sent to the thread */
  private told = 0
  constructor (file: string) {
    open++
    post({ op: 'open', id: this.id, file })
  }

  /** The file holds its final bytes up to `upTo`. Told to the thread in steps, not per write. */
  advance (upTo: number): void {
    if (this.done || upTo - this.told < ADVANCE_STEP) return
    this.told = upTo
    post({ op: 'advance', id: this.id, upTo })
  }

  async digest (size: number): Promise<string> {
    return (await this.finish(size)).hash
  }

  /** Hash and size of the first `size` bytes, or of the whole file. */
  async finish (size?: number): Promise<{ hash: string, size: number }> {
    if (this.done) throw new BgridError('INTERNAL', 'hash already taken')
    this.done = true
    try { return await request({ op: 'digest', id: this.id, size }) } finally { jobDone() }
  }

  cancel (): void {
    if (this.done) return
    this.done = true
    post({ op: 'cancel', id: this.id })
    jobDone()
  }
}

/** SHA-256 and size of a whole file. */
export async function hashFile (file: string): Promise<{ hash: string, size: number }> {
  if ((await stat(file)).size < INLINE_MAX) {
    const bytes = await readFile(file)
    return { hash: createHash('sha256').update(bytes).digest('hex'), size: bytes.length }
  }
  return await new TrailingHash(file).finish()
}
