// Errors and warnings of a DAGMan import, each naming the file and line it comes from.
// Files are shown relative to the top DAG file's directory, as the user wrote them. The
// same error at the same place for many nodes (one submit file, many nodes) is said once.
import path from 'node:path'
import { BgridError } from '../../protocol/errors.ts'
import type { Loc } from './lexer/lines.ts'

const MAX_ERRORS = 40

export class Problems {
  readonly base: string
  /** message -> the nodes it was said of (empty: none named) */
  private readonly messages = new Map<string, { first: string | null, count: number }>()
  constructor (base: string) { this.base = base }

  private readonly shown = new WeakMap<Loc, string>()
  /** `file:line` for messages */
  at (loc: Loc): string {
    let s = this.shown.get(loc)
    if (s === undefined) {
      const rel = path.relative(this.base, loc.file)
      s = `${rel === '' || rel.startsWith('..') ? loc.file : rel}:${loc.line}`
      this.shown.set(loc, s)
    }
    return s
  }

  /** an error at a place, about a node when `node` is given */
  error (loc: Loc, message: string, node?: string): void { this.add(`${this.at(loc)}: ${message}`, node) }

  /** a message that names its places itself */
  add (message: string, node?: string): void {
    const m = this.messages.get(message)
    if (m !== undefined) m.count++
    else this.messages.set(message, { first: node ?? null, count: 1 })
  }

  get any (): boolean { return this.messages.size > 0 }

  get errors (): string[] {
    return [...this.messages].map(([msg, m]) => {
      if (m.first === null) return msg
      // on the first line: what follows may be the expression and a caret under it
      const nl = msg.indexOf('\n')
      const who = ` (node ${m.first}${m.count > 1 ? ` and ${m.count - 1} more` : ''})`
      return nl < 0 ? msg + who : msg.slice(0, nl) + who + msg.slice(nl)
    })
  }

  /** throw every error so far as one INVALID_DAG error */
  throwIfAny (what: string, hint?: string): void {
    if (!this.any) return
    const all = this.errors
    const shown = all.slice(0, MAX_ERRORS)
    if (all.length > shown.length) shown.push(`... and ${all.length - shown.length} more`)
    throw new BgridError('INVALID_DAG', `${what}\n  ${shown.join('\n  ')}${hint !== undefined ? `\n${hint}` : ''}`)
  }
}
