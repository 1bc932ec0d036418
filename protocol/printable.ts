// Text that came from a job, a worker or the network, made safe to print on a terminal
// (pure, a leaf: it imports nothing). Contract of printable():
//  - control characters are shown escaped, never sent: C0 (U+0000-001F, so the ESC that
//    starts every CSI/OSC/DCS sequence and the BEL that ends an OSC) and DEL as `\x1b`,
//    C1 (U+0080-009F, 8-bit CSI/OSC included) as `\u009b`; the bidi embeddings, overrides
//    and isolates (U+202A-202E, U+2066-2069: "Trojan Source") as `\u202e`;
//  - one-line form (the default): a run of tabs, newlines, CR, VT or FF is one space, so a
//    remote value can neither break a line nor forge one; multi-line form: newline and tab
//    kept, CRLF read as a newline, a lone CR escaped (it would overwrite the line);
//  - a lone surrogate (or, for bytes, an invalid UTF-8 sequence) becomes U+FFFD;
//  - at most `max` UTF-8 bytes of the text are shown, cut at a character boundary, and
//    what is left out is said: "…(N more bytes)". The output of printable() is a fixed
//    point: printing it again through printable() gives it back (a backslash is not
//    escaped, so an escape shown here looks like the same text written by the job).
// printableJson() is JSON.stringify with the same characters \u-escaped (the same value
// to a JSON reader), and printableFor() passes bytes through to a pipe or file unchanged
// but escapes them for a terminal (`bgrid logs JOB | less` gets the job's own bytes).

export interface PrintableOptions {
  /** keep newlines and tabs (a job's output, a multi-line error); default: one line */
  multiLine?: boolean
  /** the most UTF-8 bytes of the text shown; default 300 for one line, 64 KiB for lines */
  max?: number
}

/** one line of remote text, by default (a name, a reason) */
export const LINE_MAX = 300
/** several lines of remote text, by default (a stderr tail, an event with details) */
export const LINES_MAX = 64 * 1024

// eslint-disable-next-line no-control-regex
const ONE_LINE = /[\t\n\v\f\r]+|[\u0000-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/g
// eslint-disable-next-line no-control-regex
const MULTI_LINE = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/g
// characters JSON.stringify leaves raw in its strings that a terminal (or an editor) may act on
const JSON_RAW = /[\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g

function hex (c: string, width: number): string { return c.charCodeAt(0).toString(16).padStart(width, '0') }

/** how one character is shown: `\x1b` for C0 and DEL (as C, JS and `cat -v` users read them), `\u009b` above */
function shown (c: string): string {
  const code = c.charCodeAt(0)
  return code < 0x80 ? `\\x${hex(c, 2)}` : `\\u${hex(c, 4)}`
}

/** s with each lone surrogate (half of a pair, alone) made U+FFFD: String.prototype.toWellFormed, ES2024 */
export function wellFormed (s: string): string {
  return s.replace(/[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g, '\ufffd')
}

function asText (text: unknown): string {
  // a non-fatal decoder: an invalid UTF-8 sequence is U+FFFD, not an exception
  if (text instanceof Uint8Array) return new TextDecoder('utf-8').decode(text)
  return typeof text === 'string' ? text : String(text)
}

/** the first `max` UTF-8 bytes of s (cut between characters) and how many bytes were left out */
function bounded (s: string, max: number): { kept: string, more: number } {
  // a string of n UTF-16 units is at most 3n UTF-8 bytes: most texts need no encoding at all
  if (!Number.isFinite(max) || s.length * 3 <= max) return { kept: s, more: 0 }
  const bytes = Buffer.from(s, 'utf8')
  if (bytes.length <= max) return { kept: s, more: 0 }
  let cut = Math.max(0, Math.floor(max))
  while (cut > 0 && (bytes[cut] & 0xc0) === 0x80) cut-- // not inside a character
  return { kept: bytes.subarray(0, cut).toString('utf8'), more: bytes.length - cut }
}

/** THE function: text from a job, a worker or the network, fit to print (see the header) */
export function printable (text: unknown, o: PrintableOptions = {}): string {
  const multi = o.multiLine === true
  const whole = wellFormed(asText(text))
  const { kept, more } = bounded(whole, o.max ?? (multi ? LINES_MAX : LINE_MAX))
  const out = multi
    ? kept.replace(/\r\n/g, '\n').replace(MULTI_LINE, shown)
    : kept.replace(ONE_LINE, c => c.length > 1 || /[\t\n\v\f\r]/.test(c) ? ' ' : shown(c))
  return more > 0 ? `${out}…(${more} more bytes)` : out
}

/** the multi-line form of printable(): a job's output, a multi-line message */
export function printableLines (text: unknown, max: number = LINES_MAX): string {
  return printable(text, { multiLine: true, max })
}

/** JSON.stringify, with C1, DEL, U+2028/2029 and bidi controls \u-escaped too (the same value to a reader) */
export function printableJson (value: unknown, indent?: number): string {
  return (JSON.stringify(value, null, indent) ?? 'null').replace(JSON_RAW, c => `\\u${hex(c, 4)}`)
}

/**
 * What to write of a job's raw output to `stream`: escaped (every line kept, no bound) when
 * it is a terminal, the bytes unchanged when it is a pipe or a file (`bgrid logs R J > out`
 * must give back what the job wrote, as `kubectl logs` and `less` users expect).
 */
export function printableFor (stream: { isTTY?: boolean }, data: string | Uint8Array): string | Uint8Array {
  return stream.isTTY === true ? printableLines(data, Infinity) : data
}
