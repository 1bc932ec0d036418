// Per-attempt sandbox directories of one run on a worker: <runDir>/<attempt>/ holds the
// job's stdout and stderr files and work/, the job's cwd (owned by the job user).
//
// Directories are recycled. Creating an inode (a directory or a file) costs this
// machine's ext4 0.15-0.45 ms of CPU, and every attempt needs four (attempt/, work/,
// stdout, stderr): for short jobs that was a third of the worker's CPU. An attempt
// whose work/ is left empty (its outputs moved into the blob store, its inputs
// unlinked) gives its directory back; the next attempt renames it into place, and the
// launcher truncates the stdout and stderr files instead of creating them.
// Only attempts of the same run share a pool: one coordinator, one user's jobs.
import { mkdirSync, chownSync, chmodSync, renameSync, readdirSync, unlinkSync, rmdirSync } from 'node:fs'
import path from 'node:path'
import { safeJoin } from '../protocol/paths.ts'
import type { RunAs } from './executor.ts'

export interface Sandbox {
  /** <runDir>/<attempt> */
  dir: string
  /** the job's cwd */
  work: string
}

export class SandboxPool {
  private readonly runDir: string
  /** the unprivileged user jobs run as (the daemon is root), who owns their work/ */
  readonly runAs?: RunAs
  private readonly max: number
  private readonly spare: string[] = []
  private seq = 0
  private ready = false

  constructor (runDir: string, runAs: RunAs | undefined, max: number) {
    this.runDir = runDir
    this.runAs = runAs
    this.max = max
  }

  /**
   * The sandbox of an attempt, with the parent directories of `files` (its inputs and
   * outputs) made inside work/. Synchronous on purpose: these are a few metadata calls
   * on local disk, and an asynchronous call would add a thread-pool round trip to each.
   */
  take (attempt: string, files: string[]): Sandbox {
    const dir = safeJoin(this.runDir, attempt)
    const work = path.join(dir, 'work')
    const reused = this.spare.pop()
    if (reused !== undefined) {
      renameSync(reused, dir)
    } else {
      if (!this.ready) { mkdirSync(this.runDir, { recursive: true }); this.ready = true }
      mkdirSync(dir)
      mkdirSync(work)
    }
    const owned = [work]
    const made = new Set<string>([work])
    for (const file of files) {
      // each missing directory between work/ and the file, outermost first
      const dirs: string[] = []
      for (let d = path.dirname(safeJoin(work, file)); d !== work && !made.has(d); d = path.dirname(d)) dirs.unshift(d)
      for (const d of dirs) { made.add(d); mkdirSync(d, { recursive: true }); owned.push(d) }
    }
    if (this.runAs !== undefined) for (const d of owned) chownSync(d, this.runAs.uid, this.runAs.gid)
    // a previous job may have changed the mode of the work/ it owned
    if (reused !== undefined) chmodSync(work, 0o755)
    return { dir, work }
  }

  /**
   * The attempt is over and its outputs and logs are in the store: unlink its inputs,
   * and keep the directory for the next attempt if nothing else is left in work/.
   * Anything else stays where it is until the session ends (the run directory is removed).
   */
  give (box: Sandbox, inputs: string[]): void {
    if (this.spare.length >= this.max) return
    try {
      for (const name of inputs) {
        const file = safeJoin(box.work, name)
        try { unlinkSync(file) } catch {}
        // the directories made for nested input names, innermost first, if now empty
        for (let d = path.dirname(file); d !== box.work; d = path.dirname(d)) { try { rmdirSync(d) } catch { break } }
      }
      if (readdirSync(box.work).length > 0) return
      const spare = path.join(this.runDir, `.spare-${++this.seq}`)
      renameSync(box.dir, spare)
      this.spare.push(spare)
    } catch {
      // not recyclable: it stays until the session ends
    }
  }
}
