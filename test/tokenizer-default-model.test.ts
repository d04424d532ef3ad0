// The shipped default model's own vocabulary (issue 2): the tokenizer built from the GGUF's
// metadata (models/endless-code-q8_0.gguf, read through the engine) gives exactly the ids of
// Hugging Face `tokenizers` (npm package, the reference version 0.23.2) run on the tokenizer.json
// the model was trained with (models/train/export/tokenizer.json), on the shared reference texts,
// on this repository's own source files, and on random text.
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { readGgufMetadata } from '../server/engine/index';
import { Tokenizer } from '../server/tokenizer';
import { toWellFormed } from '../server/tokenizer/utf8';

const root = path.resolve(__dirname, '..');
const gguf = path.join(root, 'models', 'endless-code-q8_0.gguf');
const json = path.join(root, 'models', 'train', 'export', 'tokenizer.json');

interface HfTokenizer {
  encode(s: string, pair: null, opts: { addSpecialTokens: boolean }): Promise<{ getIds(): number[] }>;
}
// eslint-disable-next-line @typescript-eslint/no-require-imports
const hf: HfTokenizer = require('tokenizers').Tokenizer.fromFile(json);
const ours = Tokenizer.fromMetadata(readGgufMetadata(gguf));

async function same(text: string, what: string) {
  const want = (await hf.encode(text, null, { addSpecialTokens: false })).getIds();
  assert.deepEqual(ours.encode(text, { addBos: false }), want, what);
  assert.equal(ours.decode(want), text.normalize('NFC'), `${what}: decode`);
}

test('metadata: gpt2 BPE with the qwen2 pre-tokenizer, <|sink|> as BOS, FIM tokens', () => {
  assert.equal(ours.model, 'gpt2');
  assert.equal(ours.pre, 'qwen2');
  assert.equal(ours.bos, ours.tokenId('<|sink|>'));
  assert.equal(ours.bos, 0);
  assert.ok(ours.fim.prefix !== undefined && ours.fim.suffix !== undefined && ours.fim.middle !== undefined);
  assert.ok(ours.chatTemplate && ours.chatTemplate.includes('<|im_start|>'));
});

test('exact ids on the reference texts', async () => {
  const { texts } = JSON.parse(readFileSync(path.join(root, 'test/fixtures/tokenizer/texts.json'), 'utf8')) as { texts: string[] };
  // lone surrogates become U+FFFD first, as TextEncoder does (see test/tokenizer-reference.test.ts)
  for (const [i, t] of texts.entries()) await same(toWellFormed(t), `text ${i}`);
});

test('exact ids on this repository\'s own sources (never in the training data)', async () => {
  const files = [
    ...readdirSync(path.join(root, 'server', 'session')).map((f) => path.join('server', 'session', f)),
    ...readdirSync(path.join(root, 'native', 'src')).filter((f) => /\.(cpp|h)$/.test(f)).map((f) => path.join('native', 'src', f)),
    ...readdirSync(path.join(root, 'tools')).filter((f) => f.endsWith('.py')).map((f) => path.join('tools', f)),
  ];
  for (const f of files) await same(readFileSync(path.join(root, f), 'utf8'), f);
});

test('exact ids on random text with the stream-format markers', async () => {
  let a = 20261126;
  const rnd = () => { a = (a + 0x6d2b79f5) | 0; let t = Math.imul(a ^ (a >>> 15), 1 | a); t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t; return ((t ^ (t >>> 14)) >>> 0) / 4294967296; };
  const parts = [' ', '  ', '\n', '\t', '\r\n', 'def ', 'x', '_1', '(', ')', '{', '}', '=>', '123', '4567', 'é', 'e\u0301', '中文', '🙂', "'s", '<|file|>', '<|edit|>', '<|fim_prefix|>', '<|im_start|>', '<|sink', '|>', '@@ -1,2 +1,3 @@'];
  for (let i = 0; i < 1500; i++) {
    let s = '';
    const n = 1 + Math.floor(rnd() * 20);
    for (let j = 0; j < n; j++) s += parts[Math.floor(rnd() * parts.length)];
    await same(s, `random ${i}: ${JSON.stringify(s)}`);
  }
});
