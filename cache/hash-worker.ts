// The hashing thread (see hasher.ts). It reads files itself, from the page cache, so the
// event loop that asked neither copies nor hashes a byte. Messages are handled in order.
import { parentPort } from 'node:worker_threads'
import { openSync, readSync, closeSync } from 'node:fs'
import { createHash, type Hash } from 'node:crypto'
import type { HashRequest, HashReply } from './hasher.ts'

interface Job { fd: number, h: Hash, pos: number }
const jobs = new Map<number, Job>()
const buf = Buffer.allocUnsafe(1 << 20)

/** Hash the job's file up to byte `upTo` (or to its end); returns the bytes hashed in all. */
function catchUp (job: Job, upTo = Infinity): number {
  while (job.pos < upTo) {
    const n = readSync(job.fd, buf, 0, Math.min(buf.length, upTo - job.pos), job.pos)
    if (n === 0) {
      if (upTo === Infinity) break
      throw new Error(`file ends at ${job.pos}, before ${upTo}`)
    }
    job.h.update(buf.subarray(0, n))
    job.pos += n
  }
  return job.pos
}

function finish (id: number): void {
  const job = jobs.get(id)
  jobs.delete(id)
  if (job !== undefined) closeSync(job.fd)
}

const port = parentPort
if (port === null) throw new Error('hash-worker.ts runs as a worker thread')
port.on('message', (msg: HashRequest) => {
  let reply: HashReply | undefined
  try {
    switch (msg.op) {
      case 'open':
        jobs.set(msg.id, { fd: openSync(msg.file, 'r'), h: createHash('sha256'), pos: 0 })
        break
      case 'advance': {
        const job = jobs.get(msg.id)
        if (job !== undefined) catchUp(job, msg.upTo)
        break
      }
      case 'digest': {
        const job = jobs.get(msg.id)
        if (job === undefined) throw new Error('no such hashing job')
        const size = catchUp(job, msg.size)
        reply = { id: msg.id, hash: job.h.digest('hex'), size }
        finish(msg.id)
        break
      }
      case 'cancel':
        finish(msg.id)
        break
    }
  } catch (err: any) {
    finish(msg.id)
    reply = { id: msg.id, error: String(err?.message ?? err), code: err?.code }
  }
  if (reply !== undefined) port.postMessage(reply)
})
