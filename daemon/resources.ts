// Resource measurement with systeminformation, refreshed in the background:
// currentLoad() costs ~0.5 s on its first call, so nothing here is on a hot path.
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

/**
 * quick: use the 1-minute load average instead of systeminformation's currentLoad,
 * whose first call takes ~0.5 s (it samples): the daemon advertises itself sooner.
 */
export async function measureDynamic (dataDir: string, opts: { quick?: boolean } = {}): Promise<Pick<Resources, 'ram' | 'disk' | 'load'>> {
  const mem = await si.mem()
  const load = opts.quick === true
    ? os.loadavg()[0] / Math.max(1, os.availableParallelism())
    : ((await si.currentLoad()).currentLoad ?? 0) / 100
  return {
    ram: Math.floor(mem.available / 1048576),
    disk: freeDiskMiB(dataDir),
    load: Math.min(1, Math.max(0, load))
  }
}
