// A lab of network namespaces joined by a bridge, so daemons talk (and multicast
// mDNS) only among themselves: never through the machine's real interfaces.
// Needs root (ip netns, veth, bridge). Everything made here is removed by destroy(),
// and by an exit hook if the process dies first.
import { execFileSync, spawnSync } from 'node:child_process'

export interface LabHost { ns: string, ip: string, ifname: string }

const live = new Set<Lab>()
process.on('exit', () => { for (const lab of live) lab.destroySync() })
// a test killed by its runner's timeout (SIGTERM) or Ctrl-C cleans up too
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.once(sig, () => { for (const lab of live) lab.destroySync(); process.exit(128 + (sig === 'SIGHUP' ? 1 : sig === 'SIGINT' ? 2 : 15)) })
}

/** Lab namespaces are named bg<owner pid>x<nonce>-...; older ones bg<digits>-... */
const LAB_NS = /^bg(\d+)x\d+-(hub|h\d+)$/
const OLD_LAB_NS = /^bg\d+-(hub|h\d+)$/

function alive (pid: number): boolean {
  try { process.kill(pid, 0); return true } catch (err: any) { return err.code === 'EPERM' }
}

/**
 * Remove the namespaces of labs whose process is gone (killed with SIGKILL, or by a
 * machine restart, before its exit hook could run): a lab never outlives its owner
 * for longer than the next lab's start.
 */
export function sweepStaleLabs (): string[] {
  const r = spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' })
  const removed: string[] = []
  for (const line of (r.stdout ?? '').split('\n')) {
    const ns = line.split(' ')[0]
    const m = LAB_NS.exec(ns)
    if (m === null ? !OLD_LAB_NS.test(ns) : alive(Number(m[1]))) continue
    spawnSync('ip', ['netns', 'del', ns], { stdio: 'ignore' })
    removed.push(ns)
  }
  return removed
}

function ip (...args: string[]): void {
  execFileSync('ip', args, { stdio: ['ignore', 'ignore', 'pipe'] })
}

export function canMakeNamespaces (): boolean {
  if (process.getuid?.() !== 0) return false
  const r = spawnSync('ip', ['netns', 'list'], { stdio: 'ignore' })
  return r.status === 0
}

export interface LabOptions {
  /** shape every link to this rate with tbf, e.g. '100mbit' */
  rate?: string
}

/**
 * Without root there are no namespaces: `HostLab` runs everything on this machine,
 * where announcing _bgrid._tcp on the LAN is what a real daemon does anyway.
 */
export class HostLab {
  readonly hosts: LabHost[] = []
  readonly hostMode = true
  addHost (): LabHost { const h = { ns: '', ip: '127.0.0.1', ifname: 'lo' }; this.hosts.push(h); return h }
  exec (_host: LabHost, argv: string[]): string[] { return argv }
  destroySync (): void {}
}

export class Lab {
  readonly hostMode = false
  readonly id: string
  readonly hub: string
  readonly hosts: LabHost[] = []
  readonly subnet: string
  private readonly opts: LabOptions

  constructor (opts: LabOptions = {}) {
    this.opts = opts
    sweepStaleLabs()
    this.id = `bg${process.pid}x${Math.floor(Math.random() * 1000)}`
    this.hub = `${this.id}-hub`
    const k = Math.floor(Math.random() * 200) + 20
    this.subnet = `10.${k}.${Math.floor(Math.random() * 250)}`
    ip('netns', 'add', this.hub)
    live.add(this)
    ip('-n', this.hub, 'link', 'add', 'br0', 'type', 'bridge')
    ip('-n', this.hub, 'link', 'set', 'br0', 'up')
    ip('-n', this.hub, 'link', 'set', 'lo', 'up')
  }

  /** Add a host namespace with one veth into the bridge, 10.x address, multicast route. */
  addHost (): LabHost {
    const i = this.hosts.length + 1
    if (i > 250) throw new Error('a lab holds at most 250 hosts')
    const ns = `${this.id}-h${i}`
    const ipAddr = `${this.subnet}.${i}`
    ip('netns', 'add', ns)
    ip('-n', ns, 'link', 'set', 'lo', 'up')
    ip('-n', this.hub, 'link', 'add', `p${i}`, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns)
    ip('-n', this.hub, 'link', 'set', `p${i}`, 'master', 'br0')
    ip('-n', this.hub, 'link', 'set', `p${i}`, 'up')
    ip('-n', ns, 'addr', 'add', `${ipAddr}/24`, 'dev', 'eth0')
    ip('-n', ns, 'link', 'set', 'eth0', 'up')
    ip('-n', ns, 'route', 'add', '224.0.0.0/4', 'dev', 'eth0')
    if (this.opts.rate !== undefined) {
      // shape both directions: egress of the host's eth0 and of its port on the bridge
      for (const [n, dev] of [[ns, 'eth0'], [this.hub, `p${i}`]]) {
        execFileSync('ip', ['netns', 'exec', n, 'tc', 'qdisc', 'add', 'dev', dev, 'root', 'tbf', 'rate', this.opts.rate, 'burst', '256kb', 'latency', '50ms'])
      }
    }
    const host = { ns, ip: ipAddr, ifname: 'eth0' }
    this.hosts.push(host)
    return host
  }

  /**
   * argv that runs a command inside a host's network namespace (the PID stays the
   * command's). nsenter, not `ip netns exec`: that one also mounts a fresh /sys, which
   * hides the cgroup hierarchies a daemon contains its jobs with.
   */
  exec (host: LabHost, argv: string[]): string[] {
    return ['nsenter', `--net=/run/netns/${host.ns}`, '--', ...argv]
  }

  destroySync (): void {
    for (const h of this.hosts) spawnSync('ip', ['netns', 'del', h.ns], { stdio: 'ignore' })
    spawnSync('ip', ['netns', 'del', this.hub], { stdio: 'ignore' })
    this.hosts.length = 0
    live.delete(this)
  }
}
