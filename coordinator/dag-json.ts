// dag.json on disk: the reading around the run core's DAG parser. The DAG file's JSON,
// the schema it is validated against (shipped at the package root) and whether each
// input file the DAG names is there are read here; parsing, validating and normalising
// the value is the run core's, which does no I/O.
import { readFileSync, statSync, existsSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import path from 'node:path'
import { BgridError } from '../protocol/errors.ts'
import { compileDagSchema, parseDagValue } from './core/dag.ts'
import type { Dag } from './core/model.ts'

// schema/ sits at the package root, whether this runs from source or from dist/
function schemaFile (): string {
  let dir = path.dirname(fileURLToPath(import.meta.url))
  while (!existsSync(path.join(dir, 'schema', 'dag.schema.json')) && path.dirname(dir) !== dir) dir = path.dirname(dir)
  return path.join(dir, 'schema', 'dag.schema.json')
}
const schema = compileDagSchema(JSON.parse(readFileSync(schemaFile(), 'utf8')))

/** What is wrong with an input file (null: a regular file), each path looked at once. */
function fileProblems (): (abs: string) => string | null {
  const statCache = new Map<string, string | null>()
  return (abs: string): string | null => {
    let why = statCache.get(abs)
    if (why === undefined) {
      try { why = statSync(abs).isFile() ? null : 'not a regular file' } catch (err: any) {
        why = err.code === 'ENOENT' ? 'no such file' : err.message
      }
      statCache.set(abs, why ?? null)
    }
    return why ?? null
  }
}

/** A DAG's JSON validated and normalised; `checkFiles: false`: its input files are not looked for. */
export function parseDag (raw: unknown, file: string, opts: { checkFiles?: boolean } = {}): Dag {
  return parseDagValue(raw, file, { schema, ...(opts.checkFiles === false ? {} : { fileProblem: fileProblems() }) })
}

/** The DAG file's JSON, unvalidated (the journal keeps it as submitted). */
export function readDagJson (file: string): unknown {
  let text: string
  try { text = readFileSync(file, 'utf8') } catch (err: any) {
    throw new BgridError('INVALID_DAG', `cannot read ${file}: ${err.code === 'ENOENT' ? 'no such file' : err.message}`)
  }
  let raw: unknown
  try { raw = JSON.parse(text) } catch (err: any) {
    throw new BgridError('INVALID_DAG', `${file}: not valid JSON: ${err.message}`)
  }
  return raw
}
