// Restart rules: which settings need one, crash counting, and the crash sentence.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { CrashPolicy, crashReason, restartKeysAffected, TailBuffer } from '../../extension/restart';

test('model and cache settings need a restart; completion settings do not', () => {
  const changed = (keys: string[]) => restartKeysAffected((s) => keys.includes(s));
  assert.deepEqual(changed(['endless.modelPath']), ['endless.modelPath']);
  assert.deepEqual(changed(['endless.window', 'endless.sinks']), ['endless.sinks', 'endless.window']);
  assert.deepEqual(changed(['endless.debounceMs', 'endless.enabledLanguages', 'endless.maxCompletionTokens']), []);
  for (const k of ['device', 'threads', 'memorySize']) assert.deepEqual(changed([`endless.${k}`]), [`endless.${k}`]);
});

test('crashes restart the server until they come too often', () => {
  const p = new CrashPolicy(3, 60_000);
  assert.equal(p.crashed(0), true);
  assert.equal(p.crashed(1_000), true);
  assert.equal(p.crashed(2_000), false, 'third crash within a minute: stay down');
  const q = new CrashPolicy(3, 60_000);
  assert.equal(q.crashed(0), true);
  assert.equal(q.crashed(1_000), true);
  assert.equal(q.crashed(120_000), true, 'old crashes leave the window');
  q.reset();
  assert.equal(q.recent, 0);
});

test('the crash sentence names the exit status and the last error line', () => {
  assert.equal(crashReason({ code: null, signal: 'SIGKILL' }, []), 'the language server was killed by SIGKILL');
  assert.equal(crashReason({ code: 2, signal: null }, ['loading', 'Error: model file not found: /x', 'bye']),
    'the language server exited with code 2: Error: model file not found: /x');
  assert.equal(crashReason(undefined, ['last words']), 'the language server stopped: last words');
  const t = new TailBuffer(3);
  for (const l of ['a', '', 'b', 'c', 'd']) t.push(l);
  assert.deepEqual(t.last(5), ['b', 'c', 'd']);
});
