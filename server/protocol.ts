// The Endless protocol between extension/ and server/: every custom request and notification,
// typed once as a named constant (method string + param/result types), plus the settings shape.
// Both sides refer to these constants, never to the strings. Standard LSP messages (document
// sync, textDocument/inlineCompletion, progress, $/cancelRequest) are used as LSP defines them.
// This module is imported by the extension: it imports only vscode-languageserver-protocol and
// nothing Node-only or server-only. docs/protocol.md documents every message.

import { ProtocolNotificationType, ProtocolRequestType, ProtocolRequestType0 } from 'vscode-languageserver-protocol';

/** Bumped when a message changes incompatibly; the server reports it in its initialize result. */
export const PROTOCOL_VERSION = 1;

// ---- settings -------------------------------------------------------------------------------

export type DeviceSetting = 'auto' | 'cpu' | 'cuda';

/** The `endless.*` configuration section, as the server pulls it (workspace/configuration). */
export interface EndlessSettings {
  /** GGUF file to load; '' = the shipped default model (models/endless-code-q8_0.gguf). */
  modelPath: string;
  device: DeviceSetting;
  /** CPU threads for the engine; 0 = all cores. */
  threads: number;
  /** Attention sinks S; 0 = automatic (1 when the vocabulary's BOS is `<|sink|>`, else 4). */
  sinks: number;
  /** Rolling window W in tokens; 0 = automatic (S + M + W + branch within the trained context, W <= 8192). */
  window: number;
  /** Largest pinned memory M in tokens (the latest summary lives there; at most 1/8 of the context when W is automatic); 0 disables it. */
  memorySize: number;
  /** Largest number of tokens one inline completion may generate. */
  maxCompletionTokens: number;
  /** Client-side debounce before an inline completion request (ms). */
  debounceMs: number;
  /** Typing pause after which coalesced edits are appended to the stream (ms). */
  editIdleMs: number;
  /** Idle time after which a summary is produced if anything happened since the last one (ms); 0 = never. */
  summaryIdleMs: number;
  /** Least time between two automatic summaries (ms). */
  summaryIntervalMs: number;
  /** Time budget of one inline completion (ms). */
  completionTimeoutMs: number;
  /** Language ids with inline completions; empty = all. */
  enabledLanguages: string[];
  /** Token budgets of the fill-in-the-middle prompt. */
  fimPrefixTokens: number;
  fimSuffixTokens: number;
  /** Token budget of a document's surroundings when it becomes active. */
  activeContextTokens: number;
  /** Largest number of tokens one chat answer may generate. */
  maxChatTokens: number;
}

export const DEFAULT_SETTINGS: Readonly<EndlessSettings> = Object.freeze({
  modelPath: '',
  device: 'auto',
  threads: 0,
  sinks: 0,
  window: 0,
  memorySize: 256,
  maxCompletionTokens: 64,
  debounceMs: 150,
  editIdleMs: 800,
  summaryIdleMs: 30_000,
  summaryIntervalMs: 120_000,
  completionTimeoutMs: 2_000,
  enabledLanguages: [] as string[],
  fimPrefixTokens: 256,
  fimSuffixTokens: 96,
  activeContextTokens: 384,
  maxChatTokens: 512,
});

/** Settings whose change needs a server restart (they shape the model or the cache). */
export const RESTART_SETTINGS: readonly (keyof EndlessSettings)[] = Object.freeze([
  'modelPath', 'device', 'threads', 'sinks', 'window', 'memorySize',
] as (keyof EndlessSettings)[]);

/** The configuration section the server asks for. */
export const SETTINGS_SECTION = 'endless';

/** initializationOptions the client may pass in `initialize`. */
export interface EndlessInitializationOptions {
  /** Folder for the snapshot and event log (the extension's storageUri); none = no persistence. */
  storagePath?: string;
  /** Settings to use when the client does not answer workspace/configuration. */
  settings?: Partial<EndlessSettings>;
}

/** Extra fields of the server's InitializeResult (`serverInfo` is standard). */
export interface EndlessServerCapabilities {
  protocolVersion: number;
}

// ---- status ---------------------------------------------------------------------------------

export interface CacheFill {
  sinks: number; sinksMax: number;
  memory: number; memoryMax: number;
  window: number; windowMax: number;
  branch: number; branchMax: number;
}

export type ServerState = 'starting' | 'loading' | 'ready' | 'error';

export interface StatusParams {
  state: ServerState;
  /** A line for the user (what is loading, what failed). */
  message: string;
  model?: { name: string; path: string; architecture: string; fileType: string; nParams: number; fingerprint: string };
  /** 'cpu' or 'cuda:<name>'. */
  device?: string;
  /** Recent throughput: prompt processing and generation, tokens per second. */
  tokensPerSecond: { prefill: number; generate: number };
  cache?: CacheFill;
  /** Tokens appended to the stream over the session's life, and those evicted from the window. */
  seen: number;
  evicted: number;
  /** Tokens run through the model (stream, branch, memory), and branch tokens reused. */
  processed: number;
  reused: number;
  /** Edits waiting for a typing pause, and tokens queued for ingest. */
  pendingTokens: number;
  persistence: { enabled: boolean; path?: string; reason?: string };
  /** Settings changed since start that take effect only after a restart. */
  restartRequired: (keyof EndlessSettings)[];
}

/** Server -> client, whenever something visible changes (throttled). */
export const StatusNotification = new ProtocolNotificationType<StatusParams, void>('endless/status');

/** Client -> server: ask for the current status (answers the same shape). */
export const StatusRequest = new ProtocolRequestType0<StatusParams, never, void, void>('endless/status/get');

// ---- editor context ---------------------------------------------------------------------------

/** Client -> server: the active editor changed (or its cursor moved to another region). */
export interface ActiveDocumentParams {
  uri: string;
  position?: { line: number; character: number };
}
export const ActiveDocumentNotification = new ProtocolNotificationType<ActiveDocumentParams, void>('endless/activeDocument');

// ---- chat -----------------------------------------------------------------------------------

export interface ChatSendParams {
  /** Client-chosen id of this turn; chunk notifications carry it. Unique per session. */
  turnId: string;
  text: string;
  /** Optional editor context the user attached (a selection); appended to the turn. */
  context?: { uri: string; text: string };
  /** Sampling temperature (0 = greedy; default 0.2). */
  temperature?: number;
  /** Longest answer (1..8192; default: the maxChatTokens setting). */
  maxTokens?: number;
}
export type ChatStopReason = 'stop' | 'length' | 'cancelled' | 'error';
export interface ChatSendResult {
  turnId: string;
  text: string;
  reason: ChatStopReason;
  tokens: number;
  /** Time to the first token and total time, ms. */
  firstTokenMs: number;
  totalMs: number;
}
/** Client -> server. Answers when the turn is over; the answer streams as ChatChunkNotification. */
export const ChatSendRequest = new ProtocolRequestType<ChatSendParams, ChatSendResult, never, void, void>('endless/chat/send');

export interface ChatChunkParams {
  turnId: string;
  /** Text to append to what was sent before for this turn. */
  delta: string;
  /** Tokens generated so far. */
  tokens: number;
  done: boolean;
  reason?: ChatStopReason;
}
export const ChatChunkNotification = new ProtocolNotificationType<ChatChunkParams, void>('endless/chat/chunk');

export interface ChatStopParams { turnId: string }
/** Client -> server: stop a turn (same as $/cancelRequest on its send request). The partial answer stays. */
export const ChatStopRequest = new ProtocolRequestType<ChatStopParams, { stopped: boolean }, never, void, void>('endless/chat/stop');

export interface ChatMessage { role: 'user' | 'assistant'; text: string; turnId: string; time: number }
/** Client -> server: the chat history (for the view after a reload; the model's copy lives in the cache). */
export const ChatHistoryRequest = new ProtocolRequestType0<{ messages: ChatMessage[] }, never, void, void>('endless/chat/history');

/** Client -> server: start a new chat (the history view empties; the stream keeps what it saw). */
export const ChatNewRequest = new ProtocolRequestType0<{ ok: true }, never, void, void>('endless/chat/new');

// ---- summaries ----------------------------------------------------------------------------------

export interface SymbolChange { name: string; kind: string; uri: string; change: 'added' | 'removed' | 'modified' }

export interface Summary {
  id: string;
  /** ms since the epoch. */
  time: number;
  /** The model's summary, when it produced a usable one. */
  modelText?: string;
  /** The structured digest (always present). */
  digest: {
    files: { uri: string; path: string; edits: number; linesAdded: number; linesRemoved: number; saved: boolean }[];
    symbols: SymbolChange[];
    chatTopics: string[];
  };
  /** What was pinned as memory (modelText + digest, as plain text). */
  text: string;
  /** Tokens pinned (<= memorySize). */
  pinnedTokens: number;
  /** Stream position (tokens seen) when it was made. */
  seen: number;
  trigger: 'idle' | 'request' | 'restore';
}

export const SummariesListRequest = new ProtocolRequestType0<{ summaries: Summary[] }, never, void, void>('endless/summaries/list');

/** Client -> server: summarize now (even if nothing happened: the digest is then empty). */
export const SummarizeNowRequest = new ProtocolRequestType0<Summary, never, void, void>('endless/summaries/summarizeNow');

/** Server -> client: a new summary was made and pinned. */
export const SummaryPublishedNotification = new ProtocolNotificationType<Summary, void>('endless/summaries/published');

// ---- session --------------------------------------------------------------------------------------

export interface SessionSaveResult { path: string; bytes: number; seq: number; ms: number }
/** Client -> server: write a snapshot now. Fails with an error when persistence is off. */
export const SessionSaveRequest = new ProtocolRequestType0<SessionSaveResult, never, void, void>('endless/session/save');

export interface SessionRestoreResult { restored: boolean; replayed: number; seen: number; reason: string }
/** Client -> server: reload the session from the storage folder (snapshot + event log). */
export const SessionRestoreRequest = new ProtocolRequestType0<SessionRestoreResult, never, void, void>('endless/session/restore');

export interface SessionNewParams {
  /** Keep the last summary pinned in the new session (default true). */
  keepMemory?: boolean;
}
/** Client -> server: start a fresh stream (the cache is emptied). */
export const SessionNewRequest = new ProtocolRequestType<SessionNewParams, { ok: true }, never, void, void>('endless/session/new');

export interface SessionInspectParams {
  /** How many of the newest stream tokens to return as text (default 256, at most 8192). */
  tailTokens?: number;
  /** Append the edits waiting for a typing pause first (they are queued; see `queue`). */
  flush?: boolean;
  /** Also return `views`: each document as the stream says it is, replayed from the appended tokens. */
  streamView?: boolean;
}
/**
 * A document as the stream says it is: rebuilt from the token ids the server appended (the
 * `<|file|>` headers and `<|edit|>` hunks since the stream started or was restored), not from the
 * server's copy of the text. The rules for what the stream cannot show are in docs/protocol.md.
 */
export interface StreamDocumentView {
  /** The document's URI ('' for the entry that carries stream-level errors, or a path no open document has). */
  uri: string;
  /** The path the stream names it by. */
  path: string;
  /** Its lines joined with "\n" (line terminators are not in the stream); unknown lines are empty. */
  text: string;
  lines: number;
  /** Lines known only from the document record behind a `<|file|>` header (outside its shown surroundings). */
  recordLines: number;
  /** Lines the stream showed cut (longer than 1000 characters): their text ends in "…". */
  clippedLines: number;
  /** Lines of an edit too large to show (past its changed-line budget) that no later hunk showed. */
  unknownLines: number;
  /** Inconsistencies found while replaying (the first 20), and how many in all. */
  errors: string[];
  errorCount: number;
}
export interface SessionInspectResult {
  stats: {
    seen: number; evicted: number; processed: number; reused: number;
    cache: CacheFill; branchOpen: boolean; cacheBytes: number;
  };
  /** The newest stream tokens (sinks, memory and branch excluded), decoded. */
  tail: string;
  /** The pinned memory, decoded. */
  memory: string;
  /** Documents the stream has seen, with the version it last saw. */
  documents: { uri: string; path: string; version: number; pending: boolean }[];
  /** Jobs queued per kind, and whether one runs. */
  queue: { completion: number; chat: number; ingest: number; summary: number; running: string | null };
  /** Event-log sequence number of the last appended event. */
  seq: number;
  /** Tokens the server has appended to the stream since it started (prefill it asked for). */
  appended: number;
  /** With `streamView: true`: the stream's view of each document it has shown. */
  views?: StreamDocumentView[];
}
/** Client -> server: diagnostics of the living session (used by tests, the demo and the cache view). */
export const SessionInspectRequest = new ProtocolRequestType<SessionInspectParams, SessionInspectResult, never, void, void>('endless/session/inspect');

// ---- errors ---------------------------------------------------------------------------------------

/** Error codes of Endless responses beyond LSP's own (InvalidParams -32602, RequestCancelled -32800). */
export const EndlessErrorCodes = Object.freeze({
  /** The model is not loaded (still loading or failed). */
  ModelNotReady: -32001,
  /** Persistence is off (no storage folder, or it is not writable). */
  PersistenceUnavailable: -32002,
  /** The engine failed; the message says why. */
  EngineError: -32003,
});
