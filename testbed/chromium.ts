// Headless Chromium (Debian's `chromium`) to check a report page as a browser sees it:
// the DOM after its load, or a screenshot. Each run has its own throw-away profile,
// no network features, a time limit, and is killed by its process group's id.
import { spawn, type ChildProcess } from 'node:child_process'
import { existsSync, mkdtempSync, rmSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { pathToFileURL } from 'node:url'
import { tryBestEffort } from '../protocol/best-effort.ts'

const CANDIDATES = ['/usr/bin/chromium', '/usr/bin/chromium-browser']

export function findChromium (): string | undefined {
  const env = process.env.BGRID_CHROMIUM
  if (env !== undefined && existsSync(env)) return env
  return CANDIDATES.find(p => existsSync(p))
}

const running = new Set<ChildProcess>()

/** Kills every Chromium still running from here (for teardown). */
export function killChromiums (): void {
  for (const c of running) tryBestEffort('killing chromium', () => { process.kill(-(c.pid as number), 'SIGKILL') })
  running.clear()
}

export type ChromiumTask = { dumpDom: true } | { screenshot: string, width: number, height: number }

/** Loads a local HTML file and dumps its DOM or takes a screenshot; rejects after timeoutMs. */
export async function runChromium (binary: string, htmlFile: string, task: ChromiumTask, timeoutMs = 60_000): Promise<{ stdout: string, ms: number }> {
  const profile = mkdtempSync(path.join(os.tmpdir(), 'bgrid-chromium-'))
  const args = [
    '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync', `--user-data-dir=${profile}`,
    ...('dumpDom' in task ? ['--dump-dom'] : [`--screenshot=${task.screenshot}`, `--window-size=${task.width},${task.height}`]),
    pathToFileURL(htmlFile).href
  ]
  const t0 = performance.now()
  // its own process group: the browser's helpers (zygote, renderers) die with it
  const child = spawn(binary, args, { stdio: ['ignore', 'pipe', 'pipe'], detached: true })
  running.add(child)
  const chunks: Buffer[] = []
  let stderr = ''
  child.stdout.on('data', (b: Buffer) => chunks.push(b))
  child.stderr.on('data', (b: Buffer) => { stderr = (stderr + b.toString()).slice(-4000) })
  try {
    const code = await new Promise<number | null>((resolve, reject) => {
      const timer = setTimeout(() => { reject(new Error(`chromium still running after ${timeoutMs} ms\n${stderr}`)) }, timeoutMs)
      child.on('error', (err) => { clearTimeout(timer); reject(err) })
      child.on('exit', (c) => { clearTimeout(timer); resolve(c) })
    })
    if (code !== 0) throw new Error(`chromium exited ${String(code)}\n${stderr}`)
    return { stdout: Buffer.concat(chunks).toString('utf8'), ms: performance.now() - t0 }
  } finally {
    tryBestEffort('killing chromium', () => { process.kill(-(child.pid as number), 'SIGKILL') })
    running.delete(child)
    rmSync(profile, { recursive: true, force: true })
  }
}
