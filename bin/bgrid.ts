#!/usr/bin/env node
// bgrid's entry point: check the Node version before anything else is loaded, then
// hand over to the CLI (bin/cli.ts). Static imports are evaluated before any code runs,
// and an old Node fails on them (syntax, missing APIs) or dials no peer: so this file
// imports nothing statically and uses only syntax that old Nodes parse (no top-level
// await, no optional chaining, no class fields).

/** package.json's engines.node (test/cli.test.ts checks that they agree) */
var REQUIRED_NODE = '22.18'

function tooOld (have: string, need: string): boolean {
  var h = have.split('.').map(Number)
  var n = need.split('.').map(Number)
  for (var i = 0; i < n.length; i++) {
    if ((h[i] || 0) !== n[i]) return (h[i] || 0) < n[i]
  }
  return false
}

if (tooOld(process.versions.node, REQUIRED_NODE)) {
  process.stderr.write('bgrid needs Node.js >= ' + REQUIRED_NODE + ' (this is ' + process.versions.node + ' at ' + process.execPath + '): ' +
    'install a newer one (https://nodejs.org, or your package manager, or nvm), or run `npx bgrid` in a checkout, where `npm install` brought Node 24\n')
  process.exit(1)
} else {
  // Node's on-disk compile cache (Node >= 22.1): bgrid's CLI and libp2p are thousands of
  // modules, compiled afresh at every start without it (a submit's first event: 0.9 s to 0.75 s here)
  import('node:module').then(function (m) { if (typeof m.enableCompileCache === 'function') m.enableCompileCache() })
    .catch(function () { /* without the cache a command only starts slower */ })
    .then(function () { return import('./cli.ts') })
    .catch(function (err) { process.stderr.write('bgrid: ' + String(err && err.stack ? err.stack : err) + '\n'); process.exit(1) })
}
