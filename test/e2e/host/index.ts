// Entry point of the mocha suite that runs inside the real extension host (code-server's, driven
// by test/e2e/run-host-tests.js; or VS Code's, through test/e2e/electron.ts). VS Code calls
// `run()`; it resolves when every test passed. The suite file is loaded after mocha has put its
// TDD globals (suite, test, ...) in place. Results also go to $ENDLESS_E2E_RESULTS as JSON, so
// the driver can report them even when the page's console is not forwarded.

import * as fs from 'node:fs';
import Mocha from 'mocha';

export function run(): Promise<void> {
  const mocha = new Mocha({ ui: 'tdd', timeout: 120_000, color: false, reporter: 'spec' });
  mocha.suite.emit('pre-require', globalThis, 'endless-host-tests', mocha);
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  require('./extension.test');
  const results: { title: string; state: string; ms?: number; error?: string }[] = [];
  return new Promise((resolve, reject) => {
    const runner = mocha.run((failures) => {
      const out = process.env.ENDLESS_E2E_RESULTS;
      if (out) fs.writeFileSync(out, JSON.stringify({ failures, results }, null, 2));
      if (failures) reject(new Error(`${failures} extension host test(s) failed`));
      else resolve();
    });
    runner.on('pass', (t) => results.push({ title: t.fullTitle(), state: 'passed', ms: t.duration }));
    runner.on('fail', (t, err: Error) => results.push({ title: t.fullTitle(), state: 'failed', error: `${err?.message}\n${err?.stack ?? ''}` }));
    runner.on('pending', (t) => results.push({ title: t.fullTitle(), state: 'pending' }));
  });
}
