// Nothing raw reaches a terminal, end to end (issue 19): the real CLI (dist/bin/bgrid.js)
// as child processes, a daemon and a submitter in network namespaces, and a node of the
// LAN that advertises itself with bonjour-service under a name full of escape codes.
//  - a failing job writes a window title, a screen clear and an OSC 52 clipboard write to
//    its stderr: `bgrid submit`, `bgrid status` and `bgrid logs` (to a terminal) print it
//    escaped, with no ESC or BEL byte; `bgrid logs` to a pipe gives the job's bytes back;
//  - `bgrid peers` and submit's NO_WORKERS / "could not be reached" lines name that node
//    with no control byte.
import t from 'tap'
import path from 'node:path'
import { readFileSync } from 'node:fs'
import { BGRID, clusterOrSkip, type Proc } from '../testbed/cluster.ts'

/** a byte a terminal acts on (newline and tab aside): C0, DEL, C1, bidi controls */
// eslint-disable-next-line no-control-regex
const RAW = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/
/** what the job writes to its stderr */
const ATTACK = '\x1b]0;pwned\x07\x1b[2J\x1b]52;c;ZXZpbA==\x07'
/** the instance name the rogue node advertises */
const EVIL_NAME = 'evil\x1b]0;pwned\x07\x1b[2J\u202epc'

const cluster = clusterOrSkip(t)
if (cluster !== undefined) {
  await cluster.startDaemons(1)
  const user = cluster.lab.addHost()
  const home = path.join(cluster.tmp, 'home')

  t.test('a failing job printing escape sequences to stderr: submit, status and logs print no ESC or BEL', async t => {
    const dag = cluster.writeDag({
      name: 'evil',
      jobs: [{ id: 'evil', cmd: "printf '\\033]0;pwned\\007\\033[2J\\033]52;c;ZXZpbA==\\007' >&2; exit 3", retries: 0 }]
    })
    const out = path.join(cluster.tmp, 'out-evil')
    const r = await cluster.runCli(user, ['submit', dag, '--data-dir', home, '--out', out, '--wait', '20'], 90_000)
    t.equal(r.code, 1, r.stderr)
    t.match(r.stderr, /job evil: FAILED/)
    t.match(r.stderr, /\\x1b\]0;pwned\\x07\\x1b\[2J\\x1b\]52;c;ZXZpbA==\\x07/, 'the stderr tail is shown, escaped')
    t.notMatch(r.stderr, RAW, 'no control byte on stderr')
    t.notMatch(r.stdout, RAW, 'no control byte on stdout')
    const runId = String(JSON.parse(readFileSync(path.join(out, 'run.json'), 'utf8')).run)
    const status = await cluster.runCli(user, ['status', runId, '--data-dir', home])
    t.equal(status.code, 0, status.stderr)
    t.notMatch(status.stdout + status.stderr, RAW, 'bgrid status: no control byte')
    // to a pipe (as here), `bgrid logs` gives the job's bytes back, unchanged
    const logs = await cluster.runCli(user, ['logs', runId, 'evil', '--stderr', '--data-dir', home])
    t.equal(logs.code, 0, logs.stderr)
    t.equal(logs.stderr, ATTACK, 'a pipe gets what the job wrote')
    // to a terminal, escaped: script(1) gives the CLI a pseudo-terminal (which writes CRLF for LF)
    const cmd = [process.execPath, BGRID, 'logs', runId, 'evil', '--stderr', '--data-dir', home]
      .map(a => `'${a}'`).join(' ')
    const onTty = cluster.spawn(user, ['script', '-qec', cmd, '/dev/null'])
    t.equal((await onTty.done(60_000)).code, 0, onTty.stderr)
    const shown = onTty.stdout.replaceAll('\r\n', '\n')
    t.match(shown, /\\x1b\]0;pwned\\x07\\x1b\[2J\\x1b\]52;c;ZXZpbA==\\x07/, 'a terminal gets it escaped')
    t.notMatch(shown, RAW, 'bgrid logs on a terminal: no control byte')
  })

  t.test('a node advertising a name of escape codes: peers, NO_WORKERS, "could not be reached" print none', async t => {
    // a rogue node of the LAN: a well-formed advert (a real peer id, nothing listening on its port).
    // No `interface` option: multicast-dns then binds to that address and hears no query
    const rogue = cluster.lab.addHost()
    const publisher: Proc = cluster.spawn(rogue, [process.execPath, '--input-type=module', '-e', `
      import { Bonjour } from 'bonjour-service'
      import { generateKeyPair } from '@libp2p/crypto/keys'
      import { peerIdFromPrivateKey } from '@libp2p/peer-id'
      import { encodeTxt } from './protocol/txt.ts'
      const peer = peerIdFromPrivateKey(await generateKeyPair('Ed25519')).toString()
      const txt = encodeTxt({ v: 1, state: 'idle', peer, port: 4999, cores: 4, mhz: 2000, ram: 8000, disk: 9000,
        load: 0, cost: 0, arch: 'x64', os: 'linux' })
      new Bonjour().publish({ name: process.env.EVIL_NAME, type: 'bgrid', port: 4999,
        host: 'rogue.local', txt, probe: false })
      process.stdout.write('published\\n')
    `], { EVIL_NAME })
    await publisher.until(() => publisher.stdout.includes('published'), 20_000, 'the rogue advert')

    const peers = await cluster.runCli(user, ['peers', '--timeout', '3'])
    t.equal(peers.code, 0, peers.stderr)
    t.match(peers.stdout, /evil\?\?0\?pwned\?\?\?2J\?pc/, 'the rogue node is listed, its name made safe')
    t.notMatch(peers.stdout + peers.stderr, RAW, 'bgrid peers: no control byte')

    // two workers wanted, one real daemon: NO_WORKERS names every node seen, the rogue one unreachable
    const dag = cluster.writeDag({ name: 'two', workers: { min: 2 }, jobs: [{ id: 'a', cmd: ['true'] }] })
    const r = await cluster.runCli(user, ['submit', dag, '--data-dir', home, '--wait', '12'], 90_000)
    t.not(r.code, 0)
    t.match(r.stderr, /worker\(s\) claimed after/, r.stderr)
    t.match(r.stderr, /could not be reached: evil\?\?0\?pwned/, `the rogue node, named safely\n${r.stderr}`)
    t.notMatch(r.stderr, RAW, 'no control byte on stderr')
    t.notMatch(r.stdout, RAW, 'no control byte on stdout')
    publisher.kill()
  })
}
