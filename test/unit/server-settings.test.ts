// Unit tests for the server's settings and flag checking (server/main.ts), path naming and the
// summary filter (server/session/session.ts), and the protocol module's shape (server/protocol.ts).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseFlags, sanitizeSettings } from '../../server/main';
import { uriToPath, usableSummary } from '../../server/session/session';
import * as protocol from '../../server/protocol';

test('settings: valid values are taken, invalid ones fall back with a warning', () => {
  const warnings: string[] = [];
  const s = sanitizeSettings({ window: 2048, sinks: -3, device: 'tpu', enabledLanguages: ['python'], debounceMs: 'fast', other: 1 }, (w) => warnings.push(w));
  assert.equal(s.window, 2048);
  assert.equal(s.sinks, protocol.DEFAULT_SETTINGS.sinks);
  assert.equal(s.device, 'auto');
  assert.deepEqual(s.enabledLanguages, ['python']);
  assert.equal(s.debounceMs, protocol.DEFAULT_SETTINGS.debounceMs);
  assert.equal(warnings.length, 3);
  assert.deepEqual(sanitizeSettings(undefined, () => assert.fail('no warning')), { ...protocol.DEFAULT_SETTINGS });
  assert.equal(sanitizeSettings([1, 2], (w) => warnings.push(w)).window, 0);
});

test('flags', () => {
  assert.deepEqual(parseFlags(['--stdio', '--storage', '/tmp/x', '--model', 'm.gguf', '--device', 'cpu', '--threads', '2']),
    { storage: '/tmp/x', model: 'm.gguf', device: 'cpu', threads: 2 });
  assert.throws(() => parseFlags(['--storage']), /needs a value/);
  assert.throws(() => parseFlags(['--bogus']), /unknown argument/);
});

test('paths are workspace-relative when they can be', () => {
  assert.equal(uriToPath('file:///home/u/proj/src/a%20b.ts', ['/home/u/proj']), 'src/a b.ts');
  assert.equal(uriToPath('file:///elsewhere/x.ts', ['/home/u/proj']), '/elsewhere/x.ts');
  assert.equal(uriToPath('untitled:Untitled-1', ['/home/u/proj']), 'untitled:Untitled-1');
});

test('model summaries are kept only when they read as prose', () => {
  assert.equal(usableSummary('The user added a product helper to math.ts and asked about clamp.', [1, 2, 3]), 'The user added a product helper to math.ts and asked about clamp.');
  assert.equal(usableSummary('k�R�3� return�3', [1, 2]), undefined);
  assert.equal(usableSummary('))))(((( ;;;; }}}}', [1]), undefined);
  assert.equal(usableSummary('the the the the the the the the', Array(32).fill(7)), undefined);
});

test('protocol: every custom message is under endless/ and uniquely named; restart settings are settings', () => {
  const methods = (Object.values(protocol) as unknown[])
    .filter((v): v is { method: string } => typeof v === 'object' && v !== null && typeof (v as { method?: unknown }).method === 'string')
    .map((v) => v.method);
  assert.ok(methods.length >= 15, `${methods.length} messages`);
  assert.equal(new Set(methods).size, methods.length);
  for (const m of methods) assert.match(m, /^endless\//);
  for (const k of protocol.RESTART_SETTINGS) assert.ok(k in protocol.DEFAULT_SETTINGS);
});

test('automatic cache layout stays within the trained context', async () => {
  const { cacheLayout } = await import('../../server/main');
  const s = { ...protocol.DEFAULT_SETTINGS };
  const small = cacheLayout(s, 1024, 1);
  assert.ok(1 + small.window + small.memoryMax + small.branchMax <= 1024, JSON.stringify(small));
  assert.ok(small.window >= 400 && small.memoryMax > 0 && small.branchMax >= 256, JSON.stringify(small));
  const big = cacheLayout(s, 32768, 4);
  assert.equal(big.window, 8192);
  assert.equal(big.memoryMax, s.memorySize);
  const explicit = cacheLayout({ ...s, window: 512 }, 1024, 1);
  assert.equal(explicit.window, 512);
  assert.equal(explicit.memoryMax, s.memorySize);
});
