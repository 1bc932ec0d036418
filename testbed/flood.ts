// A connect flood, for tests: opens raw TCP connections to host:port at a steady rate
// and never says a word on them (a peer that never finishes a handshake), keeping each
// open until the other side drops it. Bounded: --seconds, then every socket is closed.
// usage: node testbed/flood.ts --host IP --port N [--rate per-second] [--seconds S]
import net from 'node:net'
import { parseArgs } from 'node:util'

const { values: o } = parseArgs({ options: { host: { type: 'string' }, port: { type: 'string' }, rate: { type: 'string', default: '20' }, seconds: { type: 'string', default: '10' } } })
const sockets = new Set<net.Socket>()
let opened = 0
let dropped = 0
const timer = setInterval(() => {
  const s = net.connect(Number(o.port), String(o.host))
  opened++
  sockets.add(s)
  s.on('error', () => {})
  s.on('close', () => { sockets.delete(s); dropped++ })
}, 1000 / Number(o.rate))
setTimeout(() => {
  clearInterval(timer)
  process.stdout.write(JSON.stringify({ opened, dropped, open: sockets.size }) + '\n')
  for (const s of sockets) s.destroy()
  process.exit(0)
}, Number(o.seconds) * 1000)
