// Resource measurement, refreshed in the background: systeminformation for what the
// machine is (once), the kernel's own counters for what drifts (every few seconds). An
// idle volunteer PC pays for every sample: systeminformation's currentLoad() starts a
// shell on Linux at each call (`cat /proc/stat | grep cpu`, synchronously), which was most
// of an idle daemon's CPU; the machine's busy fraction is read from os.cpus() instead.
import si from 'systeminformation'
import { readFileSync } from 'node:fs'
import { freeDiskMiB } from '../cache/disk.ts'
import os from 'node:os'
import { bestEffort } from '../protocol/best-effort.ts'

export interface Resources {
  cores: number
  mhz: number
  ramTotal: number   // MiB
  ram: number        // MiB available
  disk: number       // MiB free in the data dir
  load: number       // whole-machine CPU busy fraction 0..1
  arch: string
  os: string
}

/** systeminformation reports speed 0 on VMs without cpufreq: fall back to /proc/cpuinfo. */
export function mhzFromCpuinfo (text: string): number {
  const m = /^cpu MHz\s*:\s*([\d.]+)/m.exec(text)
  return m === null ? 0 : Math.round(Number(m[1]))
}

export async function measureStatic (): Promise<Pick<Resources, 'cores' | 'mhz' | 'ramTotal' | 'arch' | 'os'>> {
  const cpu = await si.cpu()
  let mhz = Math.round((cpu.speed ?? 0) * 1000)
  if (mhz <= 0) {
    try { mhz = mhzFromCpuinfo(readFileSync('/proc/cpuinfo', 'utf8')) } catch (err) { bestEffort('mhzFromCpuinfo()', err) }
  }
  const mem = await si.mem()
  return {
    cores: os.availableParallelism(),
    mhz,
    ramTotal: Math.floor(mem.total / 1048576),
    arch: os.arch(),
    os: os.platform()
  }
}

/** the CPU times of all cores together, ms: busy and in all */
export interface CpuTimes { busy: number, total: number }

type CoreTimes = Array<{ times: { user: number, nice: number, sys: number, idle: number, irq: number } }>

export function cpuTimes (cpus: CoreTimes = os.cpus()): CpuTimes {
  let busy = 0
  let total = 0
  for (const c of cpus) {
    const t = c.times
    busy += t.user + t.nice + t.sys + t.irq
    total += t.user + t.nice + t.sys + t.irq + t.idle
  }
  return { busy, total }
}

/** the machine's busy fraction between two readings (0..1; undefined when no time passed) */
export function busyBetween (before: CpuTimes, after: CpuTimes): number | undefined {
  const total = after.total - before.total
  if (total <= 0) return undefined
  return Math.min(1, Math.max(0, (after.busy - before.busy) / total))
}

let lastCpu: CpuTimes | undefined

/**
 * RAM and disk free, and the machine's busy fraction since the last call (the first
 * call, or a quick one, takes the 1-minute load average: the daemon advertises itself
 * without waiting for a second reading).
 */
export async function measureDynamic (dataDir: string, opts: { quick?: boolean } = {}): Promise<Pick<Resources, 'ram' | 'disk' | 'load'>> {
  const mem = await si.mem()
  const now = cpuTimes()
  const since = opts.quick === true || lastCpu === undefined ? undefined : busyBetween(lastCpu, now)
  lastCpu = now
  const load = since ?? os.loadavg()[0] / Math.max(1, os.availableParallelism())
  return {
    ram: Math.floor(mem.available / 1048576),
    disk: freeDiskMiB(dataDir),
    load: Math.min(1, Math.max(0, load))
  }
}
