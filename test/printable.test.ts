// protocol/printable.ts: what a job, a worker or the network says reaches a terminal as
// text, never as a control sequence (issue 19). Every class of character the contract
// names, the one-line and multi-line forms, the bound and its marker, the JSON and
// TTY/pipe helpers, and the logger that prints through it; then an mDNS advert whose
// instance name is full of escape codes, fed to the browser where adverts are decoded,
// as `bgrid peers` and submit's NO_WORKERS / "could not be reached" lines show it.
import t from 'tap'
import { PassThrough } from 'node:stream'
import { printable, printableLines, printableJson, printableFor, LINE_MAX } from '../protocol/printable.ts'
import { createLogger } from '../protocol/log.ts'
import { NodeBrowser } from '../protocol/dnssd.ts'
import { encodeTxt, decodeTxt, safeNodeName, type NodeAd } from '../protocol/txt.ts'
import { peersTable } from '../bin/commands/peers.ts'
import { accountNodes, summariseAccounts } from '../coordinator/why.ts'

/** every byte a terminal may act on: C0 but newline and tab, DEL, C1, bidi controls */
// eslint-disable-next-line no-control-regex
const RAW = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/

t.test('C0 sequences: ESC (CSI, OSC title, OSC 8, OSC 52, DCS), BEL, BS, NUL shown escaped', async t => {
  const attack = '\x1b]0;pwned\x07\x1b[2J\x1b]52;c;ZXZpbA==\x07' + // title, clear, clipboard
    '\x1b]8;;http://evil/\x1b\\link\x1b]8;;\x1b\\' + // an OSC 8 hyperlink
    '\x1bP+q\x1b\\a\bb\0' // a DCS, a backspace, a NUL
  const out = printable(attack)
  t.notMatch(out, RAW, 'no raw control character')
  t.equal(out, '\\x1b]0;pwned\\x07\\x1b[2J\\x1b]52;c;ZXZpbA==\\x07\\x1b]8;;http://evil/\\x1b\\link\\x1b]8;;\\x1b\\' +
    '\\x1bP+q\\x1b\\a\\x08b\\x00')
  t.equal(printable('a\x7fb'), 'a\\x7fb', 'DEL')
})

t.test('C1 controls (8-bit CSI, OSC, DCS, ST) shown as \\u escapes', async t => {
  t.equal(printable('x\u009b2Jy\u009d0;t\u009c\u0090q\u0085'), 'x\\u009b2Jy\\u009d0;t\\u009c\\u0090q\\u0085')
  t.equal(printable('é ü ÿ'), 'é ü ÿ', 'Latin-1 letters above C1 are kept')
})

t.test('bidi embeddings, overrides and isolates escaped; other Unicode kept', async t => {
  const s = 'a\u202ab\u202bc\u202cd\u202de\u202ef\u2066g\u2067h\u2068i\u2069j'
  t.equal(printable(s), 'a\\u202ab\\u202bc\\u202cd\\u202de\\u202ef\\u2066g\\u2067h\\u2068i\\u2069j')
  t.equal(printable('naïve 日本 ✓ 🙂'), 'naïve 日本 ✓ 🙂')
})

t.test('one line: whitespace controls are one space; nothing can start a new line', async t => {
  t.equal(printable('a\nb\r\nc\td\v\fe\rf'), 'a b c d e f')
  t.notMatch(printable('x\n\n\ny'), /\n/)
})

t.test('multi-line: newline and tab kept, CRLF a newline, a lone CR escaped', async t => {
  t.equal(printableLines('line 1\r\nline\t2\nover\rwrite\x1b[1A'), 'line 1\nline\t2\nover\\x0dwrite\\x1b[1A')
  t.equal(printable('a\nb', { multiLine: true }), 'a\nb', 'printableLines is printable with multiLine')
})

t.test('lone surrogates and invalid UTF-8 become U+FFFD', async t => {
  t.equal(printable('a\ud800b\udc00c'), 'a\ufffdb\ufffdc')
  t.equal(printable('😀'), '😀', 'a pair is kept')
  t.equal(printable(Buffer.from([0x61, 0xff, 0xc3, 0x62, 0x1b])), 'a\ufffd\ufffdb\\x1b')
})

t.test('bounded, with an explicit marker of what was left out', async t => {
  const long = 'x'.repeat(1000)
  t.equal(printable(long), 'x'.repeat(LINE_MAX) + `…(${1000 - LINE_MAX} more bytes)`, '300 bytes by default')
  t.equal(printable('abcdef', { max: 4 }), 'abcd…(2 more bytes)')
  t.equal(printable('ab日本', { max: 4 }), 'ab…(6 more bytes)', 'never cut inside a character (日 is 3 bytes)')
  t.equal(printable('\x1b'.repeat(10), { max: 2 }), '\\x1b\\x1b…(8 more bytes)', 'bounded before escaping')
  t.equal(printableLines('a\n'.repeat(10), 6), 'a\na\na\n…(14 more bytes)')
  t.equal(printableLines('x'.repeat(100000), Infinity).length, 100000, 'Infinity: no bound')
  t.equal(printable('short', { max: 5 }), 'short', 'exactly max: no marker')
})

t.test('a fixed point: printing printed text again changes nothing', async t => {
  const once = printableLines('\x1b[31mred\x1b[0m\n\u202eevil\r\n\u009b')
  t.equal(printableLines(once), once)
  t.equal(printable(printable('a\nb\x07')), printable('a\nb\x07'))
})

t.test('anything is printed as its String()', async t => {
  t.equal(printable(undefined), 'undefined')
  t.equal(printable(42), '42')
})

t.test('printableJson: the same value to a JSON reader, no raw C1 or bidi character', async t => {
  const v = { name: 'a\u009b2J\u202eb\x1b]0;t\x07\u2028', n: 1 }
  const s = printableJson(v)
  t.notMatch(s, RAW)
  t.notMatch(s, /\u2028/)
  t.same(JSON.parse(s), v)
  const u = (c: string): string => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`
  t.equal(printableJson(v, 2), JSON.stringify(v, null, 2).replace(/[\u009b\u202e\u2028]/g, u), 'indented too')
})

t.test('printableFor: escaped to a terminal, the bytes unchanged to a pipe', async t => {
  const bytes = Buffer.from('ok\n\x1b]52;c;ZXZpbA==\x07\n')
  t.equal(printableFor({ isTTY: true }, bytes), 'ok\n\\x1b]52;c;ZXZpbA==\\x07\n')
  t.equal(printableFor({ isTTY: false }, bytes), bytes)
  t.equal(printableFor({}, bytes), bytes)
})

t.test('the logger prints through it: message and field values', async t => {
  const stream = new PassThrough()
  let text = ''
  stream.on('data', (b: Buffer) => { text += b.toString() })
  const log = createLogger({ stream, level: 'debug', scope: 's' })
  log.warn('claim refused\x1b[2J', { node: 'evil\x1b]0;x\x07', message: 'a\nb\u009b', n: 3 })
  t.notMatch(text.slice(0, -1), RAW)
  t.notMatch(text.slice(0, -1), /\n/, 'one line per entry')
  t.match(text, /claim refused\\x1b\[2J node=evil\\x1b\]0;x\\x07 message="a\\nb\\u009b" n=3\n$/)
})

const EVIL_NAME = 'lab-pc\x1b]0;pwned\x07\x1b[2J\x1b]52;c;ZXZpbA==\x07\u202eexe.txt\u009b31m'
const ad: NodeAd = {
  v: 1, state: 'idle', peer: '12D3KooWP9mSr9pKDnrgzrDbkurTw2VZVaUULsmXfs99pqJc3nkR', port: 4001,
  cores: 8, mhz: 2596, ram: 15000, disk: 80000, load: 0.1, cost: 0, arch: 'x64', os: 'linux'
}

t.test('an mDNS instance name is restricted on receipt: a safe set of characters, bounded', async t => {
  t.equal(safeNodeName('pc-1_a.b:c@d e'), 'pc-1_a.b:c@d e', 'letters, digits, -_.:@ and space kept')
  t.equal(safeNodeName('a\x1b[2Jb'), 'a?[2Jb'.replace('[', '?'), 'anything else is one ? each')
  t.equal(safeNodeName('x'.repeat(200)).length, 63, 'at most a DNS label')
  t.equal(safeNodeName('\ud83d\ude00'), '?', 'a character, not its halves')
  t.notMatch(safeNodeName(EVIL_NAME), RAW)
  const bad = decodeTxt({ ...encodeTxt(ad), state: 'idle\x1b]0;x\x07' })
  t.ok(!bad.ok && !RAW.test(bad.reason), 'a rejected TXT value is quoted escaped in the reason')
})

t.test('an advert named with escape codes: named safely; peers and NO_WORKERS print no control byte', async t => {
  const browser = new NodeBrowser()
  t.teardown(async () => { await browser.stop() })
  browser.accept({ name: EVIL_NAME, txt: encodeTxt(ad), addresses: ['10.0.0.9'] } as any)
  browser.accept({ name: EVIL_NAME + 'x', txt: { ...encodeTxt(ad), cores: '\x1b[2J' }, addresses: [] } as any)
  const [node] = browser.list()
  t.equal(node.name, 'lab-pc??0?pwned???2J??52?c?ZXZpbA????exe.txt?31m')
  const rejected = [...browser.rejected.values()]
  t.equal(rejected.length, 1)
  t.notMatch(JSON.stringify(rejected), /\\u001b|\\u0007|\u009b|\u202e/, 'the rejected advert: name and reason safe')
  // `bgrid peers`
  const table = peersTable(browser.list())
  t.notMatch(table, RAW)
  t.match(table, /lab-pc\?\?0\?pwned/)
  // submit's NO_WORKERS: the node "could not be reached", with what the dial said
  const accounts = accountNodes({
    nodes: [node, { name: 'raw\x1b]0;t\x07', ad: { ...ad, peer: ad.peer.replace('P9', 'Q9') }, addresses: [] }],
    claimed: new Set(),
    refusals: new Map([[ad.peer, {
      name: node.name,
      code: 'UNREACHABLE',
      message: 'dial failed: \x1b]8;;http://evil/\x07click\x1b]8;;\x07\nforged line'
    }]]),
    requirements: null,
    self: 'me'
  })
  const lines = summariseAccounts(accounts)
  t.match(lines.join('\n'), /could not be reached: lab-pc/)
  for (const l of lines) t.notMatch(l, RAW, l)
  t.notMatch(lines.join(''), /\n/, 'a node\'s words cannot start a line of their own')
})
