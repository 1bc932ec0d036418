// `bgrid service install | uninstall | status`: a systemd unit that runs `bgrid daemon`
// from boot, as BOINC's client service does. Linux only; docs/service.md explains each setting.
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs'
import { spawnSync } from 'node:child_process'
import os from 'node:os'
import path from 'node:path'
import { BgridError } from '../../protocol/errors.ts'
import { freeDiskMiB } from '../../cache/disk.ts'
import { printableLines } from '../../protocol/printable.ts'

export interface ServiceOptions {
  user?: boolean
  unitDir?: string
  dataDir?: string
  cacheQuota?: number
  enable?: boolean // false with --no-enable
  daemonArg?: string[]
  jsonLogs?: boolean
}

const UNIT = 'bgrid.service'
const STATE_DIR = '/var/lib/bgrid'
// what the system unit hides from the daemon (ProtectHome=, PrivateTmp=)
const HIDDEN: Record<string, string> = { '/home': 'ProtectHome', '/root': 'ProtectHome', '/run/user': 'ProtectHome', '/tmp': 'PrivateTmp', '/var/tmp': 'PrivateTmp' }
// set by install itself: --daemon-arg must not give them a second time
const OWN_FLAGS = ['--data-dir', '--cache-quota']

interface Mode { user: boolean, unitPath: string, manage: boolean }

function mode (o: ServiceOptions): Mode {
  const user = o.user === true
  // BGRID_SYSTEMD_UNIT_DIR replaces /etc/systemd/system: for tests and packagers
  const dir = o.unitDir ?? (user
    ? path.join(process.env.XDG_CONFIG_HOME ?? path.join(os.homedir(), '.config'), 'systemd', 'user')
    : process.env.BGRID_SYSTEMD_UNIT_DIR ?? '/etc/systemd/system')
  // --unit-dir: just the file (a package build, a test); systemd is not asked
  return { user, unitPath: path.join(path.resolve(dir), UNIT), manage: o.unitDir === undefined }
}

// what systemctl and journalctl answered is printed too: through printableLines, like any text not ours
const say = (line: string): void => { process.stdout.write(printableLines(line) + '\n') }
const warn = (line: string): void => { process.stderr.write(`bgrid: ${printableLines(line)}\n`) }
const failed = (r: { cmd: string, out: string }): string => `\`${r.cmd}\` failed${r.out === '' ? '' : ':\n  ' + r.out.replaceAll('\n', '\n  ')}`

function systemctl (user: boolean, args: string[]): { ok: boolean, out: string, cmd: string } {
  const argv = [...(user ? ['--user'] : []), ...args]
  const cmd = ['systemctl', ...argv].join(' ')
  const r = spawnSync('systemctl', argv, { encoding: 'utf8', timeout: 120_000 })
  if (r.error !== undefined) {
    const missing = (r.error as NodeJS.ErrnoException).code === 'ENOENT'
    return { ok: false, out: missing ? 'systemctl not found: this system does not run systemd' : r.error.message, cmd }
  }
  return { ok: r.status === 0, out: `${r.stdout}${r.stderr}`.trim(), cmd }
}

function packageRoot (): string {
  let dir = import.meta.dirname
  while (!existsSync(path.join(dir, 'package.json'))) {
    const up = path.dirname(dir)
    if (up === dir) throw new BgridError('INTERNAL', `no package.json above ${import.meta.dirname}`)
    dir = up
  }
  return dir
}

function nearestExisting (dir: string): string {
  while (!existsSync(dir) && path.dirname(dir) !== dir) dir = path.dirname(dir)
  return dir
}

// systemd splits on spaces and expands %specifiers (and $VARS in ExecStart=): quote and escape
function q (s: string, exec = true): string {
  if (/[\n\r]/.test(s)) throw new BgridError('INVALID_CONFIG', `a unit file line cannot hold a newline: ${JSON.stringify(s)}`)
  const e = s.replaceAll('%', '%%')
  if (/^[\w/.,:=@+-]+$/.test(e)) return e
  const quoted = e.replace(/[\\"]/g, '\\$&')
  return `"${exec ? quoted.replaceAll('$', () => '$$') : quoted}"`
}

function unitText (user: boolean, dataDir: string, exec: string[]): string {
  const sys = (lines: string[]): string[] => user ? [] : lines
  return [
    '# Written by `bgrid service install`; `bgrid service uninstall` removes it (docs/service.md).',
    `# data dir: ${dataDir}`,
    '[Unit]',
    'Description=bgrid volunteer node (peer-to-peer desktop grid)',
    ...sys([
      '# the node advertises itself on the LAN and dials its peers: start once the network is up',
      'After=network-online.target',
      'Wants=network-online.target'
    ]),
    '',
    '[Service]',
    '# exec: `systemctl start` fails, instead of the unit, when the daemon cannot be started at all',
    'Type=exec',
    `ExecStart=${exec.map(a => q(a)).join(' ')}`,
    '# a crash restarts the node; a clean stop (tasks handed back) does not',
    'Restart=on-failure',
    'RestartSec=5',
    '# stopping the unit ends every process in it, running jobs included',
    'KillMode=control-group',
    '# time for the daemon to hand its running tasks back to their coordinators',
    'TimeoutStopSec=20',
    '# the owner\'s processes first: the grid gets the CPU nothing else wants',
    'CPUWeight=1',
    'Nice=5',
    ...(user
      ? [
          '# A user-mode daemon is not root: it does not contain jobs (no namespaces, uid per',
          '# run or cgroups); they run as this user. Use it only with submitters you trust.'
        ]
      : [
          '# root, so that jobs run contained: namespaces, a uid of their own, cgroups',
          ...(dataDir === STATE_DIR ? ['StateDirectory=bgrid', 'StateDirectoryMode=0700'] : []),
          '# the whole file system read-only to the daemon and its jobs, but the data dir',
          'ProtectSystem=strict',
          `ReadWritePaths=${q(dataDir, false)}`,
          '# jobs must never see /home, /root or /run/user',
          'ProtectHome=yes',
          'PrivateTmp=yes',
          '# /proc/sys and /sys read-only (/sys/fs/cgroup is governed by ProtectControlGroups=)',
          'ProtectKernelTunables=yes',
          '# the daemon makes cgroups for its jobs (memory, pids, CPU): /sys/fs/cgroup stays writable',
          'ProtectControlGroups=no',
          '# ...below its own cgroup, which systemd hands over to it',
          'Delegate=yes',
          '# NoNewPrivileges= is left unset on purpose: the job starter changes to each run\'s uid'
        ]),
    '',
    '[Install]',
    `WantedBy=${user ? 'default.target' : 'multi-user.target'}`,
    ''
  ].join('\n')
}

// written beside the unit, then renamed over it: never a half-written unit
function writeUnit (unitPath: string, text: string): void {
  const tmp = path.join(path.dirname(unitPath), `.${UNIT}.${process.pid}.tmp`)
  try {
    mkdirSync(path.dirname(unitPath), { recursive: true })
    writeFileSync(tmp, text, { mode: 0o644 })
    chmodSync(tmp, 0o644) // whatever the umask
    renameSync(tmp, unitPath)
  } catch (err) {
    rmSync(tmp, { force: true })
    throw new BgridError('INVALID_CONFIG', `cannot write ${unitPath}: ${(err as Error).message}`)
  }
}

function install (o: ServiceOptions, m: Mode): number {
  const cli = path.join(packageRoot(), 'dist', 'bin', 'bgrid.js')
  if (!existsSync(cli)) throw new BgridError('INVALID_CONFIG', `${cli} is missing: run npm run build first`)
  const dataDir = path.resolve(o.dataDir ?? (m.user ? path.join(os.homedir(), '.bgrid') : STATE_DIR))
  const extra = o.daemonArg ?? []
  const dup = extra.find(a => OWN_FLAGS.some(f => a === f || a.startsWith(`${f}=`)))
  if (dup !== undefined) throw new BgridError('INVALID_CONFIG', `give ${dup.split('=')[0]} to \`bgrid service install\` itself, not in --daemon-arg`)
  if (!m.user) {
    for (const p of [dataDir, process.execPath, cli]) {
      const h = Object.keys(HIDDEN).find(h => p === h || p.startsWith(h + '/'))
      if (h !== undefined) warn(`warning: ${HIDDEN[h]}=yes hides ${h} from the service, so the daemon will not find ${p}: use a system-wide install of node and bgrid, and a data dir such as ${STATE_DIR}`)
    }
  }
  // BOINC's default: a tenth of the free disk, measured now
  const quota = o.cacheQuota ?? Math.max(1, Math.floor(freeDiskMiB(nearestExisting(dataDir)) / 10))
  const exec = [process.execPath, cli, 'daemon', '--data-dir', dataDir, '--cache-quota', String(quota), ...(o.jsonLogs === true ? ['--json-logs'] : []), ...extra]
  writeUnit(m.unitPath, unitText(m.user, dataDir, exec))
  say(`wrote ${m.unitPath} (data dir ${dataDir}, cache quota ${quota} MiB)`)
  // ReadWritePaths= needs the directory to exist; StateDirectory= makes the default one
  if (!m.user && m.manage && dataDir !== STATE_DIR && !existsSync(dataDir)) {
    try { mkdirSync(dataDir, { recursive: true, mode: 0o700 }) } catch (err) { throw new BgridError('INVALID_CONFIG', `cannot create ${dataDir}: ${(err as Error).message}`) }
    say(`created ${dataDir}`)
  }
  if (!m.manage || o.enable === false) return 0
  const u = m.user ? '--user ' : ''
  for (const args of [['daemon-reload'], ['enable', '--now', UNIT]]) {
    const r = systemctl(m.user, args)
    if (!r.ok) {
      warn(failed(r))
      throw new BgridError('INVALID_CONFIG', `\`${r.cmd}\` failed; the unit is kept at ${m.unitPath}. Once systemd runs, enable it by hand: systemctl ${u}daemon-reload && systemctl ${u}enable --now ${UNIT}`)
    }
    say(`ran ${r.cmd}`)
  }
  if (m.user) say(`to keep it running while you are logged out: loginctl enable-linger ${os.userInfo().username}`)
  return 0
}

function uninstall (m: Mode): number {
  let dataDir = m.user ? path.join(os.homedir(), '.bgrid') : STATE_DIR
  if (m.manage) {
    const r = systemctl(m.user, ['disable', '--now', UNIT])
    if (r.ok) say(`ran ${r.cmd}`)
    else warn(`${failed(r)}\n  (going on)`)
  }
  if (existsSync(m.unitPath)) {
    dataDir = /^# data dir: (.+)$/m.exec(readFileSync(m.unitPath, 'utf8'))?.[1] ?? dataDir
    rmSync(m.unitPath)
    say(`removed ${m.unitPath}`)
  } else say(`no unit file at ${m.unitPath}`)
  if (m.manage) {
    const r = systemctl(m.user, ['daemon-reload'])
    if (r.ok) say(`ran ${r.cmd}`)
    else warn(failed(r))
  }
  say(`kept the data dir ${dataDir} (identity, cache); to remove it: ${m.user ? '' : 'sudo '}rm -rf ${dataDir}`)
  return 0
}

function status (m: Mode): number {
  say(`unit file: ${existsSync(m.unitPath) ? 'present' : 'absent'} ${m.unitPath}`)
  if (!m.manage) return 0
  for (const what of ['is-enabled', 'is-active']) {
    // both exit non-zero for "disabled" and "inactive": the output is the answer
    const r = systemctl(m.user, [what, UNIT])
    say(`${r.cmd}: ${r.out === '' ? (r.ok ? 'yes' : 'no') : r.out.replaceAll('\n', ' ')}`)
  }
  return 0
}

export async function serviceCommand (sub: 'install' | 'uninstall' | 'status', o: ServiceOptions): Promise<number> {
  if (process.platform !== 'linux') {
    throw new BgridError('INVALID_CONFIG', `bgrid service needs Linux with systemd; macOS launchd and Windows services are not supported yet (see docs/service.md): run \`bgrid daemon --always-available\` in a terminal meanwhile`)
  }
  const m = mode(o)
  if (!m.user && m.manage && sub !== 'status' && process.getuid?.() !== 0) {
    throw new BgridError('INVALID_CONFIG', `the system service needs root: run \`sudo bgrid service ${sub}\`, or add --user for a service of your own (jobs not contained)`)
  }
  if (sub === 'install') return install(o, m)
  if (sub === 'uninstall') return uninstall(m)
  return status(m)
}
