// Path checks for every file name that crosses a trust boundary.
import path from 'node:path'
import { BgridError } from './errors.ts'

const PLAIN = /^[A-Za-z0-9_][A-Za-z0-9_.-]*$/

/** Why a relative file name is unsafe, or null if it is fine. */
export function unsafeRelPath (name: string): string | null {
  // the common case, one plain component (a job's output `out.7`): nothing more to look at
  if (PLAIN.test(name)) return null
  if (name.length === 0) return 'empty file name'
  if (name.includes('\0')) return 'NUL byte in file name'
  if (name.includes('\\')) return 'backslash in file name'
  if (path.posix.isAbsolute(name)) return 'absolute path'
  const parts = name.split('/')
  if (parts.some(p => p === '..')) return '".." in path'
  if (parts.some(p => p === '' || p === '.')) return 'empty or "." path component'
  return null
}

/** Join a relative name under a root, refusing anything that escapes it. */
export function safeJoin (root: string, name: string): string {
  const why = unsafeRelPath(name)
  if (why !== null) throw new BgridError('PATH', `${JSON.stringify(name)}: ${why}`)
  const full = path.resolve(root, name)
  const base = path.resolve(root)
  if (full !== base && !full.startsWith(base + path.sep)) throw new BgridError('PATH', `${JSON.stringify(name)} escapes its directory`)
  return full
}
