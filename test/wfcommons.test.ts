// `bgrid import wfcommons` keeps the tasks' names as job ids (changed only as far as
// dag.json's id rule asks), and what it writes is a valid DAG.
import t from 'tap'
import { mkdtempSync, rmSync, readFileSync, existsSync } from 'node:fs'
import { spawnSync } from 'node:child_process'
import os from 'node:os'
import path from 'node:path'
import { importWfCommons } from '../coordinator/wfcommons.ts'
import { parseDag } from '../coordinator/dag-json.ts'
import { BGRID, ROOT } from '../testbed/cluster.ts'

const dir = mkdtempSync(path.join(os.tmpdir(), 'bgrid-wfc-'))
t.teardown(() => { rmSync(dir, { recursive: true, force: true }) })
const opts = { timeScale: 0, sizeScale: 0, sleep: true }
const ids = (dag: any): string[] => dag.jobs.map((j: any) => j.id)

t.test('1.4 traces: the task names, not the bare ids; parents follow', async t => {
  const trace = {
    name: 'm',
    workflow: {
      tasks: [
        { name: 'mProject_ID0000001', id: 'ID0000001', parents: [], files: [{ link: 'output', name: 'p.fits', sizeInBytes: 10 }] },
        { name: 'mDiff/Fit:ID0000002', id: 'ID0000002', parents: ['mProject_ID0000001'], files: [{ link: 'input', name: 'p.fits', sizeInBytes: 10 }] },
        { name: 'mDiff_Fit_ID0000002', id: 'ID0000003', parents: ['ID0000001'], files: [] }
      ]
    }
  }
  const r = importWfCommons(trace, opts)
  t.same(ids(r.dag), ['mProject_ID0000001', 'mDiff_Fit_ID0000002', 'mDiff_Fit_ID0000002_2'], 'names kept; what the id rule refuses becomes _; a clash gets a suffix')
  const jobs = (r.dag as any).jobs
  t.same(jobs[1].after, ['mProject_ID0000001'])
  t.same(jobs[1].inputs, [{ src: 'job:mProject_ID0000001/p.fits', as: 'p.fits' }])
  t.same(jobs[2].after, ['mProject_ID0000001'], 'a parent named by its id is found too')
  t.doesNotThrow(() => parseDag(r.dag, path.join(dir, 'dag.json')), 'a valid DAG')
})

t.test('1.5 traces: names that are not unique (a program per task) give way to the ids', async t => {
  const trace = {
    workflow: {
      specification: {
        tasks: [
          { name: 'split', id: 'split_00000001', parents: [], inputFiles: [], outputFiles: ['a'] },
          { name: 'align', id: 'align_00000002', parents: ['split_00000001'], inputFiles: ['a'], outputFiles: [] },
          { name: 'align', id: 'align_00000003', parents: ['split_00000001'], inputFiles: ['a'], outputFiles: [] }
        ],
        files: [{ id: 'a', sizeInBytes: 1 }]
      },
      execution: { tasks: [] }
    }
  }
  t.same(ids(importWfCommons(trace, opts).dag), ['split_00000001', 'align_00000002', 'align_00000003'])
})

const montage = path.join(ROOT, '..', 'shared', 'workloads', 'montage-chameleon-2mass-005d-001.json')
t.test('the Montage trace through the CLI', { skip: existsSync(montage) ? false : `no ${montage} here` }, async t => {
  const out = path.join(dir, 'montage', 'dag.json')
  const r = spawnSync(process.execPath, [BGRID, 'import', 'wfcommons', montage, '-o', out, '--size-scale', '0.0001', '--time-scale', '0', '--sleep'], { encoding: 'utf8', timeout: 60_000 })
  t.equal(r.status, 0, r.stderr)
  const dag = JSON.parse(readFileSync(out, 'utf8'))
  const trace = JSON.parse(readFileSync(montage, 'utf8'))
  t.same(ids(dag), trace.workflow.tasks.map((x: any) => x.name), 'every job is named as its task in the trace')
  t.ok(ids(dag).includes('mProject_ID0000001'))
  t.doesNotThrow(() => parseDag(dag, out), 'and runs as it is')
})
