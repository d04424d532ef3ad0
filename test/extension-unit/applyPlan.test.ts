// What "Apply" proposes for a chat code block.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { planApply } from '../../extension/applyPlan';

const doc = 'line1\nline2\nline3\nline4\nline5\nline6\n';

test('a selection is replaced by the code', () => {
  const s = doc.indexOf('line2');
  const p = planApply(doc, 'NEW', { start: s, end: s + 5 });
  assert.equal(p.mode, 'selection');
  assert.equal(p.proposed, 'line1\nNEW\nline3\nline4\nline5\nline6\n');
  assert.equal(planApply(doc, 'NEW', { start: s + 5, end: s }).proposed, p.proposed, 'a backwards selection works too');
});

test('without a selection, a short snippet is inserted at the cursor', () => {
  const p = planApply(doc, 'x', { start: 6, end: 6 });
  assert.equal(p.mode, 'insert');
  assert.equal(p.proposed, 'line1\nxline2\nline3\nline4\nline5\nline6\n');
});

test('without a selection, a rewrite of the file replaces it, keeping the final newline', () => {
  const p = planApply(doc, 'line1\nline2\nline3 changed\nline4\nline5', { start: 0, end: 0 });
  assert.equal(p.mode, 'document');
  assert.equal(p.proposed, 'line1\nline2\nline3 changed\nline4\nline5\n');
  assert.equal(planApply('', 'x', { start: 0, end: 0 }).mode, 'document');
});

test('without a selection, a new function is inserted, not written over the file', () => {
  const src = 'def add(a, b):\n    return a + b\n';
  const p = planApply(src, 'def mul(a, b):\n    return a * b\n', { start: src.length, end: src.length });
  assert.equal(p.mode, 'insert');
  assert.equal(p.proposed, src + 'def mul(a, b):\n    return a * b\n');
});

test('line endings follow the document; out-of-range offsets are clamped', () => {
  const crlf = 'a\r\nb\r\n';
  assert.equal(planApply(crlf, 'x\ny', { start: 0, end: 1 }, '\r\n').proposed, 'x\r\ny\r\nb\r\n');
  const p = planApply('abc', 'Z', { start: 99, end: 99 });
  assert.equal(p.proposed, 'abcZ', 'the cursor is clamped to the end');
});
