// The living session of one workspace: one model, one StreamingLLM cache, fed by editor events
// and chat turns, serving inline completions, chat answers and summaries on one engine worker.
//
// Everything the model knows arrives as appended tokens: a document's surroundings when it
// becomes active, edits as diffs against the document's "stream view" (what the stream last saw
// of it), saves, chat turns. Nothing is prefilled twice: `appended` counts the tokens this class
// sends to the stream, and the engine's `processed` counter grows by exactly those plus branch
// and memory work (tests check it). Completions and model summaries run in branches that are
// discarded; summaries are pinned as memory.

import type { EngineModel, EngineSession, SessionStats } from '../engine/api';
import type {
  ChatChunkParams, ChatMessage, ChatSendParams, ChatSendResult, EndlessSettings, SessionInspectResult, StatusParams, StreamDocumentView, Summary,
} from '../protocol';
import { ChatFormat, chatTopic, Turn } from './chatformat';
import { EditCoalescer } from './coalesce';
import { CompletionCache } from './completioncache';
import { ActivityTracker, digestText } from './digest';
import { applyLineEdits, diffLines, flatCopy, Hunk, LineEdit, splitLines, toHunks } from './diff';
import { DocView, LogRecord, Persistence } from './persistence';
import { encodePieces, FimOrder, Piece, StreamFormat, surroundingsOf, TokenizerLike } from './render';
import { CancelledError, JobKind, Scheduler, StepResult } from './scheduler';
import { evaluateStop, finishCompletion, StopContext } from './stoprules';
import { StreamViewTracker } from './streamview';

/** Tokens per engine call when appending to the stream: completions can run between chunks. */
export const INGEST_CHUNK = 96;
/** Chat answers are generated in steps of this many tokens, so completions can run between them. */
export const CHAT_STEP_TOKENS = 12;

export interface SessionHost {
  log(message: string): void;
  warn(message: string): void;
  /** Something visible changed (the host throttles status notifications). */
  changed(): void;
  chatChunk(p: ChatChunkParams): void;
  summaryPublished(s: Summary): void;
  /** A large append started/progressed/ended (work-done progress). */
  ingestProgress?(id: number, done: number, total: number, label: string): void;
}

export interface CompletionRequest {
  uri: string;
  line: number;
  character: number;
  /** Several items with different sampling (explicit invoke). */
  explicit: boolean;
  signal?: AbortSignal;
}

export interface CompletionResult {
  items: string[];
  cached: boolean;
  ms: number;
  promptTokens: number;
  reusedTokens: number;
  generatedTokens: number;
  reason: string;
}

interface DocState {
  uri: string;
  path: string;
  languageId: string;
  version: number;
  /** Current text (from the client). null when closed. */
  text: string | null;
  /** What the stream last saw of the document (lines), or null if never shown. */
  view: string[] | null;
  viewVersion: number;
  /** The view as of the last append the engine finished (what a snapshot may record). */
  committed: DocView | null;
  /** Stream position (tokens seen) when its surroundings were last shown, and which lines. */
  shownAtSeen: number;
  shownRange: [number, number];
  /** First line of the FIM prefix, kept stable across consecutive completions. */
  fimAnchor: number;
  /** Edit appends of this document queued and not yet committed (idle flushes wait for them). */
  inflight?: number;
  /** The current text split into lines, for the text it was split from. */
  linesOf?: { text: string; lines: string[] };
}

/** The document's current lines (split once per change, not once per use). */
function currentLines(d: DocState): string[] {
  const text = d.text ?? '';
  if (d.linesOf?.text !== text) d.linesOf = { text, lines: splitLines(text) };
  return d.linesOf.lines;
}

interface AppendMeta {
  kind: string;
  uri?: string;
  view?: DocView;
  edits?: LineEdit[];
  version?: number;
  label?: string;
  /** Ask for logits of the last token (a generation follows). */
  logits?: boolean;
  /** Runs when the engine has taken every token (records the committed view). */
  commit?: () => void;
}

class Rate {
  private tokens = 0;
  private ms = 0;
  add(tokens: number, ms: number): void {
    // Exponential decay keeps it recent.
    this.tokens = this.tokens * 0.8 + tokens;
    this.ms = this.ms * 0.8 + Math.max(ms, 0.01);
  }
  get value(): number { return this.ms > 0 ? Math.round((this.tokens / this.ms) * 1000 * 10) / 10 : 0; }
}

export function uriToPath(uri: string, roots: readonly string[]): string {
  let p = uri;
  if (uri.startsWith('file://')) {
    try { p = decodeURIComponent(new URL(uri).pathname); } catch { p = uri.slice(7); }
  }
  for (const r of roots) {
    const root = r.endsWith('/') ? r : r + '/';
    if (p.startsWith(root)) return p.slice(root.length);
  }
  return p;
}

export class Session {
  readonly scheduler = new Scheduler();
  readonly fmt: StreamFormat;
  readonly chatFormat: ChatFormat;
  readonly fimOrder: FimOrder;
  private readonly docs = new Map<string, DocState>();
  private readonly coalescer: EditCoalescer;
  private readonly activity = new ActivityTracker();
  readonly completionCache = new CompletionCache();
  /** The stream's view of each document, replayed from the appended tokens (inspect's streamView). */
  readonly streamView: StreamViewTracker;
  private readonly lineTokens = new Map<string, number>();
  private activeUri: string | null = null;
  private chatTurns: Turn[] = [];
  private chatHistory: ChatMessage[] = [];
  private readonly chatStops = new Map<string, AbortController>();
  private summaries: Summary[] = [];
  private readonly prefillRate = new Rate();
  private readonly generateRate = new Rate();
  /** Tokens this class appended to the stream, and tokens it asked the engine to process in total. */
  appended = 0;
  queuedTokens = 0;
  private summaryTimer: ReturnType<typeof setTimeout> | null = null;
  private lastSummaryAt = 0;
  private lastSnapshotAt = Date.now();
  private lastSnapshotSeq = 0;
  private committedSeq = 0;
  private snapshotPending = false;
  private completionCtl: AbortController | null = null;
  private nextProgressId = 1;
  private disposed = false;
  clientSendsActive = false;

  constructor(
    readonly model: EngineModel,
    readonly engine: EngineSession,
    readonly tok: TokenizerLike,
    private settings: EndlessSettings,
    readonly persistence: Persistence,
    private readonly host: SessionHost,
    private readonly roots: string[],
  ) {
    this.fmt = new StreamFormat(tok);
    this.streamView = new StreamViewTracker(tok, MAX_LINE_CHARS);
    this.chatFormat = new ChatFormat(tok);
    // SPM keeps the stable part (the suffix) first; the default model is trained on both orders.
    this.fimOrder = this.fmt.hasMarkers ? 'spm' : 'psm';
    this.coalescer = new EditCoalescer(settings.editIdleMs, Math.max(settings.editIdleMs * 4, 3000), (uris) => this.flushDocs(uris, 'idle'));
    this.coalescer.holdWhile = () => this.completionCtl !== null;
    this.scheduler.onStep = () => this.host.changed();
  }

  // ---- lifecycle ---------------------------------------------------------------------------

  /** Starts the stream: restores the snapshot (+ log) when it matches the model, else a fresh stream. */
  async start(): Promise<{ restored: boolean; replayed: number; reason: string }> {
    const r = await this.restoreFromStorage(false);
    this.host.changed();
    return r;
  }

  updateSettings(s: EndlessSettings): void {
    this.settings = s;
    this.coalescer.setDelays(s.editIdleMs, Math.max(s.editIdleMs * 4, 3000));
    this.armSummaryTimer();
  }

  /** Writes a snapshot and closes files. The engine objects are disposed by the caller. */
  async shutdown(): Promise<void> {
    if (this.disposed) return;
    // Answers end where they are (committed as they stand); nothing else needs to finish.
    for (const c of this.chatStops.values()) c.abort();
    this.completionCtl?.abort();
    this.scheduler.cancelAll('completion');
    this.scheduler.cancelAll('summary');
    this.flushAll('shutdown');
    try {
      if (this.persistence.enabled) await this.snapshot();
    } catch (e) {
      this.host.warn(`snapshot at shutdown failed: ${(e as Error).message}`);
    }
    this.dispose();
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    if (this.summaryTimer) clearTimeout(this.summaryTimer);
    this.coalescer.dispose();
    this.scheduler.dispose();
    this.persistence.close();
  }

  // ---- documents ---------------------------------------------------------------------------

  private doc(uri: string): DocState | undefined {
    return this.docs.get(uri);
  }

  opened(uri: string, languageId: string, version: number, text: string): void {
    let d = this.docs.get(uri);
    if (!d) {
      d = { uri, path: uriToPath(uri, this.roots), languageId, version, text, view: null, viewVersion: 0, committed: null, shownAtSeen: -1, shownRange: [0, 0], fimAnchor: -1 };
      this.docs.set(uri, d);
    } else {
      d.text = text;
      d.version = version;
      d.languageId = languageId;
    }
    this.activity.opened(uri, d.path);
    if (d.view) {
      // Seen before (a restored session, or reopened): what changed meanwhile goes in as an edit.
      this.flushDocs([uri], 'reopen');
    } else if (!this.clientSendsActive || this.activeUri === null) {
      this.activate(uri, 0);
    }
    this.touchActivity();
  }

  changed(uri: string, version: number, text: string): void {
    const d = this.doc(uri);
    if (!d) return;
    d.text = text;
    d.version = version;
    if (d.view) this.coalescer.touch(uri);
    this.touchActivity();
  }

  saved(uri: string): void {
    const d = this.doc(uri);
    if (!d) return;
    this.flushDocs([uri], 'save');
    this.append(this.fmt.saved(d.path), { kind: 'save', uri, label: `save ${d.path}` });
    this.activity.saved(uri, d.path);
    this.touchActivity();
  }

  closed(uri: string): void {
    const d = this.doc(uri);
    if (!d) return;
    this.flushDocs([uri], 'close');
    d.text = null;
    if (this.activeUri === uri) this.activeUri = null;
  }

  /** The document became active (or its cursor moved far): show its surroundings unless the window still holds them. */
  activate(uri: string, line: number): void {
    const d = this.doc(uri);
    if (!d || d.text === null) return;
    // Edits typed elsewhere go first, in order.
    this.flushAll('switch');
    const stats = this.safeStats();
    const windowMax = stats?.windowMax ?? 2048;
    const seen = (stats?.seen ?? 0) + this.queuedTokens;
    const lines = currentLines(d);
    const recent = d.shownAtSeen >= 0 && seen - d.shownAtSeen < windowMax / 2;
    const near = line >= d.shownRange[0] && line < d.shownRange[1];
    if (this.activeUri === uri && recent && near) return;
    this.activeUri = uri;
    let pieces: Piece[];
    if (recent && near) {
      pieces = this.fmt.fileActivated(d.path, '');
    } else {
      // At most half the window: a document's surroundings must not push everything else out.
      const budget = Math.min(this.settings.activeContextTokens, Math.floor(this.engine.params.window / 2));
      const s = surroundingsOf(lines.map(clipLine), line, budget, (t) => this.countTokens(t));
      pieces = this.fmt.fileActivated(d.path, s.text);
      d.shownRange = [s.start, s.end];
      d.shownAtSeen = seen;
    }
    const view: DocView = { path: d.path, languageId: d.languageId, text: d.text, version: d.version };
    d.view = lines;
    d.viewVersion = d.version;
    this.coalescer.forget(uri);
    this.append(pieces, { kind: 'file', uri, view, version: d.version, label: `open ${d.path}`, commit: () => { d.committed = view; } });
  }

  private flushAll(reason: string): void {
    const uris = this.coalescer.take();
    if (uris.length) this.flushDocs(uris, reason);
  }

  /** Appends the diffs of these documents against their stream views. */
  private flushDocs(uris: string[], reason: string): void {
    for (const uri of uris) {
      this.coalescer.take(uri);
      const d = this.doc(uri);
      if (!d || d.text === null || !d.view) continue;
      // Backpressure: while this document's previous diff is still queued, an idle flush waits
      // and the edits keep coalescing, so a storm the engine cannot keep up with grows one diff
      // per document instead of a queue of them. (Saves, completions and the rest flush now.)
      if (reason === 'idle' && (d.inflight ?? 0) > 0) { this.coalescer.touch(uri); continue; }
      const now = currentLines(d).slice();
      const edits = diffLines(d.view, now);
      if (!edits.length) { d.viewVersion = d.version; continue; }
      const hunks = boundHunks(toHunks(d.view, edits, 1));
      const pieces = hunks.flatMap((h) => this.fmt.editHunk(d.path, h));
      this.activity.edited(uri, d.path, d.languageId, d.view, now, edits);
      d.view = now;
      d.viewVersion = d.version;
      // Lines moved: the FIM anchor is recomputed on the next completion.
      d.fimAnchor = -1;
      const committed: DocView = { path: d.path, languageId: d.languageId, text: d.text, version: d.version };
      d.inflight = (d.inflight ?? 0) + 1;
      const settled = () => { d.inflight = Math.max(0, (d.inflight ?? 1) - 1); };
      this.append(pieces, { kind: 'edit', uri, edits, version: d.version, label: `edit ${d.path} (${reason})`, commit: () => { d.committed = committed; } })
        .then(settled, settled);
    }
  }

  // ---- the stream ----------------------------------------------------------------------------

  private countTokens(text: string): number {
    const hit = this.lineTokens.get(text);
    if (hit !== undefined) return hit;
    const n = this.tok.encode(text, { addBos: false, parseSpecial: false }).length;
    if (this.lineTokens.size > 20000) this.lineTokens.clear();
    this.lineTokens.set(flatCopy(text), n);
    return n;
  }

  /** Appends pieces to the stream through the worker, in order, in chunks. */
  private append(pieces: Piece[], meta: AppendMeta): Promise<void> {
    return this.appendTokens(encodePieces(this.tok, pieces), meta);
  }

  private appendTokens(tokens: number[], meta: AppendMeta, kind: JobKind = 'ingest'): Promise<void> {
    if (!tokens.length) return Promise.resolve();
    this.queuedTokens += tokens.length;
    let done = 0;
    const big = tokens.length >= 4 * INGEST_CHUNK;
    const progressId = big ? this.nextProgressId++ : 0;
    if (big) this.host.ingestProgress?.(progressId, 0, tokens.length, meta.label ?? meta.kind);
    const handle = this.scheduler.submit<void>({
      kind, ordered: true, label: meta.label ?? meta.kind,
      step: async (ctx): Promise<StepResult<void>> => {
        const chunk = tokens.slice(done, done + INGEST_CHUNK);
        const last = done + chunk.length >= tokens.length;
        const t0 = performance.now();
        await this.engine.decode(chunk, { logits: last && meta.logits ? 'last' : 'none', signal: ctx.signal });
        this.prefillRate.add(chunk.length, performance.now() - t0);
        done += chunk.length;
        this.appended += chunk.length;
        this.queuedTokens -= chunk.length;
        if (big) this.host.ingestProgress?.(progressId, done, tokens.length, meta.label ?? meta.kind);
        if (!last) return { done: false };
        this.committedSeq = this.persistence.append({
          t: 'append', kind: meta.kind, tokens, uri: meta.uri, view: meta.view, edits: meta.edits, version: meta.version,
        }) || this.committedSeq;
        this.streamView.append(tokens, meta.view?.text);
        meta.commit?.();
        return { done: true, value: undefined };
      },
      finally: () => {
        if (big && done < tokens.length) this.host.ingestProgress?.(progressId, tokens.length, tokens.length, meta.label ?? meta.kind);
        this.queuedTokens -= tokens.length - done;
        done = tokens.length;
      },
    });
    handle.promise.catch((e) => {
      if (!(e instanceof CancelledError)) this.host.warn(`appending ${meta.label ?? meta.kind} failed: ${(e as Error).message}`);
    });
    return handle.promise;
  }

  // ---- inline completion -------------------------------------------------------------------

  /** Builds the FIM context for a position: prefix/suffix within token budgets, anchored for reuse. */
  private fimContext(d: DocState, line: number, character: number): { prefix: string; suffix: string; stop: StopContext } {
    const lines = currentLines(d);
    const cur = lines[line];
    // A minified file's one line can be megabytes: only its part near the cursor matters.
    const linePrefix = cur.slice(Math.max(0, character - MAX_LINE_CHARS), character);
    const lineSuffix = cur.slice(character, character + MAX_LINE_CHARS);
    const b = this.fimBudgets();
    const pBudget = b.prefix;
    let used = this.countTokens(linePrefix);
    // Keep the last anchor while the prefix still fits: consecutive prompts then share their start.
    let anchor = d.fimAnchor;
    if (anchor >= 0 && anchor <= line) {
      let n = used;
      for (let i = anchor; i < line && n <= pBudget; i++) n += this.countTokens(lines[i] + '\n');
      if (n > pBudget) anchor = -1;
    } else anchor = -1;
    if (anchor < 0) {
      // Leave a quarter of the budget for typing before the anchor must move.
      anchor = line;
      const target = Math.floor(pBudget * 0.75);
      while (anchor > 0) {
        const n = this.countTokens(lines[anchor - 1] + '\n');
        if (used + n > target) break;
        used += n;
        anchor--;
      }
      d.fimAnchor = anchor;
    }
    const prefix = lines.slice(anchor, line).map((l) => l + '\n').join('') + linePrefix;
    let suffix = lineSuffix;
    let sUsed = this.countTokens(lineSuffix);
    for (let i = line + 1; i < lines.length; i++) {
      const n = this.countTokens('\n' + lines[i]);
      if (sUsed + n > b.suffix) break;
      suffix += '\n' + lines[i];
      sUsed += n;
    }
    let nextLine: string | undefined;
    for (let i = line + 1; i < lines.length; i++) if (lines[i].trim()) { nextLine = lines[i]; break; }
    return { prefix, suffix, stop: { linePrefix, lineSuffix, nextLine, maxLines: 12 } };
  }

  /** FIM prompt budgets that fit the branch with room for the completion. */
  fimBudgets(): { prefix: number; suffix: number; generate: number } {
    const B = this.engine.params.branchMax;
    const generate = Math.max(1, Math.min(this.settings.maxCompletionTokens, Math.floor(B / 4)));
    const room = Math.max(16, B - generate - 8);
    const prefix = Math.min(this.settings.fimPrefixTokens, Math.floor(room * 0.72));
    const suffix = Math.max(0, Math.min(this.settings.fimSuffixTokens, room - prefix - 4));
    return { prefix, suffix, generate };
  }

  /** Validates a position against the open document; throws a RangeError naming the problem. */
  checkPosition(uri: string, line: number, character: number): void {
    const d = this.doc(uri);
    if (!d || d.text === null) throw new RangeError(`document not open: ${uri}`);
    const lines = currentLines(d);
    if (line < 0 || line >= lines.length) throw new RangeError(`line ${line} is out of range (the document has ${lines.length} lines)`);
    if (character < 0 || character > lines[line].length) throw new RangeError(`character ${character} is out of range (line ${line} has ${lines[line].length} characters)`);
  }

  async complete(req: CompletionRequest): Promise<CompletionResult> {
    const t0 = performance.now();
    this.checkPosition(req.uri, req.line, req.character);
    const d = this.doc(req.uri)!;
    // A newer request cancels an older one.
    this.completionCtl?.abort();
    const ctl = new AbortController();
    this.completionCtl = ctl;
    this.coalescer.defer();
    const signal = req.signal ? AbortSignal.any([req.signal, ctl.signal]) : ctl.signal;
    if (this.activeUri !== req.uri || !d.view) this.activate(req.uri, req.line);
    const lines = currentLines(d);
    const fullPrefix = lines.slice(Math.max(0, req.line - 40), req.line).join('\n') + '\n' + lines[req.line].slice(0, req.character);
    const fullSuffix = lines[req.line].slice(req.character) + '\n' + lines.slice(req.line + 1, req.line + 20).join('\n');
    const cached = this.completionCache.get(req.uri, fullPrefix, fullSuffix);
    if (cached && (!req.explicit || cached.length > 1)) {
      if (this.completionCtl === ctl) this.completionCtl = null;
      return { items: cached, cached: true, ms: performance.now() - t0, promptTokens: 0, reusedTokens: 0, generatedTokens: 0, reason: 'cache' };
    }
    const ctx = this.fimContext(d, req.line, req.character);
    let prompt = this.fmt.fim(ctx.prefix, ctx.suffix, this.fimOrder);
    // Token counts per line can differ a little from the joined text's: drop prefix lines until it fits.
    while (prompt.length + 8 >= this.engine.params.branchMax && ctx.prefix.includes('\n')) {
      ctx.prefix = ctx.prefix.slice(ctx.prefix.indexOf('\n') + 1);
      prompt = this.fmt.fim(ctx.prefix, ctx.suffix, this.fimOrder);
    }
    const samplings = req.explicit
      ? [{ temperature: 0 }, { temperature: 0.6, topP: 0.95, seed: 1 }, { temperature: 0.9, topP: 0.95, seed: 2 }]
      : [{ temperature: 0 }];
    const stops = this.fmt.completionStops();
    if (prompt.length + 1 >= this.engine.params.branchMax) prompt = prompt.slice(prompt.length - this.engine.params.branchMax + 8);
    const maxTokens = Math.max(1, Math.min(this.fimBudgets().generate, this.engine.params.branchMax - prompt.length - 1));
    const handle = this.scheduler.submit<CompletionResult>({
      kind: 'completion', signal, label: `complete ${d.path}:${req.line + 1}`,
      step: async (sctx) => {
        const items: string[] = [];
        let reused = 0, generated = 0;
        let reason = 'stop';
        const deadline = AbortSignal.timeout(this.settings.completionTimeoutMs);
        for (let k = 0; k < samplings.length; k++) {
          if (sctx.signal.aborted) break;
          const before = this.engine.stats();
          await this.engine.branchBegin();
          try {
            const tp = performance.now();
            await this.engine.decode(prompt, { logits: 'last', signal: sctx.signal });
            const after = this.engine.stats();
            reused += after.reused - before.reused;
            this.prefillRate.add(after.processed - before.processed, performance.now() - tp);
            const g = await this.generateText(sctx.signal, deadline, maxTokens, stops, samplings[k], ctx.stop);
            generated += g.tokens;
            reason = g.reason;
            if (g.text.trim()) items.push(g.text);
          } finally {
            await this.engine.branchDiscard();
          }
          if (deadline.aborted) break;
        }
        if (sctx.cancelled()) return { done: false };
        const unique = [...new Set(items)];
        return { done: true, value: { items: unique, cached: false, ms: 0, promptTokens: prompt.length, reusedTokens: reused, generatedTokens: generated, reason } };
      },
    });
    let r: CompletionResult;
    try {
      r = await handle.promise;
    } finally {
      if (this.completionCtl === ctl) this.completionCtl = null;
      this.coalescer.defer();
    }
    if (r.items.length) this.completionCache.put(req.uri, fullPrefix, fullSuffix, r.items);
    r.ms = performance.now() - t0;
    return r;
  }

  /** Generates in the open branch until a stop rule, max tokens, the deadline or cancellation. */
  private async generateText(signal: AbortSignal, deadline: AbortSignal, maxTokens: number, stops: number[],
    sampler: { temperature: number; topP?: number; seed?: number }, stop: StopContext): Promise<{ text: string; tokens: number; reason: string }> {
    const ruleCtl = new AbortController();
    const all = AbortSignal.any([signal, deadline, ruleCtl.signal]);
    const dec = this.tok.createStreamDecoder({ skipSpecial: true });
    const stopSet = new Set(stops);
    let raw = '';
    let verdict: { done: boolean; text: string } | null = null;
    let count = 0;
    const t0 = performance.now();
    let reason = 'length';
    try {
      const r = await this.engine.generate({
        maxTokens, stop: stops, sampler, signal: all,
        onToken: (id) => {
          if (verdict?.done || stopSet.has(id)) return;
          count++;
          raw += dec.push(id);
          const v = evaluateStop(raw, stop);
          if (v.done) { verdict = v; ruleCtl.abort(); }
        },
      });
      reason = r.reason;
    } catch (e) {
      if ((e as Error).name !== 'AbortError') throw e;
      reason = ruleCtl.signal.aborted ? 'rule' : deadline.aborted ? 'time' : 'cancelled';
    }
    this.generateRate.add(count, performance.now() - t0);
    if (!verdict) raw += dec.flush();
    const v = verdict as { done: boolean; text: string } | null;
    const text = v ? v.text.replace(/[ \t]+$/, '') : finishCompletion(raw, stop);
    return { text, tokens: count, reason: v ? 'rule' : reason };
  }

  // ---- chat ------------------------------------------------------------------------------

  async chat(p: ChatSendParams, signal?: AbortSignal): Promise<ChatSendResult> {
    if (this.chatStops.has(p.turnId)) throw new RangeError(`turnId ${p.turnId} is already in progress`);
    const t0 = performance.now();
    const stopCtl = new AbortController();
    this.chatStops.set(p.turnId, stopCtl);
    const onAbort = () => stopCtl.abort();
    signal?.addEventListener('abort', onAbort, { once: true });
    const userText = p.context ? `${p.text}\n\n\`\`\`\n${p.context.text}\n\`\`\`\n(from ${uriToPath(p.context.uri, this.roots)})` : p.text;
    // Edits typed before the question go first (the ordered jobs keep that order).
    this.flushAll('chat');
    const userMsg: ChatMessage = { role: 'user', text: p.text, turnId: p.turnId, time: Date.now() };
    this.chatHistory.push(userMsg);
    this.persistence.append({ t: 'chat', message: userMsg });
    this.activity.chat(chatTopic(p.text));
    this.touchActivity();
    let userTokens = encodePieces(this.tok, this.chatFormat.userTurn(this.chatTurns, userText));
    // A turn longer than half the window would push everything else out: its text is cut.
    const limit = Math.floor(this.engine.params.window / 2);
    let cut = userText;
    while (userTokens.length > limit && cut.length > 64) {
      cut = cut.slice(0, Math.floor(cut.length * Math.max(0.1, (limit / userTokens.length) * 0.95))) + '\n[…cut]';
      userTokens = encodePieces(this.tok, this.chatFormat.userTurn(this.chatTurns, cut));
    }
    this.chatTurns.push({ role: 'user', content: cut });
    const maxTokens = p.maxTokens ?? this.settings.maxChatTokens;
    const stops = this.chatFormat.stopTokens();
    const stopStrings = this.chatFormat.stopStrings();
    const dec = this.tok.createStreamDecoder({ skipSpecial: true });
    let prefilled = 0;
    let answer = '';
    let sent = 0;
    let generated = 0;
    let firstTokenMs = 0;
    let reason: ChatSendResult['reason'] = 'length';
    let phase: 'prefill' | 'generate' | 'close' = 'prefill';
    const stopSet = new Set(stops);
    const emit = (done: boolean) => {
      // Hold back text that could be the start of a stop string.
      let visible = answer;
      if (!done) for (const s of stopStrings) for (let k = s.length - 1; k > 0; k--) if (visible.endsWith(s.slice(0, k))) { visible = visible.slice(0, -k); break; }
      const delta = visible.slice(sent);
      if (delta || done) this.host.chatChunk({ turnId: p.turnId, delta, tokens: generated, done, reason: done ? reason : undefined });
      sent = Math.max(sent, visible.length);
    };
    const handle = this.scheduler.submit<void>({
      kind: 'chat', ordered: true, label: `chat ${p.turnId}`,
      step: async (ctx): Promise<StepResult<void>> => {
        if (phase === 'prefill') {
          const chunk = userTokens.slice(prefilled, prefilled + INGEST_CHUNK);
          const last = prefilled + chunk.length >= userTokens.length;
          const t = performance.now();
          await this.engine.decode(chunk, { logits: last ? 'last' : 'none', signal: ctx.signal });
          this.prefillRate.add(chunk.length, performance.now() - t);
          prefilled += chunk.length;
          this.appended += chunk.length;
          if (last) {
            this.persistence.append({ t: 'append', kind: 'chat-user', tokens: userTokens });
            if (stopCtl.signal.aborted) { reason = 'cancelled'; phase = 'close'; } else phase = 'generate';
          }
          return { done: false };
        }
        if (phase === 'generate') {
          const stepTokens: number[] = [];
          let hitStop = false;
          const stringCtl = new AbortController();
          const t = performance.now();
          let r: { reason: string } = { reason: 'length' };
          try {
            r = await this.engine.generate({
              maxTokens: Math.min(CHAT_STEP_TOKENS, maxTokens - generated), stop: stops,
              sampler: { temperature: p.temperature ?? 0.2, topP: 0.95, repeatPenalty: 1.1, repeatLastN: 64, seed: generated + 7 },
              signal: AbortSignal.any([stopCtl.signal, ctx.signal, stringCtl.signal]),
              onToken: (id) => {
                if (hitStop) return;
                if (stopSet.has(id)) { hitStop = true; return; }
                if (!firstTokenMs) firstTokenMs = performance.now() - t0;
                stepTokens.push(id);
                generated++;
                answer += dec.push(id);
                for (const s of stopStrings) {
                  const k = answer.indexOf(s);
                  if (k >= 0) { answer = answer.slice(0, k); hitStop = true; stringCtl.abort(); }
                }
                emit(false);
              },
            });
          } catch (e) {
            if ((e as Error).name !== 'AbortError') throw e;
          }
          this.generateRate.add(stepTokens.length, performance.now() - t);
          // Generated tokens are in the stream already (generate decodes each one it reports, except stop tokens).
          this.appended += stepTokens.length;
          if (stepTokens.length) this.persistence.append({ t: 'append', kind: 'chat-answer', tokens: stepTokens });
          if (hitStop || r.reason === 'stop') { reason = 'stop'; phase = 'close'; }
          else if (stopCtl.signal.aborted) { reason = 'cancelled'; phase = 'close'; }
          else if (generated >= maxTokens) { reason = 'length'; phase = 'close'; }
          else if (ctx.cancelled()) { reason = 'cancelled'; phase = 'close'; }
          return { done: false };
        }
        // Close the turn so the stream holds a complete conversation.
        answer += dec.flush();
        const closing = encodePieces(this.tok, this.chatFormat.assistantEnd(this.chatTurns, answer));
        if (closing.length) {
          await this.engine.decode(closing, { logits: 'none' });
          this.appended += closing.length;
          this.persistence.append({ t: 'append', kind: 'chat-close', tokens: closing });
        }
        return { done: true, value: undefined };
      },
    });
    try {
      await handle.promise;
    } catch (e) {
      if (e instanceof CancelledError) reason = 'cancelled';
      else reason = 'error';
      if (!(e instanceof CancelledError)) { this.cleanupChat(p.turnId, signal, onAbort); emit(true); throw e; }
    }
    this.chatTurns.push({ role: 'assistant', content: answer });
    const msg: ChatMessage = { role: 'assistant', text: answer, turnId: p.turnId, time: Date.now() };
    this.chatHistory.push(msg);
    this.persistence.append({ t: 'chat', message: msg });
    emit(true);
    this.cleanupChat(p.turnId, signal, onAbort);
    this.host.changed();
    return { turnId: p.turnId, text: answer, reason, tokens: generated, firstTokenMs: Math.round(firstTokenMs), totalMs: Math.round(performance.now() - t0) };
  }

  private cleanupChat(turnId: string, signal: AbortSignal | undefined, onAbort: () => void): void {
    this.chatStops.delete(turnId);
    signal?.removeEventListener('abort', onAbort);
  }

  stopChat(turnId: string): boolean {
    const c = this.chatStops.get(turnId);
    if (!c) return false;
    c.abort();
    return true;
  }

  newChat(): void {
    this.chatTurns = [];
    this.chatHistory = [];
  }

  history(): ChatMessage[] {
    return [...this.chatHistory];
  }

  // ---- summaries ---------------------------------------------------------------------------

  listSummaries(): Summary[] {
    return [...this.summaries];
  }

  private touchActivity(): void {
    this.armSummaryTimer();
  }

  private armSummaryTimer(): void {
    if (this.summaryTimer) clearTimeout(this.summaryTimer);
    this.summaryTimer = null;
    if (this.disposed || this.settings.summaryIdleMs <= 0) return;
    const wait = Math.max(this.settings.summaryIdleMs, this.lastSummaryAt + this.settings.summaryIntervalMs - Date.now());
    this.summaryTimer = setTimeout(() => {
      this.summaryTimer = null;
      if (!this.activity.active) return;
      this.summarize('idle').catch((e) => {
        if (!(e instanceof CancelledError)) this.host.warn(`summary failed: ${(e as Error).message}`);
      });
    }, wait);
    this.summaryTimer.unref?.();
  }

  /** Makes a summary: the model's (when it produces a usable one) plus the digest; pins it; publishes it. */
  async summarize(trigger: Summary['trigger']): Promise<Summary> {
    this.flushAll('summary');
    const digest = this.activity.take();
    this.lastSummaryAt = Date.now();
    const prompt = this.summaryPrompt();
    let modelText: string | undefined;
    let modelDone = prompt === null;
    const handle = this.scheduler.submit<Summary>({
      kind: 'summary', preempt: 'abort', label: `summary (${trigger})`,
      step: async (ctx): Promise<StepResult<Summary>> => {
        if (!modelDone && prompt) {
          const deadline = AbortSignal.timeout(15_000);
          await this.engine.branchBegin();
          try {
            await this.engine.decode(prompt, { logits: 'last', signal: ctx.signal });
            const stops = [...new Set([...this.fmt.completionStops(), ...this.chatFormat.stopTokens()])];
            const dec = this.tok.createStreamDecoder({ skipSpecial: true });
            let text = '';
            const ids: number[] = [];
            const stopSet = new Set(stops);
            try {
              const t = performance.now();
              await this.engine.generate({
                maxTokens: 96, stop: stops, sampler: { temperature: 0, repeatPenalty: 1.15, repeatLastN: 64 },
                signal: AbortSignal.any([ctx.signal, deadline]),
                onToken: (id) => { if (!stopSet.has(id)) { ids.push(id); text += dec.push(id); } },
              });
              this.generateRate.add(ids.length, performance.now() - t);
            } catch (e) {
              if ((e as Error).name !== 'AbortError') throw e;
              if (ctx.signal.aborted) return { done: false }; // preempted or cancelled: retried or dropped
            }
            text += dec.flush();
            modelText = usableSummary(text, ids);
          } finally {
            await this.engine.branchDiscard();
          }
          modelDone = true;
          return { done: false }; // pinning is its own step, so a completion can run in between
        }
        const summary = this.composeSummary(trigger, digest, modelText);
        const memTokens = this.memoryTokens(summary.text);
        if (this.engine.params.memoryMax > 0) {
          await this.engine.setMemory(memTokens, { signal: ctx.signal });
          summary.pinnedTokens = memTokens.length;
        }
        this.persistence.append({ t: 'memory', tokens: memTokens, summary });
        this.summaries.push(summary);
        if (this.summaries.length > 200) this.summaries.shift();
        return { done: true, value: summary };
      },
    });
    const summary = await handle.promise;
    this.host.summaryPublished(summary);
    this.host.changed();
    this.maybeSnapshot(true);
    return summary;
  }

  private summaryPrompt(): number[] | null {
    const p = this.fmt.summaryPrompt();
    if (p) return encodePieces(this.tok, p);
    if (this.chatFormat.kind !== 'plain') {
      // A chat model: ask in a turn of its own (in a branch: nothing of it stays).
      return encodePieces(this.tok, this.chatFormat.userTurn([], 'Summarize in two or three sentences what the user has been working on in this editing session (files, functions, goals). Reply with the summary only.'));
    }
    return null;
  }

  private composeSummary(trigger: Summary['trigger'], digest: Summary['digest'], modelText: string | undefined): Summary {
    const stats = this.safeStats();
    const parts: string[] = [];
    if (modelText) parts.push(modelText);
    parts.push(digestText(digest));
    const prev = this.summaries[this.summaries.length - 1];
    if (prev) parts.push('Earlier: ' + prev.text.replace(/\n+/g, ' '));
    return {
      id: `s${Date.now().toString(36)}${Math.random().toString(36).slice(2, 6)}`,
      time: Date.now(),
      modelText,
      digest,
      text: parts.join('\n'),
      pinnedTokens: 0,
      seen: stats?.seen ?? 0,
      trigger,
    };
  }

  /** The memory tokens of a summary, cut to the memory size (older parts go first). */
  private memoryTokens(text: string): number[] {
    const max = this.engine.params.memoryMax;
    if (max <= 0) return [];
    let t = text;
    for (;;) {
      const ids = encodePieces(this.tok, this.fmt.memory(t));
      if (ids.length <= max || t.length < 8) return ids.slice(0, max);
      t = t.slice(0, Math.floor(t.length * Math.min(0.9, max / ids.length)));
    }
  }

  // ---- persistence -------------------------------------------------------------------------

  /** Writes a snapshot (engine state + meta) once every earlier stream append is done. */
  snapshot(): Promise<{ path: string; bytes: number; seq: number; ms: number }> {
    if (!this.persistence.enabled) return Promise.reject(new Error(`persistence is off: ${this.persistence.reason}`));
    const t0 = performance.now();
    const handle = this.scheduler.submit({
      kind: 'control', ordered: true, label: 'snapshot',
      step: async () => {
        // What the snapshot covers is fixed before the save: chat messages may be logged meanwhile.
        const seq = this.persistence.lastSeq;
        const chat = [...this.chatHistory];
        const summaries = this.summaries.slice(-50);
        const views: Record<string, DocView> = {};
        for (const d of this.docs.values()) if (d.committed) views[d.uri] = d.committed;
        const counters = this.engine.stats();
        await this.engine.save(this.persistence.snapshotPath);
        const snapBytes = this.persistence.protectSnapshot();
        const p = this.engine.params;
        const metaBytes = this.persistence.writeMeta({
          fingerprint: this.model.info.fingerprint, seq, time: Date.now(), views,
          chat, summaries,
          sessionParams: { sinks: p.sinks, window: p.window, memoryMax: p.memoryMax, branchMax: p.branchMax },
          engine: { seen: counters.seen, processed: counters.processed },
        });
        this.lastSnapshotAt = Date.now();
        this.lastSnapshotSeq = seq;
        this.persistence.rotateIfLarge(this.model.info.fingerprint);
        return { done: true as const, value: { path: this.persistence.snapshotPath, bytes: snapBytes + metaBytes, seq, ms: 0 } };
      },
    });
    return handle.promise.then((r) => ({ ...r, ms: Math.round(performance.now() - t0) })).catch((e) => {
      if (!(e instanceof CancelledError) && this.persistence.enabled) {
        this.persistence.disable(`cannot write the snapshot (${(e as Error).message})`);
      }
      throw e;
    });
  }

  /** Snapshots when enough happened since the last one (called when idle). */
  maybeSnapshot(force = false): void {
    if (!this.persistence.enabled || this.snapshotPending || this.disposed) return;
    const newer = this.persistence.lastSeq - this.lastSnapshotSeq;
    if (newer <= 0) return;
    if (!force && newer < 20 && Date.now() - this.lastSnapshotAt < 30_000) return;
    this.snapshotPending = true;
    this.snapshot().catch(() => undefined).finally(() => { this.snapshotPending = false; });
  }

  /**
   * Restores the session from storage: the snapshot when it matches the model, then the newer
   * events of the log. Otherwise a fresh stream, seeded with the last summary as memory.
   */
  async restoreFromStorage(explicit: boolean): Promise<{ restored: boolean; replayed: number; seen: number; reason: string }> {
    const fp = this.model.info.fingerprint;
    const pers = this.persistence;
    let reason = '';
    let records: LogRecord[] = [];
    let meta = null as ReturnType<Persistence['readMeta']>;
    let logMatches = false;
    // A folder that cannot be written (full, read-only) is still read: the session comes back
    // and runs without persistence.
    if (pers.enabled || pers.readable) {
      meta = pers.readMeta();
      records = pers.readLog();
      const header = records.find((r) => r.t === 'header') as (LogRecord & { fingerprint: string }) | undefined;
      logMatches = header !== undefined && header.fingerprint === fp;
      if (!meta) reason = 'no snapshot in the storage folder';
      else if (meta.fingerprint !== fp) reason = 'the snapshot belongs to another model';
      else if (header && header.fingerprint !== fp) reason = 'the event log belongs to another model';
    } else {
      reason = `persistence is off: ${pers.reason}`;
    }
    await this.scheduler.idle();
    let restored = false;
    let replayed = 0;
    if (meta && !reason) {
      try {
        await this.engine.restore(pers.snapshotPath);
        restored = true;
        const st = meta.engine ? this.engine.stats() : null;
        if (st && meta.engine && (st.seen !== meta.engine.seen || st.processed !== meta.engine.processed)) {
          restored = false;
          await this.engine.clear();
          reason = 'the snapshot is newer than its meta file (a write was cut short)';
        }
      } catch (e) {
        reason = `the snapshot could not be restored (${(e as Error).message})`;
      }
    }
    this.docs.forEach((d) => { d.view = null; d.committed = null; d.shownAtSeen = -1; d.fimAnchor = -1; });
    this.streamView.reset();
    this.completionCache.clear();
    this.chatHistory = []; this.chatTurns = []; this.summaries = [];
    if (restored && meta) {
      for (const [uri, v] of Object.entries(meta.views)) this.setView(uri, v);
      this.chatHistory = [...meta.chat];
      this.chatTurns = this.chatHistory.map((m) => ({ role: m.role, content: m.text }));
      this.summaries = [...meta.summaries];
      replayed = await this.replayRecords(records, meta.seq, false);
      pers.startLog(records, fp, false);
      this.lastSnapshotSeq = meta.seq;
      reason = `restored from the snapshot (${replayed} newer events replayed)`;
    } else if (logMatches && records.some((r) => r.t !== 'header')) {
      // No usable snapshot (the server stopped before its first one): rebuild from the log.
      replayed = await this.replayRecords(records, 0, true);
      pers.startLog(records, fp, false);
      restored = true;
      reason = `rebuilt from the event log (${replayed} events replayed; ${reason})`;
    } else {
      await this.engine.clear();
      await this.replayDecode(this.fmt.streamStart());
      // Seed the fresh stream with the last summary we know of.
      const last = meta?.summaries[meta.summaries.length - 1]
        ?? (records.filter((r) => r.t === 'memory').pop() as (LogRecord & { summary: Summary }) | undefined)?.summary;
      this.summaries = meta?.summaries ? [...meta.summaries] : last ? [last] : [];
      if (pers.enabled) pers.startLog([], fp, true);
      if (last && this.engine.params.memoryMax > 0) {
        const ids = this.memoryTokens(last.text);
        await this.engine.setMemory(ids);
        this.persistence.append({ t: 'memory', tokens: ids, summary: { ...last, trigger: 'restore', pinnedTokens: ids.length } });
      }
      reason = `fresh session: ${reason}${last ? ' (seeded with the last summary)' : ''}`;
    }
    if (!pers.enabled && pers.readable) reason += `; persistence is off: ${pers.reason}`;
    if (explicit || pers.enabled || pers.readable) this.host.log(`session: ${reason}`);
    // Documents open now go in as edits against their restored views.
    for (const d of this.docs.values()) if (d.text !== null && d.view) this.flushDocs([d.uri], 'restore');
    const seen = this.safeStats()?.seen ?? 0;
    return { restored, replayed, seen, reason };
  }

  /**
   * Replays log records after a sequence number: document views, chat history and summaries
   * as they were, the latest pinned memory, and the appended tokens. Only the newest W tokens
   * are decoded: older ones would leave the window at once.
   */
  private async replayRecords(records: readonly LogRecord[], afterSeq: number, fromEmpty: boolean): Promise<number> {
    let tokens: number[] = [];
    let memory: number[] | null = null;
    let cleared = fromEmpty;
    let n = 0;
    for (const r of records) {
      if (r.seq <= afterSeq || r.t === 'header') continue;
      n++;
      if (r.t === 'append') {
        tokens.push(...r.tokens);
        if (r.uri) this.streamView.append(r.tokens, r.view?.text);
        if (r.uri && r.view) this.setView(r.uri, r.view);
        else if (r.uri && r.edits) {
          const d = this.docs.get(r.uri);
          if (d?.view) {
            try {
              d.view = applyLineEdits(d.view, r.edits);
              d.viewVersion = r.version ?? d.viewVersion;
              d.committed = { path: d.path, languageId: d.languageId, text: d.view.join('\n'), version: d.viewVersion };
            } catch {
              d.view = null; d.committed = null; // inconsistent: the document will be shown afresh
            }
          }
        }
      } else if (r.t === 'memory') {
        memory = r.tokens;
        this.summaries.push(r.summary);
      } else if (r.t === 'chat') {
        this.chatHistory.push(r.message);
        this.chatTurns.push({ role: r.message.role, content: r.message.text });
      } else if (r.t === 'clear') {
        tokens = [];
        cleared = true;
        if (!r.keepMemory) memory = [];
        this.docs.forEach((d) => { d.view = null; d.committed = null; });
        this.streamView.reset();
        this.chatHistory = []; this.chatTurns = [];
      }
    }
    if (cleared) {
      await this.engine.clear();
      await this.replayDecode(this.fmt.streamStart());
    }
    if (memory !== null && this.engine.params.memoryMax > 0) await this.engine.setMemory(memory.slice(0, this.engine.params.memoryMax));
    await this.replayDecode(tokens.slice(Math.max(0, tokens.length - this.engine.params.window)));
    return n;
  }

  private setView(uri: string, v: DocView): void {
    let d = this.docs.get(uri);
    if (!d) {
      d = { uri, path: v.path, languageId: v.languageId, version: v.version, text: null, view: null, viewVersion: 0, committed: null, shownAtSeen: -1, shownRange: [0, 0], fimAnchor: -1 };
      this.docs.set(uri, d);
    }
    d.view = splitLines(v.text);
    d.viewVersion = v.version;
    d.committed = { ...v };
    this.streamView.setRecord(v.path, v.text);
  }

  private async replayDecode(tokens: number[]): Promise<void> {
    for (let i = 0; i < tokens.length; i += 256) {
      const chunk = tokens.slice(i, i + 256);
      await this.engine.decode(chunk, { logits: 'none' });
      this.appended += chunk.length;
    }
  }

  /** A fresh stream (the cache emptied); the last summary stays pinned when keepMemory. */
  async newSession(keepMemory: boolean): Promise<void> {
    this.coalescer.dispose();
    this.scheduler.cancelAll();
    await this.scheduler.idle();
    const handle = this.scheduler.submit({
      kind: 'control', ordered: true, label: 'new session',
      step: async () => {
        await this.engine.clear();
        const start = this.fmt.streamStart();
        if (start.length) await this.engine.decode(start, { logits: 'none' });
        this.appended += start.length;
        this.persistence.append({ t: 'clear', keepMemory });
        const last = this.summaries[this.summaries.length - 1];
        if (keepMemory && last && this.engine.params.memoryMax > 0) {
          const ids = this.memoryTokens(last.text);
          await this.engine.setMemory(ids);
          this.persistence.append({ t: 'memory', tokens: ids, summary: last });
        }
        return { done: true as const, value: undefined };
      },
    });
    await handle.promise;
    this.docs.forEach((d) => { d.view = null; d.committed = null; d.shownAtSeen = -1; d.fimAnchor = -1; });
    this.streamView.reset();
    this.chatHistory = []; this.chatTurns = [];
    this.completionCache.clear();
    const prev = this.activeUri;
    this.activeUri = null;
    if (prev) this.activate(prev, 0);
    this.maybeSnapshot(true);
  }

  // ---- status ----------------------------------------------------------------------------

  private safeStats(): SessionStats | null {
    try { return this.engine.stats(); } catch { return null; }
  }

  status(base: Pick<StatusParams, 'state' | 'message' | 'restartRequired'>): StatusParams {
    const s = this.safeStats();
    const info = this.model.info;
    return {
      ...base,
      model: { name: info.name || info.architecture, path: this.model.path, architecture: info.architecture, fileType: info.fileType, nParams: info.nParams, fingerprint: info.fingerprint },
      device: info.device,
      tokensPerSecond: { prefill: this.prefillRate.value, generate: this.generateRate.value },
      cache: s ? { sinks: s.sinks, sinksMax: s.sinksMax, memory: s.memory, memoryMax: s.memoryMax, window: s.window, windowMax: s.windowMax, branch: s.branch, branchMax: s.branchMax } : undefined,
      seen: s?.seen ?? 0,
      evicted: s?.evicted ?? 0,
      processed: s?.processed ?? 0,
      reused: s?.reused ?? 0,
      pendingTokens: this.queuedTokens,
      persistence: { enabled: this.persistence.enabled, path: this.persistence.dir ?? undefined, reason: this.persistence.enabled ? undefined : this.persistence.reason },
    };
  }

  inspect(tailTokens: number, streamView = false): SessionInspectResult {
    const s = this.engine.stats();
    const ids = this.engine.tokens();
    const windowStart = s.sinks + s.memory;
    const win = ids.subarray(windowStart, windowStart + s.window);
    const tail = win.subarray(Math.max(0, win.length - tailTokens));
    const c = this.scheduler.counts();
    return {
      stats: {
        seen: s.seen, evicted: s.evicted, processed: s.processed, reused: s.reused,
        cache: { sinks: s.sinks, sinksMax: s.sinksMax, memory: s.memory, memoryMax: s.memoryMax, window: s.window, windowMax: s.windowMax, branch: s.branch, branchMax: s.branchMax },
        branchOpen: s.branchOpen, cacheBytes: s.cacheBytes,
      },
      tail: this.tok.decode(tail),
      memory: this.tok.decode(ids.subarray(s.sinks, s.sinks + s.memory)),
      documents: [...this.docs.values()].filter((d) => d.view).map((d) => ({ uri: d.uri, path: d.path, version: d.viewVersion, pending: this.coalescer.isPending(d.uri) })),
      queue: { completion: c.completion, chat: c.chat, ingest: c.ingest, summary: c.summary, running: this.scheduler.runningKind },
      seq: this.persistence.lastSeq,
      appended: this.appended,
      ...(streamView ? { views: this.streamViews() } : {}),
    };
  }

  /** The stream's view of each document it has shown, replayed from the appended tokens (streamview.ts). */
  private streamViews(): StreamDocumentView[] {
    if (!this.streamView.supported) throw new RangeError('streamView needs a model whose vocabulary has the stream markers (<|file|>, <|edit|>, <|save|>)');
    const uriOf = new Map<string, string>();
    for (const d of this.docs.values()) uriOf.set(d.path, d.uri);
    const views: StreamDocumentView[] = this.streamView.snapshot().map((v) => ({ uri: uriOf.get(v.path) ?? '', ...v }));
    if (this.streamView.errorCount) views.push({ uri: '', path: '', text: '', lines: 0, recordLines: 0, clippedLines: 0, unknownLines: 0, errors: [...this.streamView.errors], errorCount: this.streamView.errorCount });
    return views;
  }

  /** Queues the pending edits now instead of at the typing pause. */
  flushPending(): void {
    this.flushAll('request');
  }

  /** Flushes pending edits now and waits until the worker is idle (tests, demo, shutdown). */
  async settle(): Promise<void> {
    this.flushAll('settle');
    await this.scheduler.idle();
  }

  /** Called by the host when the client is idle for a while: snapshot if due. */
  idleTick(): void {
    if (!this.scheduler.busy) this.maybeSnapshot(false);
  }
}

/** Longest line the stream shows whole; longer ones are cut (minified files). */
export const MAX_LINE_CHARS = 1000;
/** Most added/removed lines one flush shows; a bigger paste shows its start and a count. */
export const MAX_EDIT_LINES = 400;

function clipLine(l: string): string {
  return l.length > MAX_LINE_CHARS ? l.slice(0, MAX_LINE_CHARS) + '…' : l;
}

/**
 * Bounds what an edit costs the stream: long lines are cut, and past MAX_EDIT_LINES changed lines
 * a hunk shows a line counting the rest (the document's stream view still takes the whole edit).
 */
export function boundHunks(hunks: Hunk[]): Hunk[] {
  let budget = MAX_EDIT_LINES;
  return hunks.map((h) => {
    const lines: string[] = [];
    let hidden = 0;
    let at = -1;
    for (const l of h.lines) {
      if (l[0] !== ' ' && budget <= 0) {
        if (at < 0) at = lines.length;
        hidden++;
        continue;
      }
      if (l[0] !== ' ') budget--;
      lines.push(l[0] + clipLine(l.slice(1)));
    }
    if (hidden) lines.splice(at, 0, `+… (${hidden} more changed lines)`);
    return { ...h, lines };
  });
}

/** A model summary worth pinning: some words, not a loop of the same few tokens. */
export function usableSummary(text: string, ids: readonly number[]): string | undefined {
  const t = text.replace(/\s+/g, ' ').trim();
  if (t.length < 12 || /[\uFFFD\u0000-\u0008\u000B-\u001F]/.test(text)) return undefined;
  // Prose: mostly words, at least a few of them.
  const words = t.match(/[A-Za-z]{2,}/g) ?? [];
  if (words.length < 4 || words.join('').length / t.length < 0.6) return undefined;
  if (ids.length >= 16 && new Set(ids).size / ids.length < 0.25) return undefined;
  return t.length > 600 ? t.slice(0, 597) + '...' : t;
}
