// The raw shape of the native addon (native/binding/addon.cpp) and how it is found on disk.
// Only server/engine/index.ts uses this module; everything here is unchecked by design: the
// wrapper validates arguments before they cross into native code.
import { existsSync } from 'node:fs';
import path from 'node:path';

export interface NativeCancelToken {
  cancel(): void;
  readonly cancelled: boolean;
}

export interface NativeModelInfo {
  architecture: string; name: string; device: string; notice: string; fingerprint: string; fileType: string;
  nVocab: number; nCtxTrain: number; nEmbd: number; nLayer: number; nHead: number; nHeadKv: number;
  headDim: number; nFf: number; nThreads: number; ropeFreqBase: number; normEps: number;
  nParams: number; weightBytes: number;
}

export interface NativeSessionStats {
  seen: number; evicted: number; processed: number; reused: number;
  sinks: number; sinksMax: number; memory: number; memoryMax: number;
  window: number; windowMax: number; branch: number; branchMax: number;
  branchOpen: boolean; nVocab: number; cacheBytes: number;
}

export interface NativeSampler {
  sample(logits: Float32Array, recent?: Int32Array): number;
  dispose(): void;
}

export interface NativeSession {
  decode(tokens: Int32Array, mode: 0 | 1 | 2, cancel?: NativeCancelToken): Promise<Float32Array | null>;
  lastLogits(): Promise<Float32Array>;
  branchBegin(): Promise<void>;
  branchDiscard(): Promise<void>;
  branchCommit(): Promise<void>;
  setMemory(tokens: Int32Array, cancel?: NativeCancelToken): Promise<void>;
  clear(): Promise<void>;
  stats(): NativeSessionStats;
  tokens(): Int32Array;
  save(path: string): Promise<void>;
  restore(path: string): Promise<void>;
  generate(sampler: NativeSampler, maxTokens: number, stop: Int32Array,
           onToken: ((token: number) => void) | undefined, cancel?: NativeCancelToken):
    Promise<{ tokens: Int32Array; reason: 'stop' | 'length' | 'cancelled' }>;
  dispose(): void;
  readonly disposed: boolean;
  readonly busy: boolean;
}

export interface NativeSessionParams {
  sinks?: number; window?: number; memoryMax?: number; branchMax?: number; batch?: number;
}

export interface NativeModel {
  describe(): NativeModelInfo;
  metadata(): Record<string, unknown>;
  createSession(params: NativeSessionParams): NativeSession;
  dispose(): void;
  readonly disposed: boolean;
}

export interface NativeSamplerParams {
  temperature?: number; topK?: number; topP?: number; minP?: number;
  repeatPenalty?: number; repeatLastN?: number; seed?: number;
}

export interface NativeAddon {
  CancelToken: new () => NativeCancelToken;
  Sampler: new (params: NativeSamplerParams) => NativeSampler;
  loadModel(path: string, params: { threads: number; device: 0 | 1 | 2 },
            onProgress: ((fraction: number) => void) | undefined, cancel: NativeCancelToken): Promise<NativeModel>;
  readGgufMetadata(path: string): Record<string, unknown>;
  systemInfo(): string;
  cudaDeviceCount(): number;
  statusName(status: number): string;
  apiVersion: number;
}

const ADDON_FILE = path.join('build', 'endless.node');

/** Where the addon is: $ENDLESS_ADDON, else build/endless.node in this directory or one above. */
export function findAddonPath(start: string = __dirname): { path: string | null; searched: string[] } {
  const searched: string[] = [];
  const env = process.env.ENDLESS_ADDON;
  if (env) {
    searched.push(env);
    return { path: existsSync(env) ? path.resolve(env) : null, searched };
  }
  let dir = path.resolve(start);
  for (;;) {
    const candidate = path.join(dir, ADDON_FILE);
    searched.push(candidate);
    if (existsSync(candidate)) return { path: candidate, searched };
    const parent = path.dirname(dir);
    if (parent === dir) return { path: null, searched };
    dir = parent;
  }
}

let cached: NativeAddon | null = null;

/** Loads the addon once per process (per worker thread: napi keeps per-environment state). */
export function getAddon(): NativeAddon {
  if (cached) return cached;
  const found = findAddonPath();
  if (!found.path) {
    const where = process.env.ENDLESS_ADDON ? `ENDLESS_ADDON=${process.env.ENDLESS_ADDON} does not exist`
      : `looked for ${ADDON_FILE} in ${found.searched.length} directories from ${__dirname} upward`;
    const err = new Error(`The Endless native addon was not found (${where}). Run \`npm install\` ` +
      '(or `npm run build:native`) in the repository to build it, or set ENDLESS_ADDON to its path.');
    (err as Error & { code: string }).code = 'ENDLESS_ADDON_MISSING';
    throw err;
  }
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    cached = require(found.path) as NativeAddon;
  } catch (e) {
    const err = new Error(`The Endless native addon at ${found.path} could not be loaded: ${(e as Error).message}. ` +
      'Rebuild it with `npm run build:native`.');
    (err as Error & { code: string }).code = 'ENDLESS_ADDON_LOAD';
    throw err;
  }
  return cached;
}
