// How summaries look in the Summaries view and as documents.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Summary } from '../../server/protocol';
import { mergeSummaries, summaryHeadline, summaryMarkdown, summaryTime } from '../../extension/summaryFormat';

function summary(id: string, time: number, over: Partial<Summary> = {}): Summary {
  return {
    id, time, text: 'Edited src/a.ts (+3 -1).', pinnedTokens: 20, seen: 500, trigger: 'idle',
    digest: {
      files: [{ uri: 'file:///w/src/a.ts', path: 'src/a.ts', edits: 2, linesAdded: 3, linesRemoved: 1, saved: true }],
      symbols: [{ name: 'add', kind: 'function', uri: 'file:///w/src/a.ts', change: 'added' }],
      chatTopics: ['what add does'],
    },
    ...over,
  };
}

test('time: hours and minutes today, with the date otherwise', () => {
  const now = new Date(2026, 10, 26, 15, 0).getTime();
  assert.equal(summaryTime(new Date(2026, 10, 26, 9, 5).getTime(), now), '09:05');
  assert.equal(summaryTime(new Date(2026, 10, 25, 23, 59).getTime(), now), 'Nov 25 23:59');
});

test('headline prefers the model\'s text, then the pinned text, then a file count', () => {
  assert.equal(summaryHeadline(summary('a', 0, { modelText: '  Added   add().\n' })), 'Added add().');
  assert.equal(summaryHeadline(summary('a', 0)), 'Edited src/a.ts (+3 -1).');
  assert.equal(summaryHeadline(summary('a', 0, { text: '' })), '1 file touched');
  assert.equal(summaryHeadline(summary('a', 0, { modelText: 'x'.repeat(300) })).length, 100);
});

test('markdown lists files, symbols, topics and the pinned memory', () => {
  const md = summaryMarkdown(summary('a', Date.UTC(2026, 10, 26, 8, 0, 0), { modelText: 'Added add().' }));
  assert.match(md, /^# Endless session summary — 2026-11-26 08:00:00 UTC/);
  assert.match(md, /## Summary\n\nAdded add\(\)\./);
  assert.match(md, /- src\/a\.ts — 2 edits, \+3 −1, saved/);
  assert.match(md, /- added function `add`/);
  assert.match(md, /- what add does/);
  assert.match(md, /```text\nEdited src\/a\.ts/);
  assert.match(summaryMarkdown(summary('b', 0, { digest: { files: [], symbols: [], chatTopics: [] } })), /## Files touched\n\n\(none\)/);
});

test('merge keeps one copy per id, newest first', () => {
  const m = mergeSummaries([summary('a', 1), summary('b', 3)], [summary('a', 1, { text: 'newer copy' }), summary('c', 2)]);
  assert.deepEqual(m.map((s) => s.id), ['b', 'c', 'a']);
  assert.equal(m[2].text, 'newer copy');
  assert.equal(mergeSummaries([], Array.from({ length: 5 }, (_, i) => summary(`s${i}`, i)), 2).length, 2);
});
