// The few ways DAGMan's files quote text, in one place: a double-quoted string with `\"`
// and `\\` (ClassAds in the node status file, VARS values in rescue DAGs, ClassAd string
// literals in exported requirements), the two-digit fields of DAGMan's time stamps, and
// C's ctime() format its comments and labels use.

export function doubleQuoted (v: string): string {
  return `"${v.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`
}

export function twoDigits (n: number): string { return String(n).padStart(2, '0') }

const DAYS = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat']
const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec']

/** C's ctime() without its newline, as DAGMan's comments have it: `Thu Nov  7 05:20:00 2025` */
export function ctime (d: Date): string {
  return `${DAYS[d.getDay()]} ${MONTHS[d.getMonth()]} ${String(d.getDate()).padStart(2)} ${twoDigits(d.getHours())}:${twoDigits(d.getMinutes())}:${twoDigits(d.getSeconds())} ${d.getFullYear()}`
}
