// Runs the mocha suite (test/e2e/host/) inside code-server's real extension host: the page is
// opened in headless Chromium with the smoke-test driver's payload (extensionDevelopmentPath,
// extensionTestsPath); the workbench reports the exit code through codeAutomationExit.
// code-server must have been started with `--vscode-option enable-smoke-test-driver` (E2E.md).
// Usage: node test/e2e/run-host-tests.js <URL> <extensionDevelopmentPath> <extensionTestsPath>
//        <workspace folder> <artifacts folder> [extensionEnvironment JSON] [chromium path]

const { chromium } = require('playwright-core');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const util = require('node:util');

const [base, devPath, testsPath, folder, artifacts, extEnv, chromiumPath = '/usr/bin/chromium'] = process.argv.slice(2);
if (!base || !devPath || !testsPath || !folder || !artifacts) {
  console.error('usage: node test/e2e/run-host-tests.js <URL> <devPath> <testsPath> <folder> <artifacts> [envJSON] [chromium]');
  process.exit(2);
}
const host = new URL(base).host; // the remote authority is the page's host in code-server
const remote = (p) => `vscode-remote://${host}${path.resolve(p)}`;
const t0 = Date.now();
const limitMs = Number(process.env.ENDLESS_HOST_TESTS_TIMEOUT_MS || 600_000);

(async () => {
  fs.mkdirSync(artifacts, { recursive: true });
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'endless-chromium-'));
  const ctx = await chromium.launchPersistentContext(profile, {
    executablePath: chromiumPath, headless: true, viewport: { width: 1400, height: 900 },
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync'],
  });
  const page = ctx.pages()[0] || await ctx.newPage();
  let done;
  const exitCode = new Promise((r) => (done = r));
  // Everything the workbench logs goes to a file; the terminal gets mocha's own lines.
  const hostLog = fs.createWriteStream(path.join(artifacts, 'host-tests-log.txt'));
  const mochaLine = /^\s*(✓|✔|\d+\) |\d+ (passing|failing|pending)|Endless in the extension host)/;
  await page.exposeFunction('codeAutomationLog', (type, args) => {
    const line = util.format(...(Array.isArray(args) ? args : [args]));
    hostLog.write(`${line}\n`);
    if (mochaLine.test(line) || process.env.ENDLESS_E2E_VERBOSE) console.log(line);
  });
  await page.exposeFunction('codeAutomationExit', (code) => done(code));
  const all = fs.createWriteStream(path.join(artifacts, 'host-tests-browser-console.log'));
  page.on('console', (m) => all.write(`${m.type()} ${m.text().replace(/%c/g, '')}\n`));
  const payload = JSON.stringify([
    ['extensionDevelopmentPath', remote(devPath)],
    ['extensionTestsPath', remote(testsPath)],
    ['skipWelcome', 'true'],
    ...(extEnv ? [['extensionEnvironment', extEnv]] : []),
  ]);
  await page.goto(`${base}/?folder=${encodeURIComponent(path.resolve(folder))}&payload=${encodeURIComponent(payload)}`);
  const code = await Promise.race([exitCode, new Promise((r) => setTimeout(() => r('timeout'), limitMs))]);
  console.log(`[host-tests] finished: exit code ${code} after ${((Date.now() - t0) / 1000).toFixed(1)}s`);
  await page.screenshot({ path: path.join(artifacts, 'host-tests-final.png') }).catch(() => undefined);
  await ctx.close();
  fs.rmSync(profile, { recursive: true, force: true });
  process.exit(code === 0 ? 0 : 1);
})().catch((e) => { console.error(e); process.exit(2); });
