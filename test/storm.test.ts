// The edit storm of issue 8, short: 15 s at 10,000 edits a minute through the real language server
// over stdio (bench/storm.ts, the same generator as `npm run bench -- storm`) on the shipped model,
// on the CPU. Afterwards the stream's view of every document (replayed by the server from the
// tokens it appended) must equal the editor's text, and the server must have stayed responsive:
// completions answered, no error, everything drained. Timing bounds are left to the bench; the
// only timing checks here are generous liveness ones. A second test checks the views after a crash
// (rebuilt from the snapshot's records and the event log) and after a new session.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readGgufMetadata } from '../server/engine/index';
import { readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import { SessionInspectRequest, SessionInspectResult, SessionNewRequest, SessionSaveRequest } from '../server/protocol';
import { defaultModel, fileUri, SAMPLE, ServerClient, tempStorage } from '../server/session/client';
import { defaultStormOptions, runStorm } from '../bench/storm';

const model = defaultModel();
const tokens = readGgufMetadata(model).get('tokenizer.ggml.tokens');
const hasMarkers = Array.isArray(tokens) && ['<|file|>', '<|edit|>', '<|save|>'].every((t) => tokens.includes(t));

test('a 15 s edit storm: every stream view equals its document, and the server stays responsive', { skip: hasMarkers ? false : `${model} has no stream markers` }, async () => {
  const r = await runStorm({ ...defaultStormOptions(), model, durationMs: 15_000, warmupMs: 5_000, log: () => undefined });
  const bad = r.views.filter((v) => !v.equal).map((v) => `${v.path}: ${v.firstDifference}`);
  assert.deepEqual(bad, [], 'views that differ from the editor');
  assert.deepEqual(r.streamErrors, []);
  assert.equal(r.views.length, defaultStormOptions().docs.length);
  // the storm ran: thousands of edits of every common kind
  assert.ok(r.edits.sent >= 1000, `${r.edits.sent} edits`);
  for (const k of ['type', 'backspace']) assert.ok((r.edits.byKind[k] ?? 0) > 0, `no ${k} edits`);
  // liveness: completions were answered without error, within a generous time, and the queue drained
  assert.ok(r.completions.answered >= 1, 'at least one completion answered');
  assert.equal(r.completions.errors, 0);
  assert.ok(r.completions.maxMs < 30_000, `slowest completion ${r.completions.maxMs} ms`);
  assert.ok(r.stream.drainMs < 120_000, `drain took ${r.stream.drainMs} ms`);
});

test('after a crash the stream views come back from the snapshot and the event log, and equal the documents', { skip: hasMarkers ? false : `${model} has no stream markers` }, async () => {
  const storage = tempStorage();
  const settings = { window: 768, memorySize: 96, editIdleMs: 150, summaryIdleMs: 0 };
  const a = fileUri('src/todo.ts'), b = fileUri('src/math.ts');
  const views = async (s: ServerClient) => {
    await s.settle(60_000);
    const r = await s.conn.sendRequest(SessionInspectRequest, { tailTokens: 0, streamView: true }) as SessionInspectResult;
    return r.views ?? [];
  };
  const s1 = new ServerClient({ storage, model, settings });
  let ta: string, tb: string;
  try {
    await s1.initialize();
    await s1.ready();
    await s1.open(a, readFileSync(path.join(SAMPLE, 'src/todo.ts'), 'utf8'));
    await s1.open(b, readFileSync(path.join(SAMPLE, 'src/math.ts'), 'utf8'));
    await s1.type(a, s1.text(a).indexOf('  pending(): Todo[]'), '  clear(): void {\n    this.items = [];\n  }\n');
    await s1.settle(60_000);
    await s1.conn.sendRequest(SessionSaveRequest);
    // after the snapshot: only the event log has these
    await s1.type(b, 0, '// after the snapshot\n');
    await s1.edit(a, 0, s1.text(a).indexOf('\n') + 1, '');
    const v1 = await views(s1);
    ta = s1.text(a); tb = s1.text(b);
    assert.equal(v1.find((v) => v.uri === a)?.text, ta);
    assert.equal(v1.find((v) => v.uri === b)?.text, tb);
  } finally {
    s1.kill();
  }
  await s1.exited;
  const s2 = new ServerClient({ storage, model, settings });
  try {
    await s2.initialize();
    assert.match((await s2.ready()).message, /restored from the snapshot/);
    // reopened as they are now, one of them changed while the server was down
    await s2.open(a, ta!);
    await s2.open(b, tb! + '// offline\n');
    const v2 = await views(s2);
    for (const [uri, text] of [[a, ta!], [b, tb! + '// offline\n']]) {
      const v = v2.find((x) => x.uri === uri);
      assert.ok(v, `a view of ${uri}`);
      assert.equal(v.text, text);
      assert.equal(v.errorCount, 0, v.errors.join('\n'));
    }
    // a new session starts the views afresh: only the active document is shown again
    await s2.conn.sendRequest(SessionNewRequest, { keepMemory: false });
    const v3 = await views(s2);
    assert.ok(v3.length <= 1, `${v3.length} views after a new session`);
  } finally {
    await s2.shutdown();
    rmSync(storage, { recursive: true, force: true });
  }
});
