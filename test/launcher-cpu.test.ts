// The job starters report each job's CPU time with its exit (jobs protocol `cpuMs`):
// the C one from wait4, the Node one from its reaped children's times.
import t from 'tap'
import { spawnSync } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { Launcher, parseExit, type LaunchSpec } from '../daemon/launcher-client.ts'
import { jobsSpec, unranResult, MAX_CPU_MS } from '../protocol/jobs.ts'

// burns half a second of its own CPU (it reads its own clock: a loaded machine makes it
// last longer, not burn less), in loops of the shell's own and in children it waits for
const BURN = 'while :; do read -r l < /proc/$$/stat; set -- $l; [ $((${14}+${15}+${16}+${17})) -ge 50 ] && break; i=0; while [ $i -lt 2000 ]; do i=$((i+1)); done; /bin/true; done'

const dir = mkdtempSync(path.join(os.tmpdir(), 'launcher-cpu-'))
t.teardown(() => { rmSync(dir, { recursive: true, force: true }) })
let n = 0
const spec = (argv: string[]): LaunchSpec => {
  const k = ++n
  return { argv, env: { PATH: '/usr/bin:/bin' }, stdout: path.join(dir, `${k}.out`), stderr: path.join(dir, `${k}.err`), cwd: dir }
}

t.test('the exit line: cpu= after the sizes, before an error; older starters without it', async t => {
  const line = (l: string) => parseExit(l.split(' ', 6), l.split(' ').slice(6).join(' '))
  t.same(line('exit 7 0 - 12 0 cpu=530'), { code: 0, signal: null, out: 12, err: 0, cpuMs: 530 })
  t.same(line('exit 7 0 - 12 0'), { code: 0, signal: null, out: 12, err: 0 }, 'an older starter: no cpuMs')
  t.same(line('exit 7 - SIGKILL 1 1 cpu=2'), { code: null, signal: 'SIGKILL', out: 1, err: 1, cpuMs: 2 })
  t.same(line('exit 7 - - 0 0 cannot start foo: No such file'), { code: null, signal: null, out: 0, err: 0, setupError: 'cannot start foo: No such file' })
  t.same(line('exit 7 - - 0 0 cpu=3 cannot start'), { code: null, signal: null, out: 0, err: 0, cpuMs: 3, setupError: 'cannot start' })
  t.equal(line('exit 7 0 - 0 0 cpu=99999999999999999999').cpuMs, 1e13, 'bounded as the jobs schema bounds it')
})

t.test('the jobs schema: cpuMs optional, a whole number of ms, bounded', async t => {
  const pull = (extra: Record<string, unknown>) => jobsSpec.request({ op: 'pull', run: 'r', want: 0, running: [], results: [{ ...unranResult('a-1', 'lost', 'x', 1), ...extra }] })
  t.ok(pull({}), 'absent: not measured')
  t.ok(pull({ cpuMs: 0 }))
  t.ok(pull({ cpuMs: MAX_CPU_MS }))
  t.notOk(pull({ cpuMs: -1 }), 'negative')
  t.notOk(pull({ cpuMs: 1.5 }), 'fractional')
  t.notOk(pull({ cpuMs: MAX_CPU_MS + 1 }), 'past the bound')
  t.notOk(pull({ cpuMs: '5' }), 'a string')
})

const starters: Array<[string, () => string | undefined]> = [
  ['the Node launcher (--isolation none)', () => undefined],
  ['bgrid-contain (C)', () => {
    const out = path.join(dir, 'bgrid-contain')
    const r = spawnSync('cc', ['-O2', '-o', out, path.join(import.meta.dirname, '..', 'daemon', 'contain', 'bgrid-contain.c')], { stdio: 'ignore' })
    return r.status === 0 ? out : 'skip'
  }]
]

for (const [name, binary] of starters) {
  t.test(`${name}: a job's CPU time comes with its exit`, async t => {
    const bin = binary()
    if (bin === 'skip') { t.plan(0, 'no C compiler'); return }
    const l = new Launcher(bin)
    t.teardown(() => { l.stop() })
    const burn = await (await l.launch(spec(['/bin/sh', '-c', BURN]))).exited
    t.equal(burn.code, 0)
    t.ok(burn.cpuMs !== undefined && burn.cpuMs >= 400 && burn.cpuMs <= 2000, `half a second of CPU: ${burn.cpuMs} ms`)
    const sleep = await (await l.launch(spec(['/bin/sleep', '0.3']))).exited
    t.ok(sleep.cpuMs !== undefined && sleep.cpuMs < 100, `a sleeping job uses next to none: ${sleep.cpuMs} ms`)
    const missing = await (await l.launch(spec(['/nonexistent/job']))).exited
    t.match(missing.setupError ?? '', /nonexistent/, 'a job that never started says why, and no cpu')
    t.equal(missing.cpuMs, undefined)
    // two at once: each its own figure, or none when they ended in one batch (never the other's)
    const [a, b] = await Promise.all([l.launch(spec(['/bin/sh', '-c', BURN])), l.launch(spec(['/bin/sleep', '0.2']))])
    const [ea, eb] = await Promise.all([a.exited, b.exited])
    t.ok(ea.cpuMs === undefined || (ea.cpuMs >= 400 && ea.cpuMs <= 2000), `the burner: ${ea.cpuMs} ms`)
    t.ok(eb.cpuMs === undefined || eb.cpuMs < 100, `the sleeper: ${eb.cpuMs} ms`)
  })
}
