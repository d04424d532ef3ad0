// endless.modelPath: machine values only in untrusted workspaces, ~ and ${workspaceFolder} expanded.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { effectiveModelPath } from '../../extension/modelPath';

test('untrusted workspaces use only the user (machine) value', () => {
  const inspect = { globalValue: '/models/user.gguf', workspaceValue: '/tmp/evil.gguf' };
  assert.equal(effectiveModelPath(inspect, false, '/w'), '/models/user.gguf');
  assert.equal(effectiveModelPath({ workspaceValue: '/tmp/evil.gguf' }, false, '/w'), '');
  assert.equal(effectiveModelPath(inspect, true, '/w'), '/tmp/evil.gguf');
});

test('empty or non-string values mean the shipped model', () => {
  assert.equal(effectiveModelPath(undefined, true, '/w'), '');
  assert.equal(effectiveModelPath({ globalValue: '  ' }, true, '/w'), '');
  assert.equal(effectiveModelPath({ globalValue: 42 }, true, '/w'), '');
});

test('~, ${workspaceFolder} and relative paths are expanded', () => {
  assert.equal(effectiveModelPath({ globalValue: '~/m.gguf' }, true, '/w', '/home/u'), '/home/u/m.gguf');
  assert.equal(effectiveModelPath({ globalValue: '${workspaceFolder}/m.gguf' }, true, '/w'), '/w/m.gguf');
  assert.equal(effectiveModelPath({ globalValue: 'models/m.gguf' }, true, '/w'), '/w/models/m.gguf');
  assert.equal(effectiveModelPath({ globalValue: 'models/m.gguf' }, true, undefined), 'models/m.gguf');
});
