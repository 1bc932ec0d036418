// DNS-SD TXT record codec for `_bgrid._tcp` (pure). See docs/protocol.md.
// Anyone on the LAN can send an advert: what is kept of it is checked (tokens, peer ids,
// numbers), a rejected value is quoted escaped in the reason (protocol/printable.ts), and
// an instance name is restricted to a safe set of characters by safeNodeName.
import { isNodeState, type NodeState } from './node-states.ts'
import { isCustomName, type AttrValue } from './expr.ts'
import { printable, wellFormed } from './printable.ts'

export const SERVICE_TYPE = 'bgrid'           // _bgrid._tcp
export const TXT_VERSION = 1
export const MAX_TXT_STRING = 255
export const MAX_TXT_TOTAL = 1300

export interface NodeAd {
  v: number
  state: NodeState
  peer: string
  port: number
  cores: number
  mhz: number
  /** MiB available */
  ram: number
  /** MiB free in the data dir */
  disk: number
  /** owner's + our load, fraction of the machine 0..1 */
  load: number
  /** price per core-hour, any unit the grid agrees on */
  cost: number
  coord?: string
  arch: string
  os: string
  /** cores still free for new jobs (a claimed worker may have spare slots) */
  slots?: number
  /** which private grid it is in: a short fingerprint of its grid key (absent: open grid) */
  grid?: string
  /** the run it works for, when claimed (so that others can say who it is busy with) */
  run?: string
  /** that run's priority (fair sharing: a coordinator short of workers asks the nodes of lower or larger runs) */
  prio?: number
  /**
   * the run it has promised itself to (fair sharing): leaving `run` for it, or kept for
   * it; the LAN's counts count the node there, so that one ask moves one node
   */
  next?: string
  /** fingerprints of the submitters this node's owner prefers (protocol/fair-share.ts preferenceTag) */
  pref?: string[]
  /**
   * floating-point speed of ONE core, in GFLOPS (10^9 double-precision operations a
   * second), measured once at daemon start (daemon/benchmark.ts). BOINC's cobblestone
   * is defined on it: 1/200 of a day of CPU time on a 1 GFLOPS core
   */
  gflops?: number
  /** custom attributes (`--attr`): one `a.KEY=VALUE` entry each (strings JSON-quoted), those that fit */
  attrs?: Record<string, AttrValue>
  /** the START policy's source (`--start`), when it fits in one TXT string */
  start?: string
}

export type TxtRecord = Record<string, string>

function num (x: number, digits = 0): string {
  return digits === 0 ? String(Math.round(x)) : x.toFixed(digits)
}

export function encodeTxt (ad: NodeAd): TxtRecord {
  const txt: TxtRecord = {
    v: String(ad.v),
    state: ad.state,
    peer: ad.peer,
    p2p: String(ad.port),
    cores: num(ad.cores),
    mhz: num(ad.mhz),
    ram: num(ad.ram),
    disk: num(ad.disk),
    load: num(ad.load, 2),
    cost: String(ad.cost),
    arch: ad.arch,
    os: ad.os
  }
  if (ad.coord !== undefined) txt.coord = ad.coord
  if (ad.slots !== undefined) txt.slots = num(ad.slots)
  if (ad.grid !== undefined) txt.grid = ad.grid
  if (ad.run !== undefined) txt.run = ad.run
  if (ad.prio !== undefined && ad.prio !== 0) txt.prio = String(Math.trunc(ad.prio))
  if (ad.next !== undefined) txt.next = ad.next
  if (ad.pref !== undefined && ad.pref.length > 0) txt.pref = ad.pref.slice(0, 16).join(',')
  if (ad.gflops !== undefined) txt.gflops = num(ad.gflops, 2)
  let total = 0
  for (const [k, v] of Object.entries(txt)) {
    const len = Buffer.byteLength(`${k}=${v}`)
    if (len > MAX_TXT_STRING) throw new Error(`TXT string ${k} is ${len} bytes (max ${MAX_TXT_STRING})`)
    total += len + 1
  }
  if (total > MAX_TXT_TOTAL) throw new Error(`TXT record is ${total} bytes (max ${MAX_TXT_TOTAL})`)
  // optional extras, each only if it fits (the claim offer carries them all anyway)
  const extras: Array<[string, string]> = []
  if (ad.start !== undefined) extras.push(['start', ad.start])
  for (const [k, v] of Object.entries(ad.attrs ?? {})) extras.push([`a.${k}`, typeof v === 'string' ? JSON.stringify(v) : String(v)])
  for (const [k, v] of extras) {
    const len = Buffer.byteLength(`${k}=${v}`)
    if (len > MAX_TXT_STRING || total + len + 1 > MAX_TXT_TOTAL) continue
    txt[k] = v
    total += len + 1
  }
  return txt
}

export type DecodeResult = { ok: true, ad: NodeAd } | { ok: false, reason: string }

const PEER_RE = /^[1-9A-HJ-NP-Za-km-z]{32,128}$/ // base58btc peer ids
const TOKEN_RE = /^[A-Za-z0-9_.-]{1,32}$/
const GRID_RE = /^[0-9a-f]{8,16}$/
/** a run id as advertised */
export const RUN_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/

/** the longest node name kept (a DNS label is at most 63 bytes; ours are host-peer8) */
export const NODE_NAME_MAX = 63

/**
 * An advertised instance name, fit to print and compare: letters, digits, `-_.:@` and
 * space kept, anything else (control characters, escapes, bidi controls, non-ASCII) one
 * `?` each, at most NODE_NAME_MAX characters. bgrid's own names (instanceName) pass unchanged.
 */
export function safeNodeName (raw: unknown): string {
  const s = typeof raw === 'string' ? raw : String(raw)
  const cut = [...wellFormed(s)].slice(0, NODE_NAME_MAX).join('')
  const safe = cut.replace(/[^A-Za-z0-9_.:@ -]/gu, '?')
  return safe === '' ? '?' : safe
}

function nonNegative (txt: Record<string, unknown>, key: string, integer: boolean): number | string {
  const raw = txt[key]
  if (typeof raw !== 'string' || raw === '') return `missing ${key}`
  const n = Number(raw)
  if (!Number.isFinite(n) || n < 0 || (integer && !Number.isInteger(n))) {
    return `bad ${key}=${printable(raw, { max: 64 })}`
  }
  return n
}

/** Decode a browsed TXT record. Unknown keys are ignored (forward compatible). */
export function decodeTxt (txt: Record<string, unknown> | undefined): DecodeResult {
  if (txt === undefined || txt === null) return { ok: false, reason: 'no TXT record' }
  const v = nonNegative(txt, 'v', true)
  if (typeof v === 'string') return { ok: false, reason: v }
  if (v !== TXT_VERSION) return { ok: false, reason: `unsupported version v=${v}` }
  if (!isNodeState(txt.state)) return { ok: false, reason: `bad state=${printable(txt.state, { max: 64 })}` }
  if (typeof txt.peer !== 'string' || !PEER_RE.test(txt.peer)) return { ok: false, reason: 'bad peer id' }
  const fields: Record<string, number> = {}
  for (const [key, integer] of [['p2p', true], ['cores', true], ['mhz', true], ['ram', true], ['disk', true], ['load', false], ['cost', false]] as const) {
    const n = nonNegative(txt, key, integer)
    if (typeof n === 'string') return { ok: false, reason: n }
    fields[key] = n
  }
  if (fields.p2p < 1 || fields.p2p > 65535) return { ok: false, reason: `bad p2p=${fields.p2p}` }
  const arch = typeof txt.arch === 'string' && TOKEN_RE.test(txt.arch) ? txt.arch : 'unknown'
  const os = typeof txt.os === 'string' && TOKEN_RE.test(txt.os) ? txt.os : 'unknown'
  const ad: NodeAd = {
    v, state: txt.state, peer: txt.peer, port: fields.p2p, cores: fields.cores, mhz: fields.mhz,
    ram: fields.ram, disk: fields.disk, load: fields.load, cost: fields.cost, arch, os
  }
  if (typeof txt.coord === 'string' && PEER_RE.test(txt.coord)) ad.coord = txt.coord
  if (typeof txt.slots === 'string') {
    const s = nonNegative(txt, 'slots', true)
    if (typeof s === 'number') ad.slots = s
  }
  if (typeof txt.grid === 'string' && GRID_RE.test(txt.grid)) ad.grid = txt.grid
  if (typeof txt.run === 'string' && RUN_RE.test(txt.run)) ad.run = txt.run
  if (typeof txt.next === 'string' && RUN_RE.test(txt.next)) ad.next = txt.next
  if (typeof txt.prio === 'string' && /^-?\d{1,4}$/.test(txt.prio)) ad.prio = Number(txt.prio)
  if (typeof txt.pref === 'string') {
    const tags = txt.pref.split(',').filter(t => /^[0-9a-f]{8}$/.test(t)).slice(0, 16)
    if (tags.length > 0) ad.pref = tags
  }
  // optional, and a bad value is dropped, not the node (older daemons do not send it)
  if (typeof txt.gflops === 'string') {
    const g = nonNegative(txt, 'gflops', false)
    if (typeof g === 'number' && g <= 1000) ad.gflops = g
  }
  // custom attributes: a bad entry is dropped, not the node
  for (const [k, raw] of Object.entries(txt)) {
    if (!k.startsWith('a.') || typeof raw !== 'string') continue
    const name = k.slice(2)
    if (!isCustomName(name)) continue
    const v = attrValue(raw)
    if (v !== undefined) (ad.attrs ??= {})[name] = v
  }
  if (typeof txt.start === 'string' && txt.start !== '' && txt.start.length <= MAX_TXT_STRING) ad.start = txt.start
  return { ok: true, ad }
}

/** `true`, `12.5`, `"lab-b"` (JSON); anything else is undefined */
function attrValue (raw: string): AttrValue | undefined {
  if (raw === 'true' || raw === 'false') return raw === 'true'
  if (raw.startsWith('"')) {
    try { const s = JSON.parse(raw); return typeof s === 'string' ? s : undefined } catch { return undefined }
  }
  const n = Number(raw)
  return raw !== '' && Number.isFinite(n) ? n : undefined
}
