// End-to-end test of Endless the way a user sees it: code-server (a real VS Code) in headless
// Chromium, driven by playwright-core. The extension was installed from the VSIX; the real
// language server and engine run the model named in the user settings.
//   1. the status bar item reports the loaded model;
//   2. typing in a file makes ghost text appear; Tab accepts it and the document changes;
//   3. the chat view answers a message with streamed text;
//   4. a summary appears in the Summaries view (the settings make summaries come quickly).
// Screenshots go to the artifacts folder. Exit code 0 only when every step passed.
// Usage: node test/e2e/ui.js <code-server URL> <workspace folder> <artifacts folder> [chromium path]

const { chromium } = require('playwright-core');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const [base, folder, artifacts, chromiumPath = '/usr/bin/chromium'] = process.argv.slice(2);
if (!base || !folder || !artifacts) {
  console.error('usage: node test/e2e/ui.js <code-server URL> <workspace folder> <artifacts folder> [chromium path]');
  process.exit(2);
}
fs.mkdirSync(artifacts, { recursive: true });
const t0 = Date.now();
const log = (...a) => console.log(`[ui ${((Date.now() - t0) / 1000).toFixed(1)}s]`, ...a);
const results = {};
const consoleLog = fs.createWriteStream(path.join(artifacts, 'ui-browser-console.log'));

async function shot(page, name) {
  const file = path.join(artifacts, `${name}.png`);
  await page.screenshot({ path: file }).catch((e) => log(`screenshot ${name} failed: ${e.message}`));
  log(`screenshot ${file}`);
}

async function runCommand(page, title) {
  await page.keyboard.press('Escape');
  await page.keyboard.press('F1');
  await page.waitForSelector('.quick-input-widget input', { state: 'visible', timeout: 10_000 });
  await page.keyboard.type(title);
  await page.waitForTimeout(700);
  await page.keyboard.press('Enter');
}

/** The cursor's place from the status bar ("Ln 14, Col 36"), as one comparable number. */
async function cursorColumn(page) {
  const t = await page.evaluate(() => document.querySelector('.statusbar-item[id="status.editor.selection"]')?.innerText ?? '');
  const m = /Ln (\d+), Col (\d+)/.exec(t);
  return m ? Number(m[1]) * 100_000 + Number(m[2]) : -1;
}

const place = (c) => `Ln ${Math.floor(c / 100_000)}, Col ${c % 100_000}`;

/** Runs `fn` on every frame until it returns a value (webview content lives in nested iframes). */
async function inFrames(page, fn, timeoutMs, what) {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    for (const f of page.frames()) {
      const v = await fn(f).catch(() => undefined);
      if (v) return v;
    }
    await page.waitForTimeout(300);
  }
  throw new Error(`timed out after ${timeoutMs} ms: ${what}`);
}

async function step(name, fn) {
  const s = Date.now();
  try {
    await fn();
    results[name] = { ok: true, ms: Date.now() - s };
    log(`PASS ${name} (${Date.now() - s} ms)`);
  } catch (e) {
    results[name] = { ok: false, ms: Date.now() - s, error: String(e && e.message || e).slice(0, 500) };
    log(`FAIL ${name}: ${results[name].error}`);
  }
}

(async () => {
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'endless-chromium-'));
  const ctx = await chromium.launchPersistentContext(profile, {
    executablePath: chromiumPath, headless: true, viewport: { width: 1500, height: 950 },
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync'],
  });
  const page = ctx.pages()[0] || await ctx.newPage();
  page.on('console', (m) => consoleLog.write(`${m.type()} ${m.text().replace(/%c/g, '')}\n`));
  try {
    await page.goto(`${base}/?folder=${encodeURIComponent(folder)}`);
    await page.waitForSelector('.monaco-workbench', { timeout: 90_000 });
    log('workbench loaded');

    await step('status bar shows the model', async () => {
      // The item's id ends with "endless.status"; wait until it names a speed, or fails.
      const end = Date.now() + 120_000;
      let text = '';
      while (Date.now() < end) {
        const st = await page.evaluate(() => {
          const e = document.querySelector('.statusbar-item[id$="endless.status"]');
          return e ? { text: e.innerText, label: e.getAttribute('aria-label') || '', error: !!e.querySelector('.codicon-error') } : null;
        });
        if (st) text = st.text;
        if (st && /tok\/s/.test(st.text)) break;
        if (st && st.error) throw new Error(`the status bar reports an error: ${st.label}`);
        await page.waitForTimeout(500);
      }
      log('status bar:', JSON.stringify(text));
      if (!/tok\/s/.test(text)) throw new Error(`the status bar never showed a loaded model (last: ${JSON.stringify(text)})`);
      await shot(page, '1-status-bar');
      // Its menu: toggle, snooze, pick model, open chat, show logs.
      await page.click('.statusbar-item[id$="endless.status"]');
      await page.waitForSelector('.quick-input-widget .monaco-list-row:has-text("Snooze")', { timeout: 10_000 });
      const entries = await page.$$eval('.quick-input-widget .monaco-list-row', (rows) => rows.map((r) => r.innerText.trim()));
      log('status menu:', JSON.stringify(entries));
      await shot(page, '1b-status-menu');
      await page.keyboard.press('Escape');
      for (const want of ['Disable inline completions', 'Snooze', 'Pick a model file', 'Open chat', 'Show logs']) {
        if (!entries.some((e) => e.includes(want))) throw new Error(`the status menu has no "${want}" entry`);
      }
    });

    await step('ghost text appears and Tab accepts it', async () => {
      await runCommand(page, 'Go to File');
      await page.keyboard.type('demo.py');
      await page.waitForTimeout(1000);
      await page.keyboard.press('Enter');
      await page.waitForSelector('.editor-instance .monaco-editor .view-lines', { timeout: 30_000 });
      const lines = '.editor-instance .monaco-editor .view-lines';
      await page.click(lines);
      await page.keyboard.press('Control+End');
      await page.keyboard.press('Enter');
      await page.keyboard.type('def multiply(a, b):', { delay: 60 });
      await page.keyboard.press('Enter');
      const ghostSel = '.ghost-text-decoration, .ghost-text-decoration-preview, .ghost-text';
      let ghost = await page.waitForSelector(ghostSel, { timeout: 20_000 }).catch(() => null);
      if (!ghost) {
        log('no ghost text after typing; asking explicitly (Alt+\\)');
        await page.keyboard.press('Alt+Backslash');
        ghost = await page.waitForSelector(ghostSel, { timeout: 20_000 }).catch(() => null);
      }
      if (!ghost) {
        await runCommand(page, 'Trigger Inline Suggestion');
        ghost = await page.waitForSelector(ghostSel, { timeout: 20_000 }).catch(() => null);
      }
      await shot(page, '2-ghost-text');
      if (!ghost) throw new Error('no ghost text appeared');
      const ghostText = await page.evaluate((sel) => Array.from(document.querySelectorAll(sel)).map((e) => e.textContent).join(''), ghostSel);
      log('ghost text:', JSON.stringify(ghostText));
      const colBefore = await cursorColumn(page);
      await page.keyboard.press('Tab');
      await page.waitForTimeout(800);
      const colAfter = await cursorColumn(page);
      await shot(page, '3-accepted');
      // Accepting moves the cursor past the inserted text (a new suggestion may show right after).
      log(`cursor before Tab ${place(colBefore)}, after ${place(colAfter)}`);
      if (!(colAfter > colBefore)) throw new Error(`Tab did not insert the ghost text (cursor ${place(colBefore)} -> ${place(colAfter)})`);
      await page.keyboard.press('Escape');
      const after = await page.evaluate((sel) => document.querySelector(sel).innerText.replace(/\u00a0/g, ' '), lines);
      const firstWord = ghostText.replace(/\u00a0/g, ' ').trim().split(/\s+/)[0];
      if (firstWord && !after.includes(firstWord)) throw new Error(`the document does not contain the accepted text ${JSON.stringify(firstWord)}`);
      log('after Tab:', JSON.stringify(after.slice(-200)));
      await page.keyboard.press('Control+S');
    });

    await step('partial accept takes the next word (VS Code\'s acceptNextWord, Ctrl+Right)', async () => {
      const ghostSel = '.ghost-text-decoration, .ghost-text-decoration-preview, .ghost-text';
      await page.keyboard.press('Escape');
      await page.keyboard.press('Control+End');
      await page.keyboard.press('Enter');
      await page.keyboard.type('result = ', { delay: 60 });
      let ghost = await page.waitForSelector(ghostSel, { timeout: 20_000 }).catch(() => null);
      if (!ghost) { await page.keyboard.press('Alt+Backslash'); ghost = await page.waitForSelector(ghostSel, { timeout: 20_000 }).catch(() => null); }
      if (!ghost) throw new Error('no ghost text to accept partly');
      const ghostText = await page.evaluate((sel) => Array.from(document.querySelectorAll(sel)).map((e) => e.textContent).join(''), ghostSel);
      const colBefore = await cursorColumn(page);
      await page.keyboard.press('Control+ArrowRight');
      await page.waitForTimeout(600);
      const colAfter = await cursorColumn(page);
      await shot(page, '3b-partial-accept');
      log(`ghost ${JSON.stringify(ghostText)}; cursor before Ctrl+Right ${place(colBefore)}, after ${place(colAfter)}`);
      const accepted = colAfter > colBefore ? 'some' : '';
      if (!accepted.length) throw new Error(`Ctrl+Right accepted nothing (cursor ${place(colBefore)} -> ${place(colAfter)})`);
      await page.keyboard.press('Escape');
      await page.keyboard.press('Control+S');
    });

    await step('chat answers with streamed text', async () => {
      await runCommand(page, 'Endless: Open Chat');
      const input = await inFrames(page, (f) => f.$('#input'), 60_000, 'the chat input');
      // The shipped model is a code model (it cannot chat): a code-shaped message gets a code-shaped answer.
      await input.fill('Complete this Python function:\n\ndef multiply(a, b):\n    """Return a times b."""');
      await input.press('Enter');
      const frame = await inFrames(page, async (f) => ((await f.$('#messages')) ? f : undefined), 10_000, 'the chat frame');
      // The answer grows while it streams: see it partly written, then finished.
      let sawStreaming = false;
      const end = Date.now() + 180_000;
      let text = '';
      while (Date.now() < end) {
        const st = await frame.evaluate(() => {
          const turns = document.querySelectorAll('.turn-assistant');
          const last = turns[turns.length - 1];
          return last ? { streaming: last.classList.contains('streaming'), failed: last.classList.contains('failed'), text: last.querySelector('.body').innerText, meta: last.querySelector('.meta')?.innerText ?? '' } : null;
        });
        if (st && st.streaming && st.text.trim()) sawStreaming = true;
        if (st && st.failed) throw new Error(`the chat turn failed: ${st.meta}`);
        if (st && !st.streaming) { text = st.text; log('chat meta:', st.meta); break; }
        await page.waitForTimeout(150);
      }
      await shot(page, '4-chat');
      log('chat answer:', JSON.stringify(text.slice(0, 300)), sawStreaming ? '(seen while streaming)' : '(finished before a partial was seen)');
      if (!text.trim()) throw new Error('no answer text');
      const csp = await frame.evaluate(() => document.querySelector('meta[http-equiv="Content-Security-Policy"]')?.getAttribute('content') ?? '');
      log('chat view CSP:', JSON.stringify(csp));
      if (!/script-src 'nonce-[^']+'/.test(csp) || /unsafe-(inline|eval)/.test(csp) || !/default-src 'none'/.test(csp)) throw new Error(`the chat view's CSP is not strict: ${csp}`);
      const picture = await frame.evaluate(() => document.querySelector('.cache-legend')?.innerText ?? '');
      log('cache picture:', JSON.stringify(picture));
      if (!/window/.test(picture) || !/seen/.test(picture)) throw new Error('the cache picture is missing from the chat header');
      // New chat archives this one; the history list opens it again, read-only.
      await frame.click('#new-chat');
      await frame.waitForFunction(() => document.querySelectorAll('.turn').length === 0 && document.querySelectorAll('#history option').length === 2, null, { timeout: 10_000 });
      const id = await frame.evaluate(() => document.querySelectorAll('#history option')[1].value);
      await frame.selectOption('#history', id);
      await frame.waitForFunction(() => !document.querySelector('.banner').hidden && document.querySelectorAll('.turn').length >= 2, null, { timeout: 10_000 });
      log('history banner:', JSON.stringify(await frame.evaluate(() => document.querySelector('.banner').innerText)));
      await shot(page, '4b-chat-history');
      await frame.click('.banner button');
      await frame.waitForFunction(() => document.querySelector('.banner').hidden, null, { timeout: 10_000 });
    });

    await step('a summary appears in the Summaries view', async () => {
      await runCommand(page, 'Endless: Focus on Summaries View');
      const sel = '.pane:has(.pane-header:has-text("Summaries")) .monaco-list-row';
      const row = await page.waitForSelector(sel, { timeout: 120_000 });
      log('summary row:', JSON.stringify(await row.innerText()));
      await shot(page, '5-summaries');
    });
  } catch (e) {
    log('driver error:', e && e.stack || e);
    results.driver = { ok: false, error: String(e && e.message || e) };
    await shot(page, 'error');
  } finally {
    await ctx.close().catch(() => undefined);
    fs.rmSync(profile, { recursive: true, force: true });
    fs.writeFileSync(path.join(artifacts, 'ui-results.json'), JSON.stringify(results, null, 2));
    const failed = Object.entries(results).filter(([, r]) => !r.ok).map(([k]) => k);
    log(failed.length ? `FAILED: ${failed.join('; ')}` : 'all UI steps passed');
    process.exit(failed.length ? 1 : 0);
  }
})().catch((e) => { console.error(e); process.exit(2); });
