// Shared pieces of the default model's evaluation scripts (models/eval/*.ts): the held-out set
// (heldout/MANIFEST.json + heldout/<lang>/<file>, as models/train/prep_data.py writes it), the
// special tokens by name, a seeded RNG, log-probabilities and small statistics.
import { readFileSync, renameSync, writeFileSync, mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { Tokenizer } from '../../server/tokenizer/index';

export const LANGS = ['python', 'js', 'cpp'] as const;
export type Lang = (typeof LANGS)[number];

export interface HeldoutFile {
  file: string;      // path inside the held-out folder (heldout/<lang>/...)
  lang: Lang;
  path: string;      // the file's path in its source (what the stream's <|file_sep|> line names)
  source: string;
  license: string;
  text: string;
}

/** Reads <dir>/heldout/MANIFEST.json and every file it lists. */
export function loadHeldout(dir: string): HeldoutFile[] {
  const manPath = join(dir, 'heldout', 'MANIFEST.json');
  let man: unknown;
  try {
    man = JSON.parse(readFileSync(manPath, 'utf8'));
  } catch (e) {
    throw new Error(`held-out set: cannot read ${manPath}: ${(e as Error).message}`);
  }
  if (!Array.isArray(man)) throw new Error(`held-out set: ${manPath} is not a JSON array`);
  const out: HeldoutFile[] = [];
  for (const m of man as Record<string, unknown>[]) {
    const lang = String(m.lang) as Lang;
    if (!LANGS.includes(lang)) throw new Error(`held-out set: ${String(m.file)}: unknown language ${String(m.lang)}`);
    const text = readFileSync(join(dir, String(m.file)), 'utf8');
    out.push({ file: String(m.file), lang, path: String(m.path), source: String(m.source ?? ''), license: String(m.license ?? ''), text });
  }
  if (out.length === 0) throw new Error(`held-out set: ${manPath} lists no files`);
  return out;
}

/** The ids of the default model's special tokens; fails naming the missing one. */
export function specialIds(tok: Tokenizer) {
  const need = ['<|sink|>', '<|endoftext|>', '<|fim_prefix|>', '<|fim_suffix|>', '<|fim_middle|>', '<|file_sep|>'] as const;
  const ids: Record<string, number> = {};
  for (const t of need) {
    const id = tok.tokenId(t);
    if (id === undefined) throw new Error(`the model's vocabulary has no ${t} token (not the default model's vocabulary?)`);
    ids[t] = id;
  }
  return {
    sink: ids['<|sink|>'], eos: ids['<|endoftext|>'], pre: ids['<|fim_prefix|>'], suf: ids['<|fim_suffix|>'],
    mid: ids['<|fim_middle|>'], fileSep: ids['<|file_sep|>'],
  };
}

/** mulberry32: a small seeded PRNG, so every sample is reproducible from its seed. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function shuffle<T>(a: T[], r: () => number): T[] {
  for (let i = a.length - 1; i > 0; i--) {
    const j = Math.floor(r() * (i + 1));
    [a[i], a[j]] = [a[j], a[i]];
  }
  return a;
}

/** -log p(t) under a row of logits (log-sum-exp with the max subtracted). */
export function nllOf(row: Float32Array, t: number): number {
  let max = -Infinity;
  for (let i = 0; i < row.length; i++) if (row[i] > max) max = row[i];
  let sum = 0;
  for (let i = 0; i < row.length; i++) sum += Math.exp(row[i] - max);
  return Math.log(sum) - (row[t] - max);
}

export function argmax(row: Float32Array): number {
  let best = 0;
  for (let i = 1; i < row.length; i++) if (row[i] > row[best]) best = i;
  return best;
}

/** Writes JSON atomically (temp file + rename), creating the folder. */
export function writeJson(path: string, value: unknown): void {
  mkdirSync(dirname(path), { recursive: true });
  const tmp = `${path}.tmp${process.pid}`;
  writeFileSync(tmp, JSON.stringify(value, null, 1) + '\n');
  renameSync(tmp, path);
}

/** Minimal --key value / --flag argument parsing; unknown options are an error. */
export function parseArgs(argv: string[], spec: Record<string, 'string' | 'int' | 'flag'>, usage: string): Record<string, string | number | boolean> {
  const out: Record<string, string | number | boolean> = {};
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--help' || a === '-h') { process.stdout.write(usage); process.exit(0); }
    if (!a.startsWith('--') || !(a.slice(2) in spec)) throw new Error(`unknown argument ${a}\n${usage}`);
    const k = a.slice(2);
    if (spec[k] === 'flag') { out[k] = true; continue; }
    const v = argv[++i];
    if (v === undefined) throw new Error(`${a} needs a value\n${usage}`);
    if (spec[k] === 'int') {
      if (!/^\d+$/.test(v)) throw new Error(`${a} needs a non-negative integer, got ${v}`);
      out[k] = Number(v);
    } else out[k] = v;
  }
  return out;
}

/** The stream text of one held-out file, in the training's plain format. */
export function fileRecord(f: HeldoutFile): string {
  return `<|file_sep|>${f.path}\n${f.text}<|endoftext|>`;
}
