// package.json's contributions agree with the code: every server setting is declared with the
// server's default, every contributed command is registered, activation is narrow, and the model
// path is machine-scoped and restricted in untrusted workspaces.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { DEFAULT_SETTINGS } from '../../server/protocol';

const root = path.resolve(__dirname, '..', '..');
const pkg = JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8'));
const props = pkg.contributes.configuration.properties as Record<string, { default: unknown; scope?: string }>;
const source = readdirSync(path.join(root, 'extension')).filter((f) => f.endsWith('.ts'))
  .map((f) => readFileSync(path.join(root, 'extension', f), 'utf8')).join('\n');

test('every server setting is declared, with the server\'s default', () => {
  for (const [k, v] of Object.entries(DEFAULT_SETTINGS)) {
    const p = props[`endless.${k}`];
    assert.ok(p, `endless.${k} is not in contributes.configuration`);
    assert.deepEqual(p.default, v, `endless.${k}: default ${JSON.stringify(p.default)} != server default ${JSON.stringify(v)}`);
  }
  for (const k of Object.keys(props)) assert.ok(k.slice('endless.'.length) in DEFAULT_SETTINGS, `${k} is not a server setting`);
});

test('the model path is machine-scoped and restricted in untrusted workspaces', () => {
  assert.equal(props['endless.modelPath'].scope, 'machine');
  assert.deepEqual(pkg.capabilities.untrustedWorkspaces.restrictedConfigurations, ['endless.modelPath']);
});

test('activation is narrow and main is the bundle', () => {
  assert.deepEqual(pkg.activationEvents, ['onStartupFinished']);
  assert.equal(pkg.main, './dist/extension.js');
});

test('every contributed command is registered by the extension', () => {
  for (const c of pkg.contributes.commands as { command: string }[]) {
    assert.ok(source.includes(`'${c.command}'`), `${c.command} is contributed but never registered`);
  }
  const menuCommands = Object.values(pkg.contributes.menus as Record<string, { command: string }[]>).flat().map((m) => m.command);
  const declared = new Set((pkg.contributes.commands as { command: string }[]).map((c) => c.command));
  for (const c of menuCommands) assert.ok(declared.has(c), `menu entry for undeclared command ${c}`);
});

test('views live in their own activity-bar container', () => {
  assert.equal(pkg.contributes.viewsContainers.activitybar[0].id, 'endless');
  const views = pkg.contributes.views.endless as { id: string; type?: string }[];
  assert.deepEqual(views.map((v) => v.id), ['endless.chat', 'endless.summaries']);
  assert.equal(views[0].type, 'webview');
  assert.ok(source.includes("viewId = 'endless.chat'") && source.includes("viewId = 'endless.summaries'"));
});
