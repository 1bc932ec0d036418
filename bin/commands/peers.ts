// `bgrid peers [--watch] [--json]`: the nodes seen advertising _bgrid._tcp on this LAN.
// Anyone on the LAN can advertise: names are restricted where adverts are read
// (protocol/dnssd.ts) and every cell is escaped here again before it is measured and printed.
import { NodeBrowser, hasMulticastRoute, MULTICAST_ROUTE_HINT, type DiscoveredNode } from '../../protocol/dnssd.ts'
import { BgridError } from '../../protocol/errors.ts'
import { isNodeState } from '../../protocol/node-states.ts'
import { printable, printableJson, printableLines } from '../../protocol/printable.ts'
import { sleep } from '../../protocol/sleep.ts'

export function peersTable (nodes: DiscoveredNode[]): string {
  const rows = [['NAME', 'STATE', 'CORES', 'MHZ', 'RAM(MiB)', 'DISK(MiB)', 'LOAD', 'COST', 'ADDRESS', 'COORDINATOR']]
  for (const n of nodes) {
    const a = n.ad
    const cells = [n.name, a.state, String(a.cores), String(a.mhz), String(a.ram), String(a.disk), a.load.toFixed(2),
      String(a.cost), `${n.addresses[0] ?? '?'}:${a.port}`, a.coord !== undefined ? a.coord.slice(-8) : '-']
    rows.push(cells.map(c => printable(c, { max: 80 })))
  }
  const widths = rows[0].map((_, i) => Math.max(...rows.map(r => r[i].length)))
  const lines = rows.map(r => r.map((c, i) => c.padEnd(widths[i])).join('  ').trimEnd())
  const byState = new Map<string, number>()
  for (const n of nodes) byState.set(n.ad.state, (byState.get(n.ad.state) ?? 0) + 1)
  lines.push('', `${nodes.length} node(s): ${[...byState].map(([s, c]) => `${c} ${s}`).join(', ') || 'none found'}`)
  return lines.join('\n')
}

export function nodeJson (n: DiscoveredNode): Record<string, unknown> {
  return { name: n.name, addresses: n.addresses, ...n.ad }
}

export async function peersCommand (o: any): Promise<number> {
  if (o.state !== undefined && !isNodeState(o.state)) throw new BgridError('INVALID_CONFIG', `--state must be idle, worker, coordinator or owner (got ${o.state})`)
  if (!hasMulticastRoute()) process.stderr.write(`bgrid: warning: ${MULTICAST_ROUTE_HINT}\n`)
  const browser = new NodeBrowser({ interface: o.mdnsInterface, requeryMs: o.watch === true ? 2000 : undefined })
  const keep = (n: DiscoveredNode): boolean => o.state === undefined || n.ad.state === o.state
  browser.start()
  if (o.watch === true) {
    const say = (ev: string) => (n: DiscoveredNode): void => {
      if (o.json === true) process.stdout.write(printableJson({ event: ev, time: Date.now(), ...nodeJson(n) }) + '\n')
      else {
        process.stdout.write(`${new Date().toISOString().slice(11, 19)} ${printable(ev.padEnd(6))} ` +
          `${printable(n.name)} ` +
          `${printable(n.ad.state)} cores=${n.ad.cores} ram=${n.ad.ram} load=${n.ad.load.toFixed(2)}\n`)
      }
    }
    browser.on('up', say('up'))
    browser.on('update', say('update'))
    browser.on('down', say('down'))
    await new Promise<void>(resolve => {
      const t = setTimeout(resolve, (o.timeout ?? 86400) * 1000)
      const stop = (): void => { clearTimeout(t); resolve() }
      process.once('SIGINT', stop); process.once('SIGTERM', stop)
    })
  } else {
    await sleep((o.timeout ?? 2) * 1000)
  }
  const nodes = browser.list().filter(keep)
  await browser.stop()
  if (o.watch !== true) {
    if (o.json === true) process.stdout.write(printableJson(nodes.map(nodeJson), 2) + '\n')
    else process.stdout.write(printableLines(peersTable(nodes)) + '\n')
    for (const r of browser.rejected.values()) {
      const from = r.from !== undefined ? ` from ${r.from}` : ''
      process.stderr.write(`bgrid: ignored advertisement ${printable(r.name)}${printable(from)}: ${printable(r.reason)}\n`)
    }
  }
  return 0
}
