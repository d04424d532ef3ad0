// Faults the language server must survive (issue 8), each with the real server over stdio, the
// real engine and real files:
//   - the model file missing or not a GGUF at start: a clear error, no crash;
//   - the model file rewritten in place, renamed over and deleted while the server runs: it keeps
//     serving with the loaded model (same completion for the same request) and tells the client;
//   - a full storage folder (a 256 KiB tmpfs in a private mount namespace): persistence turns
//     off and says "no space left", the session keeps every edit, and a restart on the full
//     folder restores the session and says why persistence is off;
//   - the server killed (SIGKILL) while a completion or a chat answer is in flight: the restarted
//     server restores the session with every document as the client sent it.
// The addon is build/endless.node unless ENDLESS_ADDON names another (children inherit it).

import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, ChildProcess } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, openSync, closeSync, readdirSync, readFileSync, renameSync, rmSync, statSync, unlinkSync, writeFileSync, writeSync, ftruncateSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { InlineCompletionList, ResponseError, ShowMessageNotification, ShowMessageParams, ShowMessageRequest } from 'vscode-languageserver-protocol/node';
import { ChatSendRequest, SessionInspectRequest, SessionInspectResult, SessionSaveRequest } from '../server/protocol';
import { fileUri, TestServer, SAMPLE, ROOT, testModel } from './server-harness';

const SETTINGS = { window: 768, memorySize: 96, editIdleMs: 150, summaryIdleMs: 0, maxChatTokens: 48, maxCompletionTokens: 16, completionTimeoutMs: 20_000 };

const sample = (rel: string) => readFileSync(path.join(SAMPLE, rel), 'utf8');

async function until<T>(what: string, fn: () => T | undefined | null | false, timeoutMs = 15_000): Promise<T> {
  const t0 = Date.now();
  for (;;) {
    const v = fn();
    if (v) return v;
    if (Date.now() - t0 > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

async function settled(s: TestServer, timeoutMs = 60_000): Promise<SessionInspectResult> {
  const t0 = Date.now();
  for (;;) {
    const i = await s.inspect(400, true);
    const q = i.queue;
    if (!q.running && q.completion + q.chat + q.ingest + q.summary === 0 && i.documents.every((d) => !d.pending)) return i;
    if (Date.now() - t0 > timeoutMs) throw new Error(`the server did not settle: ${JSON.stringify(q)}`);
    await new Promise((r) => setTimeout(r, 40));
  }
}

/** initialize(), or an error with the server's last words when its process ends first. */
async function started(s: TestServer): Promise<void> {
  let lines: string[] = [];
  const died = s.exited.then((code) => { throw new Error(`the server exited (${code}) before answering initialize: ${lines.slice(-5).join(' | ')}`); });
  lines = [];
  s.proc.stderr!.on('data', (d: string) => { lines.push(...String(d).split('\n').filter((l) => l.trim())); });
  await Promise.race([s.initialize(), died]);
  died.catch(() => undefined);
}

/** Collects window/showMessage notifications and requests (the harness does not). */
function messages(s: TestServer): ShowMessageParams[] {
  const out: ShowMessageParams[] = [];
  s.conn.onNotification(ShowMessageNotification.type, (p) => { out.push(p); });
  s.conn.onRequest(ShowMessageRequest.type, (p) => { out.push(p); return null; });
  return out;
}

const scratch = mkdtempSync(path.join(tmpdir(), 'endless-faults-'));
after(() => { rmSync(scratch, { recursive: true, force: true }); });

describe('the model file', () => {
  test('missing or not a GGUF at start: the server says so and keeps answering', async () => {
    const missing = path.join(scratch, 'no-such-model.gguf');
    const garbage = path.join(scratch, 'garbage.gguf');
    writeFileSync(garbage, Buffer.from('this is not a GGUF file, just text pretending to be one\n'.repeat(20)));
    for (const [model, expect] of [[missing, /model file not found: .*no-such-model\.gguf/], [garbage, /garbage\.gguf.*(magic|GGUF)/]] as const) {
      const s = new TestServer({ storage: null, settings: SETTINGS, model });
      // The garbage case answers window/showMessageRequest; the missing case does not (a client
      // that ignores it must not bring the server down either).
      const answers = model === garbage;
      const shown = answers ? messages(s) : [];
      try {
        await s.initialize();
        await assert.rejects(s.ready(), (e: Error) => expect.test(e.message), `${path.basename(model)}: a clear error`);
        const st = s.statuses[s.statuses.length - 1];
        assert.equal(st.state, 'error');
        if (answers) await until('the error message', () => shown.find((m) => expect.test(m.message)));
        // requests get an LSP error naming the problem; the process is still there
        await assert.rejects(s.conn.sendRequest(ChatSendRequest, { turnId: 't', text: 'hi' }),
          (e: unknown) => e instanceof ResponseError && expect.test(e.message));
        assert.equal(s.proc.exitCode, null);
      } finally {
        await s.shutdown();
      }
    }
  });

  test('rewritten in place, renamed over and deleted while running: the server keeps serving and says so each time', async () => {
    // A twin server on an untouched copy gets the same requests: after each fault the server
    // whose file was damaged must answer exactly as the twin does. Each round completes at a new
    // place, so no answer can come from the completion cache.
    const dir = path.join(scratch, 'model-file');
    mkdirSync(dir);
    const model = path.join(dir, 'model.gguf');
    const pristine = path.join(dir, 'pristine.gguf');
    copyFileSync(testModel(), model);
    copyFileSync(testModel(), pristine);
    const size = statSync(model).size;
    const s = new TestServer({ storage: null, settings: SETTINGS, model });
    const twin = new TestServer({ storage: null, settings: SETTINGS, model: pristine });
    const shown = messages(s);
    try {
      await Promise.all([s.initialize(), twin.initialize()]);
      await Promise.all([s.ready(), twin.ready()]);
      const uri = fileUri('src/math.ts');
      for (const x of [s, twin]) await x.open(uri, sample('src/math.ts'));
      await Promise.all([settled(s), settled(twin)]);
      // places in the middle of code lines, a new one each round (no answer from the completion cache)
      const lines = s.text(uri).split('\n');
      const places: number[] = [];
      for (let i = 0, off = 0; i < lines.length; off += lines[i].length + 1, i++) {
        if (lines[i].trim().length >= 16) places.push(off + lines[i].indexOf(lines[i].trim()) + Math.floor(lines[i].trim().length / 2));
      }
      let round = 0;
      const both = async () => {
        const at = places[round++ % places.length];
        const [a, b] = await Promise.all([s, twin].map(async (x) => ((await x.complete(uri, at, true)) as InlineCompletionList).items.map((i) => i.insertText)));
        return [a, b, at] as const;
      };
      let seen = 0;
      for (let k = 0; k < 3; k++) {
        const [a, b, at] = await both();
        assert.deepEqual(a, b, `the two servers agree before any fault (offset ${at})`);
        seen += a.length;
      }
      assert.ok(seen > 0, 'completions to compare with');

      const faults: [string, RegExp, () => void][] = [
        ['rewritten in place with garbage', /was rewritten on disk/, () => {
          const fd = openSync(model, 'r+');
          ftruncateSync(fd, 0);
          const junk = Buffer.alloc(size);
          for (let i = 0; i + 4 <= size; i += 4) junk.writeUInt32LE((Math.imul(i, 2654435761) ^ 0x5bd1e995) >>> 0, i);
          writeSync(fd, junk, 0, size, 0);
          closeSync(fd);
        }],
        ['renamed over', /was replaced on disk/, () => {
          const other = path.join(dir, 'other.gguf');
          copyFileSync(path.join(ROOT, 'test', 'fixtures', 'models', 'llama_gqa-q8_0.gguf'), other);
          renameSync(other, model);
        }],
        ['deleted', /was removed from disk/, () => { unlinkSync(model); }],
      ];
      for (const [what, expect, fault] of faults) {
        const before = shown.length;
        fault();
        const m = await until(`the message after the model file was ${what}`, () => shown.slice(before).find((x) => expect.test(x.message)));
        assert.match(m.message, /keeps using the loaded copy\. Restart the server/);
        assert.ok(m.message.includes(model), 'the message names the file');
        assert.equal(shown.slice(before).length, 1, `one message for ${what}`);
        const st = await s.waitStatus((x) => x.restartRequired.includes('modelPath') && expect.test(x.message));
        assert.equal(st.state, 'ready');
        const [a, b, at] = await both();
        assert.deepEqual(a, b, `the same completions as the twin at offset ${at} after the model file was ${what}`);
      }
      // and a chat answer, greedy, on both
      const chat = await Promise.all([s, twin].map((x) => x.conn.sendRequest(ChatSendRequest, { turnId: 'c1', text: 'What does mean() return?', temperature: 0, maxTokens: 24 })));
      assert.equal(chat[0].text, chat[1].text, 'the same chat answer as the twin');
      assert.ok(chat[0].tokens > 0);
      assert.equal(s.proc.exitCode, null, 'the server is alive');
    } finally {
      await Promise.all([s.shutdown(), twin.shutdown()]);
    }
  });
});

// ---- storage ------------------------------------------------------------------------------------

/** The stream's view of each open document equals the client's text (inspect with streamView). */
async function assertStreamKnows(s: TestServer, uris: string[], what: string): Promise<SessionInspectResult> {
  await settled(s);
  const r = await s.conn.sendRequest(SessionInspectRequest, { tailTokens: 400, flush: true, streamView: true });
  for (const uri of uris) {
    const d = r.documents.find((x) => x.uri === uri);
    assert.ok(d && !d.pending, `${what}: ${uri} is known and nothing is pending`);
    const v = r.views?.find((x) => x.uri === uri);
    assert.ok(v, `${what}: the stream has a view of ${uri}`);
    assert.equal(v.text, s.text(uri), `${what}: the stream's view of ${path.basename(uri)} equals the document`);
  }
  return r;
}

/** Every line of an event log is a whole JSON record. */
function assertWholeLog(file: string, what: string): number {
  const text = readFileSync(file, 'utf8');
  assert.ok(text === '' || text.endsWith('\n'), `${what}: the log ends with a whole record`);
  const lines = text.split('\n').filter((l) => l.length);
  for (const l of lines) assert.doesNotThrow(() => JSON.parse(l), `${what}: a torn record in the log: ${l.slice(0, 80)}`);
  return lines.length;
}

/**
 * A tmpfs of `kib` KiB in a private mount namespace, kept by a `sleep` that the servers join with
 * nsenter; the test reaches its files through /proc/<pid>/root. Null (with the reason) where
 * unshare or mount is not permitted.
 */
function tinyTmpfs(dir: string, kib: number): { holder: ChildProcess; inside: (p: string) => string; launcher: string } | string {
  mkdirSync(dir, { recursive: true });
  const probe = spawnSync('unshare', ['-m', '--propagation', 'private', 'sh', '-c', `mount -t tmpfs -o size=16k tmpfs '${dir}' && umount '${dir}'`], { encoding: 'utf8' });
  if (probe.error || probe.status !== 0) return `unshare -m + mount -t tmpfs is not permitted here (${probe.error?.message ?? (probe.stderr.trim() || `exit ${probe.status}`)})`;
  const nsenter = spawnSync('nsenter', ['--version'], { encoding: 'utf8' });
  if (nsenter.error || nsenter.status !== 0) return `nsenter is not available (${nsenter.error?.message ?? nsenter.stderr.trim()})`;
  const holder = spawn('unshare', ['-m', '--propagation', 'private', 'sh', '-c', `mount -t tmpfs -o size=${kib}k,mode=0700 tmpfs '${dir}' && echo mounted && exec sleep 3600`], { stdio: ['ignore', 'pipe', 'inherit'] });
  // The server runs in the holder's mount namespace: node <launcher> <pid> <node args...>.
  const launcher = path.join(scratch, 'ns-launch.cjs');
  writeFileSync(launcher, [
    "const { spawn } = require('node:child_process');",
    'const [pid, ...rest] = process.argv.slice(2);',
    "const c = spawn('nsenter', ['-t', pid, '-m', '--wd=' + process.cwd(), '--', process.execPath, ...rest], { stdio: 'inherit' });",
    "for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, () => c.kill(sig));",
    "c.on('exit', (code, signal) => process.exit(code ?? (signal ? 1 : 0)));",
  ].join('\n'));
  return { holder, inside: (p) => `/proc/${holder.pid}/root${p}`, launcher };
}

describe('a full storage folder', () => {
  test('persistence turns off and says "no space left"; no edit is lost; a restart on the full folder restores the session', async (t) => {
    const dir = path.join(scratch, 'tiny-storage');
    const fs = tinyTmpfs(dir, 4096);
    if (typeof fs === 'string') {
      console.log(`SKIPPED (full storage folder): ${fs}`);
      t.skip(fs);
      return;
    }
    const { holder, inside, launcher } = fs;
    const entry = [launcher, String(holder.pid), '--import', 'tsx', path.join(ROOT, 'server', 'main.ts')];
    const stderr: string[] = [];
    try {
      await until('the tmpfs', () => existsSync(inside(dir)) && spawnSync('nsenter', ['-t', String(holder.pid), '-m', '--', 'mountpoint', '-q', dir]).status === 0);
      const uri = fileUri('src/todo.ts');
      const uri2 = fileUri('src/math.ts');
      const s1 = new TestServer({ storage: dir, settings: SETTINGS, entry, stderr: (l) => stderr.push(l) });
      try {
        await started(s1);
        const st = await s1.ready();
        assert.equal(st.persistence.enabled, true, 'persistence works on the tmpfs while it has room');
        await s1.open(uri, sample('src/todo.ts'));
        await settled(s1);
        const save = await s1.conn.sendRequest(SessionSaveRequest);
        assert.ok(save.bytes > 0);
        const off = s1.text(uri).indexOf('  pending(): Todo[]');
        await s1.type(uri, off, '  clear(): void {\n    this.items = [];\n  }\n\n');
        await settled(s1);

        // Fill the folder: the filler takes every free block.
        const filler = inside(path.join(dir, 'filler'));
        const fd = openSync(filler, 'w');
        const block = Buffer.alloc(64 * 1024, 0x61);
        let full = false;
        try {
          for (let i = 0; i < 10_000 && !full; i++) {
            try { writeSync(fd, block); } catch (e) { full = (e as NodeJS.ErrnoException).code === 'ENOSPC'; if (!full) throw e; }
          }
          for (let n = 4096; n >= 1; n = Math.floor(n / 2)) { try { writeSync(fd, block, 0, n); } catch { /* full */ } }
        } finally {
          closeSync(fd);
        }
        assert.ok(full, 'the tmpfs is full');

        // An edit with a large record (a paste) after the folder is full, then a snapshot request.
        const paste = Array.from({ length: 60 }, (_, i) => `  // note ${i}: ${'x'.repeat(50)}`).join('\n') + '\n';
        await s1.edit(uri, s1.text(uri).indexOf('  complete(id: number)'), s1.text(uri).indexOf('  complete(id: number)'), paste);
        await s1.open(uri2, sample('src/math.ts'));
        await settled(s1);
        await s1.conn.sendRequest(SessionSaveRequest).then(() => undefined, () => undefined);
        const off1 = await s1.waitStatus((x) => x.state === 'ready' && !x.persistence.enabled, 30_000);
        assert.match(off1.persistence.reason ?? '', /no space left/i, 'the status says why persistence is off');
        assert.ok(s1.logs.some((l) => /persistence is off: .*no space left/i.test(l)), 'the log says so too');
        t.diagnostic(`persistence off: ${off1.persistence.reason}`);
        await assert.rejects(s1.conn.sendRequest(SessionSaveRequest), (e: unknown) => e instanceof ResponseError && e.code === -32002 && /no space left/i.test(e.message));

        // It keeps serving, and keeps every edit.
        await s1.type(uri2, 0, '// typed while the disk is full\n');
        const r = await s1.complete(uri2, 12, true) as InlineCompletionList;
        assert.ok(Array.isArray(r.items));
        await assertStreamKnows(s1, [uri, uri2], 'the running session, disk full');

        // Nothing half-written is left: no temporary file, the log is whole records.
        const names = readdirSync(inside(dir));
        assert.deepEqual(names.filter((n) => /\.tmp|write-probe/.test(n)), [], 'no temporary file left');
        assertWholeLog(inside(path.join(dir, 'events.jsonl')), 'after ENOSPC');
      } finally {
        await s1.shutdown();
      }

      // Restart on the still full folder: the session comes back read-only and says why.
      const s2 = new TestServer({ storage: dir, settings: SETTINGS, entry, stderr: (l) => stderr.push(l) });
      try {
        await started(s2);
        const st = await s2.ready();
        assert.equal(st.persistence.enabled, false);
        assert.match(st.persistence.reason ?? '', /not writable.*no space left/i);
        assert.match(st.message, /restored from the snapshot \(\d+ newer events replayed\); persistence is off: .*no space left/i);
        t.diagnostic(`restart on the full folder: ${st.message}`);
        // The client reopens its documents as they are now; the stream knows them exactly.
        await s2.open(uri, s1.text(uri));
        await s2.open(uri2, s1.text(uri2));
        const i = await assertStreamKnows(s2, [uri, uri2], 'the restarted session');
        assert.match(i.tail, /typed while the disk is full|note 59/, 'the edits made while persistence was off came in as diffs');
        const r = await s2.complete(uri2, 12, true) as InlineCompletionList;
        assert.ok(Array.isArray(r.items));
      } finally {
        await s2.shutdown();
      }
    } finally {
      holder.kill('SIGKILL');
    }
  });
});

// ---- killed in flight ---------------------------------------------------------------------------

describe('killed in flight', () => {
  for (const what of ['completion', 'chat'] as const) {
    test(`SIGKILL mid-${what}: the restarted server restores the session and no edit is lost`, async (t) => {
      const storage = mkdtempSync(path.join(scratch, `kill-${what}-`));
      const uri = fileUri('src/todo.ts');
      const uri2 = fileUri('src/index.ts');
      const settings = { ...SETTINGS, maxCompletionTokens: 256, maxChatTokens: 400 };
      const s1 = new TestServer({ storage, settings });
      try {
        await started(s1);
        await s1.ready();
        await s1.open(uri, sample('src/todo.ts'));
        await settled(s1);
        await s1.conn.sendRequest(SessionSaveRequest);
        // After the snapshot: edits only the event log has, one of them still being typed when the request comes.
        const off = s1.text(uri).indexOf('  pending(): Todo[]');
        await s1.type(uri, off, '  clear(): void {\n    this.items = [];\n  }\n\n');
        await settled(s1);
        await s1.open(uri2, sample('src/index.ts'));
        await s1.type(uri2, 0, '// last words before the kill\n');
        if (what === 'completion') {
          // Kill while the engine works on a completion: a short one may finish before the poll
          // sees it, then the next place is tried.
          const places = [...s1.text(uri).matchAll(/\n  [a-z]/g)].map((m) => m.index! + 3);
          let seen = false;
          for (let k = 0; k < places.length && !seen; k++) {
            let done = false;
            s1.complete(uri, places[k], true).then(() => { done = true; }, () => { done = true; });
            while (!done && !seen) {
              const i = await s1.inspect(0);
              seen = i.queue.running === 'completion' && !done;
            }
          }
          assert.ok(seen, 'a completion was running at the kill');
        } else {
          const p = s1.conn.sendRequest(ChatSendRequest, { turnId: 'k1', text: 'Explain the Todo class in detail.', temperature: 0, maxTokens: 400 });
          p.catch(() => undefined);
          await until('the first chat chunk', () => s1.chunks.some((c) => c.turnId === 'k1' && c.delta.length > 0), 60_000);
        }
        t.diagnostic(`killed with a ${what} in flight`);
      } finally {
        s1.kill('SIGKILL');
      }
      await s1.exited;
      assertWholeLog(path.join(storage, 'events.jsonl'), 'after the kill');
      // A kill in the middle of a write leaves a torn record: add one, the restart must cut it off.
      writeFileSync(path.join(storage, 'events.jsonl'), readFileSync(path.join(storage, 'events.jsonl'), 'utf8') + '{"t":"append","kind":"edit","tok');

      const s2 = new TestServer({ storage, settings: SETTINGS });
      try {
        await started(s2);
        const st = await s2.ready();
        assert.match(st.message, /restored from the snapshot \(\d+ newer events replayed\)/);
        t.diagnostic(`restart: ${st.message}`);
        // What the restored session knows before the client says anything: the edit logged before the kill.
        const before = await s2.inspect(400);
        assert.match(before.tail, /\+    this\.items = \[\];/, 'the edit after the snapshot was replayed from the log');
        // The client reopens its documents as they are; the stream must know them exactly.
        await s2.open(uri, s1.text(uri));
        await s2.open(uri2, s1.text(uri2));
        const i = await assertStreamKnows(s2, [uri, uri2], `restarted after a kill mid-${what}`);
        assert.match(i.tail, /last words before the kill/);
        assert.ok(!/export interface Todo \{[\s\S]*export interface Todo \{/.test(i.tail), 'todo.ts was not sent again whole');
        // the torn record was cut off: the log is whole records again after new appends
        await s2.type(uri2, 0, '// after the restart\n');
        await settled(s2);
        assertWholeLog(path.join(storage, 'events.jsonl'), 'after the restart');
      } finally {
        await s2.shutdown();
      }
    });
  }
});
