// Unit tests for edit coalescing (server/session/coalesce.ts) on a manual clock.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EditCoalescer, Timers } from '../../server/session/coalesce';

class ManualClock implements Timers {
  t = 0;
  private timers: { at: number; fn: () => void; id: number }[] = [];
  private next = 1;
  now() { return this.t; }
  setTimeout(fn: () => void, ms: number) { const id = this.next++; this.timers.push({ at: this.t + ms, fn, id }); return id; }
  clearTimeout(h: unknown) { this.timers = this.timers.filter((x) => x.id !== h); }
  advance(ms: number) {
    const end = this.t + ms;
    for (;;) {
      this.timers.sort((a, b) => a.at - b.at);
      const due = this.timers[0];
      if (!due || due.at > end) break;
      this.timers.shift();
      this.t = due.at;
      due.fn();
    }
    this.t = end;
  }
}

test('keystrokes are coalesced until the typing pauses', () => {
  const clock = new ManualClock();
  const flushed: string[][] = [];
  const c = new EditCoalescer(500, 5000, (u) => flushed.push(u), clock);
  for (let i = 0; i < 10; i++) { c.touch('a'); clock.advance(100); }
  assert.deepEqual(flushed, []);
  assert.ok(c.isPending('a'));
  clock.advance(500);
  assert.deepEqual(flushed, [['a']]);
  assert.ok(!c.isPending('a'));
});

test('continuous typing flushes after maxDelay', () => {
  const clock = new ManualClock();
  const flushed: string[][] = [];
  const c = new EditCoalescer(500, 2000, (u) => flushed.push(u), clock);
  for (let i = 0; i < 50; i++) { c.touch('a'); clock.advance(100); }
  // 5 s of typing with a 2 s cap: at least two flushes while typing
  assert.ok(flushed.length >= 2, `flushes: ${flushed.length}`);
});

test('several documents flush together; take() flushes explicitly', () => {
  const clock = new ManualClock();
  const flushed: string[][] = [];
  const c = new EditCoalescer(500, 5000, (u) => flushed.push(u), clock);
  c.touch('a'); c.touch('b');
  assert.deepEqual(c.take('b'), ['b']);
  assert.deepEqual(c.take('b'), []);
  clock.advance(600);
  assert.deepEqual(flushed, [['a']]);
  c.touch('c');
  c.forget('c');
  clock.advance(1000);
  assert.equal(flushed.length, 1);
  assert.equal(c.pendingCount, 0);
});

test('defer() holds pending edits while completions are asked for, up to maxDelay', () => {
  const clock = new ManualClock();
  const flushed: string[][] = [];
  const c = new EditCoalescer(500, 3000, (u) => flushed.push(u), clock);
  c.touch('a');
  for (let i = 0; i < 5; i++) { clock.advance(400); c.defer(); }
  assert.deepEqual(flushed, [], 'a completion every 400 ms keeps the edit pending');
  for (let i = 0; i < 5; i++) { clock.advance(400); c.defer(); }
  assert.deepEqual(flushed, [['a']], 'but not beyond maxDelay');
  c.defer();
  assert.equal(flushed.length, 1, 'nothing pending: defer does nothing');
});

test('holdWhile keeps the idle flush waiting while a completion runs, up to maxDelay', () => {
  const clock = new ManualClock();
  const flushed: string[][] = [];
  const c = new EditCoalescer(500, 3000, (u) => flushed.push(u), clock);
  let busy = true;
  c.holdWhile = () => busy;
  c.touch('a');
  clock.advance(2000);
  assert.deepEqual(flushed, []);
  busy = false;
  clock.advance(600);
  assert.deepEqual(flushed, [['a']]);
  busy = true;
  c.touch('b');
  clock.advance(3100);
  assert.deepEqual(flushed, [['a'], ['b']], 'maxDelay still applies');
});
