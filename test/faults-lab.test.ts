// Nothing lost, nothing silently wrong: faults injected into runs of a three-stage DAG
// whose intermediates (1-5 MiB) go worker to worker, on six daemons in their own
// network namespaces. Every run's outputs are compared byte for byte with the same
// jobs run locally (testbed/local-run.ts).
import t from 'tap'
import path from 'node:path'
import { readFileSync, writeFileSync, readdirSync, existsSync } from 'node:fs'
import { createHash } from 'node:crypto'
import { stdoutJson, clusterOrSkip, type Proc, type DaemonProc } from '../testbed/cluster.ts'
import { runLocally, compareWithLocal, type LocalRun } from '../testbed/local-run.ts'

const events = stdoutJson
const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex')

/**
 * Stage a: 12 jobs writing 1-5 MiB each; stage b: 12 jobs each reading two of them;
 * stage c: 6 jobs each reading two b outputs. Deterministic, so that a local run is
 * the reference. $PAUSE makes the run last long enough to hit it mid-way (the local
 * reference runs without it).
 */
function threeStages (name: string, pause: number, extra: Record<string, unknown> = {}): Record<string, unknown> {
  const sleep = '"$PAUSE"'
  const jobs: unknown[] = []
  for (let i = 0; i < 12; i++) jobs.push({ id: `a${i}`, cmd: `sleep ${sleep}; yes "a${i} $(printf %0${(i % 5) + 1}d 7)" | head -c ${((i % 5) + 1) << 20} > a.bin`, outputs: [{ name: 'a.bin', size: ((i % 5) + 1) << 20 }] })
  for (let i = 0; i < 12; i++) {
    jobs.push({
      id: `b${i}`,
      cmd: `sleep ${sleep}; cat x.bin y.bin | sha256sum > b.txt; head -c 300000 x.bin > b.bin; tail -c 200000 y.bin >> b.bin`,
      inputs: [{ src: `job:a${i}/a.bin`, as: 'x.bin' }, { src: `job:a${(i + 5) % 12}/a.bin`, as: 'y.bin' }],
      outputs: ['b.txt', 'b.bin']
    })
  }
  for (let i = 0; i < 6; i++) {
    jobs.push({
      id: `c${i}`,
      cmd: `sleep ${sleep}; cat p.txt q.txt p.bin q.bin | sha256sum > c.txt; wc -c p.bin q.bin >> c.txt`,
      inputs: [{ src: `job:b${i}/b.txt`, as: 'p.txt' }, { src: `job:b${i + 6}/b.txt`, as: 'q.txt' }, { src: `job:b${i}/b.bin`, as: 'p.bin' }, { src: `job:b${(i + 3) % 12}/b.bin`, as: 'q.bin' }],
      outputs: ['c.txt']
    })
  }
  return { name, workers: { min: 3, max: 6 }, defaults: { retries: 2, env: { PAUSE: String(pause) } }, jobs, ...extra }
}

const cluster = clusterOrSkip(t)
if (cluster !== undefined) {
  const daemons = await cluster.startDaemons(6, ['--always-available', '--slots', '2'])
  const user = cluster.lab.addHost()
  const dagFile = (dag: any, files: Record<string, string> = {}): string => cluster.writeDag(dag, files)
  const locals = new Map<string, LocalRun>()
  // one local reference per set of jobs (the pause aside, which changes no output)
  const local = (file: string): LocalRun => {
    const key = JSON.stringify(JSON.parse(readFileSync(file, 'utf8')).jobs)
    let l = locals.get(key)
    if (l === undefined) { l = runLocally(file, cluster.tmp, { PAUSE: '0' }); locals.set(key, l) }
    return l
  }
  t.teardown(() => { for (const l of locals.values()) l.cleanup() })
  const submit = (file: string, args: string[] = [], home = 'home'): Proc =>
    cluster.cli(user, ['submit', file, '--data-dir', path.join(cluster.tmp, home), '--json', '--wait', '20', '--lease', '3', ...args])
  const idle = async (ds: DaemonProc[] = daemons): Promise<void> => {
    await Promise.all(ds.filter(d => d.alive).map(async d => await d.until(() => {
      const st = d.events.filter(e => e.msg === 'state').at(-1)
      return st === undefined || st.to === 'idle' ? true : undefined
    }, 20_000, 'idle')))
  }
  const doneCount = (p: Proc): number => events(p).filter(e => e.event === 'job' && e.to === 'done').length
  const runJson = (out: string): any => JSON.parse(readFileSync(path.join(out, 'run.json'), 'utf8'))

  t.test('blobs corrupted in a worker\'s store between two runs: the second run\'s outputs still equal the local computation', async t => {
    const file = dagFile(threeStages('corrupt', 0))
    const ref = local(file)
    const out1 = path.join(cluster.tmp, 'corrupt-1')
    const first = submit(file, ['--out', out1])
    t.equal((await first.done(120_000)).code, 0, first.stderr)
    t.same(compareWithLocal(ref, runJson(out1), out1), [], 'the first run agrees with the local one')
    await idle()
    // garbage over the intermediates a worker holds (the way a failing disk or a meddler would)
    const victim = daemons.map(d => ({ d, blobs: listBlobs(d) })).sort((a, b) => b.blobs.length - a.blobs.length)[0]
    const run1 = runJson(out1)
    const intermediates = new Set(Object.values(run1.jobs).flatMap((j: any) => Object.values(j.outputs ?? {}).map((o: any) => o.sha256)))
    const hit = victim.blobs.filter(b => intermediates.has(path.basename(b))).slice(0, 3)
    t.ok(hit.length >= 1, `corrupting ${hit.length} intermediate blob(s) on one worker`)
    for (const b of hit) writeFileSync(b, 'garbage, not what the hash says\n')
    const out2 = path.join(cluster.tmp, 'corrupt-2')
    const second = submit(file, ['--out', out2])
    t.equal((await second.done(120_000)).code, 0, second.stderr)
    t.same(compareWithLocal(ref, runJson(out2), out2), [], 'every output of the second run equals the local one')
    // copies the second run did not touch are still bad: the scrub finds exactly those
    const stillBad = hit.filter(b => existsSync(b) && sha256(readFileSync(b)) !== path.basename(b))
    const v = await cluster.runCli(victim.d.host, ['cache', 'verify', '--json', '--data-dir', victim.d.dataDir])
    t.equal(v.code, stillBad.length > 0 ? 1 : 0, v.stderr)
    t.same(JSON.parse(v.stdout).corrupt.sort(), stillBad.map(b => path.basename(b)).sort(), `bgrid cache verify names the ${stillBad.length} bad copies left`)
    for (const b of hit) t.ok(!existsSync(b) || sha256(readFileSync(b)) === path.basename(b), `${path.basename(b).slice(0, 12)}: quarantined or replaced by good bytes`)
    await idle()
  })

  t.test('an input blob corrupted in the store while a job reads it: that attempt is voided and run again, outputs equal the local computation', async t => {
    const file = dagFile({
      name: 'in-use',
      workers: { min: 1, max: 1 },
      jobs: [
        { id: 'p', cmd: 'yes "payload line" | head -c 1048576 > p.bin', outputs: ['p.bin'] },
        // the job is seen running (its sleep, by that unusual argument) before the blob is hit
        { id: 'c', cmd: 'sleep "$PAUSE"; sha256sum in.bin > h.txt', env: { PAUSE: '2.000123' }, inputs: [{ src: 'job:p/p.bin', as: 'in.bin' }], outputs: ['h.txt'] }
      ]
    })
    const ref = local(file)
    const out = path.join(cluster.tmp, 'in-use')
    const p = submit(file, ['--out', out])
    const running = await p.until(() => events(p).find(e => e.event === 'job' && e.job === 'c' && e.to === 'running'), 60_000, 'the consumer assigned')
    const worker = daemons.find(d => String(running.reason).endsWith(d.peer.slice(-8)))!
    await p.until(() => processesMatching(/^sleep 2\.000123 $/).length > 0 ? true : undefined, 30_000, 'the consumer\'s process running, its input linked')
    const hash = ref.hashes.get('p/p.bin')!
    // a failing disk (or a meddler) rewrites the blob the job has open, as a hard link
    writeFileSync(path.join(worker.dataDir, 'cas', hash.slice(0, 2), hash), 'garbage while you read\n')
    const { code } = await p.done(120_000)
    t.equal(code, 0, p.stderr)
    const run = runJson(out)
    t.same(compareWithLocal(ref, run, out), [], 'the output equals the local one')
    t.ok(run.jobs.c.attempts.some((a: any) => a.status === 'lost' && /changed while the job ran/.test(String(a.error))), `the attempt that read the changed bytes was voided: ${JSON.stringify(run.jobs.c.attempts.map((a: any) => a.error ?? a.status))}`)
    await idle()
  })

  t.test('a final output corrupted in its holder\'s store before it is collected: its job runs again, the collected file equals the local one', async t => {
    const file = dagFile({
      name: 'collect-bad',
      workers: { min: 1, max: 2 },
      jobs: [
        { id: 's1', cmd: 'yes "first sink" | head -c 200000 > s.bin', outputs: ['s.bin'] },
        { id: 's2', cmd: 'sleep "$PAUSE"; echo second > s.txt', env: { PAUSE: '3' }, outputs: ['s.txt'] }
      ]
    })
    const ref = local(file)
    const out = path.join(cluster.tmp, 'collect-bad')
    const p = submit(file, ['--out', out])
    const ran = await p.until(() => events(p).find(e => e.event === 'job' && e.job === 's1' && e.to === 'running'), 60_000, 's1 assigned')
    await p.until(() => events(p).find(e => e.event === 'job' && e.job === 's1' && e.to === 'done'), 60_000, 's1 done')
    const holder = daemons.find(d => String(ran.reason).endsWith(d.peer.slice(-8)))!
    const hash = ref.hashes.get('s1/s.bin')!
    writeFileSync(path.join(holder.dataDir, 'cas', hash.slice(0, 2), hash), 'not the output any more\n')
    const { code } = await p.done(120_000)
    t.equal(code, 0, p.stderr)
    const run = runJson(out)
    t.same(compareWithLocal(ref, run, out), [], 'the collected outputs equal the local ones')
    t.ok(events(p).some(e => e.event === 'collect-retry' && e.job === 's1'), 'the bad copy was found at collection and the job made again')
    t.ok(run.jobs.s1.attempts.length >= 2, 's1 ran twice')
    await idle()
  })

  t.test('two workers killed at 30 %: the run still succeeds and its outputs equal the local computation', async t => {
    const file = dagFile(threeStages('kill-two', 1))
    const ref = local(file)
    const out = path.join(cluster.tmp, 'kill-two')
    const p = submit(file, ['--out', out])
    // when stage a is done (30 % of the DAG... 40 %) and stage b starts fetching its outputs
    await p.until(() => events(p).filter(e => e.event === 'job' && e.to === 'done' && String(e.job).startsWith('a')).length >= 12 ? true : undefined, 90_000, 'stage a done')
    // the two workers that ran most of stage a hold its only copies: their loss costs the most
    const ranA = new Map<string, number>()
    for (const e of events(p)) if (e.event === 'job' && e.to === 'running' && String(e.job).startsWith('a')) { const w = String(e.reason).slice(-8); ranA.set(w, (ranA.get(w) ?? 0) + 1) }
    const top = [...ranA].sort((a, b) => b[1] - a[1]).slice(0, 2).map(([w]) => w)
    const victims = daemons.filter(d => top.includes(d.peer.slice(-8)))
    t.equal(victims.length, 2)
    for (const v of victims) process.kill(v.pid, 'SIGKILL')
    const { code } = await p.done(180_000)
    if (process.env.BGRID_TEST_DUMP !== undefined) writeFileSync(process.env.BGRID_TEST_DUMP, p.stdout)
    t.equal(code, 0, p.stderr + p.stdout.slice(-3000))
    t.same(compareWithLocal(ref, runJson(out), out), [], 'every output equals the local one')
    t.equal(events(p).filter(e => e.event === 'worker' && e.state === 'lost').length, 2, 'both workers declared lost')
    for (const v of victims) daemons.splice(daemons.indexOf(v), 1, await cluster.startDaemon(['--always-available', '--slots', '2'], v.host, path.basename(v.dataDir)))
    await idle()
  })

  t.test('the coordinator killed at 40 %, then --resume: no finished job runs again, outputs equal the local computation', async t => {
    const file = dagFile(threeStages('resume', 1))
    const ref = local(file)
    const out = path.join(cluster.tmp, 'resume')
    const p = submit(file, ['--out', out, '--run-id', 'resume-run'])
    await p.until(() => doneCount(p) >= 12 ? true : undefined, 90_000, '40 % of the jobs done')
    process.kill(p.pid, 'SIGKILL')
    await p.done(10_000).catch(() => {})
    // attempt ids carry their coordinator session's nonce: a-<nonce>-<n>
    const doneBefore = new Map(events(p).filter(e => e.event === 'job' && e.to === 'done').map(e => [String(e.job), /attempt a([0-9a-f]+)-/.exec(String(e.reason))?.[1]]))
    const r = submit(file, ['--out', out, '--resume', 'resume-run'])
    const { code } = await r.done(180_000)
    t.equal(code, 0, r.stderr + r.stdout.slice(-3000))
    const run = runJson(out)
    t.same(compareWithLocal(ref, run, out), [], 'every output equals the local one')
    t.ok(doneBefore.size >= 12, `${doneBefore.size} jobs done before the kill`)
    const rerun = [...doneBefore].filter(([id, nonce]) => run.jobs[id].attempts.some((a: any) => !String(a.id).startsWith(`a${String(nonce)}-`)))
    t.same(rerun.map(([id]) => id), [], `none of the ${doneBefore.size} jobs finished before the kill ran again`)
    t.notOk(events(r).some(e => e.event === 'job' && e.from === 'done'), 'no finished job was put back to run')
    await idle()
  })

  t.test('three coordinators at once, five times over: all succeed, all outputs equal the local computation', async t => {
    const small = (n: number): Record<string, unknown> => {
      const d = threeStages(`concurrent-${n}`, 0.2)
      return { ...d, workers: { min: 1, max: 3 }, jobs: (d.jobs as any[]).filter(j => /^(a[0-5]|b[0-5]|c[0-2])$/.test(j.id)).map(j => ({ ...j, inputs: (j.inputs ?? []).map((i: any) => ({ ...i, src: i.src.replace(/a(\d+)\//, (_m: string, x: string) => `a${Number(x) % 6}/`).replace(/b(\d+)\//, (_m: string, x: string) => `b${Number(x) % 6}/`) })) })) }
    }
    for (let round = 0; round < 5; round++) {
      const files = [0, 1, 2].map(n => dagFile(small(n)))
      const outs = files.map((_, n) => path.join(cluster.tmp, `conc-${round}-${n}`))
      const ps = files.map((f, n) => submit(f, ['--out', outs[n]], `home-c${n}`))
      const codes = await Promise.all(ps.map(async p => (await p.done(120_000)).code))
      // on failure: what the run itself says (its error, and why its jobs failed), not log noise
      // (and the end of its stderr: a run that stopped early leaves its last run.json behind)
      const why = (n: number): string => {
        const tail = `stderr: ${ps[n].stderr.slice(-800)}`
        try { const r = runJson(outs[n]); return JSON.stringify({ error: r.error, failed: Object.entries(r.jobs).filter(([, j]: any) => j.state !== 'done').slice(0, 3).map(([id, j]: any) => `${id}: ${j.state} ${j.reason ?? ''}`) }) + ` ${tail}` } catch { return tail }
      }
      t.same(codes, [0, 0, 0], `round ${round}: all three succeeded ${codes.map((c, n) => c === 0 ? '' : why(n)).join(' | ')}`)
      for (let n = 0; n < 3; n++) t.same(compareWithLocal(local(files[n]), runJson(outs[n]), outs[n]), [], `round ${round}, run ${n}: outputs equal the local ones`)
      await idle()
    }
  })

  t.test('a frozen worker is lost within its lease of the last renewal; a killed coordinator\'s workers are idle within the lease and a second', async t => {
    const file = dagFile(threeStages('liveness', 3, { workers: { min: 6, max: 6 } }))
    const p = submit(file, ['--out', path.join(cluster.tmp, 'liveness')])
    await p.until(() => events(p).filter(e => e.event === 'job' && e.to === 'running').length >= 6 ? true : undefined, 60_000, 'jobs running on every worker')
    const frozen = daemons[0]
    process.kill(frozen.pid, 'SIGSTOP')
    const t0 = Date.now()
    try {
      const lost = await p.until(() => events(p).find(e => e.event === 'worker' && e.state === 'lost' && e.worker === frozen.peer), 20_000, 'the frozen worker declared lost')
      const after = Date.now() - t0
      t.ok(after <= 3000 + 1500, `declared lost ${after} ms after it froze (lease 3 s): ${String(lost.reason)}`)
    } finally {
      process.kill(frozen.pid, 'SIGCONT')
    }
    const others = daemons.slice(1)
    process.kill(p.pid, 'SIGKILL')
    const t1 = Date.now()
    await Promise.all(others.map(async d => await d.waitLog(e => e.msg === 'state' && e.to === 'idle' && e.time !== undefined && Date.parse(String(e.time)) >= t1, 15_000, 'idle after the coordinator died')))
    const slowest = Math.max(...others.map(d => Date.parse(String(d.events.filter(e => e.msg === 'state' && e.to === 'idle').at(-1)?.time)) - t1))
    t.ok(slowest <= 3000 + 1000, `every worker idle ${slowest} ms after the coordinator died (lease 3 s)`)
    await idle()
  })

  t.test('a 50 MiB cache quota and 200 MiB of intermediates: the run succeeds (outputs equal the local ones) or fails naming the quota; run.json is always written', async t => {
    const quota = await Promise.all(daemons.map(async (d, i) => {
      d.kill('SIGTERM')
      await d.done(15_000)
      return await cluster.startDaemon(['--always-available', '--slots', '2', '--cache-quota', '50'], d.host, path.basename(d.dataDir))
    }))
    daemons.splice(0, daemons.length, ...quota)
    const jobs: unknown[] = []
    for (let i = 0; i < 20; i++) jobs.push({ id: `big${i}`, cmd: `yes "big ${i}" | head -c ${10 << 20} > big.bin`, outputs: [{ name: 'big.bin', size: 10 << 20 }] })
    for (let i = 0; i < 10; i++) jobs.push({ id: `sum${i}`, cmd: 'cat x.bin y.bin | sha256sum > s.txt', inputs: [{ src: `job:big${i}/big.bin`, as: 'x.bin' }, { src: `job:big${i + 10}/big.bin`, as: 'y.bin' }], outputs: ['s.txt'] })
    const file = dagFile({ name: 'quota', workers: { min: 6, max: 6 }, jobs })
    const out = path.join(cluster.tmp, 'quota')
    const p = submit(file, ['--out', out])
    const dump = setInterval(() => { if (process.env.BGRID_TEST_DUMP !== undefined) writeFileSync(process.env.BGRID_TEST_DUMP, p.stdout + p.stderr) }, 1000)
    const { code } = await p.done(180_000).finally(() => { clearInterval(dump) })
    t.ok(existsSync(path.join(out, 'run.json')), 'run.json written')
    const run = runJson(out)
    t.not(run.state, 'running', `a final state: ${String(run.state)}`)
    if (code === 0) {
      t.same(compareWithLocal(local(file), run, out), [], 'succeeded: every output equals the local one')
    } else {
      const reasons = Object.values(run.jobs).map((j: any) => String(j.reason ?? j.collectError ?? '')).join('\n')
      t.match(reasons, /quota of 50 MiB/, 'failed, and says it was the quota')
    }
  })
}

/** processes whose command line matches, anywhere on this machine */
function processesMatching (re: RegExp): number[] {
  const out: number[] = []
  for (const pid of readdirSync('/proc').filter(p => /^\d+$/.test(p))) {
    try { if (re.test(readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' '))) out.push(Number(pid)) } catch {}
  }
  return out
}

/** the blob files in a daemon's store */
function listBlobs (d: DaemonProc): string[] {
  const cas = path.join(d.dataDir, 'cas')
  return readdirSync(cas).filter(x => /^[0-9a-f]{2}$/.test(x)).flatMap(x => readdirSync(path.join(cas, x)).map(f => path.join(cas, x, f)))
}
