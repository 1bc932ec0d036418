// Attempt sandboxes on a real disk, jobs started by the real launcher: a recycled
// directory is the same inode, yet the next job finds it empty and with a fresh mode;
// a sandbox left with files in it is never handed to another job.
import t from 'tap'
import { mkdtempSync, writeFileSync, readFileSync, existsSync, rmSync } from 'node:fs'
import { createHash } from 'node:crypto'
import os from 'node:os'
import path from 'node:path'
import { openDb } from '../daemon/store.ts'
import { BlobStore } from '../cache/store.ts'
import { Launcher } from '../daemon/launcher-client.ts'
import { RunningAttempt, runAttempt } from '../daemon/executor.ts'
import { SandboxPool } from '../daemon/sandbox.ts'
import type { Assignment, AttemptResult } from '../protocol/jobs.ts'

const root = mkdtempSync(path.join(os.tmpdir(), 'bgrid-sandbox-'))
const db = await openDb(path.join(root, 'node'))
const store = new BlobStore(path.join(root, 'node'), db, {})
await store.load()
const launcher = new Launcher()
const runDir = path.join(root, 'node', 'runs', 'r1')
const pool = new SandboxPool(runDir, undefined, 4)
t.teardown(async () => { launcher.stop(); await db.close(); rmSync(root, { recursive: true, force: true }) })

// an input blob for the nested-input case
const inputFile = path.join(root, 'in.txt')
writeFileSync(inputFile, 'input bytes\n')
const inputHash = createHash('sha256').update('input bytes\n').digest('hex')
await store.moveIn(inputFile)

let n = 0
async function run (script: string, extra: Partial<Assignment> = {}): Promise<AttemptResult> {
  const a: Assignment = { attempt: `a${++n}`, job: `j${n}`, cmd: ['/bin/sh', '-c', script], env: {}, timeoutMs: 10_000, cores: 1, inputs: [], outputs: [], ...extra }
  return await runAttempt(new RunningAttempt(a), { store, sandboxes: pool, launcher, ensureInputs: async () => ({ bytesFetched: 0, cacheHits: 0 }) })
}
const stdoutOf = (r: AttemptResult): string => r.stdout?.tail ?? ''
const blob = (hash: string): string => readFileSync(store.blobPath(hash), 'utf8')

t.test('a sandbox left with stray files is not handed on', async t => {
  const dirty = await run('echo left behind > junk.txt; stat -c %i .', { outputs: [] })
  t.equal(dirty.status, 'ok')
  t.ok(existsSync(path.join(runDir, 'a1', 'work', 'junk.txt')), 'the stray file stays where the job left it')
  const next = await run('ls -A; stat -c %i .')
  t.equal(next.status, 'ok')
  t.not(stdoutOf(next).trim(), stdoutOf(dirty).trim(), 'the next job got a new directory')
  t.notMatch(stdoutOf(next), /junk\.txt/, 'and sees nothing of the first')
})

t.test('an emptied sandbox is reused: same inode, empty, mode reset, old logs gone', async t => {
  // a nested input (its directory is made for it and removed after), an output moved to the store
  const first = await run('cat data/in.txt > out.txt; echo secret; chmod 700 .; stat -c %i .', {
    inputs: [{ name: 'data/in.txt', hash: inputHash, size: 12, holders: [] }], outputs: ['out.txt']
  })
  t.equal(first.status, 'ok', first.error ?? 'first job')
  t.equal(blob(first.outputs[0].hash), 'input bytes\n', 'the output reached the store')
  const firstInode = stdoutOf(first).trim().split('\n').at(-1)
  t.notOk(existsSync(path.join(runDir, 'a3')), 'its directory left the attempt\'s name')

  const second = await run('ls -A; stat -c "%i %a" .')
  t.equal(second.status, 'ok')
  const lines = stdoutOf(second).trim().split('\n')
  t.same(lines.length, 1, `work/ was empty: ${JSON.stringify(lines)}`)
  t.notMatch(stdoutOf(second), /secret/, 'the previous job\'s stdout is not in this one\'s')
  t.equal(lines[0], `${firstInode} 755`, 'the same directory, its mode reset')
  t.notOk(existsSync(path.join(runDir, 'a4')), 'and it went back to the pool in turn')
})

t.test('a job that fails to start still returns its sandbox', async t => {
  const r = await run('', { cmd: ['/nonexistent/binary'] })
  t.not(r.status, 'ok')
  t.match(r.error ?? '', /cannot start|ENOENT/)
  t.notOk(existsSync(path.join(runDir, r.attempt)), 'its directory went back to the pool')
  const after = await run('ls -A')
  t.equal(after.status, 'ok')
  t.equal(stdoutOf(after), '', 'the next job, in that directory, starts with it empty')
})

t.test('what a job leaves running in the background is killed when it exits', async t => {
  const r = await run('sleep 30 & echo $!')
  t.equal(r.status, 'ok')
  const pid = Number(stdoutOf(r).trim())
  t.ok(pid > 0, `background pid ${pid}`)
  // gone, or a zombie waiting for init to reap it; bounded wait for the kill to land
  const alive = (): boolean => { try { return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8')) } catch { return false } }
  const deadline = Date.now() + 3000
  while (alive() && Date.now() < deadline) await new Promise(resolve => setTimeout(resolve, 20))
  t.notOk(alive(), 'the background sleep is no longer running')
})
