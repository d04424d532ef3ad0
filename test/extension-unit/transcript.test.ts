// The chat transcript the view shows, and the history of earlier chats.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { archiveChat, Transcript } from '../../extension/transcript';

test('a turn streams chunk by chunk and ends with the server\'s final text', () => {
  const t = new Transcript();
  t.addUser('t1', 'what does foo do?', 1);
  assert.equal(t.streamingTurn?.turnId, 't1');
  t.applyChunk({ turnId: 't1', delta: 'It ', tokens: 1, done: false });
  t.applyChunk({ turnId: 't1', delta: 'adds.', tokens: 3, done: false });
  assert.equal(t.assistant('t1')?.text, 'It adds.');
  assert.equal(t.applyChunk({ turnId: 'other', delta: 'x', tokens: 1, done: false }), undefined);
  t.finish('t1', 'It adds two numbers.', 'stop', 6);
  const a = t.assistant('t1')!;
  assert.equal(a.text, 'It adds two numbers.');
  assert.equal(a.streaming, false);
  assert.equal(t.streamingTurn, undefined);
  assert.equal(t.applyChunk({ turnId: 't1', delta: 'late', tokens: 7, done: false }), undefined, 'late chunks are ignored');
});

test('a done chunk ends the stream; a failure is kept with its message', () => {
  const t = new Transcript();
  t.addUser('a', 'q', 1);
  t.applyChunk({ turnId: 'a', delta: 'partial', tokens: 2, done: true, reason: 'cancelled' });
  assert.equal(t.assistant('a')?.reason, 'cancelled');
  t.addUser('b', 'q2', 2);
  t.fail('b', 'the model is not loaded');
  assert.equal(t.assistant('b')?.error, 'the model is not loaded');
  assert.equal(t.assistant('b')?.streaming, false);
});

test('history from the server replaces the transcript', () => {
  const t = new Transcript();
  t.addUser('x', 'old', 1);
  t.load([{ role: 'user', text: 'hi', turnId: 'h1', time: 5 }, { role: 'assistant', text: 'hello', turnId: 'h1', time: 6 }]);
  assert.deepEqual(t.turns.map((x) => [x.role, x.text, x.streaming]), [['user', 'hi', false], ['assistant', 'hello', false]]);
});

test('archived chats: titled by the first question, newest first, capped, empty chats dropped', () => {
  const t = new Transcript();
  let h = archiveChat([], t, 'c0', 0);
  assert.equal(h.length, 0);
  for (let i = 0; i < 5; i++) {
    const c = new Transcript();
    c.addUser(`t${i}`, `question ${i}\nwith a second line`, i);
    h = archiveChat(h, c, `c${i}`, i, 3);
  }
  assert.deepEqual(h.map((c) => c.id), ['c4', 'c3', 'c2']);
  assert.equal(h[0].title, 'question 4 with a second line');
  assert.ok(h[0].turns.every((x) => !x.streaming));
  const long = new Transcript();
  long.addUser('l', 'x'.repeat(200), 0);
  assert.equal(long.title().length, 60);
});
