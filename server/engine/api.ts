// The typed surface of the native engine as the rest of server/ sees it. server/engine/index.ts
// implements it over the addon (build/endless.node); nothing else touches the addon.
// Every method that runs the model is async and runs off the JS thread; calls on one session
// are queued in order (the native session is single-threaded).

export type Device = 'auto' | 'cpu' | 'cuda';

/** A GGUF metadata value. u64/i64 values that do not fit a double exactly come as bigint. */
export type MetaScalar = number | bigint | boolean | string;
export type MetaValue = MetaScalar | MetaScalar[];

export interface LoadOptions {
  threads?: number;            // 0/undefined: all cores
  device?: Device;             // default 'auto'
  onProgress?: (fraction: number) => void;
  signal?: AbortSignal;        // aborts the load
}

export interface ModelInfo {
  architecture: string;
  name: string;
  device: string;              // 'cpu' or 'cuda:<name>'
  notice: string;              // '' or what to know about the device: why it was not used (CPU fallback), a slower path (no cuBLAS)
  fingerprint: string;         // hex sha-256
  fileType: string;
  nVocab: number;
  nCtxTrain: number;
  nEmbd: number;
  nLayer: number;
  nHead: number;
  nHeadKv: number;
  headDim: number;
  nFf: number;
  nThreads: number;
  ropeFreqBase: number;
  normEps: number;
  nParams: number;
  weightBytes: number;
}

export interface SessionParams {
  sinks?: number;              // S (default 4; 1 for models trained with a sink token)
  window?: number;             // W (default: trained context - S)
  memoryMax?: number;          // largest pinned memory M (default 0)
  branchMax?: number;          // largest branch B (default 512)
  batch?: number;              // prefill chunk (default 256; 1024 on a CUDA device)
}

export interface SessionStats {
  seen: number;                // tokens appended to the stream over its life
  evicted: number;
  processed: number;           // tokens run through the model (stream + branch + memory)
  reused: number;              // branch tokens reused from the previous branch
  sinks: number; sinksMax: number;
  memory: number; memoryMax: number;
  window: number; windowMax: number;
  branch: number; branchMax: number;
  branchOpen: boolean;
  nVocab: number;
  cacheBytes: number;
}

export interface SamplerParams {
  temperature?: number;        // <= 0: greedy (default 0)
  topK?: number;
  topP?: number;
  minP?: number;
  repeatPenalty?: number;
  repeatLastN?: number;
  seed?: number;
}

export type LogitsMode = 'none' | 'last' | 'all';

export interface GenerateOptions {
  maxTokens: number;
  stop?: number[];                     // token ids that end generation (reported, not decoded)
  sampler?: SamplerParams;
  signal?: AbortSignal;
  onToken?: (token: number) => void;   // called on the JS thread as tokens arrive
}

export interface GenerateResult {
  tokens: number[];
  reason: 'stop' | 'length' | 'cancelled';
}

export interface EngineSession {
  readonly params: Required<SessionParams>;
  /** Appends tokens to the stream (or the open branch). Returns logits per mode (flattened). */
  decode(tokens: ArrayLike<number>, opts?: { logits?: LogitsMode; signal?: AbortSignal }): Promise<Float32Array | null>;
  lastLogits(): Promise<Float32Array>;
  branchBegin(): Promise<void>;
  branchDiscard(): Promise<void>;
  branchCommit(): Promise<void>;
  setMemory(tokens: ArrayLike<number>, opts?: { signal?: AbortSignal }): Promise<void>;
  clear(): Promise<void>;
  stats(): SessionStats;               // synchronous, cheap; reflects completed calls
  tokens(): Int32Array;                // cache order: sinks, memory, window, branch
  save(path: string): Promise<void>;
  restore(path: string): Promise<void>;
  generate(opts: GenerateOptions): Promise<GenerateResult>;
  dispose(): void;
}

export interface EngineModel {
  readonly path: string;
  readonly info: ModelInfo;
  readonly metadata: ReadonlyMap<string, MetaValue>;
  createSession(params?: SessionParams): EngineSession;
  dispose(): void;
}
