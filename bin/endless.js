#!/usr/bin/env node
// The `endless` command (package.json "bin"): runs the bundled CLI in dist/cli.js
// (built by `npm install` / `npm run bundle` from server/cli.ts).
'use strict';
const path = require('node:path');
const fs = require('node:fs');

const cli = path.join(__dirname, '..', 'dist', 'cli.js');
if (!fs.existsSync(cli)) {
  process.stderr.write(`endless: ${cli} is missing; run \`npm install\` (or \`npm run bundle\`) in ${path.dirname(__dirname)}\n`);
  process.exit(1);
}
require(cli).main(process.argv.slice(2)).then(
  (code) => { process.exitCode = code; },
  (e) => { process.stderr.write(`endless: internal error: ${(e && e.stack) || e}\n`); process.exitCode = 1; },
);
