// Messages from the chat webview are checked before the host acts on them.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseFromWebview } from '../../extension/webviewProtocol';

test('well-formed messages pass', () => {
  assert.deepEqual(parseFromWebview({ type: 'ready' }), { type: 'ready' });
  assert.deepEqual(parseFromWebview({ type: 'send', text: 'hi', includeSelection: true }), { type: 'send', text: 'hi', includeSelection: true });
  assert.deepEqual(parseFromWebview({ type: 'send', text: 'hi' }), { type: 'send', text: 'hi', includeSelection: false });
  assert.deepEqual(parseFromWebview({ type: 'apply', code: 'x = 1', language: 'python' }), { type: 'apply', code: 'x = 1', language: 'python' });
  assert.deepEqual(parseFromWebview({ type: 'copy', code: '' }), { type: 'copy', code: '' });
  assert.deepEqual(parseFromWebview({ type: 'openHistory', id: 'c1' }), { type: 'openHistory', id: 'c1' });
});

test('bad messages get a reason, never an action', () => {
  assert.match(parseFromWebview(null) as string, /not an object/);
  assert.match(parseFromWebview('send') as string, /not an object/);
  assert.match(parseFromWebview({ type: 'send', text: '   ' }) as string, /non-empty/);
  assert.match(parseFromWebview({ type: 'send', text: 5 }) as string, /non-empty string/);
  assert.match(parseFromWebview({ type: 'insert' }) as string, /code must be a string/);
  assert.match(parseFromWebview({ type: 'openHistory', id: 'x'.repeat(500) }) as string, /id must be a string/);
  assert.match(parseFromWebview({ type: 'runCommand', command: 'rm' }) as string, /unknown message type "runCommand"/);
});
