// A small structured logger: readable lines for people, NDJSON with --json-logs.
// A readable line is one line of printable text whatever it carries (a worker's reason,
// a node's name): message and field values go through protocol/printable.ts.
import { printable, printableJson } from './printable.ts'
export type Level = 'debug' | 'info' | 'warn' | 'error'
const order: Record<Level, number> = { debug: 10, info: 20, warn: 30, error: 40 }

export interface Logger {
  debug: (msg: string, fields?: Record<string, unknown>) => void
  info: (msg: string, fields?: Record<string, unknown>) => void
  warn: (msg: string, fields?: Record<string, unknown>) => void
  error: (msg: string, fields?: Record<string, unknown>) => void
  child: (scope: string) => Logger
}

export interface LoggerOptions { json?: boolean, level?: Level, scope?: string, stream?: NodeJS.WritableStream }

/** a logged field or message is bounded too, though more loosely than a name or a reason */
const LOG_FIELD_MAX = 4096

function fmt (v: unknown): string {
  const s = typeof v === 'string' ? (/\s/.test(v) ? JSON.stringify(v) : v) : JSON.stringify(v)
  return printable(s, { max: LOG_FIELD_MAX })
}

export function createLogger (opts: LoggerOptions = {}): Logger {
  const min = order[opts.level ?? (process.env.BGRID_LOG_LEVEL as Level | undefined) ?? 'info'] ?? 20
  const out = opts.stream ?? process.stderr
  const write = (level: Level, msg: string, fields?: Record<string, unknown>): void => {
    if (order[level] < min) return
    const time = new Date().toISOString()
    if (opts.json === true) {
      out.write(printableJson({ time, level, scope: opts.scope, msg, ...fields }) + '\n')
    } else {
      const kv = fields === undefined
        ? ''
        : ' ' + Object.entries(fields).filter(([, v]) => v !== undefined).map(([k, v]) => `${k}=${fmt(v)}`).join(' ')
      const scope = opts.scope !== undefined ? `[${opts.scope}] ` : ''
      const text = printable(msg, { max: LOG_FIELD_MAX })
      out.write(`${time.slice(11, 23)} ${level.toUpperCase().padEnd(5)} ${scope}${text}${kv}\n`)
    }
  }
  return {
    debug: (m, f) => { write('debug', m, f) },
    info: (m, f) => { write('info', m, f) },
    warn: (m, f) => { write('warn', m, f) },
    error: (m, f) => { write('error', m, f) },
    child: (scope) => createLogger({ ...opts, scope: opts.scope !== undefined ? `${opts.scope}/${scope}` : scope })
  }
}

export const silentLogger: Logger = {
  debug: () => {}, info: () => {}, warn: () => {}, error: () => {}, child: () => silentLogger
}
