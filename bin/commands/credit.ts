// `bgrid credit [--json]`: what this submitter knows of the workers of its BOINC-style
// runs: results valid, invalid, errored, late; trust (consecutive valid results, what
// adaptive replication goes by) and credit granted, in cobblestones.
import { readTrust } from '../../middleware-adapters/boinc/trust.ts'
import { printable, printableJson, printableLines } from '../../protocol/printable.ts'

export async function creditCommand (o: { dataDir: string, json?: boolean }): Promise<number> {
  const rows = [...(await readTrust(o.dataDir)).entries()]
    .map(([peer, r]) => ({ peer, ...r, trust: r.consecutiveValid }))
    .sort((a, b) => b.credit - a.credit || a.name.localeCompare(b.name))
  if (o.json === true) { process.stdout.write(printableJson(rows, 2) + '\n'); return 0 }
  if (rows.length === 0) { process.stdout.write('no worker has run a BOINC-style job (`"middleware": "boinc"`) for this submitter yet\n'); return 0 }
  const head = ['NODE', 'PEER', 'VALID', 'INVALID', 'ERRORS', 'TIMEOUTS', 'TRUST', 'CREDIT']
  // a worker's name is what its advert said: escaped before the columns are measured
  const cells = rows.map(r =>
    [r.name, `…${r.peer.slice(-8)}`, r.valid, r.invalid, r.errors, r.timeouts, r.trust, r.credit.toFixed(3)]
      .map(c => printable(c, { max: 64 })))
  const width = head.map((h, i) => Math.max(h.length, ...cells.map(c => c[i].length)))
  const line = (c: string[]): string => c.map((x, i) => i < 2 ? x.padEnd(width[i]) : x.padStart(width[i])).join('  ')
  process.stdout.write(printableLines([line(head), ...cells.map(line)].join('\n')) + '\n')
  process.stdout.write('TRUST: consecutive valid results (10 or more: unreplicated work now and then); CREDIT: cobblestones (200 a day of a 1 GFLOPS core)\n')
  return 0
}
