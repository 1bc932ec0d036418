// NODE_STATUS_FILE: the DAG's and each node's state as ClassAds, in the layout
// condor_dagman writes (Dag::DumpNodeStatus), which tools and HTCondor's own tests read.
import { ctime, doubleQuoted } from './quote.ts'
import { NODE_STATUS, DAG_STATUS, type DagmanEngine, type DagResult } from './engine.ts'

const STATUS_NAME = ['STATUS_NOT_READY', 'STATUS_READY', 'STATUS_PRERUN', 'STATUS_SUBMITTED', 'STATUS_POSTRUN', 'STATUS_DONE', 'STATUS_ERROR', 'STATUS_FUTILE']

/** what the DagStatus line says once the DAG is over */
function dagEnd (r: DagResult): { code: number, note: string } {
  if (r.exitCode === 0) return { code: 5, note: 'STATUS_DONE (success)' }
  const why = r.status === DAG_STATUS.cycle
    ? 'cycle'
    : r.status === DAG_STATUS.abort ? 'aborted' : r.status === DAG_STATUS.removed ? 'removed' : 'failed'
  return { code: 6, note: `STATUS_ERROR (${why})` }
}

const q = doubleQuoted
export function nodeStatusFile (dagFiles: string[], engine: DagmanEngine, result: DagResult | null, now: Date, nextUpdate: number): string {
  const ts = Math.floor(now.getTime() / 1000)
  const st = result === null ? { code: 3, note: 'STATUS_SUBMITTED ()' } : dagEnd(result)
  const c = (s: typeof NODE_STATUS[number]): number => engine.count(s)
  const out: string[] = [
    '[',
    '  Type = "DagStatus";',
    `  DagFiles = {\n    ${dagFiles.map(q).join(',\n    ')}\n  };`,
    `  Timestamp = ${ts}; /* ${q(ctime(now))} */`,
    `  DagStatus = ${st.code}; /* ${q(st.note)} */`,
    `  NodesTotal = ${engine.nodes.filter(n => !n.final).length};`,
    `  NodesDone = ${c('done')};`,
    `  NodesPre = ${c('prerun')};`,
    `  NodesQueued = ${c('submitted')};`,
    `  NodesPost = ${c('postrun')};`,
    `  NodesReady = ${c('ready')};`,
    `  NodesUnready = ${c('not_ready')};`,
    `  NodesFutile = ${c('futile')};`,
    `  NodesFailed = ${c('error')};`,
    '  JobProcsHeld = 0;',
    `  JobProcsIdle = 0; /* includes held */`,
    ']'
  ]
  engine.nodes.forEach((n, i) => {
    const s = engine.state[i]
    const code = NODE_STATUS.indexOf(s.status)
    out.push('[',
      '  Type = "NodeStatus";',
      `  Node = ${q(n.name)};`,
      `  NodeStatus = ${code}; /* ${q(STATUS_NAME[code])} */`,
      `  StatusDetails = ${q(s.details)};`,
      `  RetryCount = ${s.retries};`,
      `  JobProcsQueued = ${s.status === 'submitted' ? 1 : 0};`,
      '  JobProcsHeld = 0;',
      ']')
  })
  out.push('[',
    '  Type = "StatusEnd";',
    `  EndTime = ${ts}; /* ${q(ctime(now))} */`,
    `  NextUpdate = ${result === null ? nextUpdate : 0}; /* ${q(result === null ? ctime(new Date(nextUpdate * 1000)) : 'none')} */`,
    ']')
  return out.join('\n') + '\n'
}
