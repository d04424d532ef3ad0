// The Endless language server: vscode-languageserver over stdio (`endless serve --stdio`, or
// `node --import tsx server/main.ts --stdio`). It syncs documents incrementally, answers
// textDocument/inlineCompletion (LSP 3.18), the custom requests of server/protocol.ts (chat,
// summaries, session, status), reports progress while the model loads and while large appends
// run, honours $/cancelRequest, pulls the `endless` configuration, and answers malformed or
// out-of-range requests with LSP errors while it keeps serving.
//
// Flags: --stdio  --storage <dir>  --model <file.gguf>  --device auto|cpu|cuda  --threads <n>
// (flags override initializationOptions, which override nothing else; settings come from the
// client's configuration).

import { existsSync } from 'node:fs';
import path from 'node:path';
import {
  CancellationToken, Connection, createConnection, DidChangeConfigurationNotification, ErrorCodes, InitializeResult,
  InlineCompletionItem, InlineCompletionList, InlineCompletionParams, InlineCompletionTriggerKind, LSPErrorCodes, ProposedFeatures,
  ResponseError, TextDocuments, TextDocumentSyncKind, WorkDoneProgressServerReporter,
} from 'vscode-languageserver/node';
import { TextDocument } from 'vscode-languageserver-textdocument';
import { loadModel } from './engine/index';
import type { EngineModel, EngineSession } from './engine/api';
import {
  ActiveDocumentNotification, ChatChunkNotification, ChatHistoryRequest, ChatNewRequest, ChatSendRequest, ChatStopRequest,
  DEFAULT_SETTINGS, EndlessErrorCodes, EndlessInitializationOptions, EndlessSettings, PROTOCOL_VERSION, RESTART_SETTINGS,
  SessionInspectRequest, SessionNewRequest, SessionRestoreRequest, SessionSaveRequest, SETTINGS_SECTION, ServerState,
  StatusNotification, StatusParams, StatusRequest, SummariesListRequest, SummarizeNowRequest, SummaryPublishedNotification,
} from './protocol';
import { Persistence } from './session/persistence';
import { modelFileMessage, watchModelFile } from './session/modelWatch';
import { StreamFormat } from './session/render';
import { CancelledError } from './session/scheduler';
import { Session, SessionHost } from './session/session';
import { Tokenizer } from './tokenizer/index';

export const DEFAULT_MODEL = path.resolve(__dirname, '..', 'models', 'endless-code-q8_0.gguf');

interface Flags { storage?: string; model?: string; device?: string; threads?: number }

export function parseFlags(argv: readonly string[]): Flags {
  const f: Flags = {};
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const val = (): string => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${a} needs a value`);
      return v;
    };
    if (a === '--stdio' || a === 'serve' || a === '--node-ipc') continue;
    else if (a === '--storage') f.storage = val();
    else if (a === '--model') f.model = val();
    else if (a === '--device') f.device = val();
    else if (a === '--threads') f.threads = Number(val());
    else if (a.startsWith('--clientProcessId')) { if (!a.includes('=')) i++; }
    else throw new Error(`unknown argument: ${a} (usage: endless serve --stdio [--storage DIR] [--model FILE] [--device auto|cpu|cuda] [--threads N])`);
  }
  return f;
}

// ---- parameter validation ------------------------------------------------------------------

function bad(message: string): ResponseError<void> {
  return new ResponseError(ErrorCodes.InvalidParams, message);
}

function obj(v: unknown, what: string): Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw bad(`${what} must be an object`);
  return v as Record<string, unknown>;
}

function str(o: Record<string, unknown>, k: string, what: string, opts: { optional?: boolean; max?: number; nonEmpty?: boolean } = {}): string | undefined {
  const v = o[k];
  if (v === undefined && opts.optional) return undefined;
  if (typeof v !== 'string') throw bad(`${what}.${k} must be a string`);
  if (opts.nonEmpty && !v.length) throw bad(`${what}.${k} must not be empty`);
  if (opts.max !== undefined && v.length > opts.max) throw bad(`${what}.${k} is too long (${v.length} > ${opts.max})`);
  return v;
}

function int(o: Record<string, unknown>, k: string, what: string, min: number, max: number, optional = false): number | undefined {
  const v = o[k];
  if (v === undefined && optional) return undefined;
  if (typeof v !== 'number' || !Number.isInteger(v)) throw bad(`${what}.${k} must be an integer`);
  if (v < min || v > max) throw bad(`${what}.${k} = ${v} is out of range [${min}, ${max}]`);
  return v;
}

function num(o: Record<string, unknown>, k: string, what: string, min: number, max: number): number | undefined {
  const v = o[k];
  if (v === undefined) return undefined;
  if (typeof v !== 'number' || !Number.isFinite(v)) throw bad(`${what}.${k} must be a number`);
  if (v < min || v > max) throw bad(`${what}.${k} = ${v} is out of range [${min}, ${max}]`);
  return v;
}

/** Settings from the client, checked field by field; bad values fall back to defaults with a warning. */
export function sanitizeSettings(raw: unknown, warn: (m: string) => void): EndlessSettings {
  const s: EndlessSettings = { ...DEFAULT_SETTINGS, enabledLanguages: [...DEFAULT_SETTINGS.enabledLanguages] };
  if (raw === null || raw === undefined) return s;
  if (typeof raw !== 'object' || Array.isArray(raw)) { warn('the endless settings are not an object; using defaults'); return s; }
  const r = raw as Record<string, unknown>;
  const ranges: Partial<Record<keyof EndlessSettings, [number, number]>> = {
    threads: [0, 1024], sinks: [0, 64], window: [0, 1 << 20], memorySize: [0, 8192], maxCompletionTokens: [1, 512],
    debounceMs: [0, 10_000], editIdleMs: [50, 60_000], summaryIdleMs: [0, 86_400_000], summaryIntervalMs: [0, 86_400_000],
    completionTimeoutMs: [50, 60_000], fimPrefixTokens: [16, 8192], fimSuffixTokens: [0, 8192], activeContextTokens: [0, 8192],
    maxChatTokens: [1, 8192],
  };
  for (const [k, v] of Object.entries(r)) {
    if (v === undefined || v === null) continue;
    const key = k as keyof EndlessSettings;
    if (!(key in DEFAULT_SETTINGS)) continue; // other extensions' or client-only settings
    const range = ranges[key];
    if (range) {
      if (typeof v === 'number' && Number.isFinite(v) && v >= range[0] && v <= range[1]) (s as unknown as Record<string, unknown>)[key] = Math.round(v);
      else warn(`setting endless.${key} = ${JSON.stringify(v)} is invalid (a number in [${range[0]}, ${range[1]}]); using ${JSON.stringify(s[key])}`);
    } else if (key === 'device') {
      if (v === 'auto' || v === 'cpu' || v === 'cuda') s.device = v;
      else warn(`setting endless.device = ${JSON.stringify(v)} is invalid (auto, cpu or cuda); using auto`);
    } else if (key === 'modelPath') {
      if (typeof v === 'string') s.modelPath = v;
      else warn('setting endless.modelPath must be a string');
    } else if (key === 'enabledLanguages') {
      if (Array.isArray(v) && v.every((x) => typeof x === 'string')) s.enabledLanguages = v as string[];
      else warn('setting endless.enabledLanguages must be an array of language ids');
    }
  }
  return s;
}

/** Largest automatic window: attention over more keys costs every token, on a CPU most of all. */
export const AUTO_WINDOW_MAX = 8192;

/**
 * The cache's regions. With an explicit window the settings are taken as they are. Automatic
 * (window 0): sinks + memory + window + branch stay within the trained context, so no position
 * goes beyond what the model was trained on: memory up to an eighth of it, the branch up to 35 %
 * (the FIM budgets shrink to fit), the window the rest (at most AUTO_WINDOW_MAX).
 */
export function cacheLayout(s: EndlessSettings, nCtxTrain: number, sinks: number): { window: number; memoryMax: number; branchMax: number } {
  const wanted = s.fimPrefixTokens + s.fimSuffixTokens + s.maxCompletionTokens + 64;
  if (s.window > 0) return { window: s.window, memoryMax: s.memorySize, branchMax: Math.max(256, wanted) };
  const avail = Math.max(256, nCtxTrain - sinks);
  const memoryMax = Math.min(s.memorySize, Math.floor(avail / 8));
  const branchMax = Math.max(96, Math.min(wanted, Math.floor(avail * 0.35)));
  const window = Math.max(64, Math.min(AUTO_WINDOW_MAX, avail - memoryMax - branchMax));
  return { window, memoryMax, branchMax };
}

// ---- the server ------------------------------------------------------------------------------

export function runServer(argv: readonly string[], connection?: Connection): void {
  // Files the server writes (snapshot, log) are private to the user.
  process.umask(0o077);
  const flags = parseFlags(argv);
  // stdout carries the protocol: anything else that prints goes to stderr.
  console.log = console.error.bind(console);
  console.info = console.error.bind(console);
  const conn = connection ?? createConnection(ProposedFeatures.all, process.stdin, process.stdout);
  const documents = new TextDocuments(TextDocument);

  let settings: EndlessSettings = { ...DEFAULT_SETTINGS };
  let loadedSettings: EndlessSettings | null = null;
  let initOptions: EndlessInitializationOptions = {};
  let roots: string[] = [];
  let state: ServerState = 'starting';
  let stateMessage = 'starting';
  let model: EngineModel | null = null;
  let engine: EngineSession | null = null;
  let session: Session | null = null;
  let readyResolve!: () => void;
  let readyReject!: (e: Error) => void;
  const ready = new Promise<void>((res, rej) => { readyResolve = res; readyReject = rej; });
  ready.catch(() => undefined);
  let canConfigure = false;
  let canDynamicConfig = false;
  let canProgress = false;
  let shuttingDown = false;
  const progress = new Map<number, Promise<WorkDoneProgressServerReporter | null>>();

  const log = (m: string) => { conn.console.log(m); };
  const warn = (m: string) => { conn.console.warn(m); };

  // The model file changed on disk after the load (see session/modelWatch.ts): a restart would load something else.
  let modelFileNote: string | null = null;
  let stopModelWatch: (() => void) | null = null;
  const statusBase = (): Pick<StatusParams, 'state' | 'message' | 'restartRequired'> => {
    const restartRequired = loadedSettings ? RESTART_SETTINGS.filter((k) => JSON.stringify(settings[k]) !== JSON.stringify(loadedSettings![k])) : [];
    if (modelFileNote && !restartRequired.includes('modelPath')) restartRequired.push('modelPath');
    return { state, message: modelFileNote && state === 'ready' ? `${stateMessage}. ${modelFileNote}` : stateMessage, restartRequired };
  };
  const currentStatus = (): StatusParams => session ? session.status(statusBase()) : {
    ...statusBase(), tokensPerSecond: { prefill: 0, generate: 0 }, seen: 0, evicted: 0, processed: 0, reused: 0, pendingTokens: 0,
    persistence: { enabled: false, reason: 'the session has not started' },
  };
  let statusTimer: ReturnType<typeof setTimeout> | null = null;
  let lastStatus = 0;
  const pushStatus = (now = false) => {
    if (shuttingDown) return;
    const send = () => { statusTimer = null; lastStatus = Date.now(); void conn.sendNotification(StatusNotification, currentStatus()).catch(() => undefined); };
    if (now) { if (statusTimer) clearTimeout(statusTimer); send(); return; }
    if (statusTimer) return;
    statusTimer = setTimeout(send, Math.max(0, 250 - (Date.now() - lastStatus)));
  };

  const host: SessionHost = {
    log, warn,
    changed: () => pushStatus(),
    chatChunk: (p) => { void conn.sendNotification(ChatChunkNotification, p).catch(() => undefined); },
    summaryPublished: (s) => { void conn.sendNotification(SummaryPublishedNotification, s).catch(() => undefined); },
    ingestProgress: (id, done, total, label) => {
      if (!canProgress) return;
      if (done === 0) {
        progress.set(id, conn.window.createWorkDoneProgress().then((r) => { r.begin('Endless: reading', 0, label, false); return r; }).catch(() => null));
        return;
      }
      const p = progress.get(id);
      if (!p) return;
      void p.then((r) => {
        if (!r) return;
        if (done >= total) { r.done(); progress.delete(id); } else r.report(Math.round((done / total) * 100), `${label}: ${done}/${total} tokens`);
      });
    },
  };

  async function pullSettings(): Promise<void> {
    let raw: unknown = initOptions.settings;
    if (canConfigure) {
      try {
        const fromClient = await conn.workspace.getConfiguration({ section: SETTINGS_SECTION });
        if (fromClient !== null && fromClient !== undefined) raw = { ...(initOptions.settings ?? {}), ...(fromClient as object) };
      } catch (e) {
        warn(`could not pull the configuration: ${(e as Error).message}`);
      }
    }
    settings = sanitizeSettings(raw, warn);
    session?.updateSettings(settings);
    pushStatus();
  }

  function modelPath(): string {
    if (flags.model) return path.resolve(flags.model);
    if (settings.modelPath) return path.resolve(settings.modelPath);
    if (process.env.ENDLESS_MODEL) return path.resolve(process.env.ENDLESS_MODEL);
    return DEFAULT_MODEL;
  }

  async function start(): Promise<void> {
    await pullSettings();
    loadedSettings = { ...settings, enabledLanguages: [...settings.enabledLanguages] };
    const file = modelPath();
    state = 'loading';
    stateMessage = `loading ${path.basename(file)}`;
    pushStatus(true);
    let reporter: WorkDoneProgressServerReporter | null = null;
    if (canProgress) {
      try {
        reporter = await conn.window.createWorkDoneProgress();
        reporter.begin('Endless: loading the model', 0, path.basename(file), true);
      } catch { reporter = null; }
    }
    const abort = new AbortController();
    reporter?.token.onCancellationRequested(() => abort.abort());
    try {
      if (!existsSync(file)) {
        throw new Error(file === DEFAULT_MODEL
          ? `the default model ${file} is missing (set endless.modelPath to a GGUF file, or pass --model)`
          : `model file not found: ${file}`);
      }
      const device = (flags.device ?? settings.device) as EndlessSettings['device'];
      if (!['auto', 'cpu', 'cuda'].includes(device)) throw new Error(`--device must be auto, cpu or cuda, got ${device}`);
      const t0 = Date.now();
      let lastPct = -1;
      model = await loadModel(file, {
        device, threads: flags.threads ?? settings.threads, signal: abort.signal,
        onProgress: (f) => {
          const pct = Math.floor(f * 100);
          if (pct !== lastPct) { lastPct = pct; reporter?.report(pct, `${path.basename(file)}: ${pct}%`); }
        },
      });
      stopModelWatch = watchModelFile(file, (change) => {
        modelFileNote = modelFileMessage(file, change);
        warn(modelFileNote);
        Promise.resolve(conn.window.showWarningMessage(`Endless: ${modelFileNote}`) as unknown).catch(() => undefined);
        pushStatus(true);
      });
      const tok = Tokenizer.fromMetadata(model.metadata);
      const info = model.info;
      if (info.notice) {
        // e.g. no CUDA device, or the GPU is out of memory: the CPU serves, and the user is told why
        warn(`device: ${info.notice}`);
        Promise.resolve(conn.window.showWarningMessage(`Endless: ${info.notice}`) as unknown).catch(() => undefined);
      }
      const sinks = settings.sinks || new StreamFormat(tok).defaultSinks();
      const layout = cacheLayout(settings, info.nCtxTrain, sinks);
      engine = model.createSession({ sinks, ...layout, batch: 128 });
      const storage = flags.storage ?? initOptions.storagePath;
      const persistence = new Persistence(storage);
      persistence.onDisabled = (reason) => { warn(`persistence is off: ${reason}`); pushStatus(); };
      if (storage) persistence.open();
      session = new Session(model, engine, tok, settings, persistence, host, roots);
      const r = await session.start();
      for (const d of documents.all()) session.opened(d.uri, d.languageId, d.version, d.getText());
      state = 'ready';
      stateMessage = `${info.name || info.architecture} on ${info.device}; ${r.reason}`;
      log(`model ${file} (${info.architecture}, ${info.fileType}, ${info.nParams} parameters) loaded on ${info.device} in ${Date.now() - t0} ms; ` +
        `S=${engine.params.sinks} W=${engine.params.window} M=${engine.params.memoryMax} B=${engine.params.branchMax}; ` +
        `persistence: ${persistence.enabled ? persistence.dir : 'off (' + persistence.reason + ')'}`);
      readyResolve();
    } catch (e) {
      state = 'error';
      stateMessage = `the model could not be loaded: ${(e as Error).message}`;
      conn.console.error(stateMessage);
      // (a request: a client that does not answer it must not take the server down with an unhandled rejection)
      Promise.resolve(conn.window.showErrorMessage(`Endless: ${stateMessage}`) as unknown).catch(() => undefined);
      readyReject(new Error(stateMessage));
    } finally {
      reporter?.done();
      pushStatus(true);
    }
  }

  /** The session, waiting while the model loads; an LSP error when it failed. */
  async function need(token?: CancellationToken): Promise<Session> {
    if (session && state === 'ready') return session;
    if (state === 'error') throw new ResponseError(EndlessErrorCodes.ModelNotReady, stateMessage);
    await new Promise<void>((res, rej) => {
      ready.then(res, rej);
      token?.onCancellationRequested(() => rej(new ResponseError(LSPErrorCodes.RequestCancelled, 'cancelled')));
    }).catch((e) => { throw e instanceof ResponseError ? e : new ResponseError(EndlessErrorCodes.ModelNotReady, (e as Error).message); });
    return session!;
  }

  function signalOf(token: CancellationToken): AbortSignal {
    const c = new AbortController();
    if (token.isCancellationRequested) c.abort();
    else token.onCancellationRequested(() => c.abort());
    return c.signal;
  }

  /** Maps internal errors to LSP errors; everything else is an engine error with its message. */
  function lspError(e: unknown): ResponseError<void> {
    if (e instanceof ResponseError) return e;
    if (e instanceof CancelledError || (e as Error)?.name === 'AbortError') return new ResponseError(LSPErrorCodes.RequestCancelled, 'cancelled');
    if (e instanceof RangeError) return new ResponseError(ErrorCodes.InvalidParams, e.message);
    return new ResponseError(EndlessErrorCodes.EngineError, (e as Error)?.message ?? String(e));
  }

  async function guarded<T>(fn: () => Promise<T>): Promise<T | ResponseError<void>> {
    try { return await fn(); } catch (e) { return lspError(e); }
  }

  conn.onInitialize((params): InitializeResult => {
    const caps = params.capabilities;
    canConfigure = !!caps.workspace?.configuration;
    canDynamicConfig = !!caps.workspace?.didChangeConfiguration?.dynamicRegistration;
    canProgress = !!caps.window?.workDoneProgress;
    const io = params.initializationOptions;
    if (io !== undefined && io !== null && (typeof io !== 'object' || Array.isArray(io))) {
      warn('initializationOptions is not an object; ignored');
    } else if (io) {
      const o = io as Record<string, unknown>;
      initOptions = {
        storagePath: typeof o.storagePath === 'string' && o.storagePath ? o.storagePath : undefined,
        settings: typeof o.settings === 'object' && o.settings !== null ? o.settings as EndlessInitializationOptions['settings'] : undefined,
      };
    }
    const folders = params.workspaceFolders ?? [];
    const rootUris = folders.length ? folders.map((f) => f.uri) : params.rootUri ? [params.rootUri] : [];
    roots = rootUris.filter((u) => u.startsWith('file://')).map((u) => { try { return decodeURIComponent(new URL(u).pathname); } catch { return u.slice(7); } });
    return {
      capabilities: {
        textDocumentSync: { openClose: true, change: TextDocumentSyncKind.Incremental, save: { includeText: false } },
        inlineCompletionProvider: true,
        workspace: { workspaceFolders: { supported: true } },
      },
      serverInfo: { name: 'endless', version: '0.1.0' },
      protocolVersion: PROTOCOL_VERSION,
    } as InitializeResult;
  });

  conn.onInitialized(() => {
    if (canDynamicConfig) void conn.client.register(DidChangeConfigurationNotification.type, { section: SETTINGS_SECTION }).catch(() => undefined);
    void start();
  });

  conn.onDidChangeConfiguration((p) => {
    // Clients that cannot answer workspace/configuration push the settings here.
    const pushed = (p?.settings as Record<string, unknown> | undefined)?.[SETTINGS_SECTION];
    if (!canConfigure && pushed && typeof pushed === 'object') initOptions = { ...initOptions, settings: pushed as EndlessInitializationOptions['settings'] };
    void pullSettings();
  });

  // ---- documents ---------------------------------------------------------------------------

  documents.onDidOpen((e) => { session?.opened(e.document.uri, e.document.languageId, e.document.version, e.document.getText()); });
  documents.onDidChangeContent((e) => { session?.changed(e.document.uri, e.document.version, e.document.getText()); });
  documents.onDidSave((e) => { session?.saved(e.document.uri); });
  documents.onDidClose((e) => { session?.closed(e.document.uri); });

  conn.onNotification(ActiveDocumentNotification, (p) => {
    try {
      const o = obj(p, 'params');
      const uri = str(o, 'uri', 'params', { nonEmpty: true })!;
      let line = 0;
      if (o.position !== undefined) line = int(obj(o.position, 'params.position'), 'line', 'params.position', 0, 1 << 30)!;
      if (!session) return;
      session.clientSendsActive = true;
      if (documents.get(uri)) session.activate(uri, line);
    } catch (e) {
      warn(`endless/activeDocument ignored: ${(e as Error).message}`);
    }
  });

  // ---- inline completion ---------------------------------------------------------------------

  conn.languages.inlineCompletion.on(async (params: InlineCompletionParams, token): Promise<InlineCompletionList | ResponseError<void>> => {
    return guarded(async () => {
      const o = obj(params, 'params');
      const td = obj(o.textDocument, 'params.textDocument');
      const uri = str(td, 'uri', 'params.textDocument', { nonEmpty: true })!;
      const pos = obj(o.position, 'params.position');
      const line = int(pos, 'line', 'params.position', 0, 2 ** 31 - 1)!;
      const character = int(pos, 'character', 'params.position', 0, 2 ** 31 - 1)!;
      const ctx = o.context === undefined ? {} : obj(o.context, 'params.context');
      const trigger = ctx.triggerKind ?? InlineCompletionTriggerKind.Automatic;
      if (trigger !== InlineCompletionTriggerKind.Automatic && trigger !== InlineCompletionTriggerKind.Invoked) {
        throw bad(`params.context.triggerKind must be 1 (Invoked) or 2 (Automatic), got ${JSON.stringify(trigger)}`);
      }
      const doc = documents.get(uri);
      if (!doc) throw bad(`document not open: ${uri}`);
      if (settings.enabledLanguages.length && !settings.enabledLanguages.includes(doc.languageId)) return { items: [] };
      if (!session || state !== 'ready') return { items: [] }; // still loading: no ghost text rather than a wait
      session.checkPosition(uri, line, character);
      const r = await session.complete({ uri, line, character, explicit: trigger === InlineCompletionTriggerKind.Invoked, signal: signalOf(token) });
      const items: InlineCompletionItem[] = r.items.map((text) => ({
        insertText: text,
        range: { start: { line, character }, end: { line, character } },
      }));
      return { items };
    });
  });

  // ---- chat --------------------------------------------------------------------------------

  conn.onRequest(ChatSendRequest, (params, token) => guarded(async () => {
    const o = obj(params, 'params');
    const turnId = str(o, 'turnId', 'params', { nonEmpty: true, max: 200 })!;
    const text = str(o, 'text', 'params', { nonEmpty: true, max: 200_000 })!;
    let context: { uri: string; text: string } | undefined;
    if (o.context !== undefined) {
      const c = obj(o.context, 'params.context');
      context = { uri: str(c, 'uri', 'params.context')!, text: str(c, 'text', 'params.context', { max: 200_000 })! };
    }
    const temperature = num(o, 'temperature', 'params', 0, 2);
    const maxTokens = int(o, 'maxTokens', 'params', 1, 8192, true);
    const s = await need(token);
    return s.chat({ turnId, text, context, temperature, maxTokens }, signalOf(token));
  }));

  conn.onRequest(ChatStopRequest, (params) => guarded(async () => {
    const o = obj(params, 'params');
    const turnId = str(o, 'turnId', 'params', { nonEmpty: true })!;
    return { stopped: session ? session.stopChat(turnId) : false };
  }));

  conn.onRequest(ChatHistoryRequest, (token) => guarded(async () => ({ messages: (await need(token)).history() })));
  conn.onRequest(ChatNewRequest, (token) => guarded(async () => { (await need(token)).newChat(); return { ok: true as const }; }));

  // ---- summaries ---------------------------------------------------------------------------

  conn.onRequest(SummariesListRequest, (token) => guarded(async () => ({ summaries: (await need(token)).listSummaries() })));
  conn.onRequest(SummarizeNowRequest, (token) => guarded(async () => (await need(token)).summarize('request')));

  // ---- session -------------------------------------------------------------------------------

  conn.onRequest(SessionSaveRequest, (token) => guarded(async () => {
    const s = await need(token);
    if (!s.persistence.enabled) throw new ResponseError(EndlessErrorCodes.PersistenceUnavailable, `persistence is off: ${s.persistence.reason}`);
    return s.snapshot();
  }));
  conn.onRequest(SessionRestoreRequest, (token) => guarded(async () => {
    const s = await need(token);
    if (!s.persistence.enabled) throw new ResponseError(EndlessErrorCodes.PersistenceUnavailable, `persistence is off: ${s.persistence.reason}`);
    const r = await s.restoreFromStorage(true);
    pushStatus();
    return r;
  }));
  conn.onRequest(SessionNewRequest, (params, token) => guarded(async () => {
    const o = params === undefined || params === null ? {} : obj(params, 'params');
    if (o.keepMemory !== undefined && typeof o.keepMemory !== 'boolean') throw bad('params.keepMemory must be a boolean');
    const s = await need(token);
    await s.newSession(o.keepMemory !== false);
    pushStatus();
    return { ok: true as const };
  }));
  conn.onRequest(SessionInspectRequest, (params, token) => guarded(async () => {
    const o = params === undefined || params === null ? {} : obj(params, 'params');
    const tail = int(o, 'tailTokens', 'params', 0, 8192, true) ?? 256;
    if (o.flush !== undefined && typeof o.flush !== 'boolean') throw bad('params.flush must be a boolean');
    if (o.streamView !== undefined && typeof o.streamView !== 'boolean') throw bad('params.streamView must be a boolean');
    const s = await need(token);
    if (o.flush) s.flushPending();
    if (o.streamView === true && !s.streamView.supported) throw bad('params.streamView needs a model whose vocabulary has the stream markers (<|file|>, <|edit|>, <|save|>)');
    return s.inspect(tail, o.streamView === true);
  }));
  conn.onRequest(StatusRequest, () => currentStatus());

  // ---- shutdown ------------------------------------------------------------------------------

  const idleTimer = setInterval(() => session?.idleTick(), 5000);
  idleTimer.unref();

  async function stop(): Promise<void> {
    if (shuttingDown) return;
    shuttingDown = true;
    clearInterval(idleTimer);
    stopModelWatch?.();
    try { await session?.shutdown(); } catch (e) { warn(`shutdown: ${(e as Error).message}`); }
    session = null;
    try { engine?.dispose(); model?.dispose(); } catch { /* exiting anyway */ }
    engine = null;
    model = null;
  }

  conn.onShutdown(async () => { await stop(); });
  conn.onExit(() => { void stop().finally(() => process.exit(0)); });
  process.on('SIGTERM', () => { void stop().finally(() => process.exit(0)); });

  documents.listen(conn);
  conn.listen();
}

/** Entry for `endless serve --stdio ...` (server/cli.ts passes the arguments after `serve`). */
export function main(argv: string[]): void {
  runServer(argv);
}

if (require.main === module) {
  try {
    runServer(process.argv.slice(2));
  } catch (e) {
    process.stderr.write(`endless: ${(e as Error).message}\n`);
    process.exit(2);
  }
}
