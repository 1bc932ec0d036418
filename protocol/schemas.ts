// Building blocks shared by the message schemas.
export const RUN_ID = { type: 'string', pattern: '^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$' } as const
export const PEER_ID = { type: 'string', pattern: '^[1-9A-HJ-NP-Za-km-z]{32,128}$' } as const
export const HASH = { type: 'string', pattern: '^[0-9a-f]{64}$' } as const
export const ATTEMPT_ID = { type: 'string', pattern: '^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$' } as const
export const JOB_ID = { type: 'string', pattern: '^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$' } as const
/** A relative file name inside a sandbox; the path check itself is done by safeJoin. */
export const REL_PATH = { type: 'string', minLength: 1, maxLength: 1024 } as const
export const SIZE = { type: 'integer', minimum: 0, maximum: Number.MAX_SAFE_INTEGER } as const
export const MULTIADDR = { type: 'string', maxLength: 256 } as const
