// HTCondor DAGMan input (issue 10, first part): the line lexer, DAG commands, VARS
// quoting, submit descriptions (arguments, environment, units, macros), ClassAd
// requirements, the conversion to dag.json, DOT, `bgrid import dagman`, and HTCondor's
// own DAGMan tests from ../shared/corpus/htcondor-dagman/ (read in place, never copied).
import t from 'tap'
import { PENDING_CORPUS_TESTS } from '../testbed/corpus.ts'
import { mkdtempSync, writeFileSync, mkdirSync, rmSync, readFileSync, readdirSync, existsSync, copyFileSync } from 'node:fs'
import { spawnSync } from 'node:child_process'
import os from 'node:os'
import path from 'node:path'
import { logicalLines } from '../middleware-adapters/condor/lexer/lines.ts'
import { readDagmanFile, type DagmanDag } from '../middleware-adapters/condor/dag-file.ts'
import { parseVarsLine, expandMacros } from '../middleware-adapters/condor/vars.ts'
import { parseArguments, parseEnvironment } from '../middleware-adapters/condor/submit-args.ts'
import { parseQuantityMiB } from '../middleware-adapters/condor/submit-file.ts'
import { translateClassAd } from '../middleware-adapters/condor/classad.ts'
import { dagmanToDagJson, type Converted } from '../middleware-adapters/condor/to-dag-json.ts'
import { dagmanDot } from '../middleware-adapters/condor/dot.ts'
import { parseDag } from '../coordinator/dag-json.ts'
import { BgridError } from '../protocol/errors.ts'
import { parseExpr, evalBool } from '../protocol/expr.ts'

const ROOT = path.resolve(import.meta.dirname, '..')
const tmp = mkdtempSync(path.join(os.tmpdir(), 'bgrid-dagman-'))
t.teardown(() => { rmSync(tmp, { recursive: true, force: true }) })

let cases = 0
/** a directory of files (name -> text); scripts get a #! line */
function fixture (files: Record<string, string>): string {
  const dir = path.join(tmp, `case${++cases}`)
  for (const [name, text] of Object.entries(files)) {
    mkdirSync(path.dirname(path.join(dir, name)), { recursive: true })
    writeFileSync(path.join(dir, name), text)
  }
  return dir
}
const SH = '#!/bin/sh\nexit 0\n'
const SUB = 'executable = run.sh\nqueue\n'

/** the message of the INVALID_DAG error fn throws */
function refused (fn: () => unknown): string {
  try { fn(); return 'accepted' } catch (err) {
    if (!(err instanceof BgridError) || err.code !== 'INVALID_DAG') throw err
    return err.message
  }
}
const read = (dir: string, file = 'x.dag', lenient = false): DagmanDag => readDagmanFile(path.join(dir, file), { inlineSubdags: lenient })
function convert (dir: string, opts: { file?: string, lenient?: boolean } = {}): Converted {
  const out = path.join(dir, 'dag.json')
  const r = dagmanToDagJson(read(dir, opts.file, opts.lenient), { out, lenient: opts.lenient, env: { HOME: '/home/u' } })
  parseDag(r.dag, out)
  return r
}
const jobs = (r: Converted): any[] => (r.dag as any).jobs
const byId = (r: Converted, id: string): any => jobs(r).find(j => j.id === id)

// ---- the line lexer

t.test('lines: continuations join as DAGMan joins them, comments never continue', async t => {
  const l = logicalLines('JOB A \\\n   a.sub\r\n# a comment \\\nJOB B b.sub\nVARS B x="1"\\\n# commented out \\\n y="2"\n\n  PARENT A\\\nCHILD B\nJOB C#x c.sub')
  t.same(l.filter(x => !x.comment && x.text !== '').map(x => [x.line, x.text]), [
    [1, 'JOB A a.sub'],
    [4, 'JOB B b.sub'],
    [5, 'VARS B x="1"y="2"'],
    [9, 'PARENT ACHILD B'],
    [11, 'JOB C#x c.sub']
  ], 'white space around a continuation is trimmed, nothing inserted; a commented-out line inside one adds only its last character; # inside a line is no comment')
  t.ok(l.some(x => x.comment && x.line === 3), 'a comment ending in \\ is still one line')
})

// ---- DAG commands

t.test('DAG commands: keywords in any case, PARENT before JOB, every field read', async t => {
  const dir = fixture({
    'x.dag': [
      'parent A child B C',
      'Job A a.sub DIR sub NOOP',
      'JOB B b.sub DONE',
      'JOB C "c d.sub"',
      'Vars C PREPEND x="1" +Attr="\\"s\\""',
      'retry C 3 unless-exit 4',
      'Abort-Dag-On C 5 RETURN 1',
      'PRIORITY C 7',
      'CATEGORY C big',
      'MAXJOBS big 2',
      'SCRIPT DEFER 4 60 POST C post.sh $RETURN',
      'PRE_SKIP C 2',
      'DOT g.dot UPDATE DONT-OVERWRITE',
      'NODE_STATUS_FILE s.txt 30 ALWAYS-UPDATE',
      'JOBSTATE_LOG j.log',
      'CONFIG dagman.config',
      'SET_JOB_ATTR Foo = "bar"',
      'ENV GET PATH HOME',
      'SAVE_POINT_FILE C',
      'FINAL F f.sub',
      'INCLUDE more.dag',
      ''
    ].join('\n'),
    'more.dag': 'JOB D d.sub\nPARENT C CHILD D\n'
  })
  const d = read(dir)
  t.same(d.nodes.map(n => n.name), ['A', 'B', 'C', 'F', 'D'])
  const [a, b, c] = d.nodes
  t.equal(a.dir, path.join(dir, 'sub'))
  t.ok(a.noop)
  t.ok(b.done !== null)
  t.equal(c.submit, 'c d.sub', 'a quoted submit file name')
  t.same(c.vars.map(v => [v.name, v.value, v.prepend]), [['x', '1', true], ['My.Attr', '"s"', true]])
  t.same([c.retry?.count, c.retry?.unlessExit, c.abortDagOn?.value, c.abortDagOn?.returnValue, c.priority?.value, c.category?.name, c.preSkip?.code], [3, 4, 5, 1, 7, 'big', 2])
  t.same(c.scripts.map(s => [s.kind, s.command, s.defer]), [['POST', 'post.sh $RETURN', { status: 4, time: 60 }]])
  t.same(d.maxJobs.map(m => [m.category, m.limit]), [['big', 2]])
  t.same([d.dot?.file, d.dot?.update, d.dot?.overwrite], [path.join(dir, 'g.dot'), true, false])
  t.same(d.commands.map(x => x.keyword), ['DOT', 'NODE_STATUS_FILE', 'JOBSTATE_LOG', 'CONFIG', 'SET_JOB_ATTR', 'ENV'])
  t.same(d.nodes[3].kind, 'FINAL')
  t.same(d.nodes[4].parents, [2], 'INCLUDE reads the file into the same DAG')
  t.same(b.parents, [0])
  t.equal(d.edges, 3)
})

t.test('submit descriptions written in the DAG: JOB name { ... } and SUBMIT-DESCRIPTION', async t => {
  const dir = fixture({
    'x.dag': 'SUBMIT-DESCRIPTION common {\n  executable = run.sh\n  arguments = $(JOB)\n}\nJOB A common\nJOB B {\n  # inline\n  executable = run.sh\n  request_cpus = 3\n}\nPARENT A CHILD B\n',
    'run.sh': SH
  })
  const r = convert(dir)
  t.same(byId(r, 'A').cmd, ['/bin/sh', './run.sh', 'A'])
  t.same(byId(r, 'B'), { id: 'B', cmd: ['/bin/sh', './run.sh'], after: ['A'], inputs: ['run.sh'], cores: 3 })
})

t.test('every DAG error names its file and line', async t => {
  const cases: Array<[string, RegExp]> = [
    ['JOB A a.sub\nPARENT A CHILD Z\n', /x\.dag:2: unknown node Z/],
    ['JOB A a.sub\nRETRY A three\n', /x\.dag:2: invalid RETRY count "three"/],
    ['JOB A a.sub\nVARS A x=1\n', /x\.dag:2: VARS A: x's value must be quoted/],
    ['JOB A a.sub\nVARS A x="a\\nb"\n', /x\.dag:2: VARS A: x's value: unknown escape sequence "\\n"/],
    ['JOB A a.sub\nVARS A queue_x="1"\n', /x\.dag:2: .*cannot begin with "queue"/],
    ['JOB A a.sub\nVARS A x="1\n', /x\.dag:2: .*missing end quote/],
    ['\n\nFROB A\n', /x\.dag:3: expected JOB, .* \(found FROB\)/],
    ['JOB Parent a.sub\n', /x\.dag:1: node name Parent is a reserved word/],
    ['JOB a+b a.sub\n', /x\.dag:1: .*illegal characters \('\+'\)/],
    ['JOB A a.sub\nJOB A b.sub\n', /x\.dag:2: node A is defined twice \(first at x\.dag:1\)/],
    ['JOB A a.sub\nPARENT A B\n', /x\.dag:2: unknown node B|expected CHILD/],
    ['JOB A a.sub\nJOB B b.sub\nPARENT A\n', /x\.dag:3: expected CHILD/],
    ['JOB A a.sub EXTRA\n', /x\.dag:1: invalid parameter "EXTRA"/],
    ['JOB A a.sub\nPRIORITY A 1 2\n', /x\.dag:2: extra token \(2\) on PRIORITY line/],
    ['JOB A a.sub\nSCRIPT PRE A\n', /x\.dag:2: a PRE script for node A but no script file name/],
    ['JOB A a.sub\nABORT-DAG-ON A 1 RETURN 300\n', /x\.dag:2: invalid ABORT-DAG-ON RETURN value "300" \(must be <= 255\)/],
    ['FINAL F f.sub\nFINAL G g.sub\n', /x\.dag:2: the DAG has a FINAL node already \(F\)/],
    ['SUBDAG INTERNAL S s.dag\n', /x\.dag:1: only SUBDAG EXTERNAL is supported/],
    ['JOB A {\nexecutable = x\n', /x\.dag:1: no closing brace/],
    ['REJECT now\n', /x\.dag:1: extra token \(now\) on REJECT line/],
    ['INCLUDE nowhere.dag\n', /x\.dag:1: cannot read .*nowhere\.dag: no such file/],
    ['SPLICE S s.dag\nJOB S a.sub\n', /x\.dag:2: node name S is also a splice name|x\.dag:1: splice name S is also a node name/]
  ]
  for (const [text, re] of cases) {
    const dir = fixture({ 'x.dag': text, 's.dag': 'JOB A a.sub\n' })
    t.match(refused(() => read(dir)), re, JSON.stringify(text))
  }
  const dir = fixture({ 'x.dag': 'JOB A a.sub\nINCLUDE inc/more.dag\n', 'inc/more.dag': '# more\nPARENT A CHILD Q\n' })
  t.match(refused(() => read(dir)), /inc\/more\.dag:2: unknown node Q/, 'an error in an included file names that file')
})

t.test('a spliced DAG: names prefixed, PARENT/CHILD on a splice means its final/initial nodes', async t => {
  const dir = fixture({
    'x.dag': 'JOB top a.sub\nSPLICE S1 diamond.dag\nSPLICE S2 diamond.dag DIR other\nPARENT top CHILD S1\nPARENT S1 CHILD S2\nVARS S1+A x="y"\n',
    'diamond.dag': 'JOB A a.sub\nJOB B a.sub\nJOB C a.sub\nJOB D a.sub\nVARS ALL_NODES n="$(JOB)"\nPARENT A CHILD B C\nPARENT B C CHILD D\nSPLICE inner one.dag\nPARENT D CHILD inner\n',
    'one.dag': 'JOB X a.sub\n',
    'other/diamond.dag': 'JOB A a.sub\nJOB B a.sub\nPARENT A CHILD B\nSPLICE inner one.dag\n',
    'other/one.dag': 'JOB X a.sub\nJOB Y a.sub\n',
    'a.sub': 'executable = run.sh\noutput = $(n).out\nqueue\n',
    'other/a.sub': 'executable = ../run.sh\nqueue\n',
    'run.sh': SH
  })
  const d = read(dir)
  t.same(d.nodes.map(n => n.name), ['top', 'S1+A', 'S1+B', 'S1+C', 'S1+D', 'S1+inner+X', 'S2+A', 'S2+B', 'S2+inner+X', 'S2+inner+Y'])
  const parents = (name: string): string[] => d.nodes[d.byName.get(name) ?? -1].parents.map(i => d.nodes[i].name)
  t.same(parents('S1+A'), ['top'], 'CHILD S1 is S1\'s initial node')
  t.same(parents('S1+inner+X'), ['S1+D'])
  t.same(parents('S2+A').sort(), ['S1+inner+X'], 'PARENT S1 is S1\'s final nodes')
  t.same(parents('S2+inner+X').sort(), ['S1+inner+X'], 'a node with neither parents nor children is initial and final')
  t.same(parents('S2+inner+Y').sort(), ['S1+inner+X'])
  t.equal(d.nodes[d.byName.get('S2+A') ?? -1].dir, path.join(dir, 'other'), 'DIR: the splice\'s files and nodes are in it')
  t.same(d.nodes[1].vars.map(v => v.name), ['n', 'x'], 'ALL_NODES in a splice means its nodes; the outer file may name them in full')
  const r = convert(dir)
  t.same(jobs(r).map(j => j.id), ['top', 'S1.A', 'S1.B', 'S1.C', 'S1.D', 'S1.inner.X', 'S2.A', 'S2.B', 'S2.inner.X', 'S2.inner.Y'], 'the scope\'s + becomes . in job ids')
  t.same(byId(r, 'S1.B').outputs, ['S1+B.out'], '$(JOB) is the full DAGMan name')
  t.same(byId(r, 'S2.A').after, ['S1.inner.X'])
  t.same(r.renamed[0], ['S1+A', 'S1.A'])
  t.match(refused(() => read(fixture({ 'x.dag': 'SPLICE S s.dag\n', 's.dag': 'FINAL F f.sub\n' }))), /s\.dag:1: a splice cannot have a FINAL node/)
})

t.test('VARS: quoting and escapes as DAGMan has them', async t => {
  t.same(parseVarsLine('a="x\\"y\\\\z" b = "two words"\tc="$(JOB)"'), { prepend: null, pairs: [{ name: 'a', value: 'x"y\\z' }, { name: 'b', value: 'two words' }, { name: 'c', value: '$(JOB)' }] })
  t.same(parseVarsLine('APPEND +A="\\"bob\\""').pairs, [{ name: 'My.A', value: '"bob"' }])
  t.equal(parseVarsLine('PREPEND x="1"').prepend, true)
  t.throws(() => parseVarsLine('x="1" PREPEND'), /PREPEND must come before all the variables/)
  t.throws(() => parseVarsLine('a+b="1"'), /'\+' can only be the first character/)
  t.throws(() => parseVarsLine(''), /no name="value" pairs/)
  // the two levels: DAG quoting, then condor_submit's (new syntax doubles quotes, old escapes them)
  const dir = fixture({
    'x.dag': [
      'JOB N new.sub', 'VARS N first="Greg\\"\\"_LeMond" second="\\\\Fignon" third="$(JOB)Y"',
      'JOB O old.sub', 'VARS O second="Andreas\\\\\\"_Kloden" misc="!@#$%^&*()_-=+=[]{}?"',
      'JOB P new.sub', 'VARS P PREPEND first="p" second="from VARS"', 'VARS P APPEND third="appended"',
      'JOB R new.sub', 'VARS R first="$(RETRY)" second="" third=""', ''
    ].join('\n'),
    'new.sub': 'executable = run.sh\nsecond = from the file\narguments = "\'$(first)\' \'$(second)\' \'$(third)\'"\nqueue\n',
    'old.sub': 'executable = run.sh\narguments = $(second) $(misc) $(undefined)\nqueue\n',
    'run.sh': SH
  })
  const r = convert(dir)
  t.match(byId(r, 'N').cmd, ['/bin/sh', './run.sh', 'Greg"_LeMond', 'from the file', 'NY'], 'VARS PREPEND (the default) gives way to the file\'s own value')
  t.match(byId(r, 'O').cmd, ['/bin/sh', './run.sh', 'Andreas"_Kloden', '!@#$%^&*()_-=+=[]{}?'], 'an undefined macro is nothing')
  t.match(byId(r, 'P').cmd, ['/bin/sh', './run.sh', 'p', 'from the file', 'appended'])
  t.equal(byId(r, 'R').cmd, `exec /bin/sh ./run.sh "$BGRID_RETRY" 'from the file' ''`, '$(RETRY) is the attempt\'s $BGRID_RETRY')
})

// ---- submit descriptions

t.test('arguments: the old syntax and the new one, HTCondor\'s examples', async t => {
  t.same(parseArguments('one \\"two\\" \'three\''), ['one', '"two"', "'three'"])
  t.same(parseArguments('"3 simple arguments"'), ['3', 'simple', 'arguments'])
  t.same(parseArguments('"one \'two with spaces\' 3"'), ['one', 'two with spaces', '3'])
  t.same(parseArguments('"one ""two"" \'spacey \'\'quoted\'\' argument\'"'), ['one', '"two"', "spacey 'quoted' argument"])
  t.same(parseArguments('"a\'b c\'d \\\\x"'), ['ab cd', '\\\\x'], 'quotes may cover part of an argument; backslashes are plain in the new syntax')
  t.same(parseArguments('"\'\' x"'), ['', 'x'], 'an empty argument')
  t.same(parseArguments('  a\t b  '), ['a', 'b'])
  t.throws(() => parseArguments('a "b"'), /unescaped double quote/)
  t.throws(() => parseArguments('"a \'b"'), /unterminated single quote/)
  t.throws(() => parseArguments('"a " b"'), /must be doubled/)
})

t.test('environment: the new syntax and the old one', async t => {
  t.same(parseEnvironment('"one=1 two=""2"" three=\'spacey \'\'quoted\'\' value\'"'), { one: '1', two: '"2"', three: "spacey 'quoted' value" })
  t.same(parseEnvironment('one=1;two=2;three="quotes have no \'special\' meaning"'), { one: '1', two: '2', three: '"quotes have no \'special\' meaning"' })
  t.throws(() => parseEnvironment('"novalue"'), /not name=value/)
})

t.test('request_memory and request_disk: units, and their defaults (MiB, KiB)', async t => {
  const mem = (v: string): number => parseQuantityMiB(v, 'M')
  const disk = (v: string): number => parseQuantityMiB(v, 'K')
  t.same(['1024', '2G', '2 GB', '512MB', '32 Mb', '1.5G', '100K', '1T', '2gib'].map(mem), [1024, 2048, 2048, 512, 32, 1536, 1, 1048576, 2048])
  t.same(['1048576', '1G', '10M', '1', '2048 KB'].map(disk), [1024, 1024, 10, 1, 2])
  t.throws(() => mem('max({60, Target.TotalSlotMemory})'), /not a quantity/)
  t.throws(() => mem('12 parsecs'), /not a quantity/)
  const dir = fixture({
    'x.dag': 'JOB A a.sub\nJOB B b.sub\n',
    'a.sub': 'executable = run.sh\nrequest_cpus = 2\nrequest_memory = 2G\nrequest_disk = 4194304\nqueue\n',
    'b.sub': 'executable = run.sh\nrequest_memory = lots\nqueue\n',
    'run.sh': SH
  })
  t.match(refused(() => convert(dir)), /b\.sub:2: request_memory: "lots" is not a quantity .* \(MiB by default\) \(node B\)/)
  writeFileSync(path.join(dir, 'b.sub'), SUB)
  t.match(byId(convert(dir), 'A'), { cores: 2, ram: 2048, disk: 4096 })
})

t.test('macros: $(Process), $(Cluster), $ENV, $CHOICE, $F, defaults, recursion, conditions, queue N and queue in', async t => {
  const scope = { lookup: (n: string) => ({ a: 'x', list: 'p,q,r', file: '/d/e/f.tar.gz', n: '$(Process) + 1', process: '4' } as Record<string, string>)[n.toLowerCase()], env: { HOME: '/home/u' }, cwd: '/w' }
  t.equal(expandMacros('$(A)-$(b:def)-$ENV(HOME)-$ENV(NOPE:dflt)-$(DOLLAR)-$$(Memory)', scope), 'x-def-/home/u-dflt-$-$$(Memory)')
  t.equal(expandMacros('$CHOICE(1, list) $CHOICE(false, a, b) $Fnx(file) $Fp(file) $Fdb(file) $INT(n,%03d) $SUBSTR(file, -2)', scope), 'q a f.tar.gz /d/e/ e 005 gz')
  t.throws(() => expandMacros('$CHOICE(7, list)', scope), /index "7" is not 0..2/)
  const dir = fixture({
    'x.dag': 'JOB A a.sub\nVARS A mode="fast"\nJOB B b.sub\n',
    'a.sub': [
      'executable = run.sh', 'args_extra = -v', 'args_extra = $(args_extra) -q',
      'if defined mode', '  arguments = "$(mode) $(Cluster).$(Process) $(args_extra)"', 'else', '  arguments = slow', 'endif',
      'output = out.$(Process)', 'queue 3', ''
    ].join('\n'),
    'b.sub': 'executable = run.sh\narguments = $(item)\nqueue item in (x y\n# not an item\nz\n)\n',
    'run.sh': SH
  })
  const r = convert(dir)
  t.same(jobs(r).map(j => j.id), ['A.0', 'A.1', 'A.2', 'B.0', 'B.1', 'B.2'], 'queue 3: three jobs, named node.proc')
  t.equal(byId(r, 'A.2').cmd, 'exec /bin/sh ./run.sh fast 1.2 -v -q > out.2')
  t.same(byId(r, 'B.1').cmd, ['/bin/sh', './run.sh', 'y'])
  t.same(r.unknown, [], 'a key used as a macro is no unknown command')
})

t.test('submit commands: honoured, pool-only (listed once), not honoured (file:line, keyword), unknown (listed)', async t => {
  const dir = fixture({
    'x.dag': 'JOB A a.sub\nJOB B a.sub\n',
    'a.sub': [
      'executable = run.sh', 'log = x.log', 'notification = NEVER', 'getenv = True', '+ProjectName = "p"',
      'accounting_group = g', 'frobnicate = 3', 'periodic_remove = JobStatus == 5', 'queue', ''
    ].join('\n'),
    'run.sh': SH
  })
  const msg = refused(() => convert(dir))
  t.match(msg, /not yet supported by bgrid: submit command periodic_remove at a\.sub:8/)
  const r = convert(dir, { lenient: true })
  t.same(r.ignored, ['log (a.sub:2)', 'notification (a.sub:3)', 'getenv (a.sub:4)', '+ProjectName (job ClassAd attribute) (a.sub:5)', 'accounting_group (a.sub:6)'], 'listed once, with where')
  t.same(r.unknown, ['frobnicate at a.sub:7: not a submit command bgrid knows, and no $(frobnicate) uses it'])
  t.match(r.warnings, [/dropped, not yet supported by bgrid: submit command periodic_remove at a\.sub:8/])
  const bad = fixture({ 'x.dag': 'JOB A a.sub\n', 'a.sub': 'executable = run.sh\nuniverse = docker\nqueue\n', 'run.sh': SH })
  t.match(refused(() => convert(bad, { lenient: true })), /a\.sub:2: universe docker: bgrid runs vanilla jobs/)
  const nofs = fixture({ 'x.dag': 'JOB A a.sub\n', 'a.sub': 'executable = run.sh\nshould_transfer_files = NO\nqueue\n', 'run.sh': SH })
  t.match(refused(() => convert(nofs)), /a\.sub:2: should_transfer_files = NO needs a shared file system/)
  const syntax = fixture({ 'x.dag': 'JOB A a.sub\n', 'a.sub': 'executable = run.sh\nthis is not a command\nqueue\n', 'run.sh': SH })
  t.match(refused(() => convert(syntax)), /a\.sub:2: expected key = value, queue, or if\/else\/endif/)
  const missing = fixture({ 'x.dag': 'JOB A nope.sub\n' })
  t.match(refused(() => convert(missing)), /x\.dag:1: submit file nope\.sub: no such file/)
})

t.test('requirements and rank: ClassAd to bgrid expressions', async t => {
  t.equal(translateClassAd('(Memory >= 1024) && (OpSys == "LINUX") && (Arch =?= "X86_64")'), '(ram >= 1024) && (os == "linux") && (arch =?= "x64")')
  t.equal(translateClassAd('TARGET.Disk > MY.RequestDisk || Cpus =!= 4', { requestDisk: 2048 }), '(disk * 1024) > 2048 || cores =!= 4')
  t.equal(translateClassAd('RequestMemory <= Target.Memory && Target.Cpus >= RequestCpus', { requestMemory: 512 }), '512 <= ram && cores >= 1')
  t.equal(translateClassAd('ifThenElse(OpSys == "linux", Memory, 0) + 1'), '(os == "linux" ? ram : 0) + 1')
  t.equal(translateClassAd('Arch is "aarch64" && !(Memory < 10)'), 'arch =?= "arm64" && !(ram < 10)')
  t.equal(translateClassAd('HasMatlab =?= TRUE && TARGET.site == "lab-b"'), 'HasMatlab =?= true && Site == "lab-b"', 'machines\' custom attributes (bgrid daemon --attr) pass, capitalised')
  for (const [src, re] of [
    ['OpSys == "PLAN9"', /"PLAN9" has no bgrid equivalent/],
    ['stringListMember("a", "b")', /function stringListMember\(\) is not translated/],
    ['Memory > 1 & 1', /"&" is not something bgrid translates/],
    ['RequestMemory < Memory', /the job sets no request_memory/]
  ] as const) t.throws(() => translateClassAd(src), re, src)
  const dir = fixture({ 'x.dag': 'JOB A a.sub\n', 'a.sub': 'executable = run.sh\nrequirements = Memory > 1 && Cpus & 2\nqueue\n', 'run.sh': SH })
  t.match(refused(() => convert(dir)), /a\.sub:2: requirements: "&" is not something bgrid translates .* at column 20 \(node A\)\n {4}Memory > 1 && Cpus & 2\n {23}\^/)
  // HTCondor's benchmark attributes, from what daemons measure
  t.equal(translateClassAd('KFlops >= 2000000 && Mips > 1500'), '(gflops * 1000000) >= 2000000 && mhz > 1500')
  const kf = parseExpr(translateClassAd('KFlops >= 2000000'))
  const machine = { ram: 4096, cores: 4, mhz: 2400, disk: 1000, load: 0, cost: 0, os: 'linux', arch: 'x64' }
  t.equal(evalBool(kf, { ...machine, gflops: 2.5 }), true, 'a 2.5 GFLOPS node has 2,500,000 KFlops')
  t.equal(evalBool(kf, { ...machine, gflops: 1.5 }), false)
  t.equal(evalBool(kf, machine), false, 'a node that has not measured it: UNDEFINED, so not matched')
  const ok = fixture({ 'x.dag': 'JOB A a.sub\nJOB B a.sub\n', 'a.sub': 'executable = run.sh\nrequest_memory = 1G\nrequirements = OpSys == "LINUX" && Memory >= RequestMemory\nrank = Memory\nqueue\n', 'run.sh': SH })
  const r = convert(ok)
  t.equal(byId(r, 'A').requirements, 'os == "linux" && ram >= 1024')
  t.equal((r.dag as any).rank, 'ram', 'one rank for every job: the DAG\'s')
})

// ---- conversion

t.test('not yet supported features: refused with file:line, or dropped one warning each with --lenient', async t => {
  const dir = fixture({
    'pipeline.dag': [
      'JOB A a.sub', 'JOB B a.sub', 'PARENT A CHILD B',
      'SCRIPT PRE A pre.sh', 'SCRIPT POST B post.sh $RETURN', 'ABORT-DAG-ON A 3', 'CATEGORY ALL_NODES c', 'MAXJOBS c 1',
      'PRE_SKIP B 1', 'RETRY B 2 UNLESS-EXIT 5', 'FINAL F a.sub', 'SUBDAG EXTERNAL S s.dag', 'PARENT B CHILD S', ''
    ].join('\n'),
    's.dag': 'JOB X a.sub\nJOB Y a.sub\nPARENT X CHILD Y\nSCRIPT POST Y post.sh\n',
    'a.sub': 'universe = scheduler\nexecutable = run.sh\nqueue\n',
    'run.sh': SH
  })
  const msg = refused(() => convert(dir, { file: 'pipeline.dag' }))
  for (const what of ['SCRIPT PRE at pipeline.dag:4', 'SCRIPT POST at pipeline.dag:5', 'ABORT-DAG-ON at pipeline.dag:6', 'CATEGORY at pipeline.dag:7 (2 nodes)',
    'MAXJOBS at pipeline.dag:8', 'PRE_SKIP at pipeline.dag:9', 'RETRY ... UNLESS-EXIT at pipeline.dag:10', 'FINAL node F at pipeline.dag:11',
    'SUBDAG EXTERNAL S at pipeline.dag:12', 'universe scheduler at a.sub:1 (2 nodes)']) t.ok(msg.includes(`not yet supported by bgrid: ${what}`), what)
  t.match(msg, /--lenient drops/)
  const r = convert(dir, { file: 'pipeline.dag', lenient: true })
  t.same(jobs(r).map(j => j.id), ['A', 'B', 'S.X', 'S.Y'], 'the FINAL node is left out; the sub-DAG is read in as a splice')
  t.same(byId(r, 'S.X').after, ['B'])
  t.equal(byId(r, 'B').retries, 2)
  t.ok(r.warnings.some(w => /dropped, not yet supported by bgrid: SCRIPT POST at s\.dag:4/.test(w)), 'the sub-DAG\'s own features too')
  t.ok(r.warnings.some(w => /SUBDAG EXTERNAL S \(read in as a splice/.test(w)))
  t.ok(r.warnings.some(w => /universe scheduler at a\.sub:1 .*runs on a worker/.test(w)))
  t.equal(r.warnings.filter(w => w.includes('CATEGORY')).length, 1, 'one warning for one line, however many nodes it names')
})

t.test('jobs: files flow through job:<id>/ inputs, DONE nodes left out, NOOP nodes run /bin/true, RETRY as retries', async t => {
  const dir = fixture({
    'x.dag': [
      'JOB prep prep.sub', 'JOB old prep.sub DONE', 'JOB gate noop.sub NOOP', 'JOB work work.sub', 'JOB sum sum.sub',
      'VARS prep part="a"', 'VARS old part="b"', 'PARENT prep old CHILD gate', 'PARENT gate CHILD work', 'PARENT work CHILD sum', 'RETRY work 4', ''
    ].join('\n'),
    'prep.sub': 'executable = prep.sh\narguments = $(part)\ntransfer_output_files = part.$(part)\ninitialdir = data\noutput = prep.$(part).log\nqueue\n',
    'work.sub': 'executable = bin/work\ninput = data/in.txt\ntransfer_input_files = data/part.a, data/part.b, lib/\noutput = result.txt\nerror = result.txt\nenvironment = "MODE=full ATTEMPT=$(RETRY)"\nqueue\n',
    'sum.sub': 'executable = /usr/bin/env\narguments = cat result.txt new.txt\ntransfer_input_files = result.txt,new.txt\nqueue\n',
    'prep.sh': '#!/usr/bin/env python3 -u\nprint(1)\n',
    'bin/work': '\u007fELF...',
    'data/in.txt': 'in\n',
    'data/part.b': 'b, made before\n',
    'lib/one.txt': '1', 'lib/deep/two.txt': '2'
  })
  const r = convert(dir, { lenient: true })
  t.same(jobs(r).map(j => j.id), ['prep', 'gate', 'work', 'sum'], 'the DONE node is left out')
  t.equal(byId(r, 'prep').cmd, "exec /usr/bin/env 'python3 -u' ./prep.sh a > prep.a.log", 'a script runs through its #! line (inputs arrive read-only)')
  t.same(byId(r, 'prep').outputs, ['prep.a.log', 'part.a'])
  t.same(byId(r, 'gate'), { id: 'gate', cmd: ['/bin/true'], after: ['prep'] }, 'NOOP: a job that does nothing; edges from DONE nodes are gone')
  const work = byId(r, 'work')
  t.same(work.inputs, [{ src: 'bin/work', as: 'work' }, { src: 'data/in.txt', as: 'in.txt' }, 'job:prep/part.a', { src: 'data/part.b', as: 'part.b' }, { src: 'lib/deep/two.txt', as: 'deep/two.txt' }, { src: 'lib/one.txt', as: 'one.txt' }],
    'a parent\'s output comes from the parent; what DONE nodes made comes from disk; dir/ sends its contents')
  t.equal(work.cmd, "export ATTEMPT=\"$BGRID_RETRY\" && cp -- ./work ./.work.bgrid-exe && chmod 755 ./.work.bgrid-exe && exec ./.work.bgrid-exe < in.txt > result.txt 2>&1",
    'a binary is copied to a file it may run; stdin, stdout and stderr (merged: the same file) as the submit file says')
  t.same(work.env, { MODE: 'full' })
  t.equal(work.retries, 4)
  t.same((r.dag as any).defaults, { retries: 0 }, 'no RETRY, no retries (bgrid\'s default would be 2)')
  t.equal((r.dag as any).collect, 'all', 'every job\'s outputs come back, as DAGMan brings them back')
  t.same(byId(r, 'sum').inputs, ['job:work/result.txt', 'job:work/new.txt'])
  t.same(byId(r, 'work').outputs, ['result.txt', 'new.txt'], 'new.txt, which sum reads and nothing declares, is taken from the ancestor without transfer_output_files')
  t.ok(r.warnings.some(w => /work declares no transfer_output_files: new\.txt, which sum reads, is taken as one of its outputs/.test(w)))
  t.same(r.summary, { nodes: 5, jobs: 4, done: 1, noop: 1, edges: 3 })

  rmSync(path.join(dir, 'data', 'part.b'))
  t.match(refused(() => convert(dir, { lenient: true })), /work\.sub:3: transfer_input_files data\/part\.b of work: it does not exist and no ancestor node declares it/, 'a DONE node\'s outputs must exist')
})

t.test('a cycle is refused before anything runs, with its PARENT line', async t => {
  const dir = fixture({ 'x.dag': 'JOB A a.sub\nJOB B a.sub\nJOB C a.sub\nPARENT A CHILD B\nPARENT B CHILD C\nPARENT C CHILD B\n', 'a.sub': SUB, 'run.sh': SH })
  t.doesNotThrow(() => read(dir), 'it reads')
  t.match(refused(() => convert(dir, { lenient: true })), /the DAG has a cycle: (B -> C -> B|C -> B -> C) \(PARENT \w CHILD \w at x\.dag:[56]\); nothing can run/)
})

t.test('$$([attributes]) are filled in: DAGParentNodeNames, DAGNodeName, +Attr and VARS My.Attr', async t => {
  const dir = fixture({
    'x.dag': 'JOB A a.sub\nJOB B a.sub\nJOB C a.sub\nPARENT A B CHILD C\nVARS C +Who="\\"bob\\"" My.N="3" mode="long"\n',
    'a.sub': 'executable = run.sh\n+Site = "lab b"\narguments = "$$([DAGNodeName]) \'$$([DAGParentNodeNames])\' \'$$([MY.Site])\' $$([Who:x])"\nqueue\n',
    'run.sh': SH
  })
  t.match(refused(() => convert(dir)), /a\.sub:3: .*\$\$\(\[Who:x\]\)/)
  writeFileSync(path.join(dir, 'a.sub'), 'executable = run.sh\n+Site = "lab b"\nif defined mode\narguments = "$$([DAGNodeName]) \'$$([DAGParentNodeNames])\' \'$$([MY.Site])\' $$([Who]) $$([n])"\nelse\narguments = $$([DAGNodeName])\nendif\nqueue\n')
  const r = convert(dir)
  t.same(byId(r, 'A').cmd, ['/bin/sh', './run.sh', 'A'])
  t.same(byId(r, 'C').cmd.slice(2), ['C', 'A,B', 'lab b', 'bob', '3'])
  const late = fixture({ 'x.dag': 'JOB A a.sub\n', 'a.sub': 'executable = run.sh\narguments = $$(OpSys)\nqueue\n', 'run.sh': SH })
  t.match(refused(() => convert(late)), /a\.sub:2: \$\$\(OpSys\): bgrid fills in \$\$\(\[attribute\]\) for the job's own attributes only/)
})

t.test('inputs must be below the dag.json\'s directory; output names must be files of the job\'s directory', async t => {
  const dir = fixture({ 'x.dag': 'JOB A a.sub\n', 'a.sub': 'executable = run.sh\ntransfer_output_files = ../up.txt\nqueue\n', 'run.sh': SH })
  t.match(refused(() => convert(dir)), /a\.sub:2: transfer_output_files: \.\.\/up\.txt: "\.\." in path/)
  writeFileSync(path.join(dir, 'a.sub'), SUB)
  const d = read(dir)
  t.match(refused(() => dagmanToDagJson(d, { out: path.join(tmp, 'elsewhere', 'dag.json') })), new RegExp(`1 input file\\(s\\) are not below .*elsewhere.*write the dag.json in ${dir.replace(/[/.-]/g, '\\$&')} or a directory above it`))
})

t.test('DOT: DAGMan\'s style', async t => {
  const dir = fixture({ 'x.dag': 'JOB A a.sub\nJOB B a.sub DONE\nJOB C a.sub\nPARENT A B CHILD C\nDOT g.dot INCLUDE head.dot\n', 'head.dot': 'size="8,8";\n' })
  const dot = dagmanDot(read(dir), { now: new Date(2024, 0, 5, 9, 3, 7) })
  t.equal(dot, [
    'digraph DAG {', '    label="DAGMan Job status at Fri Jan  5 09:03:07 2024";', '',
    `// Beginning of commands included from ${path.join(dir, 'head.dot')}.`, 'size="8,8";', `// End of commands included from ${path.join(dir, 'head.dot')}.`, '',
    '    "A" [shape=ellipse label="A (I)"];', '    "B" [shape=ellipse label="B (Done)" style=bold];', '    "C" [shape=ellipse label="C (I)"];',
    '    "A" -> "C";', '    "B" -> "C";', '}', ''
  ].join('\n'))
})

t.test('bgrid import dagman: writes a dag.json that parseDag accepts, and the DOT file; refuses with exit 2', async t => {
  const dir = fixture({
    'x.dag': 'JOB A a.sub\nJOB B a.sub\nPARENT A CHILD B\nVARS B out="b.txt"\nPRIORITY B 5\nSCRIPT POST B post.sh\n',
    'a.sub': 'executable = run.sh\noutput = $(out:a.txt)\nlog = x.log\nqueue\n',
    'run.sh': SH
  })
  const bgrid = (...args: string[]) => spawnSync(process.execPath, [path.join(ROOT, 'bin', 'bgrid.ts'), 'import', 'dagman', ...args], { encoding: 'utf8', cwd: dir, timeout: 60_000 })
  const strict = bgrid('x.dag', '-o', 'dag.json')
  t.equal(strict.status, 2, strict.stderr)
  t.match(strict.stderr, /INVALID_DAG: .*x\.dag: cannot be run by bgrid as it is\n\s+not yet supported by bgrid: SCRIPT POST at x\.dag:6/)
  t.notOk(existsSync(path.join(dir, 'dag.json')), 'nothing written')
  const ok = bgrid('x.dag', '-o', 'dag.json', '--lenient', '--dot', 'g.dot')
  t.equal(ok.status, 0, ok.stderr)
  t.match(ok.stdout, /dag\.json: 2 jobs from 2 DAGMan nodes, 1 edges; graph in .*g\.dot/)
  t.match(ok.stderr, /warning: dropped, not yet supported by bgrid: SCRIPT POST at x\.dag:6/)
  t.match(ok.stderr, /accepted, not applied \(pool-only\): log \(a\.sub:3\)/)
  t.match(ok.stderr, /PRIORITY of 1 job\(s\) not in dag\.json/)
  const dag = JSON.parse(readFileSync(path.join(dir, 'dag.json'), 'utf8'))
  t.doesNotThrow(() => parseDag(dag, path.join(dir, 'dag.json')))
  t.same(dag.jobs.map((j: any) => j.outputs), [['a.txt'], ['b.txt']])
  t.match(readFileSync(path.join(dir, 'g.dot'), 'utf8'), /"A" -> "B";/)
})

// ---- HTCondor's own DAGMan tests

const CORPUS = path.join(ROOT, '..', 'shared', 'corpus', 'htcondor-dagman')

/** JOB/FINAL/SUBDAG lines and PARENT x CHILD y pairs of a DAG file and its splices, counted on their own */
function declared (file: string, dir: string): { nodes: number, edges: number } {
  let nodes = 0
  let edges = 0
  for (const raw of readFileSync(file, 'utf8').split('\n')) {
    const words = raw.trim().split(/[ \t]+/)
    const kw = words[0].toUpperCase()
    if (kw === 'JOB' || kw === 'FINAL' || (kw === 'SUBDAG' && words[1]?.toUpperCase() === 'EXTERNAL')) nodes++
    if (kw === 'SPLICE') {
      const d = words[3]?.toUpperCase() === 'DIR' ? path.join(dir, words[4]) : dir
      const inner = declared(path.join(d, words[2]), d)
      nodes += inner.nodes
      edges += inner.edges
    }
    if (kw === 'PARENT') {
      const child = words.findIndex(w => w.toUpperCase() === 'CHILD')
      edges += (child - 1) * (words.length - child - 1)
    }
  }
  return { nodes, edges }
}

t.test('HTCondor\'s DAGMan tests: every .dag reads; which convert', { skip: existsSync(CORPUS) ? false : `no ${CORPUS} here` }, async t => {
  // the tests pending issue 24 (splice pins...) are read by that work
  const tests = readdirSync(CORPUS).filter(d => existsSync(path.join(CORPUS, d)) && PENDING_CORPUS_TESTS[d] === undefined).sort()
  t.equal(tests.length, 12)
  const report: string[] = []
  for (const test of tests) {
    const dir = path.join(CORPUS, test)
    const run = readFileSync(path.join(dir, `${test}.run`), 'utf8')
    const main = /\$cmd\s*=\s*'([^']+)'/.exec(run)?.[1] ?? ''
    t.ok(existsSync(path.join(dir, main)), `${test}: its .run names ${main}`)
    for (const f of readdirSync(dir).filter(f => f.endsWith('.dag')).sort()) {
      const want = declared(path.join(dir, f), dir)
      const d = readDagmanFile(path.join(dir, f))
      t.same({ nodes: d.nodes.length, edges: d.edges }, want, `${test}/${f} reads: ${want.nodes} nodes, ${want.edges} edges`)
    }
    const outcome = (lenient: boolean): string => {
      try {
        const r = dagmanToDagJson(readDagmanFile(path.join(dir, main), { inlineSubdags: lenient }), { out: path.join(dir, 'dag.json'), lenient })
        parseDag(r.dag, path.join(dir, 'dag.json'))
        return `converts (${r.summary.jobs} jobs)`
      } catch (err) {
        if (!(err instanceof BgridError)) throw err
        const lines = err.message.split('\n').slice(1).filter(l => l.startsWith('  ')).map(l => l.trim().replace(/^not yet supported by bgrid: /, ''))
        return `refused: ${lines.length > 0 ? lines.join('; ') : err.message.replace(/^[^:]*: /, '')}`
      }
    }
    const strict = outcome(false)
    const lenient = outcome(true)
    report.push(`${test}: ${strict}; --lenient: ${lenient}`)
    if (test === 'job_dagman_cycle-A') {
      t.match(strict, /the DAG has a cycle/, 'the cycle is refused')
      t.match(lenient, /the DAG has a cycle/)
    } else t.match(lenient, /^converts/, `${test} converts with --lenient`)
  }
  t.comment(report.join('\n'))
})

t.test('job_dagman_vars: the arguments its node programs must print, run through sh and perl', { skip: existsSync(path.join(CORPUS, 'job_dagman_vars')) && spawnSync('perl', ['-v']).status === 0 ? false : 'no corpus or no perl' }, async t => {
  const src = path.join(CORPUS, 'job_dagman_vars')
  const r = dagmanToDagJson(readDagmanFile(path.join(src, 'job_dagman_vars.dag'), { inlineSubdags: true }), { out: path.join(src, 'dag.json'), lenient: true })
  const run = readFileSync(path.join(src, 'job_dagman_vars.run'), 'utf8')
  // @outfiles and @outlines, as Perl strings
  const list = (name: string): string[] => [...(new RegExp(`@${name} = \\(([^;]*)\\);`).exec(run)?.[1] ?? '').matchAll(/"((?:[^"\\]|\\.)*)"/g)].map(m => m[1].replace(/\\(.)/g, '$1'))
  const outfiles = list('outfiles')
  const outlines = list('outlines')
  t.equal(outfiles.length, 7)
  for (const job of jobs(r)) {
    const work = mkdtempSync(path.join(tmp, 'job-'))
    for (const i of job.inputs ?? []) copyFileSync(path.join(src, typeof i === 'string' ? i : i.src), path.join(work, typeof i === 'string' ? i : i.as))
    const cmd: string[] = typeof job.cmd === 'string' ? ['/bin/sh', '-c', job.cmd] : job.cmd
    // the retry node fails until its third retry: its last attempt is the one the test reads
    const env = { PATH: process.env.PATH ?? '/usr/bin:/bin', BGRID_RETRY: job.id === 'NodeF' ? '3' : '0', ...(job.env ?? {}) }
    const p = spawnSync(cmd[0], cmd.slice(1), { cwd: work, env, encoding: 'utf8' })
    const k = outfiles.findIndex(f => job.outputs.includes(f))
    t.ok(k >= 0, `${job.id} writes one of the files the test reads`)
    t.equal(readFileSync(path.join(work, outfiles[k]), 'utf8').split('\n')[0], outlines[k], `${job.id}: ${outfiles[k]} as HTCondor would write it (exit ${p.status})`)
  }
})
