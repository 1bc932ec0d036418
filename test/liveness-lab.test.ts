// A run never hangs: the cases that once waited forever, each on real daemons in
// network namespaces. A DAG whose producers read an empty input file, run again and
// again on the same daemons (the second run once waited for ever: proving possession
// of an empty blob read zero bytes and waited for more). A worker that forgets its
// attempts and falls silent while its daemon keeps the lease (once: jobs `running` for
// ever): the lease renewal's list of held attempts reveals it within a lease. A worker
// that holds an attempt without ever starting it: the run says, after --stall-after,
// which job waits for what where, and runs it elsewhere.
import t from 'tap'
import path from 'node:path'
import { createHash } from 'node:crypto'
import { readFileSync, writeFileSync, mkdirSync, existsSync } from 'node:fs'
import { stdoutJson, clusterOrSkip, CHEATING_DAEMON, type Proc } from '../testbed/cluster.ts'

const cluster = clusterOrSkip(t)
if (cluster !== undefined) {
  await cluster.startDaemons(3)
  const user = cluster.lab.addHost()
  const home = path.join(cluster.tmp, 'home')
  const submit = async (dag: string, out: string, timeoutMs = 60_000, more: string[] = []): Promise<{ code: number | null, run: any, p: Proc }> => {
    const p = cluster.cli(user, ['submit', dag, '--data-dir', home, '--json', '--wait', '20', '--out', out, ...more])
    const { code } = await p.done(timeoutMs)
    if (!existsSync(path.join(out, 'run.json'))) throw new Error(`submit exited ${String(code)} without run.json:\n${p.stderr.slice(-3000)}`)
    return { code, run: JSON.parse(readFileSync(path.join(out, 'run.json'), 'utf8')), p }
  }

  t.test('a DAG reading an empty input file runs three times in a row on the same daemons', async t => {
    const dir = path.join(cluster.tmp, 'empty-input')
    mkdirSync(dir, { recursive: true })
    writeFileSync(path.join(dir, 'empty.txt'), '')
    const dag = path.join(dir, 'dag.json')
    writeFileSync(dag, JSON.stringify({
      name: 'empty-input',
      workers: { min: 3, max: 3 },
      jobs: [
        ...Array.from({ length: 8 }, (_, i) => ({ id: `p${i}`, cmd: `wc -c < empty.txt > n.txt; echo ${i} >> n.txt`, inputs: [{ src: 'empty.txt', as: 'empty.txt' }], outputs: ['n.txt'] })),
        ...Array.from({ length: 8 }, (_, i) => ({ id: `c${i}`, cmd: 'cat n.txt > m.txt', inputs: [`job:p${i}/n.txt`], outputs: ['m.txt'] }))
      ]
    }))
    for (let round = 1; round <= 3; round++) {
      const out = path.join(cluster.tmp, `out-empty-${round}`)
      // a run of 16 one-line jobs takes a couple of seconds; 60 s is a hang
      const { code, run, p } = await submit(dag, out)
      t.equal(code, 0, `run ${round} succeeds\n${p.stderr.slice(-2000)}`)
      t.equal(run.state, 'succeeded', `run ${round}: ${JSON.stringify(run.error ?? '')} ${Object.entries(run.jobs).filter(([, j]: [string, any]) => j.state !== 'done').map(([id, j]: [string, any]) => `${id}: ${String(j.reason)}`).slice(0, 3).join('; ')}`)
      for (let i = 0; i < 8; i++) {
        t.equal(readFileSync(path.join(out, `c${i}`, 'm.txt'), 'utf8'), `0\n${i}\n`, `run ${round}: c${i} read what p${i} wrote from the empty file`)
      }
      t.ok(stdoutJson(p).some(e => e.event === 'finished'), `run ${round} reports its end`)
    }
  })

  t.test('empty and one-byte files, as inputs and as outputs passed between jobs, twice in a row on the same daemons', async t => {
    const dir = path.join(cluster.tmp, 'tiny-files')
    mkdirSync(dir, { recursive: true })
    writeFileSync(path.join(dir, 'zero.txt'), '')
    writeFileSync(path.join(dir, 'one.txt'), 'x')
    const dag = path.join(dir, 'dag.json')
    writeFileSync(dag, JSON.stringify({
      name: 'tiny-files',
      workers: { min: 3, max: 3 },
      collect: 'all',
      jobs: [
        // an empty output and a one-byte one, made from an empty and a one-byte input
        { id: 'a', cmd: 'cat zero.txt > e.txt; head -c 1 one.txt > b.txt', inputs: ['zero.txt', 'one.txt'], outputs: ['e.txt', 'b.txt'] },
        { id: 'b', cmd: ': > e.txt; printf y > b.txt', outputs: ['e.txt', 'b.txt'] },
        // consumers of both: the empty blob and the one-byte blob go worker to worker
        ...['a', 'b'].map(p => ({ id: `from-${p}`, cmd: 'cat e.txt b.txt e.txt > r.txt; wc -c < e.txt >> r.txt', inputs: [`job:${p}/e.txt`, `job:${p}/b.txt`], outputs: ['r.txt'] })),
        { id: 'join', cmd: 'cat ra.txt rb.txt > all.txt', inputs: [{ src: 'job:from-a/r.txt', as: 'ra.txt' }, { src: 'job:from-b/r.txt', as: 'rb.txt' }], outputs: ['all.txt'] }
      ]
    }))
    // what a local run of those commands writes, byte for byte
    const expected: Record<string, string> = { 'a/e.txt': '', 'a/b.txt': 'x', 'b/e.txt': '', 'b/b.txt': 'y', 'from-a/r.txt': 'x0\n', 'from-b/r.txt': 'y0\n', 'join/all.txt': 'x0\ny0\n' }
    for (let round = 1; round <= 2; round++) {
      const out = path.join(cluster.tmp, `out-tiny-${round}`)
      const { code, run, p } = await submit(dag, out)
      t.equal(code, 0, `run ${round} succeeds\n${p.stderr.slice(-2000)}`)
      t.equal(run.state, 'succeeded', `run ${round}`)
      for (const [file, bytes] of Object.entries(expected)) t.equal(readFileSync(path.join(out, file), 'utf8'), bytes, `run ${round}: ${file}`)
    }
  })

  t.test('attempts a worker forgets while its lease is renewed are re-run elsewhere within a lease', async t => {
    const silent = await cluster.startDaemon(['--always-available', '--slots', '1', '--cheat', 'drop'], undefined, 'silent', { entry: CHEATING_DAEMON })
    const before = silent.events.length
    const dag = cluster.writeDag({
      name: 'forgotten',
      workers: { min: 4, max: 4 },
      jobs: Array.from({ length: 8 }, (_, i) => ({ id: `j${i}`, cmd: `sleep 0.3; echo ${i} > o.txt`, outputs: ['o.txt'] }))
    })
    const out = path.join(cluster.tmp, 'out-forgotten')
    const { code, run, p } = await submit(dag, out)
    t.equal(code, 0, `the run succeeds\n${p.stderr.slice(-2000)}`)
    const dropped = silent.events.slice(before).filter(e => e.msg === 'cheated' && e.how === 'drop')
    t.ok(dropped.length >= 1, `the silent worker forgot ${dropped.length} attempt(s)`)
    const lease = 6000
    for (const d of dropped) {
      const job = run.jobs[String(d.job)]
      const attempts: any[] = job.attempts
      const lost = attempts.find(a => a.id === d.attempt)
      t.equal(lost?.status, 'lost', `${String(d.job)}: the forgotten attempt is lost (${String(lost?.error)})`)
      const next = attempts[attempts.indexOf(lost) + 1]
      t.ok(next !== undefined && next.worker !== silent.peer, `${String(d.job)}: run again on another worker`)
      const gap = Number(next?.assignedAt) - Number(lost?.assignedAt)
      // the grace (3 s) and a renewal period (1.5 s): within a lease, plus one renewal period
      // of slack for a machine loaded by the rest of the suite
      t.ok(gap <= lease + 1500, `${String(d.job)}: re-run ${gap} ms after it was handed to the silent worker (lease ${lease} ms)`)
      t.equal(readFileSync(path.join(out, String(d.job), 'o.txt'), 'utf8'), `${String(d.job).slice(1)}\n`)
    }
    silent.kill('SIGKILL')
  })

  t.test('a run that makes no progress says which job waits for what, and runs it elsewhere', async t => {
    const holder = await cluster.startDaemon(['--always-available', '--slots', '1', '--cheat', 'hold'], undefined, 'holder', { entry: CHEATING_DAEMON })
    const before = holder.events.length
    // more jobs than the others' slots: the holder (claimed before anything starts, as
    // workers.min is 4) takes one; once the others are done, nothing moves. A last job
    // after them all keeps the run open long enough for the holder's next renewals
    const dag = cluster.writeDag({
      name: 'held',
      workers: { min: 4, max: 4 },
      jobs: [
        ...Array.from({ length: 12 }, (_, i) => ({ id: `h${i}`, cmd: `sleep 0.5; echo ${i} > o.txt`, outputs: ['o.txt'] })),
        { id: 'last', cmd: 'sleep 8', after: Array.from({ length: 12 }, (_, i) => `h${i}`) }
      ]
    })
    const out = path.join(cluster.tmp, 'out-held')
    const { code, run, p } = await submit(dag, out, 60_000, ['--stall-after', '4'])
    t.equal(code, 0, `the run succeeds\n${p.stderr.slice(-2000)}`)
    const held = holder.events.slice(before).filter(e => e.msg === 'cheated' && e.how === 'hold')
    t.equal(held.length, 1, 'the holder took one attempt and sat on it')
    const job = String(held[0]?.job)
    const stalled = stdoutJson(p).filter(e => e.event === 'stalled')
    t.ok(stalled.length >= 1, 'the run said it was stalled')
    const said = JSON.stringify(stalled[0] ?? {})
    t.match(said, new RegExp(`"job":"${job}"`), `the report names job ${job}`)
    t.match(said, /queued, not started on \S+ for \d+ s/, `... and what it waits for, where: ${said}`)
    t.match(stalled[0]?.givenUp?.[0] ?? '', new RegExp(`^${job} `), 'the held attempt was given up')
    t.match(p.stderr + p.stdout, /no progress for 4 s/, 'people see it too')
    const attempts: any[] = run.jobs[job].attempts
    t.equal(attempts[0].worker, holder.peer)
    t.equal(attempts[0].status, 'lost')
    t.equal(attempts.at(-1).status, 'ok', 'run again elsewhere')
    // (not a sink: its output stays in the grid, by its hash)
    t.equal(run.jobs[job].outputs['o.txt'].sha256, createHash('sha256').update(`${job.slice(1)}\n`).digest('hex'), 'its output is what the job writes')
    // the holder was told by its renewals (two in a row) that the attempt is no longer its own
    const dropped = holder.events.slice(before).find(e => e.msg === 'attempt dropped: the coordinator no longer counts on it')
    const left = holder.events.slice(before).find(e => e.msg === 'left the run')
    t.equal(dropped?.attempt, attempts[0].id, 'the holder dropped the given-up attempt')
    t.ok(dropped !== undefined && left !== undefined && Date.parse(String(dropped.time)) < Date.parse(String(left.time)), '... while the run went on')
    holder.kill('SIGKILL')
  })
}
