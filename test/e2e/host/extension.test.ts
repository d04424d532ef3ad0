// The extension inside a real extension host, against the real language server and engine:
// activation, commands, the settings schema, inline completions through the provider, toggle and
// snooze, a chat turn, a summary, session commands, a crash restart and a settings restart.
// The model comes from $ENDLESS_MODEL (set by the driver) when endless.modelPath is empty.

import * as assert from 'node:assert/strict';
import * as vscode from 'vscode';
import { DEFAULT_SETTINGS, SessionInspectResult, StatusParams, Summary } from '../../../server/protocol';
import type { EndlessApi } from '../../../extension/extension';

declare const suite: (name: string, fn: () => void) => void;
declare const test: (name: string, fn: () => Promise<void> | void) => void;
declare const suiteSetup: (fn: () => Promise<void> | void) => void;

const EXT_ID = 'endless.endless';
let api: EndlessApi;

async function waitFor<T>(what: string, fn: () => T | undefined | Promise<T | undefined>, ms = 60_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v !== undefined && v !== null && (v as unknown) !== false) return v as T;
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

async function ready(): Promise<StatusParams> {
  return waitFor('the server to be ready', () => {
    const s = api.status();
    if (s?.state === 'error') throw new Error(`the server failed: ${s.message}`);
    return s?.state === 'ready' ? s : undefined;
  }, 90_000);
}

async function openSample(): Promise<vscode.TextEditor> {
  const folder = vscode.workspace.workspaceFolders?.[0];
  assert.ok(folder, 'a workspace folder is open');
  const uri = vscode.Uri.joinPath(folder.uri, 'host-test.py');
  const text = 'def add(a, b):\n    return a + b\n\n\ndef mul(a, b):\n    \n';
  await vscode.workspace.fs.writeFile(uri, Buffer.from(text));
  const doc = await vscode.workspace.openTextDocument(uri);
  // An open document picks up the new file content asynchronously.
  await waitFor('the document to show the file', () => doc.getText() === text || undefined, 10_000);
  return vscode.window.showTextDocument(doc);
}

function completionContext(kind: vscode.InlineCompletionTriggerKind): vscode.InlineCompletionContext {
  return { triggerKind: kind, selectedCompletionInfo: undefined } as vscode.InlineCompletionContext;
}

async function complete(editor: vscode.TextEditor, pos: vscode.Position, kind = vscode.InlineCompletionTriggerKind.Invoke) {
  const provider = await waitFor('the inline completion provider', () => api.server.inlineProvider(editor.document));
  const cts = new vscode.CancellationTokenSource();
  const r = await provider.provideInlineCompletionItems(editor.document, pos, completionContext(kind), cts.token);
  return Array.isArray(r) ? r : r?.items;
}

suite('Endless in the extension host', () => {
  suiteSetup(async () => {
    const ext = vscode.extensions.getExtension<EndlessApi>(EXT_ID);
    assert.ok(ext, `${EXT_ID} is installed`);
    api = await ext.activate();
    assert.ok(api?.server, 'activate() returns the API');
  });

  test('every contributed command is registered', async () => {
    const all = new Set(await vscode.commands.getCommands(true));
    const contributed = (vscode.extensions.getExtension(EXT_ID)!.packageJSON.contributes.commands as { command: string }[]).map((c) => c.command);
    assert.ok(contributed.length >= 15);
    for (const c of contributed) assert.ok(all.has(c), `${c} is not registered`);
  });

  test('the settings schema has every server setting with its default', () => {
    const c = vscode.workspace.getConfiguration('endless');
    for (const [k, v] of Object.entries(DEFAULT_SETTINGS)) assert.deepEqual(c.inspect(k)?.defaultValue, v, `endless.${k}`);
  });

  test('the server loads the model and reports its status', async () => {
    const s = await ready();
    assert.ok(s.model, 'a model is reported');
    assert.ok(s.device, 'a device is reported');
    assert.ok(s.cache && s.cache.windowMax > 0, 'cache sizes are reported');
  });

  test('the inline completion provider returns items for a document', async () => {
    await ready();
    const editor = await openSample();
    const pos = new vscode.Position(5, 4);
    const items = await complete(editor, pos);
    assert.ok(items && items.length > 0, 'at least one item');
    const first = items[0];
    const text = typeof first.insertText === 'string' ? first.insertText : first.insertText.value;
    assert.ok(text.length > 0, 'the item has text');
    assert.ok(first.range === undefined || first.range.start.line === 5, 'the item sits at the cursor');
  });

  test('toggle and snooze stop automatic requests; invoking ignores a snooze', async () => {
    await ready();
    const editor = await openSample();
    const pos = new vscode.Position(5, 4);
    assert.equal(await vscode.commands.executeCommand('endless.toggleCompletions'), false);
    assert.equal(await complete(editor, pos, vscode.InlineCompletionTriggerKind.Automatic), undefined);
    assert.equal(await complete(editor, pos, vscode.InlineCompletionTriggerKind.Invoke), undefined);
    assert.equal(await vscode.commands.executeCommand('endless.toggleCompletions'), true);
    const until = await vscode.commands.executeCommand<number>('endless.snooze', 1);
    assert.ok(until > Date.now());
    assert.equal(await complete(editor, pos, vscode.InlineCompletionTriggerKind.Automatic), undefined);
    const invoked = await complete(editor, pos, vscode.InlineCompletionTriggerKind.Invoke);
    assert.ok(invoked && invoked.length > 0, 'an explicit request still gets items');
    await vscode.commands.executeCommand('endless.unsnooze');
    assert.ok(api.inline.stats.skipped >= 3);
  });

  test('endless.enabledLanguages limits completions to the listed languages', async () => {
    await ready();
    const editor = await openSample();
    const c = vscode.workspace.getConfiguration('endless');
    await c.update('enabledLanguages', ['typescript'], vscode.ConfigurationTarget.Global);
    try {
      assert.equal(await complete(editor, new vscode.Position(5, 4)), undefined, 'python is not listed');
      await c.update('enabledLanguages', ['typescript', 'python'], vscode.ConfigurationTarget.Global);
      await new Promise((r) => setTimeout(r, 500)); // the server pulls the changed configuration
      const items = await complete(editor, new vscode.Position(5, 4));
      assert.ok(items && items.length > 0, 'python is listed');
    } finally {
      await c.update('enabledLanguages', undefined, vscode.ConfigurationTarget.Global);
    }
  });

  test('a chat turn streams into the chat view', async () => {
    await ready();
    await vscode.commands.executeCommand('endless.openChat');
    let chunks = 0;
    const sub = api.server.onChatChunk(() => chunks++);
    try {
      await api.chat.send('Write a Python function that adds two numbers.');
    } finally {
      sub.dispose();
    }
    const turns = api.chat.turns;
    const answer = turns[turns.length - 1];
    assert.equal(answer.role, 'assistant');
    assert.equal(answer.streaming, false);
    assert.equal(answer.error, undefined, `no error (${answer.error})`);
    assert.ok(answer.reason === 'stop' || answer.reason === 'length', `finished (${answer.reason})`);
    assert.ok(chunks > 0, 'chunks were streamed');
    if ((answer.tokens ?? 0) > 1) assert.ok(chunks >= 2, `the answer came in pieces (${chunks} chunks for ${answer.tokens} tokens)`);
  });

  test('Stop ends a streaming answer and keeps what was written', async () => {
    await ready();
    let first: () => void;
    const firstChunk = new Promise<void>((r) => { first = r; });
    const sub = api.server.onChatChunk((p) => { if (p.delta) first(); });
    const sending = api.chat.send('Explain, step by step and in detail, how a Python dictionary stores its keys.');
    try {
      await Promise.race([firstChunk, sending]);
      const stopped = await api.chat.stop();
      await sending;
      const answer = api.chat.turns[api.chat.turns.length - 1];
      assert.equal(answer.streaming, false);
      // The answer may have ended on its own between the first chunk and the stop request.
      if (stopped) assert.equal(answer.reason, 'cancelled', `a stopped turn is marked so (${answer.reason})`);
      else assert.ok(answer.reason === 'stop' || answer.reason === 'length', `finished by itself (${answer.reason})`);
    } finally {
      sub.dispose();
    }
  });

  test('Summarize now adds a summary to the Summaries view', async () => {
    await ready();
    const editor = await openSample();
    await editor.edit((b) => b.insert(new vscode.Position(5, 4), 'return a * b\n'));
    await editor.document.save();
    await new Promise((r) => setTimeout(r, 1500)); // past the typing pause (endless.editIdleMs)
    const s = await vscode.commands.executeCommand<Summary>('endless.summarizeNow');
    assert.ok(s?.id, 'a summary came back');
    assert.ok(api.summaries.all.some((x) => x.id === s.id), 'the view lists it');
    assert.ok(s.digest.files.some((f) => f.path.endsWith('host-test.py')), 'the digest names the file the tests touched');
    await vscode.commands.executeCommand('endless.summaries.open', s);
    const doc = vscode.window.activeTextEditor?.document;
    assert.equal(doc?.uri.scheme, 'endless-summary', 'the summary opens as a document');
    assert.match(doc!.getText(), /^# Endless session summary/);
    assert.match(doc!.getText(), /host-test\.py/);
    await vscode.commands.executeCommand('workbench.action.closeActiveEditor');
    await vscode.commands.executeCommand('endless.summaries.copy', s);
    assert.match(await vscode.env.clipboard.readText(), /^# Endless session summary/);
  });

  test('Apply shows a diff and Accept writes the proposal into the file', async () => {
    const editor = await openSample();
    const line = editor.document.lineAt(1);
    editor.selection = new vscode.Selection(line.range.start, line.range.end);
    const proposal = await api.apply.propose(editor, '    return b + a');
    const tab = vscode.window.tabGroups.activeTabGroup.activeTab;
    assert.ok(tab?.input instanceof vscode.TabInputTextDiff, 'a diff editor is open');
    assert.equal((tab.input as vscode.TabInputTextDiff).modified.toString(), proposal.toString());
    assert.equal(editor.document.lineAt(1).text, '    return a + b', 'nothing changes before Accept');
    assert.equal(await vscode.commands.executeCommand('endless.proposal.accept', proposal), true);
    assert.equal(editor.document.lineAt(1).text, '    return b + a');
    assert.ok(!vscode.window.tabGroups.all.some((g) => g.tabs.some((t) => t.input instanceof vscode.TabInputTextDiff)), 'the diff is closed');
    await editor.document.save();
  });

  test('session inspect shows the stream', async () => {
    await ready();
    const r = await vscode.commands.executeCommand<SessionInspectResult>('endless.inspectSession');
    assert.ok(r && r.stats.seen > 0, 'tokens were seen');
    await vscode.commands.executeCommand('workbench.action.closeActiveEditor');
  });

  test('save, restore and a new session', async () => {
    await ready();
    const saved = await vscode.commands.executeCommand<{ path: string; bytes: number }>('endless.saveSession');
    assert.ok(saved && saved.bytes > 0 && saved.path, 'a snapshot was written');
    const restored = await vscode.commands.executeCommand<{ restored: boolean; seen: number; reason: string }>('endless.restoreSession');
    assert.ok(restored?.restored, `restored (${restored?.reason})`);
    const seenBefore = api.status()?.seen ?? 0;
    assert.ok(seenBefore > 0);
    assert.equal(await vscode.commands.executeCommand('endless.newSession', true), true);
    const r = await vscode.commands.executeCommand<SessionInspectResult>('endless.inspectSession');
    assert.ok(r.stats.seen < seenBefore, `the new session starts over (${r.stats.seen} < ${seenBefore})`);
    await vscode.commands.executeCommand('workbench.action.closeActiveEditor');
  });

  test('a killed server is restarted, with the reason logged', async () => {
    await ready();
    const pid = api.server.serverPid;
    assert.ok(pid, 'the server runs');
    let reason = '';
    const sub = api.server.onStopped((r) => { reason = r; });
    try {
      process.kill(pid, 'SIGKILL');
      await waitFor('the crash to be noticed', () => reason || undefined, 30_000);
      assert.match(reason, /killed by SIGKILL/);
      await waitFor('a new server', () => (api.server.serverPid && api.server.serverPid !== pid ? true : undefined), 30_000);
      await ready();
    } finally {
      sub.dispose();
    }
  });

  test('changing a cache setting restarts the server', async () => {
    await ready();
    const pid = api.server.serverPid;
    const c = vscode.workspace.getConfiguration('endless');
    await c.update('memorySize', 128, vscode.ConfigurationTarget.Global);
    try {
      await waitFor('a restarted server', () => (api.server.serverPid && api.server.serverPid !== pid ? true : undefined), 30_000);
      const s = await ready();
      assert.ok(s.cache && s.cache.memoryMax <= 128, `the new memory size is in effect (${s.cache?.memoryMax})`);
    } finally {
      await c.update('memorySize', undefined, vscode.ConfigurationTarget.Global);
    }
  });
});
