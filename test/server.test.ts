// Integration tests of the language server: the real server over stdio (server/main.ts), the real
// engine, and the shipped model (or a fixture model until it exists; ENDLESS_TEST_MODEL picks
// another). They check what issue 6 asks: edits are appended, never re-prefilled (the engine's
// processed-token counter grows by exactly what the stream was sent), completions come back and
// reuse their branch prefix, cancellation storms leave no stuck work, chat streams and stops,
// an idle summary is pinned, a killed server comes back from its snapshot without losing an edit,
// and malformed requests get LSP errors while the server keeps serving.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync, statSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { CancellationTokenSource, ErrorCodes, InlineCompletionList, LSPErrorCodes, ResponseError } from 'vscode-languageserver-protocol/node';
import {
  ChatSendRequest, ChatStopRequest, SessionInspectResult, SessionSaveRequest, SummariesListRequest, StatusRequest, SessionNewRequest,
  SummarizeNowRequest, ChatHistoryRequest, ChatNewRequest, SessionRestoreRequest,
} from '../server/protocol';
import { fileUri, tempStorage, TestServer, SAMPLE, ROOT } from './server-harness';
import { systemInfo } from '../server/engine/index';

const SETTINGS = { window: 768, memorySize: 96, editIdleMs: 150, summaryIdleMs: 0, maxChatTokens: 48, maxCompletionTokens: 24, completionTimeoutMs: 5000 };

async function settled(s: TestServer, timeoutMs = 30_000): Promise<SessionInspectResult> {
  const t0 = Date.now();
  for (;;) {
    const i = await s.inspect(400);
    const q = i.queue;
    if (!q.running && q.completion + q.chat + q.ingest + q.summary === 0 && i.documents.every((d) => !d.pending)) return i;
    if (Date.now() - t0 > timeoutMs) throw new Error(`the server did not settle: ${JSON.stringify(q)}`);
    await new Promise((r) => setTimeout(r, 40));
  }
}

const sample = (rel: string) => readFileSync(path.join(SAMPLE, rel), 'utf8');

/** The server still serves: a completion on the sample's src/math.ts comes back. */
async function completesOnMath(s: TestServer): Promise<void> {
  const uri = fileUri('src/math.ts');
  await s.open(uri, sample('src/math.ts'));
  const r = await s.complete(uri, 5) as InlineCompletionList;
  assert.ok(Array.isArray(r.items));
}

describe('editing and completing', () => {
  let s: TestServer;
  const storage = tempStorage();
  before(async () => {
    s = new TestServer({ storage, settings: SETTINGS });
    await s.initialize();
    await s.ready();
  });

  test('the model load reports work-done progress and a ready status', async () => {
    const begin = s.progress.find((p) => (p as { kind?: string }).kind === 'begin') as { title: string } | undefined;
    assert.ok(begin, 'a progress begin');
    assert.match(begin.title, /loading the model/);
    assert.ok(s.progress.some((p) => (p as { kind?: string }).kind === 'end'));
    assert.ok(s.statuses.some((x) => x.state === 'loading'));
    const st = s.statuses[s.statuses.length - 1];
    assert.equal(st.state, 'ready');
    assert.ok(st.cache && st.cache.windowMax === SETTINGS.window && st.cache.memoryMax === SETTINGS.memorySize);
    assert.equal(st.persistence.enabled, true);
  });
  after(async () => { await s.shutdown(); rmSync(storage, { recursive: true, force: true }); });

  test('edits are appended as diffs; the engine processes exactly what was appended', async () => {
    const uri = fileUri('src/math.ts');
    const text = sample('src/math.ts');
    await s.open(uri, text);
    const i0 = await settled(s);
    assert.ok(i0.stats.seen > 50, 'the document surroundings went into the stream');
    assert.equal(i0.stats.processed, i0.appended, 'processed == appended after opening');
    assert.match(i0.tail, /src\/math\.ts/);

    const off = s.text(uri).indexOf('export function clamp');
    await s.type(uri, off, 'export const TWO = 2;\n', 5);
    const i1 = await settled(s);
    const added = i1.appended - i0.appended;
    assert.equal(i1.stats.processed - i0.stats.processed, added, 'processed grew by what the edit appended');
    assert.equal(i1.stats.seen - i0.stats.seen, added);
    // Any tokenizer needs at most one token per character: the file again would cost far more.
    const fileChars = text.length;
    assert.ok(added > 0 && added < fileChars / 3, `the edit cost ${added} tokens, the file has ${fileChars} characters`);
    assert.match(i1.tail, /\+export const TWO = 2;/, 'the stream holds the edit as a diff line');

    // A second edit elsewhere costs about its own size, not the file's.
    const off2 = s.text(uri).indexOf('  let total = 0;');
    await s.edit(uri, off2, off2, '  // running total\n');
    const i2 = await settled(s);
    assert.equal(i2.stats.processed - i1.stats.processed, i2.appended - i1.appended);
    assert.ok(i2.appended - i1.appended < fileChars / 3, `a one-line edit cost ${i2.appended - i1.appended} tokens`);
    assert.match(i2.tail, /\+  \/\/ running total/);

    // A save is one short event.
    await s.save(uri);
    const i3 = await settled(s);
    assert.ok(i3.appended - i2.appended < fileChars / 10, `a save cost ${i3.appended - i2.appended} tokens`);
    assert.equal(i3.stats.processed - i2.stats.processed, i3.appended - i2.appended);
  });

  test('a big paste is ingested in chunks with work-done progress, and completions still get through', async () => {
    const uri = fileUri('src/big.ts');
    await s.open(uri, '// pasted code follows\n');
    await settled(s);
    const before = s.progress.length;
    const block = Array.from({ length: 120 }, (_, i) => `export const value${i} = compute(${i}, 'item ${i}');`).join('\n') + '\n';
    await s.edit(uri, s.text(uri).length, s.text(uri).length, block);
    await s.inspect(0, true); // queue it now
    const r = await s.complete(uri, 0) as InlineCompletionList; // runs between the ingest's chunks
    assert.ok(Array.isArray(r.items));
    const i = await settled(s);
    const titles = s.progress.slice(before).filter((p) => (p as { kind?: string }).kind === 'begin').map((p) => (p as { title: string }).title);
    assert.ok(titles.some((t) => /reading/.test(t)), `progress: ${JSON.stringify(titles)}`);
    assert.ok(s.progress.slice(before).some((p) => (p as { kind?: string }).kind === 'end'));
    assert.match(i.tail, /value119 = compute\(119/);
  });

  test('completions come back, leave the stream untouched and reuse their branch prefix', async () => {
    const uri = fileUri('src/todo.ts');
    await s.open(uri, sample('src/todo.ts'));
    const base = await settled(s);
    const off = s.text(uri).indexOf('  averageEstimate()');
    let cursor = await s.type(uri, off, '  count(): number {\n    return ');
    await settled(s);
    const r1 = await s.complete(uri, cursor) as InlineCompletionList;
    assert.ok(Array.isArray(r1.items) && r1.items.length >= 1, 'a completion item');
    assert.equal(typeof r1.items[0].insertText, 'string');
    const a = await s.inspect(10);
    assert.equal(a.stats.cache.branch, 0, 'the branch was discarded');
    assert.equal(a.stats.branchOpen, false);
    // Typing one more character and asking again reuses the branch prefix (the engine's reuse
    // counter grows). The character must not continue the shown completion, else the prefix cache answers.
    const shown = String(r1.items[0]?.insertText ?? '');
    cursor = await s.type(uri, cursor, shown.startsWith('q') ? 'z' : 'q');
    const r2 = await s.complete(uri, cursor) as InlineCompletionList;
    assert.ok(r2.items.length >= 1);
    const b = await s.inspect(10);
    assert.ok(b.stats.reused > a.stats.reused, `reused ${a.stats.reused} -> ${b.stats.reused}`);
    // Explicit invoke: several items.
    const r3 = await s.complete(uri, cursor, true) as InlineCompletionList;
    assert.ok(r3.items.length >= 1);
    // Completions appended nothing: the stream moved only by the edits flushed meanwhile.
    const c = await settled(s);
    assert.equal(c.stats.seen - base.stats.seen, c.appended - base.appended);
  });

  test('a cancellation storm leaves no stuck work', async () => {
    const uri = fileUri('src/index.ts');
    await s.open(uri, sample('src/index.ts'));
    await settled(s);
    let cursor = s.text(uri).length;
    const pending: Promise<unknown>[] = [];
    for (let k = 0; k < 40; k++) {
      cursor = await s.type(uri, cursor, k % 5 === 0 ? '\n' : 'x');
      const cts = new CancellationTokenSource();
      pending.push(s.complete(uri, cursor, k % 7 === 0, cts).catch((e) => e));
      if (k % 2 === 0) setTimeout(() => cts.cancel(), k % 3);
      else if (k % 3 === 0) cts.cancel();
    }
    const results = await Promise.all(pending);
    for (const r of results) {
      if (r instanceof ResponseError) assert.equal(r.code, LSPErrorCodes.RequestCancelled, `unexpected error ${r.code} ${r.message}`);
    }
    const i = await settled(s);
    assert.equal(i.queue.running, null);
    assert.equal(i.stats.branchOpen, false);
    const t0 = Date.now();
    const r = await s.complete(uri, cursor) as InlineCompletionList;
    assert.ok(Array.isArray(r.items));
    assert.ok(Date.now() - t0 < 10_000, 'a fresh completion is served promptly');
  });

  test('chat streams token by token, is committed, and can be stopped', async () => {
    const before = await settled(s);
    const r = await s.conn.sendRequest(ChatSendRequest, { turnId: 'turn-1', text: 'What does TodoList.complete return?' });
    assert.equal(r.turnId, 'turn-1');
    assert.ok(r.tokens > 0);
    const chunks = s.chunks.filter((c) => c.turnId === 'turn-1');
    assert.ok(chunks.length >= 2, 'streamed in several chunks');
    assert.equal(chunks[chunks.length - 1].done, true);
    assert.equal(chunks.map((c) => c.delta).join(''), r.text, 'the chunks add up to the answer');
    const i = await settled(s);
    assert.match(i.tail, /What does TodoList\.complete return\?/, 'the question is in the stream');
    assert.equal(i.stats.processed - before.stats.processed, i.appended - before.appended, 'the turn and answer were processed once');

    // Stopped mid-answer: the partial answer is kept and the turn closed.
    const long = s.conn.sendRequest(ChatSendRequest, { turnId: 'turn-2', text: 'Explain the whole project in detail.', maxTokens: 4000 });
    await new Promise((res) => { const t = setInterval(() => { if (s.chunks.some((c) => c.turnId === 'turn-2')) { clearInterval(t); res(null); } }, 2); });
    const stopped = await s.conn.sendRequest(ChatStopRequest, { turnId: 'turn-2' });
    const r2 = await long;
    if (stopped.stopped) assert.equal(r2.reason, 'cancelled');
    else assert.equal(r2.reason, 'stop', 'the model ended its answer before the stop arrived');
    assert.ok(r2.tokens < 4000);
    assert.equal(s.chunks.filter((c) => c.turnId === 'turn-2').pop()!.done, true);
    assert.equal((await s.conn.sendRequest(ChatStopRequest, { turnId: 'turn-2' })).stopped, false, 'nothing left to stop');
    // Stopped at once, and cancelled through $/cancelRequest: both end the turn as cancelled.
    const quick = s.conn.sendRequest(ChatSendRequest, { turnId: 'turn-3', text: 'Never mind.', maxTokens: 4000 });
    assert.equal((await s.conn.sendRequest(ChatStopRequest, { turnId: 'turn-3' })).stopped, true);
    const r3 = await quick;
    assert.equal(r3.reason, 'cancelled');
    const cts = new CancellationTokenSource();
    const viaCancel = s.conn.sendRequest(ChatSendRequest, { turnId: 'turn-4', text: 'And this?', maxTokens: 4000 }, cts.token);
    setTimeout(() => cts.cancel(), 1);
    const r4 = await viaCancel.catch((e) => e);
    if (!(r4 instanceof ResponseError)) assert.ok(r4.reason === 'cancelled' || r4.reason === 'stop', JSON.stringify(r4));
    const after = await settled(s);
    assert.match(after.tail, /Never mind\./, 'the stopped turn is in the stream');
  });

  test('chat history, new chat, new session, explicit save and restore', async () => {
    const h = await s.conn.sendRequest(ChatHistoryRequest);
    assert.deepEqual(h.messages.map((m) => m.role), ['user', 'assistant', 'user', 'assistant', 'user', 'assistant', 'user', 'assistant']);
    await s.conn.sendRequest(ChatNewRequest);
    assert.equal((await s.conn.sendRequest(ChatHistoryRequest)).messages.length, 0);
    const saved = await s.conn.sendRequest(SessionSaveRequest);
    const before = await settled(s);
    await s.conn.sendRequest(SessionNewRequest, { keepMemory: true });
    const fresh = await settled(s);
    assert.ok(fresh.stats.cache.window < before.stats.cache.window, 'the cache was emptied');
    assert.ok(!/TWO = 2/.test(fresh.tail));
    // Something after the last snapshot, then a reload from storage: snapshot + the newer events.
    const uri = fileUri('src/after.ts');
    await s.open(uri, 'export const AFTER_THE_SNAPSHOT = true;\n');
    await settled(s);
    const r = await s.conn.sendRequest(SessionRestoreRequest);
    assert.equal(r.restored, true);
    assert.match(r.reason, /restored from the snapshot/);
    assert.ok(r.replayed >= 1, `replayed ${r.replayed}`);
    const back = await settled(s);
    assert.match(back.tail, /AFTER_THE_SNAPSHOT/);
    assert.ok(saved.bytes > 0);
  });

  test('malformed and out-of-range requests get LSP errors; the server keeps serving', async () => {
    const uri = fileUri('src/math.ts');
    const expectError = async (p: Promise<unknown>, code: number) => {
      await assert.rejects(p, (e: unknown) => e instanceof ResponseError && e.code === code);
    };
    await expectError(s.conn.sendRequest('textDocument/inlineCompletion', { textDocument: { uri }, position: { line: 9999, character: 0 } }), ErrorCodes.InvalidParams);
    await expectError(s.conn.sendRequest('textDocument/inlineCompletion', { textDocument: { uri }, position: { line: 0, character: 500 } }), ErrorCodes.InvalidParams);
    await expectError(s.conn.sendRequest('textDocument/inlineCompletion', { position: { line: 0, character: 0 } }), ErrorCodes.InvalidParams);
    await expectError(s.conn.sendRequest('textDocument/inlineCompletion', { textDocument: { uri: 'file:///not/open.ts' }, position: { line: 0, character: 0 } }), ErrorCodes.InvalidParams);
    await expectError(s.conn.sendRequest('textDocument/inlineCompletion', { textDocument: { uri }, position: { line: -1, character: 0 } }), ErrorCodes.InvalidParams);
    await expectError(s.conn.sendRequest('textDocument/inlineCompletion', { textDocument: { uri }, position: { line: 0, character: 0 }, context: { triggerKind: 9 } }), ErrorCodes.InvalidParams);
    await expectError(s.conn.sendRequest(ChatSendRequest.method, { turnId: 'x', text: 42 }), ErrorCodes.InvalidParams);
    await expectError(s.conn.sendRequest(ChatSendRequest.method, { turnId: '', text: 'hi' }), ErrorCodes.InvalidParams);
    await expectError(s.conn.sendRequest(ChatSendRequest.method, 'not an object'), ErrorCodes.InvalidParams);
    await expectError(s.conn.sendRequest(ChatSendRequest.method, { turnId: 'y', text: 'hi', temperature: 99 }), ErrorCodes.InvalidParams);
    await expectError(s.conn.sendRequest('endless/session/inspect', { tailTokens: -5 }), ErrorCodes.InvalidParams);
    await expectError(s.conn.sendRequest(SessionNewRequest.method, { keepMemory: 'yes' }), ErrorCodes.InvalidParams);
    await expectError(s.conn.sendRequest('endless/no/such/method', {}), ErrorCodes.MethodNotFound);
    // A malformed notification is ignored (logged), not fatal.
    await s.conn.sendNotification('endless/activeDocument', { uri: 5 });
    const st = await s.conn.sendRequest(StatusRequest);
    assert.equal(st.state, 'ready');
    const r = await s.complete(uri, 10) as InlineCompletionList;
    assert.ok(Array.isArray(r.items));
  });
});

describe('summaries', () => {
  test('a summary arrives when the user is idle and is pinned as memory', async () => {
    const s = new TestServer({ storage: null, settings: { ...SETTINGS, summaryIdleMs: 800, summaryIntervalMs: 0 } });
    try {
      await s.initialize();
      const st = await s.ready();
      assert.equal(st.persistence.enabled, false, 'no storage folder: no persistence, and the status says so');
      const uri = fileUri('src/math.ts');
      await s.open(uri, sample('src/math.ts'));
      const off = s.text(uri).indexOf('export function mean');
      await s.type(uri, off, 'export function product(values: number[]): number {\n  return values.reduce((a, b) => a * b, 1);\n}\n\n');
      const t0 = Date.now();
      while (!s.summaries.length && Date.now() - t0 < 30_000) await new Promise((r) => setTimeout(r, 50));
      assert.equal(s.summaries.length, 1, 'one summary published');
      const sum = s.summaries[0];
      assert.equal(sum.trigger, 'idle');
      assert.deepEqual(sum.digest.files.map((f) => f.path), ['src/math.ts']);
      assert.ok(sum.digest.symbols.some((x) => x.name === 'product' && x.change === 'added'), JSON.stringify(sum.digest.symbols));
      assert.ok(sum.pinnedTokens > 0 && sum.pinnedTokens <= 96);
      const i = await settled(s);
      assert.equal(i.stats.cache.memory, sum.pinnedTokens, 'pinned in the memory region');
      assert.match(i.memory, /src\/math\.ts/);
      const list = await s.conn.sendRequest(SummariesListRequest);
      assert.equal(list.summaries.length, 1);
      // Nothing new happened: no second summary.
      await new Promise((r) => setTimeout(r, 1500));
      assert.equal(s.summaries.length, 1);
    } finally {
      await s.shutdown();
    }
  });
});

describe('persistence', () => {
  test('killed and restarted, the session comes back from its snapshot with no edit lost', async () => {
    const storage = tempStorage();
    const uri = fileUri('src/todo.ts');
    let text: string;
    const s1 = new TestServer({ storage, settings: SETTINGS });
    try {
      await s1.initialize();
      await s1.ready();
      await s1.open(uri, sample('src/todo.ts'));
      await settled(s1);
      const save = await s1.conn.sendRequest(SessionSaveRequest);
      assert.ok(save.bytes > 0);
      for (const f of readdirSync(storage)) {
        if (f.startsWith('.') || f.endsWith('.tmp')) continue;
        assert.equal(statSync(path.join(storage, f)).mode & 0o777, 0o600, `${f} is private`);
      }
      // An edit after the snapshot: only the event log has it.
      const off = s1.text(uri).indexOf('  pending(): Todo[]');
      await s1.type(uri, off, '  clear(): void {\n    this.items = [];\n  }\n\n');
      const before = await settled(s1);
      assert.match(before.tail, /\+    this\.items = \[\];/);
      text = s1.text(uri);
    } finally {
      s1.kill(); // no shutdown: as if it crashed
    }
    await s1.exited;

    const s2 = new TestServer({ storage, settings: SETTINGS });
    try {
      await s2.initialize();
      const st = await s2.ready();
      assert.match(st.message, /restored from the snapshot \(\d+ newer events replayed\)/);
      // The client reopens the document as it is now, with one more edit made while the server was down.
      const now = text!.replace('  complete(id: number): boolean {', '  complete(id: number): boolean {\n    // offline edit');
      await s2.open(uri, now);
      const i = await settled(s2);
      assert.match(i.tail, /\+    this\.items = \[\];/, 'the edit after the snapshot was replayed from the log');
      assert.match(i.tail, /\+    \/\/ offline edit/, 'the edit made while the server was down came in as a diff');
      assert.ok(!/export interface Todo \{\n  id: number;\n  title: string;\n  done: boolean;\n  estimate: number;\n\}[\s\S]*export interface Todo \{/.test(i.tail), 'the file was not sent again');
    } finally {
      await s2.shutdown();
      rmSync(storage, { recursive: true, force: true });
    }
  });

  test('killed before its first snapshot, the session is rebuilt from the event log', async () => {
    const storage = tempStorage();
    const uri = fileUri('src/math.ts');
    const s1 = new TestServer({ storage, settings: SETTINGS });
    let text: string;
    try {
      await s1.initialize();
      await s1.ready();
      await s1.open(uri, sample('src/math.ts'));
      const off = s1.text(uri).indexOf('export function mean');
      await s1.type(uri, off, 'export const HALF = 0.5;\n');
      await settled(s1);
      text = s1.text(uri);
    } finally {
      s1.kill();
    }
    await s1.exited;
    assert.ok(!readdirSync(storage).includes('session.snapshot'), 'no snapshot was written');
    const s2 = new TestServer({ storage, settings: SETTINGS });
    try {
      await s2.initialize();
      const st = await s2.ready();
      assert.match(st.message, /rebuilt from the event log/);
      await s2.open(uri, text!);
      const i = await settled(s2);
      assert.match(i.tail, /\+export const HALF = 0\.5;/);
      assert.equal(i.documents.find((d) => d.uri === uri)?.pending, false);
    } finally {
      await s2.shutdown();
      rmSync(storage, { recursive: true, force: true });
    }
  });

  test('another model: a fresh session seeded with the last summary', async () => {
    const storage = tempStorage();
    const s1 = new TestServer({ storage, settings: SETTINGS });
    try {
      await s1.initialize();
      await s1.ready();
      const uri = fileUri('src/math.ts');
      await s1.open(uri, sample('src/math.ts'));
      await s1.type(uri, 0, '// seeded\n');
      const sum = await s1.conn.sendRequest(SummarizeNowRequest);
      assert.match(sum.text, /src\/math\.ts/);
    } finally {
      await s1.shutdown();
    }
    const other = path.join(ROOT, 'test', 'fixtures', 'models', 'llama_gqa-q8_0.gguf');
    const s2 = new TestServer({ storage, settings: SETTINGS, model: other });
    try {
      await s2.initialize();
      const st = await s2.ready();
      assert.match(st.message, /fresh session: the snapshot belongs to another model \(seeded with the last summary\)/);
      const i = await settled(s2);
      assert.ok(i.stats.cache.memory > 0, 'the last summary is pinned');
      assert.match(i.memory, /src\/math\.ts/);
      const list = await s2.conn.sendRequest(SummariesListRequest);
      assert.equal(list.summaries.length, 1);
    } finally {
      await s2.shutdown();
      rmSync(storage, { recursive: true, force: true });
    }
  });

  test('an unwritable storage folder: the server runs without persistence and says so', async () => {
    // A folder under a regular file cannot be created, whoever runs the test (root included).
    const base = tempStorage();
    const file = path.join(base, 'a-file');
    writeFileSync(file, 'x');
    const s = new TestServer({ storage: path.join(file, 'storage'), settings: SETTINGS });
    try {
      await s.initialize();
      const st = await s.ready();
      assert.equal(st.persistence.enabled, false);
      assert.match(st.persistence.reason ?? '', /not writable/);
      assert.ok(s.logs.some((l) => /persistence is off/.test(l)), 'the log says so too');
      await assert.rejects(s.conn.sendRequest(SessionSaveRequest), (e: unknown) => e instanceof ResponseError && e.code === -32002);
      await completesOnMath(s);
    } finally {
      await s.shutdown();
      rmSync(base, { recursive: true, force: true });
    }
  });

  test('asked for CUDA where there is none: the CPU serves and the server says why', {
    skip: systemInfo().cudaDevices > 0 ? 'a CUDA device is present (test/engine-cuda.test.ts covers the device)' : false,
  }, async () => {
    const s = new TestServer({ settings: SETTINGS, extraArgs: ['--device', 'cuda'] });
    try {
      await s.initialize();
      const st = await s.ready();
      assert.match(st.message ?? '', / on cpu;/);
      assert.ok(s.logs.some((l) => /^device: (no CUDA device found|this build has no CUDA backend|CUDA not used).*; running on the CPU$/.test(l)),
        `the log names the fallback: ${JSON.stringify(s.logs.filter((l) => /device|CUDA/.test(l)))}`);
      await completesOnMath(s);
    } finally {
      await s.shutdown();
    }
  });
});

describe('the command line', () => {
  test('`endless serve --stdio` starts the same server', async () => {
    const s = new TestServer({ storage: null, settings: SETTINGS, entry: ['--import', 'tsx', path.join(ROOT, 'server', 'cli.ts'), 'serve'] });
    try {
      await s.initialize();
      const st = await s.ready();
      assert.equal(st.state, 'ready');
      const uri = fileUri('src/index.ts');
      await s.open(uri, sample('src/index.ts'));
      const r = await s.complete(uri, 10) as InlineCompletionList;
      assert.ok(Array.isArray(r.items));
    } finally {
      await s.shutdown();
    }
  });
});
