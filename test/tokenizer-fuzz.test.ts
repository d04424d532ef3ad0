// Property/fuzz tests of the tokenizer on the real Qwen3, Llama 3 and Llama 2 vocabularies
// (issue 8): on thousands of random strings of arbitrary Unicode (lone surrogates, noncharacters,
// combining marks, emoji, whitespace of every kind, special-token spellings, random bytes read as
// text), encode never throws and gives ids inside the vocabulary; decode(encode(s)) == s
// (NFC-normalized for qwen2; lone surrogates come back as U+FFFD; for SentencePiece U+2581 comes
// back as a space); the stream decoder's output, concatenated, equals decode on random id
// sequences and emits only well-formed text; and the ids agree with transformers.js
// (@lenml/tokenizers, an independent implementation) on random text.
//
// Deterministic by default; TOKENIZER_FUZZ_SEED=<n> and TOKENIZER_FUZZ_ITERS=<n> change the
// seed and the number of strings per vocabulary (default 2000).
//   node --import tsx --test test/tokenizer-fuzz.test.ts

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { Tokenizer } from '../server/tokenizer';
import { LETTER, NUMBER } from '../server/tokenizer/unicode-classes';
import { toWellFormed } from '../server/tokenizer/utf8';
import { tokenizerJsonPath, VOCABS, vocabTokenizer, type VocabName } from './helpers/tokenizer-vocabs';

const SEED = Number(process.env.TOKENIZER_FUZZ_SEED ?? 20261126);
const ITERS = Number(process.env.TOKENIZER_FUZZ_ITERS ?? 2000);

/** mulberry32: a small seeded PRNG, so a failure can be replayed from its seed. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const FRAGMENTS = [
  ' ', ' ', '  ', '    ', '\n', '\n\n', '\t', '\r\n', '\r', ' \n ', '\u00a0', '\u3000', '\u2028', '\u0085', '\ufeff', '\u200b',
  'a', 'the', 'The', 'HELLO', 'ſ', "'s", "'S", "'ll", "'RE", "'", '"', '`', 'x_1', 'fooBar', 'snake_case',
  '(', ')', '{', '}', '[', ']', ';', '.', ',', ':', '=>', '===', '!=', '//', '/*', '*/', '#', '$', '->', '::', '...',
  '0', '7', '12', '345', '6789', '3.14', '1e-9', '٣٤', '५',
  'é', 'e\u0301', 'A\u030a', '\u212b', 'ü', 'ß', 'İ', 'ﬁ', '中', '文字', 'ア', 'ｶ', 'ㅎ', '한국', 'Ω', 'ж', 'עב', 'ع', 'हि',
  '😀', '👍🏽', '👨‍👩‍👧', '🇺🇸', '1\ufe0f\u20e3', '\u2581', '\u2581\u2581x', '\ufffd', '\uffff', '\u{10FFFF}', '\u{E0001}',
  '<|im_start|>', '<|im_end|>', '<|endoftext|>', '<|fim_prefix|>', '<|begin_of_text|>', '<|eot_id|>', '<s>', '</s>', '<unk>',
  '<think>', '<|im_', 'end|>', '<0x41>', '[PAD151700]',
];

function randomCodePoint(rnd: () => number): string {
  const r = rnd();
  if (r < 0.4) return String.fromCharCode(0x20 + Math.floor(rnd() * 0x5f)); // ASCII
  if (r < 0.5) return String.fromCharCode(Math.floor(rnd() * 0x20)); // C0 controls
  if (r < 0.75) return String.fromCharCode(0x80 + Math.floor(rnd() * 0x2f80)); // Latin .. Devanagari .. symbols
  if (r < 0.85) return String.fromCharCode(0x3000 + Math.floor(rnd() * 0xd000)); // CJK, Hangul, surrogates, PUA, specials
  return String.fromCodePoint(0x10000 + Math.floor(rnd() * 0x100000)); // astral
}

/** A random string of up to ~80 UTF-16 units; `wild` adds random bytes and raw surrogates. */
function randomText(rnd: () => number, wild = true): string {
  const mode = rnd();
  if (wild && mode < 0.08) {
    // Random bytes read as UTF-8 (invalid sequences become U+FFFD) or as Latin-1.
    const bytes = Buffer.from(Array.from({ length: Math.floor(rnd() * 48) }, () => Math.floor(rnd() * 256)));
    return mode < 0.04 ? bytes.toString('utf8') : bytes.toString('latin1');
  }
  if (wild && mode < 0.14) {
    // Raw UTF-16 code units: lone surrogates and broken pairs.
    return String.fromCharCode(...Array.from({ length: Math.floor(rnd() * 24) }, () => (rnd() < 0.5 ? 0xd800 + Math.floor(rnd() * 0x800) : Math.floor(rnd() * 0x10000))));
  }
  let s = '';
  const n = Math.floor(rnd() * 16);
  for (let k = 0; k < n; k++) s += rnd() < 0.35 ? randomCodePoint(rnd) : FRAGMENTS[Math.floor(rnd() * FRAGMENTS.length)];
  return s;
}

const LETTER16 = new RegExp(`[${LETTER}]`, 'u');
const NUMBER16 = new RegExp(`[${NUMBER}]`, 'u');

/** Whether JavaScript's regex classes treat a character as `tokenizers` (Oniguruma) does. */
function sameInJs(c: string): boolean {
  if (c === '\u0085' || c === '\ufeff' || c === '\u017f') return false;
  return /\p{L}/u.test(c) === LETTER16.test(c) && /\p{N}/u.test(c) === NUMBER16.test(c);
}

/** What decode(encode(s)) must give back. */
function expectedRoundTrip(tok: Tokenizer, s: string): string {
  const clean = toWellFormed(s);
  if (tok.model === 'llama') return clean.replaceAll('\u2581', ' ');
  return tok.pre === 'qwen2' ? clean.normalize('NFC') : clean;
}

function checkIds(tok: Tokenizer, ids: number[], s: string): void {
  for (const id of ids) {
    if (!Number.isInteger(id) || id < 0 || id >= tok.vocabSize) assert.fail(`id ${id} outside the vocabulary for ${JSON.stringify(s)}`);
  }
}

function streamDecode(tok: Tokenizer, ids: ArrayLike<number>, skipSpecial: boolean): string[] {
  const d = tok.createStreamDecoder({ skipSpecial });
  const out: string[] = [];
  for (let i = 0; i < ids.length; i++) out.push(d.push(ids[i]));
  out.push(d.flush());
  return out;
}

for (const name of Object.keys(VOCABS) as VocabName[]) {
  describe(`tokenizer fuzz: ${name} (seed ${SEED}, ${ITERS} strings)`, () => {
    const tok = vocabTokenizer(name);
    const seedOf = (k: number) => SEED * 31 + k;

    test('encode never throws, ids are in the vocabulary, decode(encode(s)) == s', () => {
      const rnd = prng(seedOf(1));
      for (let it = 0; it < ITERS; it++) {
        const s = randomText(rnd);
        const want = expectedRoundTrip(tok, s);
        const msg = `seed ${SEED} iteration ${it}: ${JSON.stringify(s)}`;
        // parseSpecial: false keeps every character text, so the round trip is exact.
        const plain = tok.encode(s, { addBos: false, parseSpecial: false });
        checkIds(tok, plain, s);
        assert.equal(tok.decode(plain), want, msg);
        const withSpecial = tok.encode(s);
        checkIds(tok, withSpecial, s);
        if (tok.model === 'gpt2') {
          // Special tokens decode to their own text; for qwen2 normalization happens between them.
          const back = tok.decode(withSpecial);
          assert.equal(tok.pre === 'qwen2' ? back.normalize('NFC') : back, want, msg);
        } else {
          // SentencePiece puts a "▁" before the text after every special token: equal but for spaces.
          const back = tok.decode(tok.encode(s, { addBos: false }));
          assert.equal(back.replaceAll(' ', ''), want.replaceAll(' ', ''), msg);
        }
      }
    });

    test('the stream decoder equals decode on encoded text, emitting only whole characters', () => {
      const rnd = prng(seedOf(2));
      for (let it = 0; it < ITERS / 2; it++) {
        const s = randomText(rnd);
        const ids = tok.encode(s);
        for (const skipSpecial of [false, true]) {
          const parts = streamDecode(tok, ids, skipSpecial);
          const whole = tok.decode(ids, { skipSpecial });
          assert.equal(parts.join(''), whole, `seed ${SEED} iteration ${it}: ${JSON.stringify(s)}`);
          for (const p of parts) assert.equal(toWellFormed(p), p);
          // Valid UTF-8 all along: no piece may show a replacement for a split character.
          if (!whole.includes('\ufffd')) assert.ok(!parts.some((p) => p.includes('\ufffd')));
        }
      }
    });

    test('the stream decoder equals decode on random id sequences (bytes, specials, bad ids)', () => {
      const rnd = prng(seedOf(3));
      // Byte-ish tokens make partial UTF-8 likely: <0xXX> tokens, or byte-level single bytes.
      const partial: number[] = [];
      for (let id = 0; id < tok.vocabSize && partial.length < 4000; id++) {
        const b = tok.tokenBytes(id);
        if (b.length > 0 && b.length <= 3 && b.some((x) => x >= 0x80)) partial.push(id);
      }
      for (let it = 0; it < ITERS / 2; it++) {
        const n = Math.floor(rnd() * 24);
        const ids = Array.from({ length: n }, () => {
          const r = rnd();
          if (r < 0.6) return partial[Math.floor(rnd() * partial.length)];
          if (r < 0.97) return Math.floor(rnd() * tok.vocabSize);
          return r < 0.985 ? -1 : tok.vocabSize + Math.floor(rnd() * 100);
        });
        for (const skipSpecial of [false, true]) {
          const parts = streamDecode(tok, ids, skipSpecial);
          assert.equal(parts.join(''), tok.decode(ids, { skipSpecial }), `seed ${SEED} iteration ${it}: ids ${ids.join(',')}`);
          for (const p of parts) assert.equal(toWellFormed(p), p);
        }
      }
    });

    test('agrees with transformers.js (@lenml/tokenizers) on random text', () => {
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      const ref = require(VOCABS[name]).fromPreTrained() as { encode(s: string, o: { add_special_tokens: boolean }): number[] };
      const rnd = prng(seedOf(4));
      for (let it = 0; it < ITERS / 2; it++) {
        // transformers.js runs the split regex with JavaScript's \s (U+FEFF in, U+0085 out), the
        // runtime's Unicode version for \p{L}/\p{N}, and without Unicode case folding; keep out
        // the characters where that differs from `tokenizers` (checked against `tokenizers`
        // itself in tokenizer-reference.test.ts and the test below).
        const s = [...toWellFormed(randomText(rnd, false))].map((c) => (sameInJs(c) ? c : 'x')).join('');
        const ours = tok.encode(s, { addBos: false });
        const theirs = ref.encode(s, { add_special_tokens: false });
        assert.deepEqual(ours, theirs, `seed ${SEED} iteration ${it}: ${JSON.stringify(s)}`);
      }
    });

    test('agrees with Hugging Face tokenizers (npm `tokenizers`, when installed) on wild text', async (t) => {
      let hfTokenizers: { Tokenizer: { fromFile(p: string): HfTokenizer } };
      try {
        // eslint-disable-next-line @typescript-eslint/no-require-imports
        hfTokenizers = require('tokenizers');
      } catch {
        t.skip('the npm package `tokenizers` (0.23.2, the reference version) is not installed');
        return;
      }
      const hf = hfTokenizers.Tokenizer.fromFile(tokenizerJsonPath(name));
      const rnd = prng(seedOf(5));
      for (let it = 0; it < ITERS; it++) {
        const s = toWellFormed(randomText(rnd));
        const ours = tok.encode(s, { addBos: false });
        const theirs = (await hf.encode(s, null, { addSpecialTokens: false })).getIds();
        assert.deepEqual(ours, theirs, `seed ${SEED} iteration ${it}: ${JSON.stringify(s)}`);
      }
    });
  });
}

interface HfTokenizer {
  encode(s: string, pair: null, opts: { addSpecialTokens: boolean }): Promise<{ getIds(): number[] }>;
}

test('tokenizing 1 MB of code takes well under a second per vocabulary', () => {
  let code = '';
  const line = (i: number) =>
    `  const value_${i % 97} = await fetchItem(${i}, "key-${i % 13}"); // item ${i}\n` +
    (i % 5 === 0 ? `\tif (value_${i % 97} !== undefined && count >= ${i * 7}) { return { ok: true }; }\n` : '');
  for (let i = 0; code.length < 1 << 20; i++) code += line(i);
  for (const name of Object.keys(VOCABS) as VocabName[]) {
    const tok = vocabTokenizer(name);
    tok.encode(code.slice(0, 4096)); // warm up the JIT
    const t0 = performance.now();
    const ids = tok.encode(code);
    const ms = performance.now() - t0;
    assert.ok(ids.length > 100_000);
    assert.ok(ms < 1000, `${name}: ${ms.toFixed(0)} ms for ${code.length} characters`);
    assert.equal(tok.decode(ids, { skipSpecial: true }), code);
  }
});
