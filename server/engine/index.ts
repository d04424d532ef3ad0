// The engine wrapper: implements server/engine/api.ts over the native addon. Every argument is
// checked here with an error naming it; native calls on one session go through a FIFO queue so
// they never overlap; AbortSignals drive the native cancel flags; native failures come back as
// EngineError with the C API's status name as `code`.
import { statSync } from 'node:fs';
import type {
  Device, EngineModel, EngineSession, GenerateOptions, GenerateResult, LoadOptions, LogitsMode,
  MetaValue, ModelInfo, SamplerParams, SessionParams, SessionStats,
} from './api';
import { getAddon, type NativeCancelToken, type NativeModel, type NativeSamplerParams, type NativeSession } from './native';
import { SerialQueue } from './queue';
import {
  abortError, checkFunction, checkInt, checkNumber, checkObject, checkSignal, checkString, checkTokens, EngineError,
  invalid, optInt, optNumber,
} from './validate';

export type * from './api';
export { EngineError } from './validate';
export { findAddonPath } from './native';

const DEVICES: Record<Device, 0 | 1 | 2> = { auto: 0, cpu: 1, cuda: 2 };
const LOGITS_MODES: Record<LogitsMode, 0 | 1 | 2> = { none: 0, last: 1, all: 2 };
const DEFAULT_BATCH = 256; // endless_session_default_params().n_batch
// On a CUDA device prefill runs on tensor cores, which want long chunks: 16k tokens of the 1.5B
// shape went at 87k / 104k / 109k tok/s in chunks of 1024 / 2048 / 4096 (H100, 2026-11-26,
// bench/results/cuda-nvidia-h100-80gb-hbm3-2026-11-26T1500-chunks.json); 2048 takes most of the
// gain while keeping the ring's extra slots and a cancelled chunk's latency (~20 ms) small.
const CUDA_DEFAULT_BATCH = 2048;
const MAX_TOKENS_PER_CALL = 1 << 30;
const MAX_LOGITS_FLOATS = 2 ** 30; // 4 GiB of logits in one call

/** Turns a native rejection into an EngineError thrown from here (so its stack is the caller's). */
function fromNative(e: unknown): EngineError | Error {
  if (e instanceof EngineError) return e;
  if (e instanceof Error) {
    const code = (e as Error & { code?: unknown }).code;
    const status = (e as Error & { status?: unknown }).status;
    if (typeof code === 'string' && code.startsWith('ENDLESS_')) {
      return new EngineError(code, e.message, { status: typeof status === 'number' ? status : undefined, cause: e });
    }
    return e;
  }
  return new EngineError('ENDLESS_ERR_INTERNAL', String(e));
}

function isCancelled(e: unknown): boolean {
  return e instanceof Error && (e as Error & { code?: unknown }).code === 'ENDLESS_ERR_CANCELLED';
}

function disposedError(what: string): EngineError {
  return new EngineError('ENDLESS_ERR_STATE', `${what} has been disposed`);
}

/** Runs fn with a native cancel token that the signal sets. */
async function withCancel<T>(signal: AbortSignal | undefined, fn: (token: NativeCancelToken) => Promise<T>): Promise<T> {
  const token = new (getAddon().CancelToken)();
  if (!signal) return fn(token);
  if (signal.aborted) throw abortError(signal);
  const onAbort = () => token.cancel();
  signal.addEventListener('abort', onAbort, { once: true });
  try {
    return await fn(token);
  } finally {
    signal.removeEventListener('abort', onAbort);
  }
}

function checkFile(path: unknown, what: string): string {
  const p = checkString(path, what);
  let st;
  try {
    st = statSync(p);
  } catch {
    throw new EngineError('ENDLESS_ERR_IO', `${what}: file not found: ${p}`);
  }
  if (!st.isFile()) throw new EngineError('ENDLESS_ERR_IO', `${what}: not a regular file: ${p}`);
  return p;
}

function metaToMap(obj: Record<string, unknown>): Map<string, MetaValue> {
  return new Map(Object.entries(obj) as [string, MetaValue][]);
}

/** Reads a GGUF file's metadata without its weights (for the tokenizer). */
export function readGgufMetadata(path: string): Map<string, MetaValue> {
  const p = checkFile(path, 'GGUF path');
  try {
    return metaToMap(getAddon().readGgufMetadata(p));
  } catch (e) {
    throw fromNative(e);
  }
}

export interface SystemInfo {
  features: string[];      // e.g. ['avx2', 'fma', 'cuda']
  cudaDevices: number;     // usable CUDA devices (0 without a CUDA build)
  apiVersion: number;      // ENDLESS_API_VERSION of the addon
}

export function systemInfo(): SystemInfo {
  const a = getAddon();
  return {
    features: a.systemInfo().split(',').map((s) => s.trim()).filter(Boolean),
    cudaDevices: a.cudaDeviceCount(),
    apiVersion: a.apiVersion,
  };
}

/** Loads a GGUF model off the JS thread. */
export async function loadModel(path: string, opts: LoadOptions = {}): Promise<EngineModel> {
  const o = checkObject(opts, 'load options');
  const p = checkFile(path, 'model path');
  const threads = optInt(o.threads, 'threads', 0, 4096) ?? 0;
  const device = o.device ?? 'auto';
  if (typeof device !== 'string' || !(device in DEVICES)) {
    throw invalid(`device must be one of ${Object.keys(DEVICES).join(', ')}, got ${JSON.stringify(device)}`);
  }
  const onProgress = checkFunction<(f: number) => void>(o.onProgress, 'onProgress');
  const signal = checkSignal(o.signal);
  if (signal?.aborted) throw abortError(signal);
  const addon = getAddon();
  let progressError: unknown;
  let token: NativeCancelToken | undefined;
  const progress = onProgress
    ? (f: number) => {
      if (progressError !== undefined) return;
      try { onProgress(f); } catch (e) { progressError = e; token?.cancel(); }
    }
    : undefined;
  let native: NativeModel;
  try {
    native = await withCancel(signal, (t) => {
      token = t;
      return addon.loadModel(p, { threads, device: DEVICES[device as Device] }, progress, t);
    });
  } catch (e) {
    if (progressError !== undefined) throw progressError;
    if (isCancelled(e) && signal?.aborted) throw abortError(signal);
    throw fromNative(e);
  }
  return new Model(p, native);
}

class Model implements EngineModel {
  readonly info: ModelInfo;
  readonly metadata: ReadonlyMap<string, MetaValue>;
  private readonly sessions = new Set<Session>();
  private disposed = false;

  constructor(readonly path: string, private readonly native: NativeModel) {
    this.info = Object.freeze({ ...native.describe() });
    this.metadata = metaToMap(native.metadata());
  }

  createSession(params: SessionParams = {}): EngineSession {
    if (this.disposed) throw disposedError('model');
    const o = checkObject(params, 'session params');
    for (const k of Object.keys(o)) {
      if (!['sinks', 'window', 'memoryMax', 'branchMax', 'batch'].includes(k)) throw invalid(`unknown session parameter: ${k}`);
    }
    const p = {
      sinks: optInt(o.sinks, 'sinks', 0, 1 << 20),
      window: optInt(o.window, 'window', 0, 1 << 26),
      memoryMax: optInt(o.memoryMax, 'memoryMax', 0, 1 << 26),
      branchMax: optInt(o.branchMax, 'branchMax', 0, 1 << 26),
      batch: optInt(o.batch, 'batch', 1, 1 << 20),
    };
    if (p.batch === undefined && this.info.device.startsWith('cuda')) p.batch = CUDA_DEFAULT_BATCH;
    let native: NativeSession;
    try {
      native = this.native.createSession(p);
    } catch (e) {
      throw fromNative(e);
    }
    const s = new Session(native, this.info.nVocab, p.batch ?? DEFAULT_BATCH, () => this.sessions.delete(s));
    this.sessions.add(s);
    return s;
  }

  /** Disposes every session of this model, then the model. */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    for (const s of [...this.sessions]) s.dispose();
    this.native.dispose();
  }
}

function checkSampler(v: unknown): NativeSamplerParams {
  const o = checkObject(v, 'sampler');
  for (const k of Object.keys(o)) {
    if (!['temperature', 'topK', 'topP', 'minP', 'repeatPenalty', 'repeatLastN', 'seed'].includes(k)) {
      throw invalid(`unknown sampler parameter: ${k}`);
    }
  }
  const s = o as SamplerParams;
  const out: NativeSamplerParams = { temperature: optNumber(s.temperature, 'temperature', 0, 1000) ?? 0 };
  if (s.topK !== undefined) out.topK = checkInt(s.topK, 'topK', 0, 0x7fffffff);
  if (s.topP !== undefined) out.topP = checkNumber(s.topP, 'topP', 0, 1);
  if (s.minP !== undefined) out.minP = checkNumber(s.minP, 'minP', 0, 1);
  if (s.repeatPenalty !== undefined) {
    out.repeatPenalty = checkNumber(s.repeatPenalty, 'repeatPenalty', 0, 1000);
    if (out.repeatPenalty === 0) throw invalid('repeatPenalty must be > 0 (1 turns it off)');
  }
  if (s.repeatLastN !== undefined) out.repeatLastN = checkInt(s.repeatLastN, 'repeatLastN', 0, 1 << 20);
  if (s.seed !== undefined) out.seed = checkInt(s.seed, 'seed', 0);
  return out;
}

class Session implements EngineSession {
  readonly params: Required<SessionParams>;
  private readonly queue = new SerialQueue();
  private disposed = false;

  constructor(private readonly native: NativeSession, private readonly nVocab: number, batch: number,
              private readonly onDispose: () => void) {
    const st = native.stats();
    this.params = Object.freeze({
      sinks: st.sinksMax, window: st.windowMax, memoryMax: st.memoryMax, branchMax: st.branchMax, batch,
    });
  }

  // Queues a native call; a native cancellation under an aborted signal becomes an AbortError.
  private call<T>(fn: (token: NativeCancelToken) => Promise<T>, signal?: AbortSignal): Promise<T> {
    if (this.disposed) return Promise.reject(disposedError('session'));
    return this.queue.enqueue(async () => {
      if (this.disposed) throw disposedError('session');
      try {
        return await withCancel(signal, fn);
      } catch (e) {
        if (isCancelled(e) && signal?.aborted) throw abortError(signal);
        if (isCancelled(e) && this.disposed) throw disposedError('session');
        throw fromNative(e);
      }
    }, signal);
  }

  decode(tokens: ArrayLike<number>, opts: { logits?: LogitsMode; signal?: AbortSignal } = {}): Promise<Float32Array | null> {
    try {
      const o = checkObject(opts, 'decode options');
      const ids = checkTokens(tokens, 'tokens', this.nVocab);
      if (ids.length > MAX_TOKENS_PER_CALL) throw invalid(`too many tokens in one call (${ids.length})`);
      const mode = o.logits ?? 'last';
      if (typeof mode !== 'string' || !(mode in LOGITS_MODES)) {
        throw invalid(`logits must be one of none, last, all, got ${JSON.stringify(mode)}`);
      }
      if (mode === 'all' && ids.length * this.nVocab > MAX_LOGITS_FLOATS) {
        throw invalid(`logits 'all' for ${ids.length} tokens would take ${((ids.length * this.nVocab * 4) / 2 ** 30).toFixed(1)} GiB; ` +
          'decode fewer tokens per call');
      }
      const signal = checkSignal(o.signal);
      return this.call((t) => this.native.decode(ids, LOGITS_MODES[mode as LogitsMode], t), signal);
    } catch (e) {
      return Promise.reject(e);
    }
  }

  lastLogits(): Promise<Float32Array> {
    return this.call(() => this.native.lastLogits());
  }

  branchBegin(): Promise<void> { return this.call(() => this.native.branchBegin()); }
  branchDiscard(): Promise<void> { return this.call(() => this.native.branchDiscard()); }
  branchCommit(): Promise<void> { return this.call(() => this.native.branchCommit()); }
  clear(): Promise<void> { return this.call(() => this.native.clear()); }

  setMemory(tokens: ArrayLike<number>, opts: { signal?: AbortSignal } = {}): Promise<void> {
    try {
      const o = checkObject(opts, 'setMemory options');
      const ids = checkTokens(tokens, 'memory tokens', this.nVocab, { allowEmpty: true });
      const signal = checkSignal(o.signal);
      return this.call((t) => this.native.setMemory(ids, t), signal);
    } catch (e) {
      return Promise.reject(e);
    }
  }

  stats(): SessionStats {
    if (this.disposed) throw disposedError('session');
    return this.native.stats();
  }

  tokens(): Int32Array {
    if (this.disposed) throw disposedError('session');
    return this.native.tokens();
  }

  save(path: string): Promise<void> {
    try {
      const p = checkString(path, 'snapshot path');
      return this.call(() => this.native.save(p));
    } catch (e) {
      return Promise.reject(e);
    }
  }

  restore(path: string): Promise<void> {
    try {
      const p = checkFile(path, 'snapshot path');
      return this.call(() => this.native.restore(p));
    } catch (e) {
      return Promise.reject(e);
    }
  }

  generate(opts: GenerateOptions): Promise<GenerateResult> {
    try {
      if (opts === undefined) throw invalid('generate options are required ({ maxTokens })');
      const o = checkObject(opts, 'generate options');
      const maxTokens = checkInt(o.maxTokens, 'maxTokens', 0, MAX_TOKENS_PER_CALL);
      const stop = checkTokens(o.stop ?? [], 'stop', this.nVocab, { allowEmpty: true });
      const sampler = checkSampler(o.sampler);
      const signal = checkSignal(o.signal);
      const onToken = checkFunction<(t: number) => void>(o.onToken, 'onToken');
      const addon = getAddon();
      return this.call(async (t) => {
        const s = new addon.Sampler(sampler);
        try {
          const r = await this.native.generate(s, maxTokens, stop, onToken, t);
          return { tokens: Array.from(r.tokens), reason: r.reason };
        } finally {
          s.dispose();
        }
      }, signal);
    } catch (e) {
      return Promise.reject(e);
    }
  }

  /** Frees the session: waiting calls reject, a running one is cancelled. */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.queue.close(() => disposedError('session'));
    this.native.dispose();
    this.onDispose();
  }
}
