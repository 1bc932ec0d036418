// Best effort: a step whose failure changes nothing worth saying (a temporary file already
// gone, a process already dead, a socket already closed, a status write the next tick
// repeats). Its error is never thrown; it is logged at debug level through the process's
// own logger (its format, its level: the CLI sets it for the daemon and for a run), so
// that one name says on purpose what a bare `catch {}` said by silence.
import { silentLogger, type Logger } from './log.ts'
import { errorMessage } from './errors.ts'

let log: Logger = silentLogger

/** The logger best-effort failures go to, at debug level (none set: they are not logged). */
export function setBestEffortLog (logger: Logger): void {
  log = logger.child('best-effort')
}

/** `try { step } catch (err) { bestEffort('step', err) }`, or `promise.catch(err => { bestEffort('step', err) })` */
export function bestEffort (what: string, err: unknown): void {
  log.debug(`${what}: failed, ignored`, { err: errorMessage(err) })
}

/** Run a step whose failure changes nothing for the caller (a clean-up that may find nothing to clean). */
export function tryBestEffort (what: string, step: () => void): void {
  try { step() } catch (err) { bestEffort(what, err) }
}
