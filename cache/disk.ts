// Free space on the file system holding a directory.
import { statfsSync } from 'node:fs'

export function freeDiskMiB (dir: string): number {
  try {
    const s = statfsSync(dir)
    return Math.floor(Number(s.bavail) * Number(s.bsize) / 1048576)
  } catch { return 0 }
}
