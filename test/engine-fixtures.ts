// Reading the model fixtures of test/fixtures/models (written by tools/make_fixtures.py and
// tools/stream_reference.py) and comparing logits, for test/engine*.test.ts and test/cli*.test.ts.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync } from 'node:fs';
import path from 'node:path';

export const FIXTURE_DIR = path.join(__dirname, 'fixtures', 'models');
export const ROOT = path.join(__dirname, '..');

export interface LogitsBlob { shape: [number, number]; dtype: string; base64: string }

export interface ModelFixture {
  model: string;
  architecture: string;
  ids: number[];
  logits: LogitsBlob;
  files: Record<string, string>;            // type ('f32', 'f16', 'bf16', 'q8_0') -> file name
  weights_rounded: Record<string, LogitsBlob>; // 'F16' | 'BF16' | 'Q8_0'
  streaming: { sinks: number; window: number; steps: number[]; kept: string; logits: LogitsBlob }[];
  before_eviction: { sinks: number; window: number; steps: number[]; logits: LogitsBlob };
}

/** tools/stream_reference.py: the cached StreamingLLM reference (float64 numpy, F32 weights). */
export interface StreamFixture {
  model: string;
  ids: number[];
  semantics: string;
  streaming: { sinks: number; window: number; steps: number[]; logits: LogitsBlob }[];
}

export function decodeF32(base64: string): Float32Array {
  const b = Buffer.from(base64, 'base64');
  const out = new Float32Array(b.length / 4);
  for (let i = 0; i < out.length; i++) out[i] = b.readFloatLE(i * 4);
  return out;
}

/** Rows of a [n, nVocab] blob. */
export function rowsOf(blob: LogitsBlob): Float32Array[] {
  if (blob.dtype !== 'float32-le') throw new Error(`unexpected logits dtype ${blob.dtype}`);
  const all = decodeF32(blob.base64);
  const [n, v] = blob.shape;
  if (all.length !== n * v) throw new Error(`logits blob has ${all.length} values, shape says ${n}x${v}`);
  return Array.from({ length: n }, (_, i) => all.subarray(i * v, (i + 1) * v));
}

export function splitRows(flat: Float32Array, nVocab: number): Float32Array[] {
  return Array.from({ length: flat.length / nVocab }, (_, i) => flat.subarray(i * nVocab, (i + 1) * nVocab));
}

/** The fixture models present: names with a <name>.json that lists GGUF files. */
export function listModelFixtures(): string[] {
  if (!existsSync(FIXTURE_DIR)) return [];
  return readdirSync(FIXTURE_DIR)
    .filter((f) => f.endsWith('.json') && !f.endsWith('.stream.json'))
    .map((f) => f.slice(0, -5))
    .filter((name) => {
      try {
        const fx = JSON.parse(readFileSync(path.join(FIXTURE_DIR, `${name}.json`), 'utf8'));
        return fx.files && fx.logits && Array.isArray(fx.ids);
      } catch {
        return false;
      }
    })
    .sort();
}

export function loadModelFixture(name: string): ModelFixture {
  return JSON.parse(readFileSync(path.join(FIXTURE_DIR, `${name}.json`), 'utf8')) as ModelFixture;
}

/** <name>.stream.json from the fixtures, or from $ENDLESS_STREAM_FIXTURES (a freshly made one). */
export function loadStreamFixture(name: string): StreamFixture | null {
  for (const dir of [FIXTURE_DIR, process.env.ENDLESS_STREAM_FIXTURES]) {
    if (!dir) continue;
    const p = path.join(dir, `${name}.stream.json`);
    if (existsSync(p)) return JSON.parse(readFileSync(p, 'utf8')) as StreamFixture;
  }
  return null;
}

/** Where derived fixture files go (git-ignored). */
export const DERIVED_FIXTURE_DIR = path.join(ROOT, 'build', 'fixtures');

/**
 * The path of a fixture file. Only the F32 GGUFs are in git: an F16 or BF16 file a fixture lists
 * is derived from its F32 file on first use by tools/requantize_gguf.py (byte-identical to what
 * tools/convert_hf.py wrote from the same weights; tools/test_tools.py checks the derivation).
 */
export function fixturePath(file: string): string {
  const committed = path.join(FIXTURE_DIR, file);
  const m = /^(.+)-(f16|bf16)\.gguf$/.exec(file);
  if (existsSync(committed) || !m) return committed;
  const derived = path.join(DERIVED_FIXTURE_DIR, file);
  if (existsSync(derived)) return derived;
  const src = path.join(FIXTURE_DIR, `${m[1]}-f32.gguf`);
  if (!existsSync(src)) return committed;  // nothing to derive it from: callers skip on a missing file
  mkdirSync(DERIVED_FIXTURE_DIR, { recursive: true });
  const tmp = `${derived}.${process.pid}.tmp`;  // test files run in parallel: write, then rename
  try {
    execFileSync('python3', [path.join(ROOT, 'tools', 'requantize_gguf.py'), src, tmp, '--outtype', m[2]], { stdio: ['ignore', 'ignore', 'pipe'] });
  } catch (e) {
    throw new Error(`deriving the fixture ${file} from ${path.basename(src)} failed (python3 with numpy is needed): ${(e as Error).message}`);
  }
  renameSync(tmp, derived);
  return derived;
}

/** ||a - b|| / ||b|| */
export function relErr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`length mismatch: ${a.length} vs ${b.length}`);
  let num = 0, den = 0;
  for (let i = 0; i < a.length; i++) {
    const d = a[i] - b[i];
    num += d * d;
    den += b[i] * b[i];
  }
  return Math.sqrt(num / den);
}

export function argmax(a: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < a.length; i++) if (a[i] > a[best]) best = i;
  return best;
}

/**
 * Tolerances per weight type, on ||engine - ref|| / ||ref|| per position.
 *   rounded:  against transformers run with the same rounded weights (the fixture's
 *             weights_rounded; for F32 the plain reference): what the engine's own arithmetic adds.
 *   f32:      against transformers with the original F32 weights: weight rounding included.
 *   tie:      the engine's argmax must be the reference's, unless the reference scores the
 *             engine's pick within `tie` of its best (a near-tie that the type's rounding can flip).
 * Measured (CPU, AVX-512, 2026-11-26) on the three fixtures: F32 <= 4.5e-6; F16 <= 5.9e-6 vs
 * rounded, 4.2e-3 vs F32; BF16 <= 6.4e-6 vs rounded, 3.4e-2 vs F32; Q8_0 <= 7.5e-2 vs rounded,
 * 1.4e-1 vs F32 (Q8_0 weights are multiplied with activations quantized to 8 bits per block of
 * 32, as llama.cpp does, which adds error the weight rounding alone does not explain), with
 * Q8_0 argmax flips only where the reference's top two are within 0.21.
 * llama.cpp itself (node-llama-cpp 3.21.1, CPU) on the same Q8_0 files is as far from the
 * rounded-weights reference: 5.4e-2 to 7.6e-2 on centred log-probabilities, against Endless's
 * 5.1e-2 to 7.5e-2 (and 1.3e-3 to 3.8e-3 on the F32 files, Endless 3e-6 to 4.5e-6).
 */
export const TOLERANCE: Record<string, { rounded: number; f32: number; tie: number }> = {
  f32: { rounded: 1e-4, f32: 1e-4, tie: 0 },
  f16: { rounded: 1e-4, f32: 1e-2, tie: 1e-3 },
  bf16: { rounded: 1e-4, f32: 6e-2, tie: 1e-3 },
  q8_0: { rounded: 0.12, f32: 0.2, tie: 0.3 },
};

export function roundedKey(type: string): string | null {
  return type === 'f32' ? null : type.toUpperCase();
}
