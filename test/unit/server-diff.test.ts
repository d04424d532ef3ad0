// Unit tests for the stream's line diffs (server/session/diff.ts): minimal edits, hunks, and
// that applying the edits reproduces the new text.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { applyLineEdits, diffLines, hunkHeader, splitLines, toHunks } from '../../server/session/diff';

function rnd(seed: number) {
  let s = seed >>> 0;
  return () => { s = (s * 1664525 + 1013904223) >>> 0; return s / 2 ** 32; };
}

test('no change gives no edits', () => {
  const a = splitLines('a\nb\nc\n');
  assert.deepEqual(diffLines(a, a), []);
});

test('typing on one line is one replacement of that line', () => {
  const a = splitLines('function f() {\n  return 1\n}\n');
  const b = splitLines('function f() {\n  return 12\n}\n');
  const e = diffLines(a, b);
  assert.deepEqual(e, [{ oldStart: 1, oldCount: 1, newStart: 1, newLines: ['  return 12'] }]);
  const h = toHunks(a, e, 1);
  assert.equal(h.length, 1);
  assert.equal(hunkHeader(h[0]), '@@ -1,3 +1,3 @@');
  assert.deepEqual(h[0].lines, [' function f() {', '-  return 1', '+  return 12', ' }']);
});

test('insertion and deletion headers follow diff -u', () => {
  const a = splitLines('a\nb\nc');
  const ins = diffLines(a, splitLines('a\nb\nX\nc'));
  assert.deepEqual(ins, [{ oldStart: 2, oldCount: 0, newStart: 2, newLines: ['X'] }]);
  const h0 = toHunks(a, ins, 0);
  assert.equal(hunkHeader(h0[0]), '@@ -2,0 +3,1 @@');
  const del = diffLines(a, splitLines('a\nc'));
  assert.deepEqual(del, [{ oldStart: 1, oldCount: 1, newStart: 1, newLines: [] }]);
  assert.equal(hunkHeader(toHunks(a, del, 0)[0]), '@@ -2,1 +1,0 @@');
  assert.equal(hunkHeader(toHunks(a, del, 1)[0]), '@@ -1,3 +1,2 @@');
});

test('distant edits make separate hunks, close ones merge', () => {
  const a = Array.from({ length: 40 }, (_, i) => `line ${i}`);
  const b = [...a];
  b[3] = 'changed 3';
  b[30] = 'changed 30';
  const e = diffLines(a, b);
  assert.equal(e.length, 2);
  assert.equal(toHunks(a, e, 2).length, 2);
  const c = [...a];
  c[3] = 'x'; c[5] = 'y';
  assert.equal(toHunks(a, diffLines(a, c), 1).length, 1);
});

test('random edits round-trip through applyLineEdits, and hunks count lines right', () => {
  const r = rnd(7);
  for (let iter = 0; iter < 300; iter++) {
    const n = Math.floor(r() * 30);
    const a = Array.from({ length: n }, () => String(Math.floor(r() * 6)));
    const b = [...a];
    const ops = 1 + Math.floor(r() * 4);
    for (let k = 0; k < ops; k++) {
      const at = Math.floor(r() * (b.length + 1));
      const x = r();
      if (x < 0.33) b.splice(at, 0, String(Math.floor(r() * 6)));
      else if (x < 0.66 && b.length) b.splice(Math.min(at, b.length - 1), 1);
      else if (b.length) b[Math.min(at, b.length - 1)] = 'z' + k;
    }
    const e = diffLines(a, b);
    assert.deepEqual(applyLineEdits(a, e), b, `iter ${iter}`);
    for (const h of toHunks(a, e, 1)) {
      assert.equal(h.lines.filter((l) => l[0] !== '+').length, h.oldCount);
      assert.equal(h.lines.filter((l) => l[0] !== '-').length, h.newCount);
    }
  }
});

test('a large rewrite is bounded work', () => {
  const a = Array.from({ length: 5000 }, (_, i) => `a${i}`);
  const b = Array.from({ length: 5000 }, (_, i) => `b${i}`);
  const t = Date.now();
  const e = diffLines(a, b);
  assert.ok(Date.now() - t < 2000);
  assert.deepEqual(applyLineEdits(a, e), b);
});

test('a huge paste is bounded in the stream; long lines are cut', async () => {
  const { boundHunks, MAX_EDIT_LINES, MAX_LINE_CHARS } = await import('../../server/session/session');
  const a = ['start', 'end'];
  const b = ['start', ...Array.from({ length: 5000 }, (_, i) => `pasted ${i}`), 'x'.repeat(50_000), 'end'];
  const h = boundHunks(toHunks(a, diffLines(a, b), 1));
  const shown = h.flatMap((x) => x.lines);
  assert.ok(shown.filter((l) => l.startsWith('+pasted')).length === MAX_EDIT_LINES);
  assert.match(shown[shown.length - 2], /^\+… \(4601 more changed lines\)$/);
  assert.ok(shown.every((l) => l.length <= MAX_LINE_CHARS + 2));
});
