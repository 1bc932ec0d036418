// Typed errors with stable codes. The CLI maps codes to messages and exit codes;
// protocol replies carry the code so a remote peer can act on it.

export type ErrorCode =
  | 'BAD_REQUEST'      // malformed or schema-invalid message
  | 'TOO_LARGE'        // message over the size limit
  | 'VERSION'          // protocol version we do not speak
  | 'UNAUTHORISED'     // peer not allowed (allow-list, not in this run)
  | 'BUSY'             // worker already serves another coordinator
  | 'YIELDING'         // worker leaves its run for the asker at a job boundary: ask again
  | 'OWNER'            // node owner is using the machine
  | 'POLICY'           // refused by local policy
  | 'NOT_CLAIMED'      // renew/release/pull without a live claim
  | 'NOT_FOUND'        // unknown blob, run or job
  | 'TIMEOUT'          // a deadline passed
  | 'UNREACHABLE'      // could not connect (wrong grid key looks like this)
  | 'INVALID_DAG'      // dag.json failed validation
  | 'INVALID_CONFIG'   // bad CLI option or config
  | 'NO_WORKERS'       // not enough feasible workers
  | 'DISK_FULL'        // not enough space for a blob or staging
  | 'HASH_MISMATCH'    // bytes do not match their content address
  | 'PATH'             // a file name escapes its sandbox
  | 'IN_USE'           // a data dir or run another process holds (its database lock)
  | 'INTERNAL'

export class BgridError extends Error {
  readonly code: ErrorCode
  readonly details?: unknown
  constructor (code: ErrorCode, message: string, details?: unknown) {
    super(message)
    this.name = 'BgridError'
    this.code = code
    this.details = details
  }
}

export function isBgridError (err: unknown, code?: ErrorCode): err is BgridError {
  return err instanceof BgridError && (code === undefined || err.code === code)
}

/** Exit codes of the CLI, by error code. 2 = the user's input is wrong (or names a data dir another process holds: choose another). */
export function exitCodeFor (err: unknown): number {
  if (!(err instanceof BgridError)) return 1
  switch (err.code) {
    case 'INVALID_DAG':
    case 'INVALID_CONFIG':
    case 'PATH':
    case 'IN_USE':
      return 2
    case 'NO_WORKERS':
      return 3
    case 'UNREACHABLE':
    case 'TIMEOUT':
      return 4
    default:
      return 1
  }
}

export function errorMessage (err: unknown): string {
  if (err instanceof BgridError) return `${err.code}: ${err.message}`
  if (err instanceof Error) {
    const cause = (err as any).cause
    return cause instanceof Error ? `${err.message}: ${cause.message}` : err.message
  }
  return String(err)
}
