// Status bar wording and the cache picture's arithmetic.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { StatusParams } from '../../server/protocol';
import { cacheFillFraction, cacheSegments, escapeMd, formatStatus, humanCount } from '../../extension/status';

const ready: StatusParams = {
  state: 'ready', message: 'endless-code on cpu; fresh session',
  model: { name: 'endless-code', path: '/m/endless-code-q8_0.gguf', architecture: 'llama', fileType: 'Q8_0', nParams: 42_000_000, fingerprint: 'abc' },
  device: 'cpu', tokensPerSecond: { prefill: 812.4, generate: 45.6 },
  cache: { sinks: 1, sinksMax: 1, memory: 100, memoryMax: 256, window: 1500, windowMax: 3000, branch: 0, branchMax: 384 },
  seen: 12_345, evicted: 2_000, processed: 14_000, reused: 300, pendingTokens: 0,
  persistence: { enabled: true, path: '/s' }, restartRequired: [],
};

test('humanCount', () => {
  assert.equal(humanCount(0), '0');
  assert.equal(humanCount(999), '999');
  assert.equal(humanCount(1234), '1.2k');
  assert.equal(humanCount(12_345), '12k');
  assert.equal(humanCount(2_500_000), '2.5M');
  assert.equal(humanCount(Number.NaN), '?');
});

test('the item shows model, device, tokens/s and cache fill', () => {
  const v = formatStatus(ready, { enabled: true, snoozeMinutesLeft: 0 });
  assert.equal(v.text, '$(sparkle) endless-code · cpu · 46 tok/s · 44%');
  assert.equal(v.severity, 'normal');
  assert.match(v.tooltip, /sinks 1\/1, memory 100\/256, window 1500\/3000, branch 0\/384/);
  assert.match(v.tooltip, /12k tokens seen, 2\.0k evicted/);
  assert.match(v.tooltip, /42M parameters/);
});

test('off, snoozed, loading, error and restart-needed states', () => {
  assert.match(formatStatus(ready, { enabled: false, snoozeMinutesLeft: 0 }).text, /^\$\(circle-slash\)/);
  const snoozed = formatStatus(ready, { enabled: true, snoozeMinutesLeft: 12 });
  assert.match(snoozed.text, /^\$\(bell-slash\).*snoozed 12m$/);
  assert.match(snoozed.tooltip, /snoozed for 12 more min/);
  assert.match(formatStatus({ ...ready, state: 'loading' }, { enabled: true, snoozeMinutesLeft: 0 }).text, /loading model/);
  const err = formatStatus({ ...ready, state: 'error', message: 'model file not found: /x' }, { enabled: true, snoozeMinutesLeft: 0 });
  assert.equal(err.severity, 'error');
  assert.match(err.tooltip, /model file not found/);
  const restart = formatStatus({ ...ready, restartRequired: ['window'] }, { enabled: true, snoozeMinutesLeft: 0 });
  assert.equal(restart.severity, 'warning');
  assert.match(restart.tooltip, /`endless\.window`/);
  assert.match(formatStatus({ ...ready, tokensPerSecond: { prefill: 0, generate: 0 } }, { enabled: true, snoozeMinutesLeft: 0 }).text, / · – tok\/s · /);
  assert.match(formatStatus(undefined, { enabled: true, snoozeMinutesLeft: 0 }).text, /Endless/);
  assert.match(formatStatus({ ...ready, device: 'cuda:NVIDIA H100' }, { enabled: true, snoozeMinutesLeft: 0 }).text, / cuda /);
});

test('tooltip text from the server is escaped for Markdown', () => {
  assert.equal(escapeMd('a*b_[c](d)'), 'a\\*b\\_\\[c\\]\\(d\\)');
  const v = formatStatus({ ...ready, message: '[click](command:evil)' }, { enabled: true, snoozeMinutesLeft: 0 });
  assert.ok(!v.tooltip.includes('[click](command:evil)'));
});

test('cache fill and segments', () => {
  assert.equal(cacheFillFraction(undefined), 0);
  assert.equal(cacheFillFraction(ready.cache), (1 + 100 + 1500) / (1 + 256 + 3000 + 384));
  const segs = cacheSegments(ready.cache!);
  assert.deepEqual(segs.map((s) => s.name), ['sinks', 'memory', 'window', 'branch']);
  assert.ok(Math.abs(segs.reduce((a, s) => a + s.width, 0) - 1) < 1e-9, 'widths add up to 1');
  assert.ok(segs[0].width >= 0.03, 'one sink stays visible');
  assert.ok(segs[2].width > segs[1].width && segs[2].width > segs[3].width, 'the window is the widest');
  assert.equal(segs[2].fill, 0.5);
  assert.equal(segs[3].fill, 0);
  const empty = cacheSegments({ sinks: 0, sinksMax: 0, memory: 0, memoryMax: 0, window: 0, windowMax: 0, branch: 0, branchMax: 0 });
  assert.ok(empty.every((s) => s.fill === 0));
  const noMem = cacheSegments({ ...ready.cache!, memory: 0, memoryMax: 0 });
  assert.equal(noMem[1].width, 0);
});
