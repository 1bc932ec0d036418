// Issue 4 transfer benchmark: one 1 GiB blob between two processes over the blob
// protocol (libp2p: TCP + Noise + yamux) on loopback, against raw TCP on loopback in
// the same run, in alternating rounds. Prints MB/s and the median ratio (target >= 0.4x).
// Both ends of the blob transfer run with the daemon's V8 flags, as two daemons would.
import { spawn } from 'node:child_process'
import net from 'node:net'
import { createWriteStream, mkdtempSync, rmSync, openSync, writeSync, closeSync } from 'node:fs'
import { randomFillSync } from 'node:crypto'
import os from 'node:os'
import path from 'node:path'
import { open } from 'node:fs/promises'
import { fileURLToPath } from 'node:url'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { multiaddr } from '@multiformats/multiaddr'
import { createBgridNode } from '../protocol/node.ts'
import { openDb } from '../protocol/db.ts'
import { BlobStore } from '../cache/store.ts'
import { hashFile } from '../cache/hasher.ts'
import { serveBlobs, fetchBlob } from '../cache/blob-protocol.ts'
import { silentLogger } from '../protocol/log.ts'
import { DAEMON_NODE_FLAGS } from '../daemon/node-flags.ts'
import { median, cpuMs } from './measure.ts'

const SIZE = Number(process.env.BGRID_BENCH_BYTES ?? 1024 * 1024 * 1024)
const ROUNDS = Number(process.env.BGRID_BENCH_ROUNDS ?? 5)
const self = fileURLToPath(import.meta.url)

if (process.argv[2] === '--serve-blob') {
  // holder: a store with one big blob, served to anyone (this is a benchmark on loopback)
  const dir = process.argv[3]
  const db = await openDb(dir)
  const store = new BlobStore(dir, db)
  await store.load()
  const file = path.join(dir, 'src.bin')
  const fd = openSync(file, 'w')
  const buf = Buffer.alloc(1 << 24)
  for (let done = 0; done < SIZE; done += buf.length) { randomFillSync(buf); writeSync(fd, buf, 0, Math.min(buf.length, SIZE - done)) }
  closeSync(fd)
  const fh = await open(file, 'r')
  const { hash } = await store.importFile(fh)
  await fh.close()
  const node = await createBgridNode({ privateKey: await generateKeyPair('Ed25519'), host: '127.0.0.1' })
  await serveBlobs(node, store, { canRead: () => true, log: silentLogger })
  process.stdout.write(JSON.stringify({ addr: node.getMultiaddrs()[0].toString(), hash }) + '\n')
  process.stdin.resume()
  process.stdin.on('end', () => { void (async () => { await node.stop(); await db.close(); process.exit(0) })() })
} else if (process.argv[2] === '--fetch-blob') {
  // fetcher: an empty store and a new connection; prints the seconds the fetch took
  const [dir, addr, hash] = process.argv.slice(3)
  const target = multiaddr(addr)
  const peer = target.getComponents().find(c => c.name === 'p2p')?.value as string
  const db = await openDb(dir)
  const store = new BlobStore(dir, db)
  await store.load()
  const node = await createBgridNode({ privateKey: await generateKeyPair('Ed25519'), noListen: true })
  await node.dial(target)
  let rss = process.memoryUsage.rss()
  const sample = setInterval(() => { rss = Math.max(rss, process.memoryUsage.rss()) }, 50)
  const t1 = performance.now()
  const cpu0 = process.cpuUsage()
  await fetchBlob(node, store, hash, SIZE, [peer])
  const sec = (performance.now() - t1) / 1000
  // all of this process's threads: event loop, file writes, hashing, garbage collection
  const cpu = process.cpuUsage(cpu0)
  clearInterval(sample)
  await node.stop()
  await db.close()
  process.stdout.write(JSON.stringify({ sec, rss, cpuSec: (cpu.user + cpu.system) / 1e6 }) + '\n')
} else if (process.argv[2] === '--serve-tcp') {
  const server = net.createServer(sock => {
    const buf = Buffer.alloc(1 << 20)
    let sent = 0
    const pump = (): void => {
      while (sent < SIZE) {
        const n = Math.min(buf.length, SIZE - sent)
        sent += n
        if (!sock.write(buf.subarray(0, n))) { sock.once('drain', pump); return }
      }
      sock.end()
    }
    pump()
  })
  server.listen(0, '127.0.0.1', () => { process.stdout.write(JSON.stringify({ port: (server.address() as net.AddressInfo).port }) + '\n') })
  process.stdin.resume()
  process.stdin.on('end', () => { server.close(); process.exit(0) })
} else {
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'bgrid-transfer-'))
  const start = async (args: string[], flags: string[] = []): Promise<{ info: any, pid: number, kill: () => void }> => {
    const child = spawn(process.execPath, [...flags, ...process.execArgv, self, ...args], { stdio: ['pipe', 'pipe', 'inherit'] })
    // the child's answer is its first line that is a JSON object (V8 tracing flags may print too)
    const info = await new Promise<any>(resolve => {
      let text = ''
      const onData = (b: Buffer): void => {
        text += b.toString()
        const line = text.split('\n').find(l => l.startsWith('{') && l.endsWith('}'))
        if (line !== undefined) { child.stdout.off('data', onData); child.stdout.pipe(process.stderr); resolve(JSON.parse(line)) }
      }
      child.stdout.on('data', onData)
    })
    return { info, pid: child.pid as number, kill: () => { child.stdin.end() } }
  }
  try {
    // raw TCP, into a file (the blob protocol writes a file too)
    const tcp = await start(['--serve-tcp'])
    const rawTcp = async (round: number): Promise<number> => {
      const file = path.join(tmp, `tcp${round}.bin`)
      const t0 = performance.now()
      await new Promise<void>((resolve, reject) => {
        const out = createWriteStream(file)
        const sock = net.connect(tcp.info.port, '127.0.0.1')
        sock.pipe(out)
        out.on('finish', resolve)
        sock.on('error', reject)
      })
      const sec = (performance.now() - t0) / 1000
      rmSync(file)
      return sec
    }
    const holder = await start(['--serve-blob', path.join(tmp, 'holder')], DAEMON_NODE_FLAGS)
    const peakRss: number[] = []
    const cpuSec = { sender: [] as number[], receiver: [] as number[] }
    const blob = async (round: number): Promise<number> => {
      // a new fetcher process each round: an empty store, a new connection
      const dir = path.join(tmp, `fetcher${round}`)
      const sent0 = cpuMs(holder.pid)[0]
      const fetcher = await start(['--fetch-blob', dir, holder.info.addr, holder.info.hash], DAEMON_NODE_FLAGS)
      cpuSec.sender.push((cpuMs(holder.pid)[0] - sent0) / 1000)
      cpuSec.receiver.push(fetcher.info.cpuSec)
      fetcher.kill()
      rmSync(dir, { recursive: true, force: true })
      peakRss.push(fetcher.info.rss)
      return fetcher.info.sec
    }
    // rounds alternate the two, so that a slow spell of this shared VM hits both alike
    const rounds: Array<{ tcp: number, blob: number }> = []
    for (let r = 0; r < ROUNDS; r++) rounds.push({ tcp: await rawTcp(r), blob: await blob(r) })
    tcp.kill()
    holder.kill()
    const hashFileAt = path.join(tmp, 'hash.bin')
    const fd = openSync(hashFileAt, 'w')
    const buf = Buffer.alloc(1 << 24)
    for (let done = 0; done < SIZE; done += buf.length) writeSync(fd, buf, 0, Math.min(buf.length, SIZE - done))
    closeSync(fd)
    const hashStart = performance.now()
    await hashFile(hashFileAt)
    const hashSec = (performance.now() - hashStart) / 1000
    const mb = SIZE / 1e6
    const ratios = rounds.map(r => r.tcp / r.blob)
    process.stdout.write(`transfer: ${(SIZE / 1073741824).toFixed(2)} GiB on loopback, separate processes, ${ROUNDS} alternating rounds: raw TCP into a file ${rounds.map(r => (mb / r.tcp).toFixed(0)).join('/')} MB/s; blob protocol (libp2p noise+yamux, written, SHA-256 verified) ${rounds.map(r => (mb / r.blob).toFixed(0)).join('/')} MB/s; ratio per round ${ratios.map(x => x.toFixed(2)).join('/')}, median ${median(ratios).toFixed(2)}x (target >= 0.4x). CPU per GiB moved (median, all threads): sender ${(median(cpuSec.sender) / (SIZE / 1073741824)).toFixed(2)} s, receiver ${(median(cpuSec.receiver) / (SIZE / 1073741824)).toFixed(2)} s; receiver's peak RSS ${(Math.max(...peakRss) / 1048576).toFixed(0)} MB. For scale: hashing a file alone runs at ${(mb / hashSec).toFixed(0)} MB/s.\n`)
  } finally {
    rmSync(tmp, { recursive: true, force: true })
  }
}
