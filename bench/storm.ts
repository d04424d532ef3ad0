// `npm run bench -- storm`: the edit storm of issue 8 ("Soak"). The real language server over stdio
// (server/session/client.ts) on the shipped model, on the CPU, gets editor-like edits of real
// source files of this repository at a fixed rate (default 10,000 edits a minute, one
// didChange notification each, incremental sync with the right versions) for a fixed time
// (default 10 minutes): typing, deleting, pasting blocks, replacing lines, undo, edits in other
// files, saves, switching documents, closing and reopening one. Typing comes in bursts; in each
// pause the editor asks for an inline completion (a newer request cancels one still pending), and
// the client-observed latency is recorded. The server's RSS is sampled from /proc every 2 s.
//
// The mix per user step (a seeded PRNG makes it repeatable): a cursor jump 0.2% (a far one sends
// endless/activeDocument, as the extension does), a switch to another document 0.04%, a close or
// reopen 0.02%; of the edits about 76% type the next character of another source file (code,
// newlines included), 18% backspace, 4% delete a word, 1% undo 1-5 operations, 1% replace a
// word in another open file, 0.1% each paste 3-60 lines / replace 2-10 lines with 1-12 / delete
// 2-30 lines; a document grown past 125% of its size gets more deletes and no pastes. A save
// every 20 s. At 10k edits a minute this offers the stream a few hundred tokens a second; more
// jumps or pastes offer more than a 2-core CPU prefills, and the server's queue grows (the
// result records the offered and the drained token rates, and the drain time at the end;
// `--jump-rate 0.026` shows it: each far jump shows the document's surroundings again).
// At the end the edits are flushed and the stream's view of every document (replayed by the
// server from the tokens it appended: endless/session/inspect with streamView) must equal the
// editor's text exactly.
//
// Pass criteria (written into the result): achieved rate >= 95% of the target; RSS growth after the
// warm-up (largest sample after it minus the sample at its end) <= 32 MiB; completion p99 below
// the bound (default 1000 ms: an inline suggestion later than a second is one a user has typed
// past); every view equal, with no replay error; and, beyond issue 8's list, the stream keeps up:
// the queue drains within 30 s after the storm (else the server's backlog, and its memory, grow
// with the length of the storm). Exit status 0 on pass.
//
// Flags: --rate EDITS_PER_MIN (10000)  --duration S (600)  --warmup S (60)  --p99-bound MS (1000)
//        --rss-bound MIB (32)  --drain-bound S (30)  --seed N (1)  --jump-rate P (0.002: cursor jumps per step)  --model FILE
//        --device cpu|auto|cuda (cpu)  --server FILE (server/main.ts; dist/server.js for the bundle)  --out FILE
//        --note TEXT
// Results go to bench/results/storm-<date>.json (machine, date, command, numbers, criteria).

import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  CancellationTokenSource, DidChangeTextDocumentNotification, DidCloseTextDocumentNotification, DidOpenTextDocumentNotification,
  DidSaveTextDocumentNotification, InlineCompletionRequest, InlineCompletionTriggerKind,
} from 'vscode-languageserver-protocol/node';
import { ActiveDocumentNotification, SessionInspectRequest, SessionInspectResult } from '../server/protocol';
import { defaultModel, ROOT, ServerClient, tempStorage } from '../server/session/client';
import { rng } from '../models/eval/common';

export interface StormOptions {
  /** Target edits per minute. */
  rate: number;
  durationMs: number;
  warmupMs: number;
  p99BoundMs: number;
  rssBoundMiB: number;
  seed: number;
  model?: string;
  device: string;
  /** How to start the server (node arguments before its flags); default server/main.ts through tsx. */
  entry?: string[];
  /** Longest wait after the storm until every edit is in the stream (an ingest that cannot keep up grows its queue). */
  drainBoundMs: number;
  /** Probability per user step of a cursor jump (a far one tells the server: a new header). */
  jumpRate: number;
  /** Documents the storm edits (real source files of this repository, paths relative to ROOT). */
  docs: string[];
  log?: (s: string) => void;
}

export const DEFAULT_DOCS = [
  'server/session/session.ts', 'native/src/gguf.cpp', 'server/main.ts', 'server/tokenizer/index.ts', 'native/src/model.cpp', 'tools/convert_hf.py',
];

export function defaultStormOptions(): StormOptions {
  return { rate: 10_000, durationMs: 600_000, warmupMs: 60_000, p99BoundMs: 1000, rssBoundMiB: 32, drainBoundMs: 30_000, seed: 1, device: 'cpu', jumpRate: 0.002, docs: DEFAULT_DOCS };
}

export interface StormResult {
  options: Omit<StormOptions, 'log'>;
  model: string;
  device: string;
  cache: Record<string, number>;
  durationMs: number;
  edits: { sent: number; byKind: Record<string, number>; targetPerMinute: number; achievedPerMinute: number; achievedRatio: number };
  events: { saves: number; switches: number; activeNotices: number; closes: number; reopens: number };
  completions: { requested: number; answered: number; withItems: number; superseded: number; errors: number; p50Ms: number; p99Ms: number; maxMs: number };
  rssMiB: { first: number; afterWarmup: number; maxAfterWarmup: number; final: number; growthAfterWarmup: number; samples: [number, number][] };
  stream: { seenAtEnd: number; appended: number; offeredTokensPerS: number; ingestedDuringStormTokensPerS: number; drainMs: number; maxQueuedIngest: number; maxPendingTokens: number };
  views: { uri: string; path: string; open: boolean; lines: number; equal: boolean; recordLines: number; errorCount: number; firstDifference?: string }[];
  streamErrors: string[];
  criteria: { name: string; bound: string; measured: string; pass: boolean }[];
  pass: boolean;
}


function pct(xs: number[], p: number): number {
  if (!xs.length) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))];
}

function rssMiB(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Math.round((Number(m[1]) / 1024) * 10) / 10 : NaN;
  } catch {
    return NaN;
  }
}

interface Doc {
  uri: string;
  rel: string;
  text: string;
  version: number;
  open: boolean;
  origLength: number;
  cursor: number;
  /** Where typed text comes from: another source file, read on. */
  feed: string;
  feedAt: number;
  /** Inverse operations for undo, newest last. */
  undo: { offset: number; removeLength: number; insert: string }[];
  lastActiveLine: number;
}

/** Offset -> LSP position, counting lines with indexOf (the documents are a few thousand lines). */
function position(text: string, offset: number): { line: number; character: number } {
  let line = 0, start = 0;
  for (;;) {
    const nl = text.indexOf('\n', start);
    if (nl < 0 || nl >= offset) break;
    line++;
    start = nl + 1;
  }
  return { line, character: offset - start };
}

function lineStart(text: string, offset: number): number {
  return text.lastIndexOf('\n', offset - 1) + 1;
}

/** The offset of the start of line `line` (or the end of the text). */
function offsetOfLine(text: string, line: number): number {
  let at = 0;
  for (let i = 0; i < line; i++) {
    const nl = text.indexOf('\n', at);
    if (nl < 0) return text.length;
    at = nl + 1;
  }
  return at;
}

function lineCount(text: string): number {
  let n = 1;
  for (let i = text.indexOf('\n'); i >= 0; i = text.indexOf('\n', i + 1)) n++;
  return n;
}

export async function runStorm(o: StormOptions): Promise<StormResult> {
  const log = o.log ?? ((s: string) => process.stdout.write(s + '\n'));
  const rand = rng(o.seed);  // mulberry32: the same seed gives the same storm
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)];
  const model = o.model ? path.resolve(o.model) : defaultModel();
  const storage = tempStorage();
  const s = new ServerClient({
    model, storage, extraArgs: ['--device', o.device], workDoneProgress: false, entry: o.entry,
    stderr: (l) => { if (process.env.ENDLESS_DEBUG) process.stderr.write(`[server] ${l}\n`); },
  });
  const pid = s.proc.pid!;
  const conn = s.conn;
  try {
    await s.initialize(ROOT);
    const st = await s.ready(300_000);
    log(`[storm] model ${path.relative(ROOT, model)} on ${st.device}; ${o.rate} edits/min for ${o.durationMs / 1000} s, seed ${o.seed}`);

    // Material: the documents, and source lines to type and paste (lines of sane length only).
    const texts = o.docs.map((rel) => {
      const t = readFileSync(path.join(ROOT, rel), 'utf8');
      if (t.includes('\r')) throw new Error(`${rel} has CR line ends: the storm's documents use LF`);
      return t;
    });
    const corpusLines = texts.flatMap((t) => t.split('\n')).filter((l) => l.length <= 200);
    const docs: Doc[] = o.docs.map((rel, i) => ({
      uri: 'file://' + path.join(ROOT, rel), rel, text: texts[i], version: 1, open: false, origLength: texts[i].length,
      cursor: 0, feed: texts[(i + 1) % texts.length], feedAt: Math.floor(rand() * texts[(i + 1) % texts.length].length), undo: [], lastActiveLine: 0,
    }));
    const languageOf = (rel: string) => (rel.endsWith('.ts') ? 'typescript' : rel.endsWith('.py') ? 'python' : 'cpp');
    const openDoc = async (d: Doc) => {
      d.open = true;
      await conn.sendNotification(DidOpenTextDocumentNotification.type, { textDocument: { uri: d.uri, languageId: languageOf(d.rel), version: d.version, text: d.text } });
    };
    for (const d of docs) await openDoc(d);
    let active = docs[0];
    const notifyActive = async (d: Doc, line: number) => {
      d.lastActiveLine = line;
      events.activeNotices++;
      await conn.sendNotification(ActiveDocumentNotification, { uri: d.uri, position: { line, character: 0 } });
    };
    const events = { saves: 0, switches: 0, activeNotices: 0, closes: 0, reopens: 0 };
    await notifyActive(active, 0);
    const i0 = await s.settle(600_000);
    const cache = { sinks: i0.stats.cache.sinksMax, window: i0.stats.cache.windowMax, memory: i0.stats.cache.memoryMax, branch: i0.stats.cache.branchMax };
    log(`[storm] ${docs.length} documents open (${docs.map((d) => `${d.rel} ${lineCount(d.text)} lines`).join(', ')}); cache S=${cache.sinks} W=${cache.window} M=${cache.memory} B=${cache.branch}`);

    // ---- the editor --------------------------------------------------------------------
    const byKind: Record<string, number> = {};
    let sent = 0;
    /** One didChange: replace [offset, offset+removeLength) of d with insert. */
    const change = (d: Doc, kind: string, offset: number, removeLength: number, insert: string, undoable = true): void => {
      const start = position(d.text, offset);
      const end = removeLength ? position(d.text, offset + removeLength) : start;
      const removed = d.text.slice(offset, offset + removeLength);
      d.text = d.text.slice(0, offset) + insert + d.text.slice(offset + removeLength);
      d.version++;
      if (undoable) {
        d.undo.push({ offset, removeLength: insert.length, insert: removed });
        if (d.undo.length > 200) d.undo.shift();
      }
      d.cursor = offset + insert.length;
      sent++;
      byKind[kind] = (byKind[kind] ?? 0) + 1;
      void conn.sendNotification(DidChangeTextDocumentNotification.type, {
        textDocument: { uri: d.uri, version: d.version }, contentChanges: [{ range: { start, end }, text: insert }],
      });
    };
    const block = (lines: number) => {
      const at = Math.floor(rand() * Math.max(1, corpusLines.length - lines));
      return corpusLines.slice(at, at + lines).join('\n') + '\n';
    };
    /** One step of the user: one or a few didChange notifications; returns how many. */
    const step = async (): Promise<void> => {
      const r = rand();
      if (r < 0.0002) {
        // close a document that is not active, or reopen one that was changed meanwhile on disk
        const closed = docs.filter((d) => !d.open);
        if (closed.length) {
          const d = pick(closed);
          d.text = `// reopened after an outside change\n${d.text}`;
          d.version++;
          d.undo = []; // the editor's undo history does not survive a close
          events.reopens++;
          await openDoc(d);
        } else {
          const d = pick(docs.filter((x) => x !== active));
          d.open = false;
          events.closes++;
          await conn.sendNotification(DidCloseTextDocumentNotification.type, { textDocument: { uri: d.uri } });
        }
        return;
      }
      if (r < 0.0006) {
        const d = pick(docs.filter((x) => x.open && x !== active));
        if (d) {
          active = d;
          events.switches++;
          d.cursor = Math.min(d.cursor, d.text.length);
          await notifyActive(d, position(d.text, d.cursor).line);
        }
        return;
      }
      if (r < 0.0006 + o.jumpRate) {
        // the cursor jumps (click, go to definition); a far jump is news for the server
        const d = active;
        const line = Math.floor(rand() * lineCount(d.text));
        d.cursor = offsetOfLine(d.text, line);
        if (Math.abs(line - d.lastActiveLine) >= 40) await notifyActive(d, line);
      }
      const d = active;
      const grown = d.text.length > d.origLength * 1.25;
      const k = rand();
      if (k < 0.01) {
        // an edit in another open file: a word replaced (a rename, a fix after a search)
        const others = docs.filter((x) => x.open && x !== d);
        if (!others.length) return;
        const o2 = pick(others);
        const re = /[A-Za-z_]\w{2,}/g;
        re.lastIndex = Math.floor(rand() * o2.text.length);
        const m = re.exec(o2.text);
        if (m) change(o2, 'other-file', m.index, m[0].length, m[0] + (rand() < 0.5 ? 'X' : ''), true);
        return;
      }
      if (k < 0.02) {
        // undo: the last few operations of this document, one didChange each
        const n = 1 + Math.floor(rand() * 5);
        for (let i = 0; i < n && d.undo.length; i++) {
          const u = d.undo.pop()!;
          if (u.offset + u.removeLength > d.text.length) break;
          change(d, 'undo', u.offset, u.removeLength, u.insert, false);
        }
        return;
      }
      if (k < 0.021 && !grown) {
        change(d, 'paste', lineStart(d.text, d.cursor), 0, block(3 + Math.floor(rand() * 58)));
        return;
      }
      if (k < 0.022) {
        // select a few whole lines and replace them
        const from = lineStart(d.text, d.cursor);
        let to = from;
        const n = 2 + Math.floor(rand() * 9);
        for (let i = 0; i < n && to < d.text.length; i++) { const nl = d.text.indexOf('\n', to); to = nl < 0 ? d.text.length : nl + 1; }
        change(d, 'replace-lines', from, to - from, grown ? block(1) : block(1 + Math.floor(rand() * 12)));
        return;
      }
      if (k < (grown ? 0.03 : 0.023)) {
        const from = lineStart(d.text, d.cursor);
        let to = from;
        const n = 2 + Math.floor(rand() * 29);
        for (let i = 0; i < n && to < d.text.length; i++) { const nl = d.text.indexOf('\n', to); to = nl < 0 ? d.text.length : nl + 1; }
        if (to > from) change(d, 'delete-lines', from, to - from, '');
        return;
      }
      if (k < (grown ? 0.4 : 0.2) && d.cursor > 0) {
        change(d, 'backspace', d.cursor - 1, 1, '');
        return;
      }
      if (k < (grown ? 0.45 : 0.24)) {
        const m = /^\w+|^\W/.exec(d.text.slice(d.cursor, d.cursor + 80));
        if (m && m[0] !== '\n') { change(d, 'delete-word', d.cursor, m[0].length, ''); return; }
      }
      // typing: the next character of the feed
      if (d.feedAt >= d.feed.length) d.feedAt = 0;
      change(d, 'type', Math.min(d.cursor, d.text.length), 0, d.feed[d.feedAt++]);
    };

    // ---- completions ----------------------------------------------------------------------
    const latencies: number[] = [];
    const comp = { requested: 0, answered: 0, withItems: 0, superseded: 0, errors: 0 };
    let pending: { cts: CancellationTokenSource; done: Promise<void> } | null = null;
    const requestCompletion = () => {
      if (pending) { pending.cts.cancel(); comp.superseded++; }
      const d = active;
      const cts = new CancellationTokenSource();
      const t0 = performance.now();
      comp.requested++;
      const p = conn.sendRequest(InlineCompletionRequest.type, {
        textDocument: { uri: d.uri }, position: position(d.text, Math.min(d.cursor, d.text.length)),
        context: { triggerKind: InlineCompletionTriggerKind.Automatic },
      }, cts.token).then((r) => {
        if (cts.token.isCancellationRequested) return;
        latencies.push(performance.now() - t0);
        comp.answered++;
        const items = Array.isArray(r) ? r : r?.items ?? [];
        if (items.length) comp.withItems++;
      }, (e: Error) => {
        if (!cts.token.isCancellationRequested) { comp.errors++; log(`[storm] completion failed: ${e.message}`); }
      });
      const entry = { cts, done: p.finally(() => { if (pending === entry) pending = null; }) };
      pending = entry;
    };

    // ---- samples ----------------------------------------------------------------------------
    const rssSamples: [number, number][] = [];
    let maxQueuedIngest = 0, maxPendingTokens = 0;
    const t0 = performance.now();
    const sampler = setInterval(() => {
      rssSamples.push([Math.round(performance.now() - t0), rssMiB(pid)]);
    }, 2000);
    const inspector = setInterval(() => {
      conn.sendRequest(SessionInspectRequest, { tailTokens: 0 }).then((i) => {
        maxQueuedIngest = Math.max(maxQueuedIngest, i.queue.ingest);
      }, () => undefined);
      const last = s.statuses[s.statuses.length - 1];
      if (last?.pendingTokens !== undefined) maxPendingTokens = Math.max(maxPendingTokens, last.pendingTokens);
    }, 5000);
    rssSamples.push([0, rssMiB(pid)]);

    // ---- the storm: bursts of typing at a rate that keeps the average, pauses with a completion
    const perMs = o.rate / 60_000;
    let nextSave = 20_000;
    let lastReport = 0;
    let burstEnd = 0, pauseEnd = 0, burstRate = perMs;
    let completionTimer: ReturnType<typeof setTimeout> | undefined;
    let credit = 0; // edits owed: accrues during bursts at the rate that makes up for the pauses
    let tick = 0;
    try {
      while (performance.now() - t0 < o.durationMs) {
        const el = performance.now() - t0;
        if (el >= pauseEnd) {
          // a new burst: 1.5..3.5 s of typing, then a pause of 250..600 ms
          const b = 1500 + rand() * 2000, p = 250 + rand() * 350;
          burstEnd = el + b; pauseEnd = burstEnd + p;
          burstRate = (perMs * (b + p)) / b;
          clearTimeout(completionTimer);
          completionTimer = setTimeout(() => requestCompletion(), b + 150); // the editor's debounce after the last keystroke
        }
        if (el < burstEnd) credit += (el - tick) * burstRate;
        tick = el;
        for (let idle = 0; credit >= 1 && idle < 20;) {
          const before = sent;
          await step();
          if (sent > before) credit -= sent - before; else idle++; // a step without an edit (a switch, a close) owes nothing
        }
        if (el >= nextSave) { nextSave += 20_000; events.saves++; await conn.sendNotification(DidSaveTextDocumentNotification.type, { textDocument: { uri: active.uri } }); }
        if (el - lastReport >= 30_000) {
          lastReport = el;
          const rss = rssSamples[rssSamples.length - 1]?.[1];
          log(`[storm] ${(el / 1000).toFixed(0)} s: ${sent} edits (${(sent / (el / 60_000)).toFixed(0)}/min), ${comp.answered}/${comp.requested} completions ` +
            `(p50 ${pct(latencies, 50)?.toFixed(0)} ms, p99 ${pct(latencies, 99)?.toFixed(0)} ms), RSS ${rss} MiB`);
        }
        await new Promise((r) => setTimeout(r, 5));
      }
    } finally {
      clearTimeout(completionTimer);
      clearInterval(sampler);
      clearInterval(inspector);
    }
    const stormMs = performance.now() - t0;
    const iStormEnd = await conn.sendRequest(SessionInspectRequest, { tailTokens: 0 }) as SessionInspectResult;
    await (pending as { done: Promise<void> } | null)?.done;
    // Flush and wait until every edit is in the stream.
    const td = performance.now();
    const iEnd = await s.settle(900_000);
    const drainMs = Math.round(performance.now() - td);
    rssSamples.push([Math.round(performance.now() - t0), rssMiB(pid)]);
    const inspected = await conn.sendRequest(SessionInspectRequest, { tailTokens: 0, streamView: true }) as SessionInspectResult;
    const views = inspected.views ?? [];
    const streamErrors = views.filter((v) => !v.uri && !v.path).flatMap((v) => v.errors);

    // ---- the verdict ---------------------------------------------------------------------------
    const viewRows = docs.map((d) => {
      const v = views.find((x) => x.uri === d.uri);
      let firstDifference: string | undefined;
      if (!v) firstDifference = 'the stream has no view of it';
      else if (v.text !== d.text) {
        const a = v.text.split('\n'), b = d.text.split('\n');
        let i = 0;
        while (i < a.length && i < b.length && a[i] === b[i]) i++;
        firstDifference = `line ${i + 1}: stream ${JSON.stringify(a[i]?.slice(0, 80))} vs editor ${JSON.stringify(b[i]?.slice(0, 80))} (${a.length} vs ${b.length} lines)`;
      }
      return { uri: d.uri, path: d.rel, open: d.open, lines: v?.lines ?? 0, equal: v !== undefined && v.text === d.text && v.errorCount === 0,
        recordLines: v?.recordLines ?? 0, errorCount: v?.errorCount ?? 0, firstDifference: firstDifference ?? v?.errors[0] };
    });
    const warmIdx = rssSamples.findIndex(([t]) => t >= o.warmupMs);
    const afterWarm = warmIdx >= 0 ? rssSamples[warmIdx][1] : NaN;
    const maxAfterWarm = warmIdx >= 0 ? Math.max(...rssSamples.slice(warmIdx).map(([, v]) => v)) : NaN;
    const growth = Math.round((maxAfterWarm - afterWarm) * 10) / 10;
    const achieved = sent / (stormMs / 60_000);
    const p99 = pct(latencies, 99);
    const criteria = [
      { name: 'edit rate', bound: `>= 95% of ${o.rate}/min`, measured: `${achieved.toFixed(0)}/min (${((achieved / o.rate) * 100).toFixed(1)}%)`, pass: achieved >= 0.95 * o.rate },
      { name: 'RSS growth after the warm-up', bound: `<= ${o.rssBoundMiB} MiB (largest sample after ${o.warmupMs / 1000} s minus the sample at ${o.warmupMs / 1000} s)`, measured: `${growth} MiB`, pass: Number.isFinite(growth) && growth <= o.rssBoundMiB },
      { name: 'completion p99 (client-observed)', bound: `< ${o.p99BoundMs} ms`, measured: `${p99?.toFixed(0)} ms over ${latencies.length} answers`, pass: latencies.length > 0 && p99 < o.p99BoundMs },
      { name: 'the stream keeps up (queue drained after the storm)', bound: `<= ${o.drainBoundMs / 1000} s`, measured: `${(drainMs / 1000).toFixed(1)} s`, pass: drainMs <= o.drainBoundMs },
      { name: "stream's view of each document equals the editor's text", bound: 'all equal, no replay error', measured: `${viewRows.filter((v) => v.equal).length}/${viewRows.length} equal, ${streamErrors.length} stream errors`, pass: viewRows.every((v) => v.equal) && streamErrors.length === 0 },
    ];
    const { log: _log, ...options } = o;
    void _log;
    const result: StormResult = {
      options, model: path.relative(ROOT, model), device: st.device ?? 'unknown', cache,
      durationMs: Math.round(stormMs),
      edits: { sent, byKind, targetPerMinute: o.rate, achievedPerMinute: Math.round(achieved), achievedRatio: Math.round((achieved / o.rate) * 1000) / 1000 },
      events,
      completions: { ...comp, p50Ms: Math.round(pct(latencies, 50)), p99Ms: Math.round(p99), maxMs: Math.round(latencies.length ? Math.max(...latencies) : NaN) },
      rssMiB: { first: rssSamples[0][1], afterWarmup: afterWarm, maxAfterWarmup: maxAfterWarm, final: rssSamples[rssSamples.length - 1][1], growthAfterWarmup: growth, samples: rssSamples },
      stream: {
        seenAtEnd: iEnd.stats.seen, appended: iEnd.appended - i0.appended,
        offeredTokensPerS: Math.round(((iEnd.appended - i0.appended) / stormMs) * 1000),
        ingestedDuringStormTokensPerS: Math.round(((iStormEnd.appended - i0.appended) / stormMs) * 1000),
        drainMs, maxQueuedIngest, maxPendingTokens,
      },
      views: viewRows, streamErrors,
      criteria, pass: criteria.every((c) => c.pass),
    };
    return result;
  } finally {
    await s.shutdown();
    rmSync(storage, { recursive: true, force: true });
  }
}

function parse(argv: string[]): StormOptions & { out?: string; note?: string } {
  const f: StormOptions & { out?: string; note?: string } = defaultStormOptions();
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const v = () => { const x = argv[++i]; if (x === undefined) throw new Error(`${a} needs a value`); return x; };
    const n = (min: number) => { const x = Number(v()); if (!Number.isFinite(x) || x < min) throw new Error(`${a} must be a number >= ${min}`); return x; };
    if (a === 'storm') continue;
    else if (a === '--rate') f.rate = n(1);
    else if (a === '--duration') f.durationMs = n(1) * 1000;
    else if (a === '--warmup') f.warmupMs = n(0) * 1000;
    else if (a === '--p99-bound') f.p99BoundMs = n(1);
    else if (a === '--rss-bound') f.rssBoundMiB = n(0);
    else if (a === '--drain-bound') f.drainBoundMs = n(0) * 1000;
    else if (a === '--seed') f.seed = Math.floor(n(0));
    else if (a === '--jump-rate') { f.jumpRate = n(0); if (f.jumpRate > 0.5) throw new Error('--jump-rate must be at most 0.5'); }
    else if (a === '--model') f.model = v();
    else if (a === '--device') { f.device = v(); if (!['cpu', 'auto', 'cuda'].includes(f.device)) throw new Error('--device must be cpu, auto or cuda'); }
    else if (a === '--out') f.out = v();
    else if (a === '--server') { const x = path.resolve(v()); f.entry = x.endsWith('.ts') ? ['--import', 'tsx', x] : [x]; }
    else if (a === '--note') f.note = v();
    else throw new Error(`unknown argument ${a} (usage: npm run bench -- storm [--rate EDITS_PER_MIN] [--duration S] [--warmup S] [--p99-bound MS] [--rss-bound MIB] [--drain-bound S] [--seed N] [--jump-rate P] [--model FILE] [--device D] [--server main.ts|server.js] [--out FILE] [--note TEXT])`);
  }
  if (f.model && !existsSync(f.model)) throw new Error(`model file not found: ${f.model}`);
  return f;
}

/** The bench suite: runs the storm, prints the verdict, writes the result file; true on pass. */
export async function runStormBench(argv: string[]): Promise<boolean> {
  const f = parse(argv);
  const r = await runStorm(f);
  const cpus = os.cpus();
  const data = {
    suite: 'storm', date: new Date().toISOString(), command: `npm run bench -- storm ${argv.filter((a) => a !== 'storm').join(' ')}`.trim(),
    note: f.note,
    machine: { cpu: cpus[0]?.model ?? 'unknown', cores: cpus.length, memoryGiB: Math.round((os.totalmem() / 2 ** 30) * 10) / 10,
      platform: `${os.platform()} ${os.release()} ${os.arch()}`, node: process.version, loadAverage1m: Math.round(os.loadavg()[0] * 100) / 100 },
    passCriteria: 'edit rate >= 95% of the target; RSS growth after the warm-up (largest sample after it minus the sample at its end) <= the bound; ' +
      'completion p99 (client-observed, answered requests) < the bound; the queue drains within the drain bound after the storm; ' +
      "every document's stream view (replayed from the appended tokens) equal to the editor's text, with no replay error",
    ...r,
  };
  console.log('');
  for (const c of r.criteria) console.log(`${c.pass ? 'PASS' : 'FAIL'}  ${c.name}: ${c.measured} (bound ${c.bound})`);
  console.log(`edits ${r.edits.sent} in ${(r.durationMs / 1000).toFixed(0)} s; completions ${r.completions.answered} answered (p50 ${r.completions.p50Ms} ms, ` +
    `p99 ${r.completions.p99Ms} ms, max ${r.completions.maxMs} ms), ${r.completions.superseded} superseded; RSS first ${r.rssMiB.first} MiB, ` +
    `after warm-up ${r.rssMiB.afterWarmup} MiB, max ${r.rssMiB.maxAfterWarmup} MiB; stream offered ${r.stream.offeredTokensPerS} tokens/s, ` +
    `ingested ${r.stream.ingestedDuringStormTokensPerS} tokens/s during the storm, drain ${r.stream.drainMs} ms`);
  for (const v of r.views) if (!v.equal) console.log(`  view of ${v.path} differs: ${v.firstDifference}`);
  let file = f.out;
  if (!file) {
    const dir = path.join(ROOT, 'bench', 'results');
    mkdirSync(dir, { recursive: true });
    file = path.join(dir, `storm-${new Date().toISOString().slice(0, 10)}.json`);
    if (existsSync(file)) file = path.join(dir, `storm-${new Date().toISOString().slice(0, 16).replace(/:/g, '')}.json`);
  }
  writeFileSync(file, JSON.stringify(data, null, 2) + '\n');
  console.log(`[bench] wrote ${path.relative(ROOT, file)}`);
  console.log(r.pass ? 'storm: PASS' : 'storm: FAIL');
  return r.pass;
}
