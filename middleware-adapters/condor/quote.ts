// The few ways DAGMan's files quote text, in one place: a double-quoted string with `\"`
// and `\\` (ClassAds in the node status file, VARS values in rescue DAGs, ClassAd string
// literals in exported requirements), and the two-digit fields of DAGMan's time stamps.

export function doubleQuoted (v: string): string {
  return `"${v.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`
}

export function twoDigits (n: number): string { return String(n).padStart(2, '0') }
