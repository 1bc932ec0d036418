// `bgrid export dagman DAG.json -o DIR` (middleware-adapters/condor/export.ts): HTCondor is not
// installable here, so the DAGMan files it writes are read back with bgrid's own DAGMan
// reader and importer, and import(export(x)) must give x's graph, commands, files,
// resources and requirements back; commands are also run, before and after, and their
// output compared byte for byte.
import t from 'tap'
import { mkdtempSync, writeFileSync, mkdirSync, rmSync, readFileSync, existsSync } from 'node:fs'
import { spawnSync, type SpawnSyncReturns } from 'node:child_process'
import os from 'node:os'
import path from 'node:path'
import { readDagmanFile } from '../middleware-adapters/condor/dag-file.ts'
import { readSubmitFile } from '../middleware-adapters/condor/submit-file.ts'
import { dagmanToDagJson } from '../middleware-adapters/condor/to-dag-json.ts'
import {
  dagToDagman, macroSafe, newSyntax, newSyntaxEnv, requirementsToClassAd
} from '../middleware-adapters/condor/export.ts'
import { exportDagman } from '../bin/commands/export.ts'
import { parseArguments, parseEnvironment } from '../middleware-adapters/condor/submit-args.ts'
import { expandMacros } from '../middleware-adapters/condor/vars.ts'
import { parseDag } from '../coordinator/dag-json.ts'
import { type Dag, type JobSpec } from '../coordinator/core/model.ts'
import { parseExpr, evalBool, type Attrs } from '../protocol/expr.ts'
import { BgridError } from '../protocol/errors.ts'

const ROOT = path.resolve(import.meta.dirname, '..')
const BGRID = path.join(ROOT, 'bin', 'bgrid.ts')
const tmp = mkdtempSync(path.join(os.tmpdir(), 'bgrid-export-'))
t.teardown(() => { rmSync(tmp, { recursive: true, force: true }) })

let cases = 0
/** a directory with a dag.json and files (name -> text) */
function fixture (dag: unknown, files: Record<string, string> = {}): string {
  const dir = path.join(tmp, `case${++cases}`, 'src')
  for (const [name, text] of Object.entries(files)) {
    mkdirSync(path.dirname(path.join(dir, name)), { recursive: true })
    writeFileSync(path.join(dir, name), text)
  }
  mkdirSync(dir, { recursive: true })
  writeFileSync(path.join(dir, 'dag.json'), JSON.stringify(dag, null, 1))
  return dir
}

/** the message of the INVALID_DAG error fn throws */
function refused (fn: () => unknown): string {
  try { fn(); return 'accepted' } catch (err) {
    if (!(err instanceof BgridError) || err.code !== 'INVALID_DAG') throw err
    return err.message
  }
}

// arguments no shell or submit file should mangle
const AWKWARD = ['a b', "it's", 'say "hi"', '$HOME $(x) $$ $$(y) $ENV(HOME) $(DOLLAR)', 'back\\slash\\', '', 'tab\there', "''", '""', '#not a comment', 'x,y', '  padded  ']

const DIAMOND = {
  name: 'roundtrip',
  requirements: 'disk >= 100',
  defaults: { retries: 1, env: { LANG: 'C' } },
  jobs: [
    {
      id: 'split',
      cmd: 'head -n 2 words.txt > top.txt && tail -n +3 words.txt > bottom.txt && echo "split $(wc -l < words.txt)"',
      inputs: [{ src: 'data/words.txt', as: 'words.txt' }],
      outputs: ['top.txt', 'bottom.txt'],
      cores: 2,
      ram: 512,
      disk: 100,
      requirements: 'ram >= 2048 && os == "linux"',
      timeout: 30
    },
    {
      id: 'left',
      // argv, run without a shell of its own: the arguments reach "$@" as they are
      cmd: ['/bin/sh', '-c', 'printf "[%s]" "$@"; printf "\\n%s|%s|%s\\n" "$GREETING" "$Q" "$LANG"; wc -w < top.txt; wc -w < top.txt > part.txt', 'sh', ...AWKWARD],
      inputs: ['job:split/top.txt'],
      outputs: ['part.txt'],
      env: { GREETING: 'hello  world', Q: 'it\'s "q" $(x) $$(y) \\' },
      requirements: 'HasMatlab == true',
      retries: 3
    },
    {
      id: 'right',
      // a script input run as the program: HTCondor's transferred executable
      cmd: ['./count.sh', 'bottom.txt'],
      inputs: ['count.sh', 'job:split/bottom.txt'],
      outputs: ['count.txt', 'part.txt'],
      requirements: 'arch == "x64" || ram / 1000 > 2.5',
      retries: 0
    },
    {
      id: 'join',
      cmd: 'cat part.txt count.txt > total.txt',
      // right's part.txt has the same name as left's: each comes back to its own node directory
      inputs: ['job:left/part.txt', 'job:right/count.txt'],
      after: ['split'],
      outputs: ['total.txt', { name: 'sub/extra.txt', size: 10 }],
      requirements: 'cost <= 2 && cores >= 2',
      network: false
    },
    {
      id: 'lone',
      // a program found in PATH
      cmd: ['printf', '%s\\n', ...AWKWARD]
    }
  ]
}
const DIAMOND_FILES = { 'data/words.txt': 'one two\nthree\nfour five six\nseven\n', 'count.sh': '#!/bin/sh\nwc -l < "$1" > count.txt\ncp count.txt part.txt\n' }

/** machines to evaluate requirements on */
const MACHINES: Attrs[] = []
for (const ram of [1024, 2048, 4096]) {
  for (const os of ['linux', 'darwin', 'win32']) {
    for (const arch of ['x64', 'arm64']) {
      for (const cores of [1, 4]) {
        for (const extra of [undefined, { hasmatlab: true }, { hasmatlab: false }]) {
          for (const cost of [0, 5]) {
            MACHINES.push({ ram, cores, mhz: 2000, disk: cores === 1 ? 50 : 500, load: 0, cost, os, arch, ...(extra !== undefined ? { extra } : {}) })
          }
        }
      }
    }
  }
}
const describe = (a: Attrs): string => JSON.stringify(a)

/** what the imported command runs: its `exec ARGV > id.out 2> id.err`, with printf in exec's place */
function importedArgv (job: JobSpec, dir: string): { argv: string[], redirected: boolean, status: number | null } {
  const line = job.cmd[0] === '/bin/sh' && job.cmd[1] === '-c' ? job.cmd[2] : ''
  const redirected = line.endsWith(` > ${job.id}.out 2> ${job.id}.err`)
  const probe = line.replace(/(^|&& )exec /, '$1printf \'%s\\0\' ')
  mkdirSync(dir, { recursive: true })
  const r = spawnSync('/bin/sh', ['-c', probe], { cwd: dir, encoding: 'utf8' })
  const file = path.join(dir, `${job.id}.out`)
  return { argv: existsSync(file) ? readFileSync(file, 'utf8').split('\0').slice(0, -1) : [], redirected, status: r.status }
}

t.test('round trip: import(export(x)) gives back x\'s graph, commands, files, resources and requirements', async t => {
  const src = fixture(DIAMOND, DIAMOND_FILES)
  const file = path.join(src, 'dag.json')
  const orig = parseDag(JSON.parse(readFileSync(file, 'utf8')), file)
  const out = path.join(path.dirname(src), 'condor')
  const r = exportDagman(file, out)
  t.equal(r.dagFile, path.join(out, 'roundtrip.dag'))
  t.same(r.summary, { jobs: 5, edges: 5, retried: 4 })
  t.ok(r.warnings.some(w => /cost <= 2/.test(w) && /job join/.test(w)), 'the untranslated cost term is a warning naming the job')
  t.ok(r.warnings.some(w => /network: false/.test(w) && /job join/.test(w)))
  t.ok(r.warnings.some(w => /allowed_execute_duration/.test(w) && /job split/.test(w)))
  t.match(readFileSync(path.join(out, 'join', 'join.sub'), 'utf8'), /^# bgrid: requirements: cost <= 2 \(left out: cost has no ClassAd equivalent: .*\)$/m)

  // every file parses with bgrid's DAGMan reader, and says what DAGMan needs
  const dm = readDagmanFile(r.dagFile)
  t.same(dm.nodes.map(n => n.name).sort(), orig.jobs.map(j => j.id).sort())
  for (const n of dm.nodes) {
    t.equal(n.dir, path.join(out, n.name), `${n.name} runs in its own directory`)
    t.equal(n.retry?.count ?? 0, orig.byId.get(n.name)?.retries, `${n.name}: RETRY`)
    const sub = readSubmitFile(path.join(n.dir, n.submit))
    const keys = new Map(sub.statements.flatMap(s => s.kind === 'set' ? [[s.canon, s.value] as const] : []))
    t.equal(keys.get('universe'), 'vanilla')
    t.equal(keys.get('should_transfer_files'), 'YES')
    t.equal(keys.get('when_to_transfer_output'), 'ON_EXIT')
    t.equal(keys.get('output'), `${n.name}.out`)
    t.equal(keys.get('log'), '../roundtrip.log')
    t.ok(sub.statements.some(s => s.kind === 'queue'))
  }
  const subOf = (id: string): string => readFileSync(path.join(out, id, `${id}.sub`), 'utf8')
  t.match(subOf('split'), /^request_disk = 102400$/m, 'disk MiB as KiB')
  t.match(subOf('split'), /^request_memory = 512$/m)
  t.match(subOf('split'), /^allowed_execute_duration = 30$/m)
  t.match(subOf('split'), /^transfer_input_files = \.\.\/\.\.\/src\/data\/words\.txt$/m, 'inputs named where they are, nothing copied')
  t.match(subOf('split'), /^requirements = .*TARGET\.Memory >= 2048.*TARGET\.OpSys == "LINUX"/m)
  t.match(subOf('left'), /^transfer_input_files = \.\.\/split\/top\.txt$/m)
  t.match(subOf('left'), /^requirements = .*TARGET\.HasMatlab == true/m)
  t.match(subOf('lone'), /^executable = \/usr\/bin\/env$/m)
  t.match(subOf('right'), /^executable = \.\.\/\.\.\/src\/count\.sh$/m)
  t.notMatch(subOf('right'), /^transfer_executable/m)
  t.notMatch(subOf('right'), /^transfer_input_files = .*count\.sh/m, 'the program is not sent twice')

  // back to dag.json, in a directory above both
  const back = path.join(path.dirname(src), 'back.json')
  const conv = dagmanToDagJson(dm, { out: back, env: {} })
  t.same(conv.unknown, [], 'no submit command the importer does not know')
  t.same(conv.warnings, [], 'the importer has nothing to warn about')
  const again = parseDag(conv.dag, back)

  t.same(again.jobs.map(j => j.id).sort(), orig.jobs.map(j => j.id).sort(), 'the same jobs')
  for (const j of orig.jobs) {
    const k = again.byId.get(j.id) as JobSpec
    t.same([...k.after].sort(), [...j.after].sort(), `${j.id}: the same parents`)
    t.same(k.env, j.env, `${j.id}: the same environment`)
    // a file input's rel is relative to its dag.json: the same file is the same absolute path
    const files = (x: JobSpec): string[] => x.inputs.map(i => `${i.name} <- ${i.source.kind === 'file' ? i.source.path : `job:${i.source.job}/${i.source.file}`}`).sort()
    t.same(files(k), files(j), `${j.id}: the same inputs`)
    t.same(k.outputs.filter(o => o !== `${j.id}.out` && o !== `${j.id}.err`), j.outputs, `${j.id}: the same outputs`)
    t.same([k.cores, k.ram, k.disk, k.retries, k.timeoutMs], [j.cores, j.ram, j.disk, j.retries, j.timeoutMs], `${j.id}: the same resources, retries and timeout`)
    // the same program and arguments
    const { argv, redirected, status } = importedArgv(k, path.join(tmp, `probe-${cases}-${j.id}`))
    t.equal(status, 0, `${j.id}: the imported command line runs`)
    t.ok(redirected, `${j.id}: stdout and stderr go to ${j.id}.out and ${j.id}.err`)
    const expected = j.id === 'lone' ? ['/usr/bin/env', ...j.cmd] : j.id === 'right' ? ['/bin/sh', ...j.cmd] : j.cmd
    t.same(argv, expected, `${j.id}: the same argv`)
    // requirements: the same verdict on every machine (the DAG's and the job's together)
    const effective = (d: Dag, x: JobSpec) => (a: Attrs): boolean => (d.requirements === null || evalBool(d.requirements, a)) && (x.requirements === null || evalBool(x.requirements, a))
    const was = effective(orig, j)
    const now = effective(again, k)
    let differ = 0
    for (const m of MACHINES) {
      if (j.id === 'join') {
        // cost is left out: never stricter, and the same wherever cost would hold
        if (was(m) && !now(m)) { differ++; t.fail(`join: stricter on ${describe(m)}`) }
        if (Number(m.cost) <= 2 && was(m) !== now(m)) { differ++; t.fail(`join: differs on ${describe(m)}`) }
      } else if (was(m) !== now(m)) { differ++; t.fail(`${j.id}: ${was(m)} before, ${now(m)} after on ${describe(m)}`) }
    }
    t.equal(differ, 0, `${j.id}: requirements agree on ${MACHINES.length} machines`)
    t.ok(MACHINES.some(m => was(m)) && MACHINES.some(m => !was(m)), `${j.id}: requirements matter on these machines`)
  }
  t.equal(again.name, orig.name)
})

t.test('round trip: the commands print the same bytes before and after', async t => {
  const src = fixture(DIAMOND, DIAMOND_FILES)
  const file = path.join(src, 'dag.json')
  const orig = parseDag(JSON.parse(readFileSync(file, 'utf8')), file)
  const out = path.join(path.dirname(src), 'condor')
  const dm = readDagmanFile(exportDagman(file, out).dagFile)
  const back = path.join(path.dirname(src), 'back.json')
  const again = parseDag(dagmanToDagJson(dm, { out: back, env: {} }).dag, back)
  const env = { PATH: process.env.PATH ?? '/usr/bin:/bin' }
  for (const id of ['left', 'lone', 'split']) {
    const j = orig.byId.get(id) as JobSpec
    const k = again.byId.get(id) as JobSpec
    const [d1, d2] = ['before', 'after'].map(w => {
      const d = path.join(path.dirname(src), `run-${id}-${w}`)
      mkdirSync(d, { recursive: true })
      writeFileSync(path.join(d, 'top.txt'), 'one two\n')
      writeFileSync(path.join(d, 'words.txt'), DIAMOND_FILES['data/words.txt'])
      return d
    })
    const a = spawnSync(j.cmd[0], j.cmd.slice(1), { cwd: d1, env: { ...env, ...j.env } })
    const b = spawnSync(k.cmd[0], k.cmd.slice(1), { cwd: d2, env: { ...env, ...k.env } })
    t.equal(a.status, 0, `${id} ran before`)
    t.equal(b.status, 0, `${id} ran after`)
    t.ok(a.stdout.length > 0, `${id} printed something`)
    t.equal(readFileSync(path.join(d2, `${id}.out`)).toString('latin1'), a.stdout.toString('latin1'), `${id}: the same stdout, byte for byte`)
    for (const o of j.outputs.filter(o => existsSync(path.join(d1, o)))) t.equal(readFileSync(path.join(d2, o), 'utf8'), readFileSync(path.join(d1, o), 'utf8'), `${id}: the same ${o}`)
  }
  // the awkward arguments, one per line, as printf received them
  t.equal(readFileSync(path.join(path.dirname(src), 'run-lone-after', 'lone.out'), 'utf8'), AWKWARD.map(a => a + '\n').join(''))
})

t.test('values: quoting that parseArguments, parseEnvironment and macro expansion undo exactly', async t => {
  const scope = { lookup: () => 'WRONG', env: { HOME: '/WRONG' }, cwd: '/' }
  // condor_submit's expansion, then HTCondor's at match time ($$(DOLLARDOLLAR) is $$)
  const expand = (v: string): string => expandMacros(v, scope).replace(/\$\$\(DOLLARDOLLAR\)/g, () => '$$')
  for (const words of [AWKWARD, [''], ['a'], ["'"], ['"'], ['$$(x)$$'], ['$$$(x)'], ['$INT(3)'], ['a\tb c'], ['100%', '$']]) {
    const value = macroSafe(newSyntax(words))
    t.same(parseArguments(expand(value)), words, `arguments ${JSON.stringify(words)} -> ${value}`)
  }
  const env = { A: 'x y', B: "it's", C: '"q"', D: '', E: '$(HOME) $$(x)', F: 'a=b', G: '\\' }
  t.equal(newSyntaxEnv({ A: 'x y', B: '1' }), `"A='x y' B=1"`, 'values quoted as HTCondor\'s manual does')
  t.same(parseEnvironment(expand(macroSafe(newSyntaxEnv(env)))), env)
})

t.test('requirements: bgrid\'s attributes become HTCondor\'s; what has no equivalent is left out, never made stricter', async t => {
  const tr = (...src: string[]): ReturnType<typeof requirementsToClassAd> => requirementsToClassAd(src.map(s => parseExpr(s)))
  t.same(tr('ram >= 2048 && os == "linux"'), { classad: 'TARGET.Memory >= 2048 && TARGET.OpSys == "LINUX"', left: [] })
  t.equal(tr('"x64" != arch').classad, '"X86_64" != TARGET.Arch')
  t.equal(tr('os == "Linux"').classad, 'TARGET.OpSys == "LINUX"', '== ignores case, in bgrid as in ClassAds')
  t.same(tr('os =?= "Linux"').left.map(l => l.text), ['os =?= "Linux"'], '=?= does not: bgrid\'s os is never "Linux"')
  t.equal(tr('os =?= "linux"').classad, 'TARGET.OpSys =?= "LINUX"')
  t.equal(tr('disk > 10').classad, '(TARGET.Disk / 1024.0) > 10')
  t.equal(tr('ram / 3 > 1').classad, '1.0 * TARGET.Memory / 3 > 1', 'a real division, as bgrid\'s')
  t.equal(tr('min(ram, 4096) >= 2048').classad, '(TARGET.Memory < 4096 ? TARGET.Memory : 4096) >= 2048')
  t.equal(tr('(cores >= 2 || ram > 100) && HasGpu =?= true').classad, '(TARGET.Cpus >= 2 || TARGET.Memory > 100) && TARGET.HasGpu =?= true')
  t.equal(tr('cores >= 2', 'cores >= 2').classad, 'TARGET.Cpus >= 2', 'a term the DAG and the job share, once')
  const mixed = tr('load > 0.5 && ram > 1 && cost < 1 && os == "plan9" && Memory > 3 && sqrt(ram) > 2')
  t.equal(mixed.classad, 'TARGET.Memory > 1')
  t.same(mixed.left.map(l => l.text), ['load > 0.5', 'cost < 1', 'os == "plan9"', 'Memory > 3', 'sqrt(ram) > 2'])
  t.equal(tr('load > 1 || ram > 1').classad, null, 'an || with an untranslatable side is left out whole')
  // HTCondor's benchmarks, the way import reads them back (KFlops: GFLOPS x 1e6, Mips: the clock)
  t.equal(tr('gflops >= 2 && mhz > 1000').classad, '(TARGET.KFlops / 1000000.0) >= 2 && TARGET.Mips > 1000')
})

t.test('refused: what DAGMan cannot express, naming the job and the field, with nothing written', async t => {
  const base = { id: 'a', cmd: ['/bin/true'], outputs: ['x.txt', 'y.txt'] }
  const cases: Array<[string, unknown[], RegExp, Record<string, string>?]> = [
    ['verify', [{ ...base, middleware: 'boinc', quorum: 2 }], /job "a" field middleware: "boinc".*no DAGMan form/],
    ['renamed job input', [base, { id: 'c', cmd: ['/bin/true'], inputs: [{ src: 'job:a/x.txt', as: 'z.txt' }] }], /job "c" field inputs: an input named otherwise.*job:a\/x\.txt as z\.txt.*cannot rename/],
    ['input named with its directory', [{ id: 'c', cmd: ['/bin/true'], inputs: ['data/in.txt'] }], /job "c" field inputs: .*data\/in\.txt as data\/in\.txt.*"as": "in\.txt"/, { 'data/in.txt': 'x' }],
    ['multi-line shell command', [{ id: 'm', cmd: 'echo a\necho b' }], /job "m" field cmd: argument 2 .*line break/],
    ['outputs that come back as one file', [{ id: 'o', cmd: ['/bin/true'], outputs: ['a/r.txt', 'b/r.txt'] }], /job "o" field outputs: "a\/r\.txt" and "b\/r\.txt" would both come back as r\.txt/],
    ['an output over the job\'s stdout', [{ id: 'o', cmd: ['/bin/true'], outputs: ['o.out'] }], /job "o" field outputs: "o\.out" would come back over the job's own o\.out/],
    ['a reserved node name', [{ id: 'Parent', cmd: ['/bin/true'] }], /job "Parent" field id: .*reserves/],
    ['an environment name HTCondor refuses', [{ id: 'e', cmd: ['/bin/true'], env: { 'A-B': '1' } }], /job "e" field env: "A-B"/],
    ['a relative program no input provides', [{ id: 'p', cmd: ['./run.sh'] }], /job "p" field cmd: the program \.\/run\.sh .*no input/],
    ['a file name a list cannot hold', [{ id: 'f', cmd: ['/bin/true'], outputs: ['a b.txt'] }], /job "f" field outputs: "a b\.txt": .*commas and spaces/]
  ]
  for (const [what, jobs, expect, files] of cases) {
    const src = fixture({ name: 'bad', jobs }, files)
    const out = path.join(path.dirname(src), 'condor')
    t.match(refused(() => exportDagman(path.join(src, 'dag.json'), out)), expect, what)
    t.notOk(existsSync(out), `${what}: nothing written`)
  }
  // every problem at once
  const src = fixture({ jobs: [{ id: 'v', cmd: ['/bin/true'], middleware: 'boinc' }, { id: 'w', cmd: 'a\nb' }] })
  const msg = refused(() => dagToDagman(parseDag(JSON.parse(readFileSync(path.join(src, 'dag.json'), 'utf8')), path.join(src, 'dag.json')), { dir: path.join(src, 'x') }))
  t.match(msg, /job "v" field middleware/)
  t.match(msg, /job "w" field cmd/)
  // an input file inside a node's directory would be mixed with what comes back there
  const nested = fixture({ jobs: [{ id: 'data', cmd: ['/bin/true'] }, { id: 'b', cmd: ['/bin/true'], inputs: [{ src: 'data/in.txt', as: 'in.txt' }] }] }, { 'data/in.txt': 'x' })
  t.match(refused(() => exportDagman(path.join(nested, 'dag.json'), nested)), /job "b" field inputs: "data\/in\.txt" is in .*node directory of job "data"/)
})

t.test('warned, not refused: network: false, bgrid-only requirements and rank', async t => {
  const src = fixture({
    rank: 'cores * cost',
    requirements: 'load < 0.5',
    jobs: [{ id: 'a', cmd: ['/bin/true'], network: false, cores: 1.5 }, { id: 'b', cmd: ['/bin/true'] }]
  })
  const r = exportDagman(path.join(src, 'dag.json'), path.join(path.dirname(src), 'condor'))
  t.ok(r.warnings.some(w => /^field network: false/.test(w) && /\(job a\)$/.test(w)))
  t.ok(r.warnings.some(w => /^dag field rank: cores \* cost left out .*: cost has no ClassAd equivalent/.test(w)))
  t.ok(r.warnings.some(w => /^dag field requirements: load < 0\.5/.test(w)))
  t.ok(r.warnings.some(w => /request_cpus is a whole number/.test(w)))
  const sub = readFileSync(path.join(r.dir, 'a', 'a.sub'), 'utf8')
  t.match(sub, /^request_cpus = 2$/m)
  t.notMatch(sub, /^requirements/m)
  t.match(sub, /^# bgrid: requirements: load < 0\.5 \(left out/m)
  t.match(readFileSync(r.dagFile, 'utf8'), /^# bgrid: rank = cores \* cost$/m)
  // a rank that translates goes to every job; the importer makes it the DAG's again
  const ranked = fixture({ rank: 'ram + 2 * cores', jobs: [{ id: 'a', cmd: ['/bin/true'] }, { id: 'b', cmd: ['/bin/true'], retries: 0 }] })
  const r2 = exportDagman(path.join(ranked, 'dag.json'), path.join(path.dirname(ranked), 'condor'))
  t.match(readFileSync(path.join(r2.dir, 'b', 'b.sub'), 'utf8'), /^rank = TARGET\.Memory \+ 2 \* TARGET\.Cpus$/m)
  const back = path.join(path.dirname(ranked), 'back.json')
  const again = parseDag(dagmanToDagJson(readDagmanFile(r2.dagFile), { out: back, env: {} }).dag, back)
  const m: Attrs = { ram: 100, cores: 3, mhz: 1, disk: 1, load: 0, cost: 0, os: 'linux', arch: 'x64' }
  t.equal(parseExpr(again.rank.source).source, again.rank.source)
  t.equal((await import('../protocol/expr.ts')).evalNumber(again.rank, m), 106)
  t.same(again.jobs.map(j => j.retries), [2, 0], 'dag.json\'s default of 2 retries is written as RETRY 2')
})

t.test('CLI: bgrid export dagman writes, refuses to overwrite without --force, and bgrid import dagman reads it back', async t => {
  const src = fixture(DIAMOND, DIAMOND_FILES)
  const out = path.join(path.dirname(src), 'condor')
  const bgrid = (...args: string[]): SpawnSyncReturns<string> => spawnSync(process.execPath, [BGRID, ...args], { encoding: 'utf8', timeout: 60_000, env: { ...process.env, BGRID_HOME: path.join(tmp, 'home') } })
  const first = bgrid('export', 'dagman', path.join(src, 'dag.json'), '-o', out)
  t.equal(first.status, 0, first.stderr)
  t.match(first.stdout, `${path.join(out, 'roundtrip.dag')}: 5 jobs, 5 edges, RETRY on 4`)
  t.match(first.stdout, `condor_submit_dag roundtrip.dag`)
  t.match(first.stderr, /^warning: .*cost/m)
  for (const id of ['split', 'left', 'right', 'join', 'lone']) t.ok(existsSync(path.join(out, id, `${id}.sub`)), `${id}.sub written`)
  const again = bgrid('export', 'dagman', path.join(src, 'dag.json'), '-o', out)
  t.equal(again.status, 2)
  t.match(again.stderr, /roundtrip\.dag exists \(--force replaces it/)
  t.equal(bgrid('export', 'dagman', path.join(src, 'dag.json'), '-o', out, '--force').status, 0)
  const imported = bgrid('import', 'dagman', path.join(out, 'roundtrip.dag'), '-o', path.join(path.dirname(src), 'back.json'))
  t.equal(imported.status, 0, imported.stderr)
  t.match(imported.stdout, /5 jobs from 5 DAGMan nodes, 5 edges/)

  const bad = fixture({ jobs: [{ id: 'v', cmd: ['/bin/true'], middleware: 'boinc' }] })
  const refusedRun = bgrid('export', 'dagman', path.join(bad, 'dag.json'), '-o', path.join(path.dirname(bad), 'condor'))
  t.equal(refusedRun.status, 2)
  t.match(refusedRun.stderr, /INVALID_DAG: .*cannot be written as a DAGMan DAG\n {2}job "v" field middleware/)
  const unknown = bgrid('export', 'slurm', path.join(bad, 'dag.json'), '-o', path.join(tmp, 'x'))
  t.equal(unknown.status, 2)
  t.match(unknown.stderr, /unknown format slurm \(supported: dagman\)/)
  const invalid = fixture({ jobs: [{ id: 'a', command: 'x' }] })
  const inv = bgrid('export', 'dagman', path.join(invalid, 'dag.json'), '-o', path.join(tmp, 'y'))
  t.equal(inv.status, 2)
  t.match(inv.stderr, /bgrid calls it "cmd"/, 'the dag.json is validated first')
  const noOut = bgrid('export', 'dagman', path.join(invalid, 'dag.json'))
  t.equal(noOut.status, 2, 'the output directory is required')
})
