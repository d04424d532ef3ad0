// A small LSP client for the demo, the bench and the server tests: spawns the real server over
// stdio (server/main.ts through tsx from the source tree, or dist/server.js when bundled) and
// speaks JSON-RPC to it with vscode-languageserver-protocol, keeping a copy of each document the
// way an editor does and collecting the server's notifications.

import { ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import {
  createProtocolConnection, InitializeRequest, InitializedNotification, ProtocolConnection, StreamMessageReader, StreamMessageWriter,
  DidOpenTextDocumentNotification, DidChangeTextDocumentNotification, DidSaveTextDocumentNotification, InlineCompletionRequest,
  InlineCompletionTriggerKind, ShutdownRequest, ExitNotification, CancellationTokenSource, LogMessageNotification,
  ConfigurationRequest, WorkDoneProgressCreateRequest,
} from 'vscode-languageserver-protocol/node';
import {
  ChatChunkNotification, ChatChunkParams, EndlessSettings, SessionInspectRequest, SessionInspectResult, StatusNotification,
  StatusParams, Summary, SummaryPublishedNotification,
} from '../protocol';

/** The repository root (from server/session/ or from dist/). */
export const ROOT = existsSync(path.resolve(__dirname, '..', '..', 'package.json')) ? path.resolve(__dirname, '..', '..') : path.resolve(__dirname, '..');
export const SAMPLE = path.join(ROOT, 'test', 'fixtures', 'sample-project');
export const SHIPPED_MODEL = path.join(ROOT, 'models', 'endless-code-q8_0.gguf');
export const FIXTURE_MODEL = path.join(ROOT, 'test', 'fixtures', 'models', 'qwen2_tied-q8_0.gguf');

/** The model to run: $ENDLESS_TEST_MODEL, else the shipped model, else a fixture model (until the shipped one exists). */
export function defaultModel(): string {
  if (process.env.ENDLESS_TEST_MODEL) return path.resolve(process.env.ENDLESS_TEST_MODEL);
  if (existsSync(SHIPPED_MODEL)) return SHIPPED_MODEL;
  return FIXTURE_MODEL;
}

export function tempStorage(): string {
  return mkdtempSync(path.join(tmpdir(), 'endless-storage-'));
}

/** How to start the server: from source through tsx, or the bundle. */
function serverCommand(): string[] {
  const src = path.join(ROOT, 'server', 'main.ts');
  if (existsSync(src)) return ['--import', 'tsx', src];
  return [path.join(ROOT, 'dist', 'server.js')];
}

export interface ServerOptions {
  storage?: string | null;
  model?: string;
  settings?: Partial<EndlessSettings>;
  /** Answer workspace/configuration with these settings (else the server uses initializationOptions). */
  configuration?: boolean;
  workDoneProgress?: boolean;
  extraArgs?: string[];
  stderr?: (line: string) => void;
  /** The command that starts the server, before its flags (default: server/main.ts through tsx). */
  entry?: string[];
}

export class ServerClient {
  readonly proc: ChildProcess;
  readonly conn: ProtocolConnection;
  readonly statuses: StatusParams[] = [];
  readonly chunks: ChatChunkParams[] = [];
  readonly summaries: Summary[] = [];
  readonly logs: string[] = [];
  readonly progress: unknown[] = [];
  private versions = new Map<string, number>();
  private texts = new Map<string, string>();
  exited: Promise<number | null>;

  constructor(readonly opts: ServerOptions = {}) {
    const args = [...(opts.entry ?? serverCommand()), '--stdio', '--model', opts.model ?? defaultModel(), ...(opts.extraArgs ?? [])];
    if (opts.storage) args.push('--storage', opts.storage);
    this.proc = spawn(process.execPath, args, { cwd: ROOT, stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env } });
    this.exited = new Promise((res) => this.proc.on('exit', (code) => res(code)));
    this.proc.stderr!.setEncoding('utf8');
    this.proc.stderr!.on('data', (d: string) => { for (const l of d.split('\n')) if (l.trim()) (opts.stderr ?? (() => undefined))(l); });
    this.conn = createProtocolConnection(new StreamMessageReader(this.proc.stdout!), new StreamMessageWriter(this.proc.stdin!));
    this.conn.onNotification(StatusNotification, (p) => { this.statuses.push(p); });
    this.conn.onNotification(ChatChunkNotification, (p) => { this.chunks.push(p); });
    this.conn.onNotification(SummaryPublishedNotification, (p) => { this.summaries.push(p); });
    this.conn.onNotification(LogMessageNotification.type, (p) => { this.logs.push(p.message); });
    this.conn.onRequest(ConfigurationRequest.type, (p) => p.items.map(() => opts.settings ?? {}));
    this.conn.onRequest(WorkDoneProgressCreateRequest.type, () => undefined);
    this.conn.onNotification('$/progress', (p: { value: unknown }) => { this.progress.push(p.value); });
    this.conn.onError(() => undefined);
    this.conn.onClose(() => undefined);
    this.conn.listen();
  }

  async initialize(rootPath = SAMPLE): Promise<unknown> {
    const r = await this.conn.sendRequest(InitializeRequest.type, {
      processId: process.pid,
      rootUri: 'file://' + rootPath,
      workspaceFolders: [{ uri: 'file://' + rootPath, name: path.basename(rootPath) }],
      capabilities: {
        workspace: { configuration: this.opts.configuration ?? false },
        window: { workDoneProgress: this.opts.workDoneProgress ?? true },
      },
      initializationOptions: { storagePath: this.opts.storage ?? undefined, settings: this.opts.settings },
    });
    await this.conn.sendNotification(InitializedNotification.type, {});
    return r;
  }

  /** Resolves when a status notification satisfies pred. */
  async waitStatus(pred: (s: StatusParams) => boolean, timeoutMs = 60_000): Promise<StatusParams> {
    const t0 = Date.now();
    for (;;) {
      const hit = this.statuses.find(pred);
      if (hit) return hit;
      if (Date.now() - t0 > timeoutMs) throw new Error(`timed out waiting for status; last: ${JSON.stringify(this.statuses[this.statuses.length - 1])}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  async ready(timeoutMs = 120_000): Promise<StatusParams> {
    const s = await this.waitStatus((x) => x.state === 'ready' || x.state === 'error', timeoutMs);
    if (s.state === 'error') throw new Error(`server failed: ${s.message}`);
    return s;
  }

  open(uri: string, text: string, languageId = 'typescript'): Promise<void> {
    this.versions.set(uri, 1);
    this.texts.set(uri, text);
    return this.conn.sendNotification(DidOpenTextDocumentNotification.type, { textDocument: { uri, languageId, version: 1, text } });
  }

  text(uri: string): string {
    return this.texts.get(uri) ?? '';
  }

  /** Replaces [start, end) (offsets) with `insert`, as an incremental change. */
  edit(uri: string, start: number, end: number, insert: string): Promise<void> {
    const text = this.texts.get(uri)!;
    const pos = (off: number) => {
      const before = text.slice(0, off).split('\n');
      return { line: before.length - 1, character: before[before.length - 1].length };
    };
    const range = { start: pos(start), end: pos(end) };
    const v = (this.versions.get(uri) ?? 1) + 1;
    this.versions.set(uri, v);
    this.texts.set(uri, text.slice(0, start) + insert + text.slice(end));
    return this.conn.sendNotification(DidChangeTextDocumentNotification.type, { textDocument: { uri, version: v }, contentChanges: [{ range, text: insert }] });
  }

  /** Types text at an offset one character per change, with a pause between keystrokes. */
  async type(uri: string, offset: number, text: string, delayMs = 0): Promise<number> {
    for (const ch of text) {
      await this.edit(uri, offset, offset, ch);
      offset += ch.length;
      if (delayMs) await new Promise((r) => setTimeout(r, delayMs));
    }
    return offset;
  }

  save(uri: string): Promise<void> {
    return this.conn.sendNotification(DidSaveTextDocumentNotification.type, { textDocument: { uri } });
  }

  position(uri: string, offset: number): { line: number; character: number } {
    const before = this.text(uri).slice(0, offset).split('\n');
    return { line: before.length - 1, character: before[before.length - 1].length };
  }

  complete(uri: string, offset: number, explicit = false, token?: CancellationTokenSource) {
    return this.conn.sendRequest(InlineCompletionRequest.type, {
      textDocument: { uri }, position: this.position(uri, offset),
      context: { triggerKind: explicit ? InlineCompletionTriggerKind.Invoked : InlineCompletionTriggerKind.Automatic },
    }, token?.token);
  }

  inspect(tailTokens = 256, flush = false): Promise<SessionInspectResult> {
    return this.conn.sendRequest(SessionInspectRequest, { tailTokens, flush });
  }

  /** Flushes pending edits and waits until the server's worker has nothing queued or running. */
  async settle(timeoutMs = 120_000, flush = true): Promise<SessionInspectResult> {
    const t0 = Date.now();
    let first = flush;
    for (;;) {
      const i = await this.inspect(256, first);
      first = false;
      const q = i.queue;
      if (!q.running && q.completion + q.chat + q.ingest + q.summary === 0 && i.documents.every((d) => !d.pending)) return i;
      if (Date.now() - t0 > timeoutMs) throw new Error(`the server did not settle: ${JSON.stringify(q)}`);
      await new Promise((r) => setTimeout(r, 10));
    }
  }

  async shutdown(): Promise<void> {
    try {
      await this.conn.sendRequest(ShutdownRequest.type);
      await this.conn.sendNotification(ExitNotification.type);
    } catch { /* already gone */ }
    await Promise.race([this.exited, new Promise((r) => setTimeout(r, 5000))]);
    this.kill();
  }

  kill(signal: NodeJS.Signals = 'SIGKILL'): void {
    if (this.proc.exitCode === null && this.proc.signalCode === null) this.proc.kill(signal);
    this.conn.dispose();
  }
}

export function fileUri(rel: string): string {
  return 'file://' + path.join(SAMPLE, rel);
}
