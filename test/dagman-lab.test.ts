// DAGMan files on namespaced daemons (issue 10): vanilla jobs run on bgrid workers and
// their files come back to the submit directory, where children and POST scripts read
// them; every file the DAG leaves equals, byte for byte, what the same DAG leaves when
// every job runs locally (universe = local). An ABORT-DAG-ON removes a vanilla job still
// running: the DAG ends with the RETURN value, and nothing of the job is left on a worker.
import t from 'tap'
import path from 'node:path'
import { execFileSync } from 'node:child_process'
import { mkdirSync, writeFileSync, readFileSync, readdirSync, existsSync, statSync, cpSync } from 'node:fs'
import { clusterOrSkip, BGRID, ROOT } from '../testbed/cluster.ts'

const cluster = clusterOrSkip(t)
if (cluster !== undefined) {
  await cluster.startDaemons(2)
  const user = cluster.lab.addHost()
  const home = path.join(cluster.tmp, 'home')
  const submit = async (dir: string, file: string, extra: string[] = []): Promise<{ code: number | null, stderr: string, ms: number }> => {
    const t0 = Date.now()
    const p = cluster.spawn(user, [process.execPath, BGRID, 'submit', file, '--data-dir', home, '--quiet', '--wait', '20', '--lease', '3', ...extra], {}, dir)
    const { code } = await p.done(180_000)
    return { code, stderr: p.stderr, ms: Date.now() - t0 }
  }
  /** a file a local node writes when it has started: waited for (60 s at most) */
  const waitForFile = async (f: string): Promise<void> => {
    for (let i = 0; i < 600 && !existsSync(f); i++) await new Promise(resolve => setTimeout(resolve, 100))
  }
  const idle = async (): Promise<void> => {
    await Promise.all(cluster.daemons.filter(d => d.alive).map(async d => await d.until(() => {
      const st = d.events.filter(e => e.msg === 'state').at(-1)
      return st === undefined || st.to === 'idle' ? true : undefined
    }, 30_000, 'idle')))
  }

  /** a split -> 2 workers -> join pipeline; `universe` for every job */
  const pipeline = (dir: string, universe: string): void => {
    mkdirSync(dir, { recursive: true })
    writeFileSync(path.join(dir, 'data.txt'), Array.from({ length: 500 }, (_, i) => `${(i * 7919) % 1000} line ${i}`).join('\n') + '\n')
    writeFileSync(path.join(dir, 'split.sh'), '#!/bin/sh\nhead -n 250 data.txt > part1.txt\ntail -n 250 data.txt > part2.txt\necho split done\n', { mode: 0o755 })
    writeFileSync(path.join(dir, 'work.sh'), '#!/bin/sh\nsort -n "$1" | awk -v f="$1" \'{ s += $1 } END { print f, NR, s }\' > "$2"\ncat "$2"\necho "to stderr $1" >&2\n', { mode: 0o755 })
    writeFileSync(path.join(dir, 'join.sh'), '#!/bin/sh\ncat sum1.txt sum2.txt > total.txt\nwc -l < total.txt\n', { mode: 0o755 })
    writeFileSync(path.join(dir, 'post.sh'), '#!/bin/sh\necho "$1 returned $2" >> post.log\n[ -s total.txt ]\n', { mode: 0o755 })
    writeFileSync(path.join(dir, 'split.sub'), `universe = ${universe}\nexecutable = split.sh\ntransfer_input_files = data.txt\ntransfer_output_files = part1.txt, part2.txt\noutput = split.out\nerror = split.err\nlog = p.log\nqueue\n`)
    writeFileSync(path.join(dir, 'work.sub'), `universe = ${universe}\nexecutable = work.sh\narguments = $(part) $(sum)\ntransfer_input_files = $(part)\ntransfer_output_files = $(sum)\noutput = $(JOB).out\nerror = $(JOB).err\nrequest_memory = 64\nqueue\n`)
    writeFileSync(path.join(dir, 'join.sub'), `universe = ${universe}\nexecutable = join.sh\ntransfer_input_files = sum1.txt, sum2.txt\ntransfer_output_files = total.txt\noutput = join.out\nqueue\n`)
    writeFileSync(path.join(dir, 'p.dag'), [
      'JOB SPLIT split.sub', 'JOB W1 work.sub', 'VARS W1 part="part1.txt" sum="sum1.txt"', 'JOB W2 work.sub', 'VARS W2 part="part2.txt" sum="sum2.txt"',
      'JOB JOIN join.sub', 'SCRIPT POST JOIN post.sh $JOB $RETURN', 'PARENT SPLIT CHILD W1 W2', 'PARENT W1 W2 CHILD JOIN', ''
    ].join('\n'))
  }

  t.test('vanilla jobs on the workers leave the same files as the same DAG run locally', async t => {
    const grid = path.join(cluster.tmp, 'grid')
    const local = path.join(cluster.tmp, 'local')
    pipeline(grid, 'vanilla')
    pipeline(local, 'local')
    const g = await submit(grid, 'p.dag')
    t.equal(g.code, 0, g.stderr)
    await idle()
    const l = await submit(local, 'p.dag')
    t.equal(l.code, 0, l.stderr)
    const made = ['split.out', 'split.err', 'part1.txt', 'part2.txt', 'W1.out', 'W1.err', 'W2.out', 'W2.err', 'sum1.txt', 'sum2.txt', 'total.txt', 'join.out', 'post.log']
    for (const f of made) t.equal(readFileSync(path.join(grid, f), 'utf8'), readFileSync(path.join(local, f), 'utf8'), `${f}: the same bytes`)
    t.equal(readFileSync(path.join(grid, 'post.log'), 'utf8'), 'JOIN returned 0\n')
    // brought back as a file the user made (not the store's read-only blob mode): a RETRY or a re-run can write it again
    t.equal(statSync(path.join(grid, 'part1.txt')).mode & 0o777, 0o666 & ~process.umask())
    t.match(readFileSync(path.join(grid, 'total.txt'), 'utf8'), /^part1\.txt 250 \d+\npart2\.txt 250 \d+\n$/)
    // the vanilla jobs ran on the daemons: the grid run names them
    const runs = readdirSync(path.join(grid, 'bgrid-runs'))
    const run = JSON.parse(readFileSync(path.join(grid, 'bgrid-runs', runs[0], 'run.json'), 'utf8'))
    const peers = new Set(cluster.daemons.map(d => d.peer))
    const workers = Object.values(run.jobs).map((j: any) => j.worker)
    t.equal(workers.length, 4, 'four vanilla jobs in the grid run')
    t.ok(workers.every(w => peers.has(w)), 'each ran on a lab daemon')
    t.notOk(existsSync(path.join(local, 'bgrid-runs')), 'the local run needed no worker')
    await idle()
  })

  t.test('examples/dagman/wordcount.dag: the files it leaves equal those of the same DAG with every job local', async t => {
    const grid = path.join(cluster.tmp, 'wc-grid')
    const local = path.join(cluster.tmp, 'wc-local')
    cpSync(path.join(ROOT, 'examples', 'dagman'), grid, { recursive: true })
    cpSync(path.join(ROOT, 'examples', 'dagman'), local, { recursive: true })
    for (const f of ['split.sub', 'count.sub', 'sum.sub']) writeFileSync(path.join(local, f), readFileSync(path.join(local, f), 'utf8').replace('universe = vanilla', 'universe = local'))
    const g = await submit(grid, 'wordcount.dag')
    t.equal(g.code, 0, g.stderr)
    await idle()
    const l = await submit(local, 'wordcount.dag')
    t.equal(l.code, 0, l.stderr)
    for (const f of ['part-a.txt', 'part-b.txt', 'count-COUNT_A.txt', 'count-COUNT_B.txt', 'total.txt', 'split.out', 'COUNT_A.out', 'COUNT_B.out', 'sum.out', 'report.txt']) {
      t.equal(readFileSync(path.join(grid, f), 'utf8'), readFileSync(path.join(local, f), 'utf8'), `${f}: the same bytes`)
    }
    t.equal(readFileSync(path.join(grid, 'total.txt'), 'utf8').trim(), execFileSync('sh', ['-c', 'wc -w < words.txt'], { cwd: grid, encoding: 'utf8' }).trim())
    t.match(readFileSync(path.join(grid, 'report.txt'), 'utf8'), /^DAG status 0, 0 failed node\(s\); words: \d+\n$/)
    await idle()
  })

  t.test('a file a worker sent is never run or read as a submit file on the submitter: the node that would fails, saying why', async t => {
    const dir = path.join(cluster.tmp, 'worker-file')
    mkdirSync(dir, { recursive: true })
    // a worker's job writes the submit file of a later node (a hostile worker could write anything there)
    writeFileSync(path.join(dir, 'gen.sh'), ['#!/bin/sh', "cat > next.sub <<'X'", 'universe = local', 'executable = /bin/sh', 'arguments = "-c \'touch PWNED\'"', 'queue', 'X', ''].join('\n'), { mode: 0o755 })
    writeFileSync(path.join(dir, 'gen.sub'), 'universe = vanilla\nexecutable = gen.sh\ntransfer_output_files = next.sub\nqueue\n')
    writeFileSync(path.join(dir, 'w.dag'), 'JOB GEN gen.sub\nJOB RUN next.sub\nPARENT GEN CHILD RUN\n')
    const r = await submit(dir, 'w.dag')
    t.equal(r.code, 1, r.stderr)
    t.match(readFileSync(path.join(dir, 'next.sub'), 'utf8'), /touch PWNED/, 'the worker\'s file came back')
    t.notOk(existsSync(path.join(dir, 'PWNED')), 'but nothing it says ran here')
    t.match(readFileSync(path.join(dir, 'w.dag.dagman.out'), 'utf8'), /the submit file .*next\.sub was brought back from a worker in this run/)
    await idle()
  })

  t.test('ABORT-DAG-ON removes a vanilla job still running: the DAG exits with RETURN, nothing is left on the workers', async t => {
    const dir = path.join(cluster.tmp, 'abort')
    mkdirSync(dir, { recursive: true })
    writeFileSync(path.join(dir, 'long.sub'), 'universe = vanilla\nexecutable = /bin/sleep\narguments = 417\nqueue\n')
    writeFileSync(path.join(dir, 'quit.sh'), '#!/bin/sh\n# give the long job time to start on its worker\nfor i in $(seq 1 100); do [ -e started ] && break; sleep 0.1; done\nexit 5\n', { mode: 0o755 })
    writeFileSync(path.join(dir, 'quit.sub'), 'universe = local\nexecutable = quit.sh\nqueue\n')
    writeFileSync(path.join(dir, 'a.dag'), 'JOB LONG long.sub\nJOB QUIT quit.sub\nABORT-DAG-ON QUIT 5 RETURN 7\n')
    const p = submit(dir, 'a.dag')
    // the long job runs once its process is there (bounded: 60 s)
    const running = (): boolean => { try { return execFileSync('pgrep', ['-f', 'sleep 417'], { encoding: 'utf8' }).trim() !== '' } catch { return false } }
    for (let i = 0; i < 600 && !running(); i++) await new Promise(resolve => setTimeout(resolve, 100))
    t.ok(running(), 'the long job started on a worker')
    writeFileSync(path.join(dir, 'started'), '')
    const r = await p
    t.equal(r.code, 7, `the ABORT-DAG-ON RETURN value ${r.stderr}`)
    t.ok(r.ms < 60_000, `the DAG did not wait for the 417 s job (${r.ms} ms)`)
    t.match(readFileSync(path.join(dir, 'a.dag.dagman.out'), 'utf8'), /ABORT-DAG-ON/)
    await idle()
    let left = ''
    try { left = execFileSync('pgrep', ['-af', 'sleep 417'], { encoding: 'utf8' }) } catch {}
    t.equal(left.trim(), '', 'no process of the removed job is left')
  })

  t.test('workers gone while local nodes run, back later: the next vanilla node waits for them and runs (the grid run does not give up)', async t => {
    const dir = path.join(cluster.tmp, 'gap')
    mkdirSync(dir, { recursive: true })
    writeFileSync(path.join(dir, 'v.sub'), 'universe = vanilla\nexecutable = /bin/echo\narguments = ran on a worker\noutput = $(JOB).out\nqueue\n')
    writeFileSync(path.join(dir, 'hold.sh'), '#!/bin/sh\ntouch hold.started\nfor i in $(seq 1 600); do [ -e go ] && exit 0; sleep 0.1; done\nexit 1\n', { mode: 0o755 })
    writeFileSync(path.join(dir, 'hold.sub'), 'universe = local\nexecutable = hold.sh\nqueue\n')
    writeFileSync(path.join(dir, 'g.dag'), 'JOB A v.sub\nJOB B hold.sub\nJOB C v.sub\nPARENT A CHILD B\nPARENT B CHILD C\n')
    const p = submit(dir, 'g.dag', ['--wait', '3'])
    await waitForFile(path.join(dir, 'hold.started'))
    t.ok(existsSync(path.join(dir, 'hold.started')), 'A ran, B holds')
    // every daemon goes away, for longer than --wait
    const gone = cluster.daemons.filter(d => d.alive)
    for (const d of gone) d.kill('SIGTERM')
    await Promise.all(gone.map(async d => await d.done(20_000)))
    await new Promise(resolve => setTimeout(resolve, 5000))
    writeFileSync(path.join(dir, 'go'), '')
    await new Promise(resolve => setTimeout(resolve, 2000))
    // they come back (same hosts, same data)
    for (const d of gone) await cluster.startDaemon(['--always-available'], d.host, path.basename(d.dataDir))
    const r = await p
    t.equal(r.code, 0, r.stderr)
    t.equal(readFileSync(path.join(dir, 'C.out'), 'utf8'), 'ran on a worker\n')
  })

  t.test('a long local phase gives the workers back (--release-after), and the next vanilla node claims them again', async t => {
    await idle()
    const dir = path.join(cluster.tmp, 'release')
    mkdirSync(dir, { recursive: true })
    writeFileSync(path.join(dir, 'v.sub'), 'universe = vanilla\nexecutable = /bin/echo\narguments = $(JOB) on a worker\noutput = $(JOB).out\nqueue\n')
    writeFileSync(path.join(dir, 'hold.sh'), '#!/bin/sh\ntouch hold.started\nfor i in $(seq 1 1200); do [ -e go ] && exit 0; sleep 0.1; done\nexit 1\n', { mode: 0o755 })
    writeFileSync(path.join(dir, 'hold.sub'), 'universe = local\nexecutable = hold.sh\nqueue\n')
    writeFileSync(path.join(dir, 'r.dag'), 'JOB A v.sub\nJOB B hold.sub\nJOB C v.sub\nPARENT A CHILD B\nPARENT B CHILD C\n')
    const live = cluster.daemons.filter(d => d.alive)
    const p = submit(dir, 'r.dag', ['--release-after', '1'])
    await waitForFile(path.join(dir, 'hold.started'))
    t.ok(existsSync(path.join(dir, 'hold.started')), 'A ran on a worker, B (local) holds')
    // while B holds, every daemon is offered again (released), not kept by the DAG
    await Promise.all(live.map(async d => await d.until(() => {
      const st = d.events.filter(e => e.msg === 'state').at(-1)
      return st?.to === 'idle' ? true : undefined
    }, 20_000, 'released while the DAG runs locally')))
    t.pass('the workers were given back during the local phase')
    writeFileSync(path.join(dir, 'go'), '')
    const r = await p
    t.equal(r.code, 0, r.stderr)
    t.equal(readFileSync(path.join(dir, 'C.out'), 'utf8'), 'C on a worker\n', 'C ran on a worker claimed again')
    t.equal(readdirSync(path.join(dir, 'bgrid-runs')).length, 2, 'two grid runs: before and after the local phase')
  })
}
