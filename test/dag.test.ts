import t from 'tap'
import { mkdtempSync, writeFileSync, mkdirSync, rmSync } from 'node:fs'
import { spawnSync } from 'node:child_process'
import os from 'node:os'
import path from 'node:path'
import { parseDag } from '../coordinator/dag-json.ts'
import { BgridError } from '../protocol/errors.ts'
import { BGRID } from '../testbed/cluster.ts'

const dir = mkdtempSync(path.join(os.tmpdir(), 'bgrid-dag-'))
mkdirSync(path.join(dir, 'data'))
writeFileSync(path.join(dir, 'data', 'in.txt'), 'hello\n')
const file = path.join(dir, 'dag.json')
t.teardown(() => { rmSync(dir, { recursive: true, force: true }) })

const bad = (raw: unknown): string => {
  try { parseDag(raw, file); return 'accepted' } catch (err) {
    if (!(err instanceof BgridError) || err.code !== 'INVALID_DAG') throw err
    return err.message
  }
}
const job = (o: Record<string, unknown>) => ({ id: 'a', cmd: ['true'], ...o })

t.test('a valid DAG is normalised', async t => {
  const d = parseDag({
    name: 'x',
    jobs: [
      job({ id: 'a', inputs: ['data/in.txt'], outputs: ['o.txt'] }),
      job({ id: 'b', cmd: 'echo hi > x', inputs: ['job:a/o.txt'] })
    ]
  }, file)
  t.same(d.byId.get('b')?.cmd, ['/bin/sh', '-c', 'echo hi > x'], 'a string cmd is an explicit sh -c')
  t.same(d.byId.get('b')?.after, ['a'], 'job: inputs imply the dependency')
  t.same(d.order, ['a', 'b'])
  t.equal(d.byId.get('a')?.inputs[0].source.kind, 'file')
  t.equal(d.workers.min, 1)
  t.equal(d.rank.source, 'cores * mhz / (1 + cost)')
})

t.test('each invalid case names the job and field', async t => {
  t.match(bad({ jobs: [job({ after: ['nope'] })] }), /job "a" field after: unknown job "nope"/)
  t.match(bad({ jobs: [job({ id: 'a', after: ['b'] }), job({ id: 'b', after: ['c'] }), job({ id: 'c', after: ['a'] })] }), /cycle: (a -> c -> b -> a|a -> b -> c -> a|b -> a -> c -> b|c -> b -> a -> c)/)
  t.match(bad({ jobs: [job({}), job({})] }), /job "a": duplicate id/)
  t.match(bad({ jobs: [job({ inputs: ['data/missing.txt'] })] }), /job "a" field inputs: "data\/missing.txt": no such file/)
  t.match(bad({ jobs: [job({ inputs: ['/etc/passwd'] })] }), /absolute path/)
  t.match(bad({ jobs: [job({ inputs: ['../x'] })] }), /"\.\." in path/)
  t.match(bad({ jobs: [job({ outputs: ['o', 'o'] })] }), /field outputs: "o" declared twice/)
  t.match(bad({ jobs: [job({ outputs: ['../../o'] })] }), /field outputs: .*"\.\." in path/)
  t.match(bad({ requirements: 'ram >= 2048 &&& cores', jobs: [job({})] }), /dag field requirements: .* at column \d+/)
  t.match(bad({ requirements: 'ram >= 2048 && gpus > 1', jobs: [job({})] }), /unknown attribute "gpus" .* at column 16/)
  t.match(bad({ jobs: [job({ requirements: 'process.exit(1)' })] }), /job "a" field requirements/)
  t.match(bad({ jobs: [job({ cmd: [] })] }), /job "a" \(jobs\[0\]\) field cmd/)
  t.match(bad({ jobs: [job({ retries: -1 })] }), /field retries: must be >= 0/)
  t.match(bad({ jobs: [job({ colour: 'red' })] }), /job "a" \(jobs\[0\]\): unknown field "colour" \(known: id, cmd, after, /)
  t.match(bad({ jobs: [] }), /jobs: must NOT have fewer than 1 items/)
  t.match(bad({ jobs: [job({ inputs: ['job:zz/o.txt'] })] }), /unknown job "zz"/)
  t.match(bad({ jobs: [job({ id: 'p', outputs: ['x'] }), job({ inputs: ['job:p/y'] })] }), /job "p" declares no output "y"/)
  t.match(bad({ workers: { min: 4, max: 2 }, jobs: [job({})] }), /min 4 > max 2/)
})

t.test('`bgrid submit` exits 2 with the message for an invalid DAG', async t => {
  writeFileSync(file, JSON.stringify({ jobs: [job({ after: ['ghost'] })] }))
  const r = spawnSync(process.execPath, [BGRID, 'submit', file, '--data-dir', path.join(dir, 'home')], { encoding: 'utf8' })
  t.equal(r.status, 2)
  t.match(r.stderr, /unknown job "ghost"/)
  writeFileSync(file, '{ "jobs": [ ')
  const r2 = spawnSync(process.execPath, [BGRID, 'submit', file, '--data-dir', path.join(dir, 'home')], { encoding: 'utf8' })
  t.equal(r2.status, 2)
  t.match(r2.stderr, /not valid JSON/)
  const r3 = spawnSync(process.execPath, [BGRID, 'daemon', '--port', 'abc'], { encoding: 'utf8' })
  t.equal(r3.status, 2, 'bad option: exit 2')
  t.match(r3.stderr, /--port must be a number/)
})

t.test('an unknown field is named with what was probably meant', async t => {
  // a typo: the known fields are listed (no field is near enough)
  t.match(bad({ jobs: [job({ preapre: 'make' })] }), /job "a" \(jobs\[0\]\): unknown field "preapre" \(known: id, cmd, after, inputs, outputs, env, retries, timeout, requirements, cores, ram, disk, network, runtime, middleware, quorum, replicas, maxErrors, maxTotal, deadline, compare, adaptive\)/)
  // other tools' names: bgrid's
  t.match(bad({ jobs: [job({ cpu: 2 })] }), /job "a" \(jobs\[0\]\): unknown field "cpu": bgrid calls it "cores"/)
  t.match(bad({ jobs: [{ id: 'a', command: 'make' }] }), /job "a" \(jobs\[0\]\): unknown field "command": bgrid calls it "cmd"/)
  t.match(bad({ jobs: [job({ request_memory: 2048 })] }), /unknown field "request_memory": bgrid calls it "ram"/)
  t.match(bad({ defaults: { request_cpus: 2 }, jobs: [job({})] }), /defaults: unknown field "request_cpus": bgrid calls it "cores"/)
  // near misses, transpositions included
  t.match(bad({ jobs: [job({ retires: 2 })] }), /unknown field "retires": did you mean "retries"\?/)
  t.match(bad({ workers: { mni: 1 }, jobs: [job({})] }), /workers: unknown field "mni": did you mean "min"\?/)
  t.match(bad({ naem: 'x', jobs: [job({})] }), /dag: unknown field "naem": did you mean "name"\?/)
})

t.test('sizes with units in an expression: ram and disk are MiB, and the message says what to write', async t => {
  t.match(bad({ requirements: 'ram >= 2GB', jobs: [job({})] }), /dag field requirements: "2GB": numbers have no units here \(ram and disk are in MiB: write `ram >= 2048`\) at column 8/)
  t.match(bad({ jobs: [job({ requirements: 'disk > 1.5 GiB && cores >= 2' })] }), /job "a" field requirements: "1.5 GiB": .*write `disk > 1536 && cores >= 2`/)
  t.match(bad({ requirements: 'ram >= 512M', jobs: [job({})] }), /write `ram >= 512`/)
  t.equal(bad({ requirements: 'ram >= 2048 && mhz > 1e3', jobs: [job({})] }), 'accepted', 'exponents are numbers, not units')
})
