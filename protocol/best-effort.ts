// Best effort: a step whose failure changes nothing worth saying (a temporary file already
// gone, a process already dead, a socket already closed, a status write the next tick
// repeats). Its error is never thrown; it is logged at debug level (BGRID_LOG_LEVEL=debug),
// so that one name says on purpose what a bare `catch {}` said by silence.
import { createLogger, type Logger } from './log.ts'
import { errorMessage } from './errors.ts'

let log: Logger | undefined

/** `try { step } catch (err) { bestEffort('step', err) }`, or `promise.catch(err => { bestEffort('step', err) })` */
export function bestEffort (what: string, err: unknown): void {
  if (process.env.BGRID_LOG_LEVEL !== 'debug') return
  log ??= createLogger({ scope: 'best-effort', level: 'debug' })
  log.debug(`${what}: failed, ignored`, { err: errorMessage(err) })
}
