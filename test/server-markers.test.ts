// The server with a session-stream vocabulary (the default model's markers, docs/stream-format.md):
// documents go in as <|file|>path, edits as <|edit|>path @@ ... @@ hunks, saves as <|save|>path,
// chat turns in ChatML with real <|im_start|>/<|im_end|> tokens, summaries pinned as
// <|summary|>...<|endoftext|>, one sink, and inline completions in SPM order so that consecutive
// prompts share their prefix. Runs on a fixture model whose unused tokens are renamed to the
// markers (test/server-fixtures.ts); with the shipped model present, on that model instead.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import type { InlineCompletionList } from 'vscode-languageserver-protocol';
import { ChatSendRequest, SessionInspectResult, SummarizeNowRequest } from '../server/protocol';
import { streamVocabModel } from './server-fixtures';
import { fileUri, ROOT, SAMPLE, tempStorage, TestServer } from './server-harness';

const shipped = path.join(ROOT, 'models', 'endless-code-q8_0.gguf');

async function settled(s: TestServer): Promise<SessionInspectResult> {
  await s.settle(60_000, true);
  return s.inspect(4000);
}

describe('the stream-format vocabulary', () => {
  let s: TestServer;
  const dir = tempStorage();
  before(async () => {
    const model = process.env.ENDLESS_TEST_MODEL ?? (existsSync(shipped) ? shipped : streamVocabModel(dir));
    s = new TestServer({ model, storage: null, settings: { editIdleMs: 150, summaryIdleMs: 0, maxCompletionTokens: 16, maxChatTokens: 24, completionTimeoutMs: 5000 } });
    await s.initialize();
    await s.ready();
  });
  after(async () => { await s.shutdown(); rmSync(dir, { recursive: true, force: true }); });

  test('one sink; the cache layout fits the trained context', async () => {
    const st = s.statuses[s.statuses.length - 1];
    assert.equal(st.cache?.sinksMax, 1);
    const i = await s.inspect(0);
    assert.equal(i.stats.cache.sinks, 1, 'the <|sink|> token is the first of the stream');
  });

  test('documents, edits and saves use the markers', async () => {
    const uri = fileUri('src/math.ts');
    await s.open(uri, readFileSync(path.join(SAMPLE, 'src/math.ts'), 'utf8'));
    let i = await settled(s);
    assert.match(i.tail, /<\|file\|>src\/math\.ts\n/);
    const off = s.text(uri).indexOf('export function clamp');
    await s.type(uri, off, 'export const ONE = 1;\n');
    await s.save(uri);
    i = await settled(s);
    assert.match(i.tail, /<\|edit\|>src\/math\.ts @@ -\d+,\d+ \+\d+,\d+ @@\n(.*\n)*\+export const ONE = 1;\n/);
    assert.match(i.tail, /<\|save\|>src\/math\.ts\n$/);
    assert.equal(i.stats.processed, i.appended, 'nothing processed twice');
  });

  test('completions in SPM order reuse almost the whole previous prompt while typing', async () => {
    const uri = fileUri('src/todo.ts');
    await s.open(uri, readFileSync(path.join(SAMPLE, 'src/todo.ts'), 'utf8'));
    let cursor = s.text(uri).indexOf('  averageEstimate(): number {');
    cursor = await s.type(uri, cursor, '  size(): number {\n    return this.');
    await settled(s);
    const first = await s.complete(uri, cursor) as InlineCompletionList;
    const a = await s.inspect(0);
    // A character that does not continue the shown completion (else the prefix cache answers).
    const shown = String(first.items[0]?.insertText ?? '');
    cursor = await s.type(uri, cursor, shown.startsWith('q') ? 'z' : 'q');
    const r = await s.complete(uri, cursor) as InlineCompletionList;
    const b = await s.inspect(0);
    assert.ok(Array.isArray(r.items));
    const reused = b.stats.reused - a.stats.reused;
    const processed = b.stats.processed - a.stats.processed;
    assert.ok(reused > 100, `reused ${reused}`);
    // Recomputed: the typed character, the tokens after it, and the generated ones.
    assert.ok(processed < reused / 2, `processed ${processed}, reused ${reused}`);
  });

  test('chat turns use ChatML tokens; summaries are pinned as <|summary|>...<|endoftext|>', async () => {
    const r = await s.conn.sendRequest(ChatSendRequest, { turnId: 'm1', text: 'hello <|im_end|> there' });
    assert.ok(r.tokens > 0);
    const i = await settled(s);
    assert.match(i.tail, /<\|im_start\|>user\nhello <\|im_end\|> there<\|im_end\|>\n<\|im_start\|>assistant\n/);
    assert.match(i.tail, /<\|im_end\|>\n$/, 'the answer was closed');
    const sum = await s.conn.sendRequest(SummarizeNowRequest);
    assert.ok(sum.pinnedTokens > 0);
    const j = await settled(s);
    assert.match(j.memory, /^<\|summary\|>[\s\S]*src\/math\.ts[\s\S]*<\|endoftext\|>$/);
    assert.equal(j.stats.cache.memory, sum.pinnedTokens);
  });
});
