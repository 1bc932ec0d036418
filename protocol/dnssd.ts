// DNS-SD advertisement and browsing of `_bgrid._tcp` over mDNS (bonjour-service).
// What is browsed comes from anyone on the LAN: a node's name is restricted on receipt
// (safeNodeName: no control character or escape ever gets past here), its TXT decoded
// and checked by protocol/txt.ts.
import { EventEmitter } from 'node:events'
import { readFileSync } from 'node:fs'
import os from 'node:os'
import { Bonjour, type Service, type Browser } from 'bonjour-service'
import { SERVICE_TYPE, encodeTxt, decodeTxt, safeNodeName, type NodeAd } from './txt.ts'
import { runOfTxt } from './census.ts'

export interface MdnsOptions {
  /** IPv4 address of the interface to send and receive multicast on (default: all). */
  interface?: string
}

/** a `_bgrid._tcp` TXT record heard on the LAN: whose, the run it names, and whether it is a goodbye */
export type AdvertHeard = (instance: string, run: string | undefined, gone: boolean) => void

const BGRID_SUFFIX = `._${SERVICE_TYPE}._tcp.local`

function bonjourFor (opts: MdnsOptions): Bonjour {
  const mdnsOpts: Record<string, unknown> = {}
  if (opts.interface !== undefined) mdnsOpts.interface = opts.interface
  return new Bonjour(mdnsOpts, (err: Error) => { process.emitWarning(`mDNS: ${err.message}`) })
}

/**
 * Is there an IPv4 route for multicast (a 224.0.0.0/4 route or a default route)?
 * Without one the kernel drops our mDNS packets silently and nothing is ever found.
 */
export function hasMulticastRoute (routeTable = '/proc/net/route'): boolean {
  let text: string
  try { text = readFileSync(routeTable, 'utf8') } catch { return true } // not Linux: assume yes
  for (const line of text.split('\n').slice(1)) {
    const cols = line.trim().split(/\s+/)
    if (cols.length < 8) continue
    const dest = parseInt(cols[1], 16) >>> 0
    const mask = parseInt(cols[7], 16) >>> 0
    // /proc/net/route stores addresses little-endian: 224.0.0.0 is 0x000000E0.
    const destIp = ((dest & 0xff) << 24 | (dest >> 8 & 0xff) << 16 | (dest >> 16 & 0xff) << 8 | dest >>> 24) >>> 0
    const maskIp = ((mask & 0xff) << 24 | (mask >> 8 & 0xff) << 16 | (mask >> 16 & 0xff) << 8 | mask >>> 24) >>> 0
    if (((0xE00000FB & maskIp) >>> 0) === ((destIp & maskIp) >>> 0)) return true
  }
  return false
}

export const MULTICAST_ROUTE_HINT = 'no IPv4 route for multicast 224.0.0.0/4: mDNS discovery cannot work here (add one, e.g. `ip route add 224.0.0.0/4 dev eth0`)'

export interface Advertiser {
  readonly name: string
  /** announce `ad` now; `repeat` (default): once more a second later (RFC 6762 s8.4) */
  update: (ad: NodeAd, opts?: { repeat?: boolean }) => void
  stop: () => Promise<void>
}

export function instanceName (peer: string): string {
  const host = os.hostname().replace(/[^A-Za-z0-9-]/g, '-').slice(0, 40)
  return `${host}-${peer.slice(-8)}`
}

/**
 * Advertise this node. `onAdvert` hears the other nodes' TXT records that reach this
 * responder anyway (multicast): no query of ours, no browser.
 */
export function advertise (ad: NodeAd, opts: MdnsOptions & { onAdvert?: AdvertHeard } = {}): Advertiser {
  const bonjour = bonjourFor(opts)
  const name = instanceName(ad.peer)
  // One host name per daemon: several daemons may share a machine's host name (namespaces, tests).
  const host = `${name}.local`
  const server = (bonjour as any).server
  const heard = opts.onAdvert
  if (heard !== undefined) {
    server.mdns.on('response', (packet: any) => {
      for (const r of [...(packet.answers ?? []), ...(packet.additionals ?? [])]) {
        if (r?.type !== 'TXT' || typeof r.name !== 'string' || !r.name.endsWith(BGRID_SUFFIX)) continue
        heard(r.name.slice(0, -BGRID_SUFFIX.length), runOfTxt(r.data), r.ttl === 0)
      }
    })
  }
  // bonjour-service re-announces (1, 3, 9, 27 s... after publishing) the packet it built
  // at publish time: a state changed since would be taken back by the next re-announce.
  // Every packet this responder sends goes through here, and our TXT record in it is the
  // current one, whatever the packet was built from.
  let currentTxt: any
  const fresh = (records: any[] | undefined): any[] | undefined =>
    records?.map(r => r.type === 'TXT' && r.name === currentTxt?.name ? { ...r, data: currentTxt.data } : r)
  const respond = server.mdns.respond.bind(server.mdns)
  server.mdns.respond = (res: any, ...rest: unknown[]) => {
    const packet = Array.isArray(res) ? fresh(res) : { ...res, answers: fresh(res.answers), additionals: fresh(res.additionals) }
    return respond(packet, ...rest)
  }
  // The peer id is in the instance name, so a name conflict is not possible: skip the 0.8 s probe.
  const service: Service = bonjour.publish({ name, type: SERVICE_TYPE, port: ad.port, host, txt: encodeTxt(ad), probe: false })
  currentTxt = service.records().find((r: any) => r.type === 'TXT')
  let timer: NodeJS.Timeout | undefined
  return {
    name,
    update (next: NodeAd, opts: { repeat?: boolean } = {}) {
      // bonjour-service has no API to change a published TXT record; this is the one place that
      // swaps it in the responder's registry and re-announces (RFC 6762 s8.4: announce twice).
      const old = service.records().filter((r: any) => r.type === 'TXT')
      server.unregister(old)
      ;(service as any).txt = encodeTxt(next)
      const records = service.records()
      currentTxt = records.find((r: any) => r.type === 'TXT')
      server.register(records)
      server.mdns.respond({ answers: records }, () => {})
      clearTimeout(timer)
      if (opts.repeat === false) return
      timer = setTimeout(() => { server.mdns.respond({ answers: service.records() }, () => {}) }, 1000)
      timer.unref()
    },
    async stop () {
      clearTimeout(timer)
      await new Promise<void>(resolve => {
        const t = setTimeout(resolve, 1500) // never hang shutdown on the network
        bonjour.unpublishAll(() => { clearTimeout(t); resolve() })
      })
      await new Promise<void>(resolve => { bonjour.destroy(() => { resolve() }) })
    }
  }
}

export interface DiscoveredNode {
  name: string
  ad: NodeAd
  /** addresses to dial, best first: the packet's source, then A/AAAA records */
  addresses: string[]
  lastSeen: number
}

export interface RejectedAd { name: string, reason: string, from?: string }

export interface BrowseOptions extends MdnsOptions {
  /**
   * Query again after this (ms), then after twice as long each time up to `maxRequeryMs`
   * (RFC 6762 s5.2, continuous querying): nodes announce every change themselves, a
   * query only catches one missed; every query makes every node on the LAN answer,
   * heard by every other node, so a fixed short period costs the whole LAN per browser.
   */
  requeryMs?: number
  /** the longest period between queries (default 30 s) */
  maxRequeryMs?: number
}

/** the longest period between a browser's queries, by default */
export const MAX_REQUERY_MS = 30_000

/** Keeps a live view of `_bgrid._tcp` nodes; emits 'up', 'update', 'down' with a DiscoveredNode. */
export class NodeBrowser extends EventEmitter {
  private readonly bonjour: Bonjour
  private browser?: Browser
  private readonly nodes = new Map<string, DiscoveredNode>()
  readonly rejected = new Map<string, RejectedAd>()
  private requery?: NodeJS.Timeout

  private readonly opts: BrowseOptions

  constructor (opts: BrowseOptions = {}) {
    super()
    this.opts = opts
    this.bonjour = bonjourFor(opts)
  }

  start (): void {
    const browser = this.bonjour.find({ type: SERVICE_TYPE })
    this.browser = browser
    const onService = (s: Service): void => { this.accept(s) }
    browser.on('up', onService)
    browser.on('txt-update', onService)
    browser.on('srv-update', onService)
    browser.on('down', (s: Service) => {
      const node = this.nodes.get(s.name)
      if (node !== undefined) { this.nodes.delete(s.name); this.emit('down', node) }
    })
    if (this.opts.requeryMs !== undefined) {
      let period = this.opts.requeryMs
      const again = (): void => {
        this.requery = setTimeout(() => {
          browser.update()
          period = Math.min(period * 2, this.opts.maxRequeryMs ?? MAX_REQUERY_MS)
          again()
        }, period)
        this.requery.unref()
      }
      again()
    }
  }

  /**
   * An advert browsed. Nodes are keyed by the raw instance name (two names that read the
   * same once made safe stay two nodes, and 'down' finds its node), and named by the safe one.
   */
  accept (s: Pick<Service, 'name' | 'txt' | 'addresses'>): void {
    const raw = (s as any).referer?.address
    const referer = typeof raw === 'string' ? raw : undefined
    const name = safeNodeName(s.name)
    const decoded = decodeTxt(s.txt as Record<string, unknown>)
    if (!decoded.ok) {
      this.rejected.set(s.name, { name, reason: decoded.reason, from: referer })
      return
    }
    const addrs = [...(referer !== undefined ? [referer] : []), ...((s.addresses ?? []) as string[])]
    const addresses = [...new Set(addrs)].sort((a, b) => Number(a.includes(':')) - Number(b.includes(':')))
    const node: DiscoveredNode = { name, ad: decoded.ad, addresses, lastSeen: Date.now() }
    const existed = this.nodes.has(s.name)
    this.nodes.set(s.name, node)
    this.rejected.delete(s.name)
    this.emit(existed ? 'update' : 'up', node)
  }

  list (): DiscoveredNode[] {
    return [...this.nodes.values()].sort((a, b) => a.name.localeCompare(b.name))
  }

  refresh (): void { this.browser?.update() }

  async stop (): Promise<void> {
    clearTimeout(this.requery)
    this.browser?.stop()
    await new Promise<void>(resolve => { this.bonjour.destroy(() => { resolve() }) })
  }
}
