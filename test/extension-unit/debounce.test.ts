// The cancellable debounce before automatic completion requests.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { CancellationLike, debounce } from '../../extension/debounce';

class Source implements CancellationLike {
  isCancellationRequested = false;
  private listeners: (() => void)[] = [];
  onCancellationRequested(l: () => void) {
    this.listeners.push(l);
    return { dispose: () => { this.listeners = this.listeners.filter((x) => x !== l); } };
  }
  cancel() { this.isCancellationRequested = true; for (const l of [...this.listeners]) l(); }
  get listening() { return this.listeners.length; }
}

test('waits the full time when nothing cancels', async () => {
  const s = new Source();
  const t0 = Date.now();
  assert.equal(await debounce(40, s), true);
  assert.ok(Date.now() - t0 >= 35);
  assert.equal(s.listening, 0, 'the cancellation listener is removed');
});

test('a cancellation ends the wait at once with false', async () => {
  const s = new Source();
  const t0 = Date.now();
  const p = debounce(5_000, s);
  setTimeout(() => s.cancel(), 10);
  assert.equal(await p, false);
  assert.ok(Date.now() - t0 < 1_000);
  assert.equal(s.listening, 0);
});

test('an already-cancelled token and a zero debounce answer immediately', async () => {
  const s = new Source();
  s.cancel();
  assert.equal(await debounce(100, s), false);
  assert.equal(await debounce(0, new Source()), true);
});

test('a burst of keystrokes lets only the last request through', async () => {
  // Each keystroke cancels the previous request's token, as VS Code does.
  const results: Promise<boolean>[] = [];
  let prev: Source | undefined;
  for (let i = 0; i < 5; i++) {
    prev?.cancel();
    prev = new Source();
    results.push(debounce(30, prev));
    await new Promise((r) => setTimeout(r, 5));
  }
  assert.deepEqual(await Promise.all(results), [false, false, false, false, true]);
});

test('uses the timers it is given', async () => {
  const pending: (() => void)[] = [];
  const timers = { setTimeout: (fn: () => void) => { pending.push(fn); return pending.length; }, clearTimeout: () => {} };
  const p = debounce(1000, new Source(), timers);
  assert.equal(pending.length, 1);
  pending[0]();
  assert.equal(await p, true);
});
