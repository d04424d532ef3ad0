// The completion gate: toggle, snooze with a clock, per-language lists.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { CompletionGate, languageAllowed } from '../../extension/gate';

test('a new gate allows every language', () => {
  const g = new CompletionGate();
  assert.deepEqual(g.check('typescript', [], 0), { allowed: true });
});

test('toggle turns completions off and on, and turning on ends a snooze', () => {
  const g = new CompletionGate();
  let changes = 0;
  g.onChange(() => changes++);
  assert.equal(g.toggle(), false);
  assert.deepEqual(g.check('python', [], 0), { allowed: false, reason: 'disabled' });
  g.snooze(5, 1000);
  assert.equal(g.toggle(), true);
  assert.equal(g.snapshot.snoozedUntil, 0);
  assert.deepEqual(g.check('python', [], 2000), { allowed: true });
  assert.equal(changes, 3);
});

test('snooze lasts N minutes, counts down, and ends by itself', () => {
  const g = new CompletionGate();
  const t0 = 1_000_000;
  assert.equal(g.snooze(15, t0), t0 + 15 * 60_000);
  assert.deepEqual(g.check('go', [], t0 + 60_000), { allowed: false, reason: 'snoozed' });
  assert.equal(g.snoozeMinutesLeft(t0 + 60_000), 14);
  assert.equal(g.snoozeMinutesLeft(t0 + 14 * 60_000 + 1), 1);
  assert.deepEqual(g.check('go', [], t0 + 15 * 60_000), { allowed: true });
  assert.equal(g.snoozeMinutesLeft(t0 + 15 * 60_000), 0);
  g.snooze(1, t0);
  g.unsnooze();
  assert.deepEqual(g.check('go', [], t0), { allowed: true });
});

test('a bad snooze length is refused with a clear error', () => {
  const g = new CompletionGate();
  for (const bad of [0, -1, Number.NaN, Infinity, 24 * 60 + 1, '5' as unknown as number]) {
    assert.throws(() => g.snooze(bad, 0), /snooze minutes must be a number in \(0, 1440\]/);
  }
  assert.equal(g.snapshot.snoozedUntil, 0);
});

test('state survives a reload through its snapshot', () => {
  const g = new CompletionGate();
  g.toggle();
  const again = new CompletionGate(g.snapshot);
  assert.deepEqual(again.check('c', [], 0), { allowed: false, reason: 'disabled' });
});

test('language lists: empty = all, else only the listed ids', () => {
  assert.equal(languageAllowed('rust', []), true);
  assert.equal(languageAllowed('rust', ['python', 'rust']), true);
  assert.equal(languageAllowed('markdown', ['python', 'rust']), false);
  const g = new CompletionGate();
  assert.deepEqual(g.check('markdown', ['typescript'], 0), { allowed: false, reason: 'language' });
});
