// What every benchmark here measures the same way: medians of rounds and the CPU time
// a process has used, read from /proc (all its threads; USER_HZ is 100 on Linux).
import { readFileSync } from 'node:fs'

const TICK_MS = 10

export function median (xs: number[]): number {
  return [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]
}

/** p-th percentile (0-100) of xs */
export function percentile (xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.min(s.length - 1, Math.floor(p / 100 * s.length))]
}

/** CPU ms a process used, [own (user + system), its reaped children's]; [0, 0] once it is gone */
export function cpuMs (pid: number | 'self'): [number, number] {
  try {
    const f = readFileSync(`/proc/${pid}/stat`, 'utf8')
    const x = f.slice(f.lastIndexOf(')') + 2).split(' ')
    return [(Number(x[11]) + Number(x[12])) * TICK_MS, (Number(x[13]) + Number(x[14])) * TICK_MS]
  } catch { return [0, 0] }
}
