// Setting a run up: a new run (its DAG read and checked once, its directory and journal
// made) or the one a crashed coordinator left (`--resume`: the journal says what was
// submitted and what is done), its store and libp2p identity, its inputs hashed, and the
// local daemon told that this machine coordinates.
import { mkdir, writeFile, readFile } from 'node:fs/promises'
import { existsSync } from 'node:fs'
import path from 'node:path'
import { generateKeyPair, privateKeyFromProtobuf, privateKeyToProtobuf } from '@libp2p/crypto/keys'
import { BgridError } from '../protocol/errors.ts'
import type { Logger } from '../protocol/log.ts'
import { openDb } from '../protocol/db.ts'
import { BlobStore } from '../cache/store.ts'
import { controlRequest } from '../protocol/control.ts'
import { StatCache, type StagedFiles } from '../cache/staged-files.ts'
import { parseDag, readDagJson } from './dag-json.ts'
import { type Dag } from './core/model.ts'
import { Journal, type RunMeta } from './journal.ts'
import type { RunCore } from './core/run-core.ts'
import { newRunId, runDirOf } from './run-dir.ts'
import type { SubmitOptions } from './run-context.ts'
import { bestEffort } from '../protocol/best-effort.ts'

export interface RunSetup {
  runId: string
  runDir: string
  outDir: string
  dag: Dag
  journal: Journal
  meta: RunMeta
}

/** A new run, or the one to resume: its journal open, its metadata written, its --out made. */
export async function prepare (o: SubmitOptions): Promise<RunSetup> {
  let s: RunSetup
  if (o.resume !== undefined) {
    const runId = o.resume
    const runDir = runDirOf(o.dataDir, runId)
    if (!existsSync(path.join(runDir, 'journal'))) throw new BgridError('NOT_FOUND', `no journal for run ${runId} in ${path.dirname(runDir)}`)
    const journal = new Journal(path.join(runDir, 'journal'))
    await journal.open()
    const meta = await journal.meta()
    if (meta === undefined) throw new BgridError('NOT_FOUND', `run ${runId} has no metadata`)
    if (meta.state === 'finished') throw new BgridError('INVALID_CONFIG', `run ${runId} already finished`)
    s = { runId, runDir, journal, meta: { ...meta, state: 'running', pid: process.pid }, dag: parseDag(meta.dag, meta.dagFile), outDir: meta.outDir }
  } else {
    if (o.dagFile === undefined && o.dagJson === undefined) throw new BgridError('INVALID_CONFIG', 'submit needs a DAG file (or --resume RUN_ID)')
    // read and validate once; the journal keeps the JSON as submitted
    const dagFile = path.resolve(o.dagJson?.file ?? o.dagFile as string)
    const raw = o.dagJson !== undefined ? o.dagJson.raw : readDagJson(dagFile)
    const dag = parseDag(raw, dagFile)
    const runId = o.runId ?? newRunId(dag.name)
    const runDir = runDirOf(o.dataDir, runId)
    await mkdir(runDir, { recursive: true, mode: 0o700 })
    const outDir = path.resolve(o.outDir ?? path.join('bgrid-runs', runId))
    const journal = new Journal(path.join(runDir, 'journal'))
    await journal.open()
    const meta: RunMeta = {
      runId, dagFile, dag: raw, outDir, createdAt: Date.now(),
      options: { prefetch: o.prefetch, leaseSec: o.leaseSec, streamOutputs: o.streamOutputs }, state: 'running', pid: process.pid
    }
    s = { runId, runDir, outDir, dag, journal, meta }
  }
  await s.journal.setMeta(s.meta)
  await mkdir(s.outDir, { recursive: true })
  return s
}

/** The run's own blob store (collected outputs, logs, replicas compared): a resume finds it again. */
export async function openRunStore (runDir: string): Promise<{ store: BlobStore, db: Awaited<ReturnType<typeof openDb>> }> {
  await mkdir(path.join(runDir, 'cas'), { recursive: true })
  const db = await openDb(path.join(runDir, 'store'))
  const store = new BlobStore(runDir, db)
  await store.load()
  return { store, db }
}

/** The run's libp2p key, kept in its directory: a resumed run is the same peer to its workers. */
export async function loadRunIdentity (dir: string): Promise<ReturnType<typeof privateKeyFromProtobuf>> {
  const file = path.join(dir, 'identity.key')
  try { return privateKeyFromProtobuf(await readFile(file)) } catch (err) { bestEffort('privateKeyFromProtobuf()', err) }
  const key = await generateKeyPair('Ed25519')
  await writeFile(file, privateKeyToProtobuf(key), { mode: 0o600 })
  return key
}

/** The submitter's stat cache of input files it hashed (the run saves it when it is done with it). */
export async function openStatCache (dataDir: string): Promise<StatCache> {
  const cache = new StatCache(path.join(dataDir, 'coordinator', 'stat-cache.json'))
  await cache.load()
  return cache
}

/**
 * Hash the DAG's input files (a stat cache spares unchanged ones): staged, and known to the
 * core. With `cache`, that one is used and left to its owner to save (an open run adds jobs
 * many times: the cache is read and written once, not per batch).
 */
export async function hashInputs (dag: Dag, dataDir: string, staged: StagedFiles, core: RunCore, log: Logger, shared?: StatCache): Promise<void> {
  const cache = shared ?? await openStatCache(dataDir)
  const files = new Set<string>()
  for (const j of dag.jobs) for (const i of j.inputs) if (i.source.kind === 'file') files.add(i.source.path)
  for (const f of files) {
    let h
    try { h = await cache.hash(f) } catch (err: any) { throw new BgridError('INVALID_DAG', `input ${f}: ${err.message}`) }
    await staged.add(f, h.hash, h.size)
    core.setFileInput(f, h.hash, h.size)
  }
  if (shared === undefined) await cache.save().catch(err => { bestEffort('cache.save()', err) })
  log.debug('inputs hashed', { files: files.size, rehashed: cache.misses, fromStatCache: cache.hits })
}

/** Resuming: each job's journaled outcome back in the core. Returns how many jobs were done. */
export async function restoreJournal (journal: Journal, core: RunCore): Promise<number> {
  const jobs = await journal.jobs()
  let restored = 0
  for (const [id, e] of jobs) {
    if (e.state === 'done' && e.outputs !== null) { core.restoreDone(id, e.outputs, e.attempts, e.collected); restored++ } else if (e.state === 'failed' || e.state === 'skipped') core.restoreFinal(id, e.state, e.reason ?? '', e.attempts)
  }
  return restored
}

/** A local daemon stops offering this machine while it coordinates (until the returned hold ends). */
export async function leaveLocalDaemon (dataDir: string, runId: string, log: Logger): Promise<{ end: () => void } | undefined> {
  const ctl = await controlRequest(path.join(dataDir, 'control.sock'), { op: 'coordinate', run: runId }, true)
  if (ctl === undefined) return undefined
  if (ctl.reply?.ok !== true) log.info('local daemon stays as it is', { reason: ctl.reply?.message })
  return { end: () => { ctl.socket.end() } }
}
