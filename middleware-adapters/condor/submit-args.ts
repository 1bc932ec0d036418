// condor_submit's two syntaxes for `arguments` and `environment`.
//
// arguments, old syntax (the value does not start with a double quote): arguments are
// separated by spaces and tabs; `\"` is a double quote; any other backslash is itself;
// an unescaped double quote is an error.
// arguments, new syntax (the whole value in double quotes): `""` is a double quote;
// spaces and tabs separate arguments; single quotes group (any part of) an argument,
// and inside them `''` is a single quote; backslashes are ordinary.
// environment, new syntax: the same quoting, each argument `name=value`.
// environment, old syntax: `name=value` entries separated by `;` (on Unix), every other
// character literal.

/** The new syntax's body (quotes removed, `""` undone) split into words. */
function newSyntaxWords (body: string): string[] {
  const out: string[] = []
  let cur: string | null = null
  let i = 0
  while (i < body.length) {
    const c = body[i]
    if (c === ' ' || c === '\t') {
      if (cur !== null) { out.push(cur); cur = null }
      i++
      continue
    }
    if (c === "'") {
      cur ??= ''
      i++
      for (;;) {
        if (i >= body.length) throw new Error('unterminated single quote')
        if (body[i] === "'") {
          if (body[i + 1] === "'") { cur += "'"; i += 2; continue }
          i++
          break
        }
        cur += body[i++]
      }
      continue
    }
    cur = (cur ?? '') + c
    i++
  }
  if (cur !== null) out.push(cur)
  return out
}

/** `"..."` with `""` inside: the body, or null when the value is not in the new syntax. */
function newSyntaxBody (value: string): string | null {
  const v = value.trim()
  if (!v.startsWith('"')) return null
  if (v.length < 2 || !v.endsWith('"')) throw new Error('the new syntax puts the whole value in double quotes: the closing quote is missing')
  const inner = v.slice(1, -1)
  let body = ''
  for (let i = 0; i < inner.length; i++) {
    if (inner[i] === '"') {
      if (inner[i + 1] !== '"') throw new Error('a double quote inside the new syntax must be doubled ("")')
      i++
    }
    body += inner[i]
  }
  return body
}

/** A submit file's `arguments` value as argv (after the executable). Throws an Error saying what is wrong. */
export function parseArguments (value: string): string[] {
  const body = newSyntaxBody(value)
  if (body !== null) return newSyntaxWords(body)
  const out: string[] = []
  let cur: string | null = null
  for (let i = 0; i < value.length; i++) {
    const c = value[i]
    if (c === ' ' || c === '\t') { if (cur !== null) { out.push(cur); cur = null } continue }
    if (c === '\\' && value[i + 1] === '"') { cur = (cur ?? '') + '"'; i++; continue }
    if (c === '"') throw new Error('an unescaped double quote in the old syntax (write \\" , or put the whole value in double quotes for the new syntax)')
    cur = (cur ?? '') + c
  }
  if (cur !== null) out.push(cur)
  return out
}

/** A submit file's `environment` value as a map. Throws an Error saying what is wrong. */
export function parseEnvironment (value: string): Record<string, string> {
  const body = newSyntaxBody(value)
  const entries = body !== null ? newSyntaxWords(body) : value.split(';').filter(e => e.trim() !== '')
  const env: Record<string, string> = {}
  for (const e of entries) {
    const eq = e.indexOf('=')
    const name = eq < 0 ? e : e.slice(0, eq)
    if (eq <= 0 || !/^[A-Za-z_][A-Za-z0-9_]*$/.test(name.trim())) throw new Error(`environment entry ${JSON.stringify(e)} is not name=value`)
    env[name.trim()] = e.slice(eq + 1)
  }
  return env
}
