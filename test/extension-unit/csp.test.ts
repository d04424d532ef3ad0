// The chat webview's Content Security Policy (issue 8, security): the HTML the chat view gives
// its webview (extension/chatHtml.ts, called by ChatViewProvider.html in extension/chatView.ts)
// allows nothing by default, runs its one script by nonce only (no 'unsafe-inline', no
// 'unsafe-eval', no inline script), and loads nothing remote: every source is the webview's own
// resource origin (cspSource), data: for images, or the nonce.
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { chatCsp, chatHtml, chatNonce } from '../../extension/chatHtml';

const ROOT = path.resolve(__dirname, '..', '..');
// What VS Code passes (webview.cspSource and asWebviewUri results look like these).
const CSP_SOURCE = 'https://file+.vscode-resource.vscode-cdn.net';
const SCRIPT = 'https://file+.vscode-resource.vscode-cdn.net/ext/dist/webview.js';
const STYLE = 'https://file+.vscode-resource.vscode-cdn.net/ext/dist/webview.css';

function policyOf(html: string): Map<string, string[]> {
  const metas = [...html.matchAll(/<meta\s+http-equiv="Content-Security-Policy"\s+content="([^"]*)"\s*>/gi)];
  assert.equal(metas.length, 1, 'exactly one CSP meta tag');
  assert.ok(html.indexOf(metas[0][0]) < html.search(/<link|<script/i), 'the CSP comes before anything it governs');
  const out = new Map<string, string[]>();
  for (const part of metas[0][1].split(';')) {
    const [name, ...sources] = part.trim().split(/\s+/);
    if (!name) continue;
    assert.ok(!out.has(name), `directive ${name} appears once`);
    out.set(name, sources);
  }
  return out;
}

test('the chat webview CSP: default-src none, scripts by nonce only, nothing remote', () => {
  const nonce = chatNonce();
  const html = chatHtml({ nonce, cspSource: CSP_SOURCE, scriptUri: SCRIPT, styleUri: STYLE });
  const csp = policyOf(html);
  assert.deepEqual(csp.get('default-src'), ["'none'"]);
  assert.deepEqual(csp.get('script-src'), [`'nonce-${nonce}'`], 'scripts by nonce only');
  for (const [name, sources] of csp) {
    for (const src of sources) {
      assert.ok(!/unsafe-inline|unsafe-eval|unsafe-hashes|wasm-unsafe-eval|strict-dynamic/i.test(src), `${name}: ${src} is not allowed`);
      const ok = src === "'none'" || src === `'nonce-${nonce}'` || src === CSP_SOURCE || (src === 'data:' && name === 'img-src');
      assert.ok(ok, `${name}: ${src} is neither the webview's own origin, data: for images, nor the nonce (no remote source)`);
      assert.ok(!/^(https?:|wss?:|\*|'self'|blob:)/.test(src) || src === CSP_SOURCE, `${name}: ${src} would allow remote content`);
    }
  }
  // no directive falls back to something looser than default-src
  for (const name of csp.keys()) assert.ok(['default-src', 'script-src', 'style-src', 'img-src', 'font-src'].includes(name), `unexpected directive ${name}`);
});

test('the chat webview HTML: one script, by nonce, from the bundle; no inline script, style or handler', () => {
  const nonce = chatNonce();
  const html = chatHtml({ nonce, cspSource: CSP_SOURCE, scriptUri: SCRIPT, styleUri: STYLE });
  const scripts = [...html.matchAll(/<script\b([^>]*)>([\s\S]*?)<\/script>/gi)];
  assert.equal(scripts.length, 1, 'one script element');
  assert.match(scripts[0][1], new RegExp(`\\bnonce="${nonce.replace(/[+/=]/g, (c) => '\\' + c)}"`));
  assert.match(scripts[0][1], new RegExp(`\\bsrc="${SCRIPT.replace(/[.+/]/g, (c) => '\\' + c)}"`));
  assert.equal(scripts[0][2].trim(), '', 'no inline script body');
  assert.ok(!/<style\b/i.test(html), 'no inline <style>');
  assert.ok(!/\sstyle\s*=/i.test(html), 'no style attribute');
  assert.ok(!/\son[a-z]+\s*=/i.test(html), 'no inline event handler');
  assert.ok(!/javascript:/i.test(html), 'no javascript: URL');
  const links = [...html.matchAll(/<link\b[^>]*href="([^"]*)"/gi)].map((m) => m[1]);
  assert.deepEqual(links, [STYLE], 'one stylesheet, from the extension');
});

test('a fresh, unguessable nonce for each page', () => {
  const seen = new Set<string>();
  for (let i = 0; i < 200; i++) seen.add(chatNonce());
  assert.equal(seen.size, 200);
  const n = chatNonce();
  assert.ok(Buffer.from(n, 'base64').length >= 16, 'at least 128 bits');
  assert.match(n, /^[A-Za-z0-9+/]+=*$/, 'base64: safe inside the attribute and the policy');
  assert.equal(chatCsp(n, CSP_SOURCE).includes(`'nonce-${n}'`), true);
});

test('the chat view builds its HTML with chatHtml and a new nonce; the bundle needs no eval', () => {
  // The provider needs the vscode API, so its source is checked for the call instead of running it.
  const src = readFileSync(path.join(ROOT, 'extension', 'chatView.ts'), 'utf8');
  assert.match(src, /view\.webview\.html = this\.html\(/, 'the webview gets this.html(...)');
  const body = src.slice(src.indexOf('private html('), src.indexOf('\n  }\n', src.indexOf('private html(')));
  assert.match(body, /return chatHtml\(\{/, 'html() returns chatHtml(...)');
  assert.match(body, /nonce: chatNonce\(\)/, 'with a new nonce each time');
  assert.match(body, /cspSource: webview\.cspSource/);
  assert.ok(!/<script|Content-Security-Policy/i.test(src), 'no other HTML or policy in chatView.ts');
  assert.match(src, /localResourceRoots: \[dist\]/, 'the webview may load only the bundle folder');
  const bundle = path.join(ROOT, 'dist', 'webview.js');
  if (existsSync(bundle)) {
    const js = readFileSync(bundle, 'utf8');
    assert.ok(!/\beval\s*\(|new Function\s*\(/.test(js), 'dist/webview.js uses no eval or new Function (the CSP would block them)');
  } else {
    console.log('csp.test: dist/webview.js is not built; its eval check is skipped (run `npm run bundle`)');
  }
});
