// Unit tests for the completion cache (server/session/completioncache.ts), the activity digest
// (server/session/digest.ts) and symbol extraction (server/session/symbols.ts).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CompletionCache } from '../../server/session/completioncache';
import { ActivityTracker, digestText } from '../../server/session/digest';
import { diffLines } from '../../server/session/diff';
import { extractSymbols, languageFromPath } from '../../server/session/symbols';

test('completion cache: exact hit, typed-ahead hit, miss on divergence', () => {
  const c = new CompletionCache();
  const prefix = 'function add(a, b) {\n  return ';
  c.put('u', prefix, '\n}', ['a + b;', 'a - b;']);
  assert.deepEqual(c.get('u', prefix, '\n}'), ['a + b;', 'a - b;']);
  assert.deepEqual(c.get('u', prefix + 'a + ', '\n}'), ['b;']);
  assert.equal(c.get('u', prefix + 'x', '\n}'), undefined);
  assert.equal(c.get('u', prefix, '\n}\nmore'), undefined);
  assert.equal(c.get('v', prefix, '\n}'), undefined);
  c.invalidate('u');
  assert.equal(c.get('u', prefix, '\n}'), undefined);
});

test('completion cache works with long prefixes', () => {
  const c = new CompletionCache();
  const long = 'x'.repeat(3000) + '\nconst y = ';
  c.put('u', long, '', ['compute();']);
  assert.deepEqual(c.get('u', long + 'comp', ''), ['ute();']);
});

test('symbols per language', () => {
  const ts = extractSymbols('export function foo() {}\nclass Bar {\n  baz(x: number): void {\n  }\n}\nconst qux = (a) => a;\ninterface I {}', 'typescript');
  assert.deepEqual(ts.map((s) => `${s.kind}:${s.name}`), ['function:foo', 'class:Bar', 'method:baz', 'function:qux', 'interface:I']);
  const py = extractSymbols('def f(x):\n    pass\nclass C:\n    async def g(self):\n        if x:\n', 'python');
  assert.deepEqual(py.map((s) => s.name), ['f', 'C', 'g']);
  assert.equal(languageFromPath('src/a.rs'), 'rust');
});

test('digest: files, symbols added/modified/removed, chat topics', () => {
  const t = new ActivityTracker();
  assert.equal(t.active, false);
  const a = 'function keep() {\n  return 1;\n}\nfunction gone() {}\n'.split('\n');
  const b = 'function keep() {\n  return 2;\n}\nfunction fresh() {}\n'.split('\n');
  t.edited('file:///a.ts', 'a.ts', 'typescript', a, b, diffLines(a, b));
  t.saved('file:///a.ts', 'a.ts');
  t.chat('how do I test this?');
  assert.equal(t.active, true);
  const d = t.take();
  assert.equal(d.files.length, 1);
  assert.equal(d.files[0].saved, true);
  const sym = Object.fromEntries(d.symbols.map((s) => [s.name, s.change]));
  assert.deepEqual(sym, { keep: 'modified', fresh: 'added', gone: 'removed' });
  assert.deepEqual(d.chatTopics, ['how do I test this?']);
  const text = digestText(d);
  assert.match(text, /a\.ts \(1 edit, \+2 -2, saved\)/);
  assert.match(text, /Added: function fresh/);
  assert.equal(t.active, false);
});
