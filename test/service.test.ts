// `bgrid service`: the systemd unit it writes (paths, quota, hardening), --user, uninstall,
// status, and a clear failure where systemd is not running. The real CLI, real files.
import t, { type Test } from 'tap'
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, statfsSync, statSync, chmodSync } from 'node:fs'
import { spawnSync } from 'node:child_process'
import os from 'node:os'
import path from 'node:path'

const ROOT = path.resolve(import.meta.dirname, '..')
const CLI = path.join(ROOT, 'dist', 'bin', 'bgrid.js')
const tmp = mkdtempSync(path.join(os.tmpdir(), 'bgrid-service-'))
chmodSync(tmp, 0o755) // the not-root case below runs as nobody
t.teardown(() => { rmSync(tmp, { recursive: true, force: true }) })

interface Out { code: number | null, stdout: string, stderr: string }
function service (args: string[], env: Record<string, string> = {}, uid?: number): Out {
  const base: NodeJS.ProcessEnv = { ...process.env, HOME: tmp, XDG_CONFIG_HOME: path.join(tmp, 'xdg') }
  delete base.BGRID_SYSTEMD_UNIT_DIR
  const argv = [process.execPath, CLI, 'service', ...args]
  // tap puts its process-info hook in every child's NODE_OPTIONS: it writes under .tap/, where nobody may not
  const [cmd, ...rest] = uid === undefined ? argv : ['env', '-u', 'NODE_OPTIONS', ...argv]
  const r = spawnSync(cmd, rest, { encoding: 'utf8', env: { ...base, ...env }, ...(uid === undefined ? {} : { uid, gid: uid }) })
  return { code: r.status, stdout: r.stdout, stderr: r.stderr }
}
const lines = (unit: string): string[] => unit.split('\n')
const execStart = (unit: string): string[] => (lines(unit).find(l => l.startsWith('ExecStart='))?.slice('ExecStart='.length) ?? '').split(' ')

const systemdAnalyze = spawnSync('systemd-analyze', ['--version']).error === undefined
/** systemd's own check of the unit (unknown keys, bad values, missing ExecStart binary), where it is installed */
function verify (t: Test, file: string): void {
  if (!systemdAnalyze) { t.pass('systemd-analyze verify', { skip: 'systemd-analyze is not installed here' }); return }
  const v = spawnSync('systemd-analyze', ['verify', '--man=no', file], { encoding: 'utf8' })
  t.equal(v.status, 0, `systemd-analyze verify: ${v.stdout}${v.stderr}`)
}

if (!existsSync(CLI)) {
  t.fail(`${CLI} is missing: run npm run build first`)
} else {
  t.test('install --unit-dir: a unit running the built CLI with absolute paths, a tenth of the free disk, hardened', async t => {
    const unitDir = path.join(tmp, 'units')
    const dataDir = path.join(tmp, 'data') // not made yet: the quota is measured on its parent
    const r = service(['install', '--unit-dir', unitDir, '--data-dir', dataDir])
    t.equal(r.code, 0, r.stderr)
    const file = path.join(unitDir, 'bgrid.service')
    t.match(r.stdout, file, 'says what it wrote')
    t.notMatch(r.stdout, /systemctl/, 'systemd is not asked with --unit-dir')
    t.equal(statSync(file).mode & 0o777, 0o644)
    const unit = readFileSync(file, 'utf8')

    const argv = execStart(unit)
    t.ok(path.isAbsolute(argv[0]) && existsSync(argv[0]), `node is an absolute path that exists: ${argv[0]}`)
    t.equal(argv[0], process.execPath)
    t.equal(argv[1], CLI, 'the built CLI')
    t.ok(existsSync(argv[1]))
    t.equal(argv[2], 'daemon')
    t.equal(argv[argv.indexOf('--data-dir') + 1], dataDir)
    const quota = Number(argv[argv.indexOf('--cache-quota') + 1])
    const s = statfsSync(tmp)
    const expected = Number(s.bavail) * Number(s.bsize) / 1048576 / 10
    t.ok(Math.abs(quota - expected) <= expected * 0.01 + 1, `--cache-quota ${quota} MiB is 10% of the free disk (${expected.toFixed(0)} MiB)`)

    for (const line of [
      'ProtectSystem=strict', `ReadWritePaths=${dataDir}`, 'ProtectHome=yes', 'PrivateTmp=yes',
      'ProtectKernelTunables=yes', 'ProtectControlGroups=no', 'Delegate=yes', 'CPUWeight=1', 'Nice=5',
      'Restart=on-failure', 'RestartSec=5', 'KillMode=control-group', 'TimeoutStopSec=20',
      'After=network-online.target', 'Wants=network-online.target', 'WantedBy=multi-user.target'
    ]) t.ok(lines(unit).includes(line), line)
    t.notMatch(unit, /^NoNewPrivileges=/m, 'NoNewPrivileges= is not set: the job starter changes uid')
    t.notMatch(unit, /^StateDirectory=/m, 'StateDirectory= only for /var/lib/bgrid')
    const cg = lines(unit).indexOf('ProtectControlGroups=no')
    t.match(lines(unit)[cg - 1], /^#.*cgroups/, 'a comment says why cgroups stay writable')

    verify(t, file)
  })

  t.test('the default data dir gets StateDirectory=; --cache-quota is taken as given', async t => {
    const unitDir = path.join(tmp, 'units-state')
    const r = service(['install', '--unit-dir', unitDir, '--data-dir', '/var/lib/bgrid', '--cache-quota', '500'])
    t.equal(r.code, 0, r.stderr)
    const unit = readFileSync(path.join(unitDir, 'bgrid.service'), 'utf8')
    t.ok(lines(unit).includes('StateDirectory=bgrid'))
    t.ok(lines(unit).includes('ReadWritePaths=/var/lib/bgrid'))
    const argv = execStart(unit)
    t.equal(argv[argv.indexOf('--cache-quota') + 1], '500')
  })

  t.test('--daemon-arg values are appended in order; the ones install sets itself are refused', async t => {
    const unitDir = path.join(tmp, 'units-args')
    const r = service(['install', '--unit-dir', unitDir, '--data-dir', path.join(tmp, 'd2'), '--json-logs',
      '--daemon-arg=--cost', '--daemon-arg=2', '--daemon-arg', '--slots', '--daemon-arg', '3'])
    t.equal(r.code, 0, r.stderr)
    const argv = execStart(readFileSync(path.join(unitDir, 'bgrid.service'), 'utf8'))
    t.same(argv.slice(-5), ['--json-logs', '--cost', '2', '--slots', '3'])
    const bad = service(['install', '--unit-dir', path.join(tmp, 'units-bad'), '--daemon-arg=--data-dir=/x'])
    t.equal(bad.code, 2)
    t.match(bad.stderr, /--data-dir/)
    t.notOk(existsSync(path.join(tmp, 'units-bad', 'bgrid.service')), 'nothing written')
  })

  t.test('--user: default.target, ~/.bgrid, no system-wide hardening', async t => {
    const unitDir = path.join(tmp, 'units-user')
    const r = service(['install', '--user', '--unit-dir', unitDir])
    t.equal(r.code, 0, r.stderr)
    const file = path.join(unitDir, 'bgrid.service')
    t.equal(statSync(file).mode & 0o777, 0o644)
    const unit = readFileSync(file, 'utf8')
    t.ok(lines(unit).includes('WantedBy=default.target'))
    t.notMatch(unit, /^ProtectSystem=/m)
    t.notMatch(unit, /^Delegate=/m)
    t.match(unit, /^#.*not root.*contain/m, 'says that jobs are not contained')
    const argv = execStart(unit)
    t.equal(argv[argv.indexOf('--data-dir') + 1], path.join(tmp, '.bgrid'))
    verify(t, file)
  })

  t.test('status and uninstall with --unit-dir', async t => {
    const unitDir = path.join(tmp, 'units-rm')
    const dataDir = path.join(tmp, 'd3')
    t.equal(service(['install', '--unit-dir', unitDir, '--data-dir', dataDir]).code, 0)
    const file = path.join(unitDir, 'bgrid.service')
    let s = service(['status', '--unit-dir', unitDir])
    t.equal(s.code, 0)
    t.match(s.stdout, `present ${file}`)
    const u = service(['uninstall', '--unit-dir', unitDir])
    t.equal(u.code, 0, u.stderr)
    t.notOk(existsSync(file), 'unit file removed')
    t.match(u.stdout, `removed ${file}`)
    t.match(u.stdout, `kept the data dir ${dataDir}`, 'the data dir is kept, and said so')
    s = service(['status', '--unit-dir', unitDir])
    t.equal(s.code, 0)
    t.match(s.stdout, `absent ${file}`)
  })

  const root = process.getuid?.() === 0
  const systemdRuns = existsSync('/run/systemd/system')
  t.test('install without --unit-dir where systemd is not running: non-zero, names systemctl, keeps only the unit', { skip: !root ? 'needs root (the system unit)' : systemdRuns ? 'systemd runs here: it would really enable a unit' : false }, async t => {
    const unitDir = path.join(tmp, 'system')
    const dataDir = path.join(tmp, 'd4')
    const r = service(['install', '--data-dir', dataDir], { BGRID_SYSTEMD_UNIT_DIR: unitDir })
    t.not(r.code, 0)
    t.match(r.stderr, /systemctl/)
    t.match(r.stderr, /enable --now bgrid\.service/, 'says what to run by hand')
    t.same(readdirSync(unitDir), ['bgrid.service'], 'the unit and nothing else')
    t.match(readFileSync(path.join(unitDir, 'bgrid.service'), 'utf8'), /WantedBy=multi-user\.target\n$/, 'the whole unit')
  })

  t.test('the system unit needs root', async t => {
    const r = service(['install', '--data-dir', path.join(tmp, 'd5')], { BGRID_SYSTEMD_UNIT_DIR: path.join(tmp, 'system-nobody') }, root ? 65534 : undefined)
    if (/EACCES|Cannot find module/.test(r.stderr)) { t.pass('refused', { skip: `nobody cannot read ${ROOT}` }); return }
    t.equal(r.code, 2)
    t.match(r.stderr, /sudo.*--user/)
    t.notOk(existsSync(path.join(tmp, 'system-nobody')), 'nothing written')
  })
}
