// Unit tests for inline-completion stop rules (server/session/stoprules.ts).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { evaluateStop, finishCompletion, bracketDelta } from '../../server/session/stoprules';

test('mid-line completions end at the end of the line', () => {
  const v = evaluateStop('a, b\n  more', { linePrefix: '  foo(', lineSuffix: ')' });
  assert.deepEqual(v, { done: true, text: 'a, b' });
  assert.equal(evaluateStop('a, b', { linePrefix: '  foo(', lineSuffix: ')' }).done, false);
});

test('a line with code ends at its end unless it opens a block', () => {
  assert.deepEqual(evaluateStop(' = 1;\nconst y', { linePrefix: 'const x', lineSuffix: '' }), { done: true, text: ' = 1;' });
  const open = evaluateStop(' {\n  return a + b;\n', { linePrefix: 'function add(a, b)', lineSuffix: '' });
  assert.equal(open.done, false);
  const closed = evaluateStop(' {\n  return a + b;\n}\nfunction', { linePrefix: 'function add(a, b)', lineSuffix: '' });
  assert.deepEqual(closed, { done: true, text: ' {\n  return a + b;\n}' });
});

test('python blocks end when indentation drops', () => {
  const v = evaluateStop('\n    return x * 2\n\ndef other():\n', { linePrefix: 'def double(x):', lineSuffix: '' });
  assert.equal(v.done, true);
  assert.equal(v.text, '\n    return x * 2');
});

test('a block on an empty line ends on dedent or a foreign closing bracket', () => {
  const ctx = { linePrefix: '  ', lineSuffix: '' };
  const v = evaluateStop('const a = 1;\n  const b = 2;\n}\n', ctx);
  assert.deepEqual(v, { done: true, text: 'const a = 1;\n  const b = 2;' });
  const own = evaluateStop('if (x) {\n    y();\n  }\n  z();\n', ctx);
  assert.equal(own.done, false);
});

test('repeating the next line of the file stops', () => {
  const v = evaluateStop('a();\n  b();\n  return c;\n', { linePrefix: '  ', lineSuffix: '', nextLine: 'return c;' });
  assert.deepEqual(v, { done: true, text: 'a();\n  b();' });
});

test('two blank lines and maxLines stop', () => {
  assert.equal(evaluateStop('a\n\n\nb\n', { linePrefix: '', lineSuffix: '' }).text, 'a');
  const many = Array.from({ length: 20 }, (_, i) => `x${i}`).join('\n') + '\n';
  const v = evaluateStop(many, { linePrefix: '', lineSuffix: '', maxLines: 4 });
  assert.equal(v.done, true);
  assert.equal(v.text.split('\n').length, 4);
});

test('brackets in strings and comments do not count', () => {
  assert.equal(bracketDelta('foo("(", \'[\') // {').delta, 0);
  assert.equal(bracketDelta('a({[').delta, 3);
});

test('finishing cleans trailing whitespace and an empty last line', () => {
  assert.equal(finishCompletion('return 1;   ', { linePrefix: '  ', lineSuffix: '' }), 'return 1;');
  assert.equal(finishCompletion('a();\n  ', { linePrefix: '  ', lineSuffix: '' }), 'a();');
});
