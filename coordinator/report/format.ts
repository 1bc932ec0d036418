// Values as the report prints them. Durations and dates follow Nextflow's trace file
// (nextflow.util.Duration.toString and its "yyyy-MM-dd HH:mm:ss.SSS" in local time),
// so that the trace reads like one, and the page says the same figures the same way.

/** Nextflow's duration: `931ms`, `1.2s`, `5s`, `3m 4s`, `1h 2m`, `2d 3h 5s`. */
export function formatDuration (ms: number): string {
  if (!Number.isFinite(ms)) return '-'
  const t = Math.max(0, Math.round(ms))
  if (t < 1000) return `${t}ms`
  if (t < 60_000) return `${Math.round(t / 100) / 10}s`
  let secs = Math.round(t / 1000)
  const parts: string[] = []
  const days = Math.floor(secs / 86400)
  secs -= days * 86400
  const hours = Math.floor(secs / 3600)
  secs -= hours * 3600
  const mins = Math.floor(secs / 60)
  secs -= mins * 60
  if (days > 0) parts.push(`${days}d`)
  if (hours > 0) parts.push(`${hours}h`)
  if (mins > 0) parts.push(`${mins}m`)
  if (secs > 0) parts.push(`${secs}s`)
  return parts.join(' ')
}

const pad = (n: number, w = 2): string => String(n).padStart(w, '0')

/** Nextflow's trace date, `2014-10-23 16:33:16.288`, in this machine's time zone. */
export function formatDate (epochMs: number): string {
  if (!Number.isFinite(epochMs) || epochMs <= 0) return '-'
  const d = new Date(epochMs)
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`
}

/** Bytes in binary units: `512 B`, `1.5 KiB`, `12.0 MiB`. */
export function formatBytes (n: number | undefined): string {
  if (n === undefined || !Number.isFinite(n)) return '-'
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB']
  let v = n
  let u = 0
  while (Math.abs(v) >= 1024 && u < units.length - 1) { v /= 1024; u++ }
  return u === 0 ? `${v} B` : `${v.toFixed(1)} ${units[u]}`
}

const ENTITIES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;', '\n': '&#10;' }

/** Text and attribute values in HTML: node names and errors come from the network. */
export function escapeHtml (s: unknown): string {
  return String(s).replace(/[&<>"'\n]/g, c => ENTITIES[c])
}
