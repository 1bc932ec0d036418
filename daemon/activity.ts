// Owner activity, pluggable: CPU load that is not ours, and keyboard/mouse idle time.
import { readFileSync, statSync, readdirSync } from 'node:fs'
import { bestEffort } from '../protocol/best-effort.ts'

export interface CpuTimes { busy: number, total: number }

export function parseProcStat (text: string): CpuTimes {
  const line = text.split('\n').find(l => l.startsWith('cpu '))
  if (line === undefined) return { busy: 0, total: 0 }
  const f = line.trim().split(/\s+/).slice(1).map(Number)
  const idle = (f[3] ?? 0) + (f[4] ?? 0)
  const total = f.slice(0, 8).reduce((a, b) => a + b, 0)
  return { busy: total - idle, total }
}

/** utime+stime (clock ticks) of one process, 0 if it is gone. */
export function processTicks (pid: number): number {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, 'utf8')
    const f = s.slice(s.lastIndexOf(')') + 2).split(' ')
    // fields after the comm: state(0) ... utime(11) stime(12) cutime(13) cstime(14)
    return Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14])
  } catch { return 0 }
}

/** clock ticks per second of /proc/stat (USER_HZ: 100 on Linux) */
const TICKS_PER_MS = 0.1

/**
 * Measures the owner's CPU load: the machine's busy time minus what our own jobs
 * used, between two calls, as a fraction of the machine. Our jobs' use comes from
 * their cgroup (every process they fork) when there is one, else from the task pids.
 */
export class OwnerLoadMeter {
  private last?: { cpu: CpuTimes, ours: Map<number, number>, jobsMs?: number }

  sample (ourPids: number[], jobsCpuMs?: number): number {
    let cpu: CpuTimes
    try { cpu = parseProcStat(readFileSync('/proc/stat', 'utf8')) } catch { return 0 }
    const ours = new Map(jobsCpuMs !== undefined ? [] : ourPids.map(pid => [pid, processTicks(pid)]))
    const prev = this.last
    this.last = { cpu, ours, jobsMs: jobsCpuMs }
    if (prev === undefined || cpu.total <= prev.cpu.total) return 0
    let ourDelta = 0
    if (jobsCpuMs !== undefined && prev.jobsMs !== undefined) ourDelta = Math.max(0, jobsCpuMs - prev.jobsMs) * TICKS_PER_MS
    for (const [pid, t] of ours) ourDelta += Math.max(0, t - (prev.ours.get(pid) ?? t))
    const busy = cpu.busy - prev.cpu.busy - ourDelta
    return Math.min(1, Math.max(0, busy / (cpu.total - prev.cpu.total)))
  }
}

/**
 * Seconds since the owner last used keyboard or mouse. Sources, first that answers:
 * an activity file whose mtime is touched on activity (--activity-file: for session
 * hooks, and for tests), then the access times of /dev/input/event* (as HTCondor does).
 * Infinity when nothing tells (a headless server).
 */
export function userIdleSeconds (now: number, activityFile?: string): number {
  if (activityFile !== undefined) {
    try { return Math.max(0, (now - statSync(activityFile).mtimeMs) / 1000) } catch { return Infinity }
  }
  let latest = 0
  try {
    for (const f of readdirSync('/dev/input')) {
      if (!f.startsWith('event')) continue
      try { latest = Math.max(latest, statSync(`/dev/input/${f}`).atimeMs) } catch (err) { bestEffort('Math.max()', err) }
    }
  } catch (err) { bestEffort('readdirSync()', err) }
  return latest === 0 ? Infinity : Math.max(0, (now - latest) / 1000)
}

/** Can this machine tell when its owner is at the keyboard? (an activity file, or readable /dev/input event devices) */
export function activitySource (activityFile?: string): string | undefined {
  if (activityFile !== undefined) return `activity file ${activityFile}`
  try {
    const events = readdirSync('/dev/input').filter(f => f.startsWith('event'))
    for (const f of events) { try { statSync(`/dev/input/${f}`); return '/dev/input' } catch (err) { bestEffort('statSync()', err) } }
  } catch (err) { bestEffort('readdirSync(\'/dev/input\').filter()', err) }
  return undefined
}
