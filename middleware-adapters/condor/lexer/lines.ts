// The line layer HTCondor's DAG and submit files share (condor_utils' getline, as
// DAGMan calls it): one logical line per command, with
// - leading and trailing white space trimmed from every physical line;
// - a line ending in `\` continued by the next one, the backslash removed and the next
//   line joined as it is (its leading white space trimmed, nothing inserted: `A \` + `B`
//   is `A B`, `A\` + `B` is `AB`);
// - a line that starts with `#` a comment; a comment never continues (a `\` at its end
//   is dropped); inside a continuation, a commented-out line adds only its last
//   character (so `# ... \` keeps the continuation going, as DAGMan's reader does);
// - `#` anywhere else is an ordinary character (no trailing comments).
// Keywords are case-insensitive; tokens are separated by spaces and tabs (strtok's
// " \t"), never by other white space.

/** Where something was written: an absolute file name and a 1-based line. */
export interface Loc { file: string, line: number }

export interface LogicalLine {
  text: string
  /** the physical line the logical line starts on */
  line: number
  comment: boolean
}

/** isspace() */
function space (c: number): boolean { return c === 32 || (c >= 9 && c <= 13) }

function trim (s: string): string {
  let a = 0
  let b = s.length
  while (a < b && space(s.charCodeAt(a))) a++
  while (b > a && space(s.charCodeAt(b - 1))) b--
  return a === 0 && b === s.length ? s : s.slice(a, b)
}

/** The logical lines of a text as three parallel lists (no object per line: a DAG may have millions). */
export interface Lines { text: string[], line: number[], comment: boolean[] }

export function logicalLines (text: string): LogicalLine[] {
  const l = splitLines(text)
  return l.text.map((t, i) => ({ text: t, line: l.line[i], comment: l.comment[i] }))
}

export function splitLines (text: string): Lines {
  const physical = text.split('\n')
  // a final newline ends the last line; it does not start an empty one
  if (physical.length > 0 && physical[physical.length - 1] === '') physical.pop()
  const out: Lines = { text: [], line: [], comment: [] }
  const push = (t: string, line: number, comment: boolean): void => { out.text.push(t); out.line.push(line); out.comment.push(comment) }
  let buf: string | null = null
  let start = 0
  let comment = false
  for (let i = 0; i < physical.length; i++) {
    let s = trim(physical[i])
    if (buf === null) {
      start = i + 1
      comment = s.startsWith('#')
      buf = ''
    } else if (s.startsWith('#')) {
      // a commented-out line inside a continuation: only its last character stays
      s = s.slice(-1)
    }
    if (s.charCodeAt(s.length - 1) === 92) {
      s = s.slice(0, -1)
      if (!comment) { buf += s; continue }
    }
    push(buf === '' ? s : buf + s, start, comment)
    buf = null
  }
  if (buf !== null) push(buf, start, comment)
  return out
}

/** Case-insensitive keyword comparison (`Job`, `JOB`, `job`). */
export function isKeyword (token: string | null | undefined, keyword: string): boolean {
  return token !== null && token !== undefined && token.length === keyword.length && token.toUpperCase() === keyword
}

const DELIM = (c: string): boolean => c === ' ' || c === '\t'

/** strtok over one line: tokens split on spaces and tabs, and the rest of the line when a command wants it. */
export class Tokens {
  private pos = 0
  readonly text: string
  constructor (text: string) { this.text = text }

  /** the next token, or null at the end */
  next (): string | null {
    const t = this.text
    let i = this.pos
    while (i < t.length && DELIM(t[i])) i++
    if (i >= t.length) { this.pos = i; return null }
    let j = i
    while (j < t.length && !DELIM(t[j])) j++
    this.pos = j
    return t.slice(i, j)
  }

  /** a token that may be in double quotes (no escapes inside: DAGMan's next_possibly_quoted_token) */
  nextPossiblyQuoted (): string | null {
    const t = this.text
    let i = this.pos
    while (i < t.length && DELIM(t[i])) i++
    if (t[i] !== '"') { this.pos = i; return this.next() }
    const end = t.indexOf('"', i + 1)
    const stop = end < 0 ? t.length : end
    this.pos = end < 0 ? t.length : end + 1
    return t.slice(i + 1, stop)
  }

  /** everything after the current token, leading spaces and tabs removed */
  rest (): string {
    const t = this.text
    let i = this.pos
    while (i < t.length && DELIM(t[i])) i++
    this.pos = t.length
    return t.slice(i)
  }

  /** every token left */
  all (): string[] {
    const out: string[] = []
    for (let tok = this.next(); tok !== null; tok = this.next()) out.push(tok)
    return out
  }
}
