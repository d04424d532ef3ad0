// The tokenizer of a GGUF model, built from its tokenizer.ggml.* metadata without any external
// tokenizer library. Two models:
// - "gpt2": byte-level BPE with a regex pre-tokenizer chosen by tokenizer.ggml.pre (qwen2 with NFC
//   normalization, llama-bpe with Llama 3's ignore_merges, gpt-2/default);
// - "llama": SentencePiece-style BPE by token score with byte fallback (Llama 2).
// Token ids match Hugging Face `tokenizers` 0.23 on the models' tokenizer.json (see
// test/tokenizer-reference.test.ts and test/tokenizer-fuzz.test.ts); the pre-tokenizer uses
// Unicode 16.0 letter/number classes as tokenizers does, whatever the runtime's ICU.
//
// Text in, ids out:
// - Control, user-defined and unknown tokens written in the text become their ids (parseSpecial),
//   leftmost and longest first.
// - Unpaired UTF-16 surrogates in the input are encoded as U+FFFD (as TextEncoder does), so
//   decode(encode(s)) has U+FFFD where s had a lone surrogate. encode never throws on a string.
// - qwen2 normalizes each piece of text between special tokens to NFC (String.normalize, i.e.
//   the runtime's ICU; equal to tokenizers' for characters assigned in both Unicode versions).
// - SentencePiece: every piece of text (the start, and after each special token) gets a "▁"
//   prefix when tokenizer.ggml.add_space_prefix (default true), so text right after a special
//   token decodes with one extra space; U+2581 in the input decodes as a space.
// Ids in, text out:
// - Control tokens decode to their text unless skipSpecial; user-defined tokens always do;
//   unused ([PAD...]) tokens and ids outside the vocabulary (a model's padded embedding rows)
//   contribute nothing, so decoding never throws.
// - Bytes that are not valid UTF-8 decode to U+FFFD, one per maximal invalid subpart (WHATWG,
//   like tokenizers' byte-level decoder; its byte-fallback decoder gives one U+FFFD per byte).
// - SentencePiece: one leading space of the whole text is dropped (HF's Strip decoder).

import type { MetaValue } from '../engine/api';
import { byteLevelDecode } from './byte-level';
import { BytePairEncoder } from './bpe';
import { createPreTokenizer, preFamily, type PreTokenizer } from './pretokenize';
import { SpecialMatcher, type SpecialToken } from './special';
import { SentencePieceEncoder } from './spm';
import { toWellFormed, utf8Decode, utf8Encode, utf8IncompleteTail } from './utf8';

/** tokenizer.ggml.token_type values. */
export const TokenType = {
  Undefined: 0,
  Normal: 1,
  Unknown: 2,
  Control: 3,
  UserDefined: 4,
  Unused: 5,
  Byte: 6,
} as const;

export interface EncodeOptions {
  /** Prepend BOS (default: tokenizer.ggml.add_bos_token). */
  addBos?: boolean;
  /** Turn special/added token texts into their ids (default true). */
  parseSpecial?: boolean;
}

export interface DecodeOptions {
  /** Leave out control and unknown tokens (default false). */
  skipSpecial?: boolean;
}

export interface StreamDecoder {
  /** Adds one token; returns the text of the characters it completed (possibly ''). */
  push(id: number): string;
  /** Ends the stream: returns what is held back (an unfinished character as U+FFFD) and resets. */
  flush(): string;
}

export interface FimTokens {
  prefix?: number;
  suffix?: number;
  middle?: number;
  pad?: number;
}

const SPACE_MARK = '\u2581'; // "▁"
const BYTE_TOKEN = /^<0x([0-9A-Fa-f]{2})>$/;

// ---- metadata access with clear errors ----

function metaString(meta: ReadonlyMap<string, MetaValue>, key: string): string | undefined {
  const v = meta.get(key);
  if (v === undefined) return undefined;
  if (typeof v !== 'string') throw new Error(`tokenizer: ${key} must be a string, got ${describe(v)}`);
  return v;
}

function metaBool(meta: ReadonlyMap<string, MetaValue>, key: string): boolean | undefined {
  const v = meta.get(key);
  if (v === undefined) return undefined;
  if (typeof v === 'boolean') return v;
  if ((typeof v === 'number' || typeof v === 'bigint') && (v == 0 || v == 1)) return v == 1;
  throw new Error(`tokenizer: ${key} must be a bool, got ${describe(v)}`);
}

function metaTokenId(meta: ReadonlyMap<string, MetaValue>, key: string, nTokens: number): number | undefined {
  const v = meta.get(key);
  if (v === undefined) return undefined;
  const n = typeof v === 'bigint' ? Number(v) : v;
  if (typeof n !== 'number' || !Number.isInteger(n)) throw new Error(`tokenizer: ${key} must be an integer, got ${describe(v)}`);
  // llama.cpp writes -1 (as u32 0xFFFFFFFF when unsigned) for "no such token".
  if (n === -1 || n === 0xffffffff) return undefined;
  if (n < 0 || n >= nTokens) throw new Error(`tokenizer: ${key} = ${n} is outside the vocabulary (${nTokens} tokens)`);
  return n;
}

function metaArray(meta: ReadonlyMap<string, MetaValue>, key: string): readonly unknown[] | undefined {
  const v = meta.get(key);
  if (v === undefined) return undefined;
  if (!Array.isArray(v)) throw new Error(`tokenizer: ${key} must be an array, got ${describe(v)}`);
  return v;
}

function describe(v: unknown): string {
  if (Array.isArray(v)) return `an array of ${v.length}`;
  return `${typeof v} ${String(v).slice(0, 40)}`;
}

export class Tokenizer {
  readonly model: 'gpt2' | 'llama';
  readonly pre: string;
  readonly vocabSize: number;
  readonly bos: number | undefined;
  readonly eos: number | undefined;
  readonly addBos: boolean;
  readonly fim: FimTokens;
  readonly chatTemplate: string | undefined;
  /** Llama/SentencePiece: a "▁" is put before the text (and one leading space removed on decode). */
  readonly addSpacePrefix: boolean;
  readonly unk: number | undefined;

  private readonly tokens: readonly string[];
  private readonly types: Uint8Array;
  private readonly textToId = new Map<string, number>();
  private readonly specials: SpecialMatcher;
  private readonly bytesCache: (Uint8Array | undefined)[];
  private readonly bpe: BytePairEncoder | undefined;
  private readonly preTokenizer: PreTokenizer | undefined;
  private readonly nfc: boolean;
  private readonly spm: SentencePieceEncoder | undefined;

  private constructor(meta: ReadonlyMap<string, MetaValue>) {
    const model = metaString(meta, 'tokenizer.ggml.model');
    if (model === undefined) throw new Error('tokenizer: the GGUF has no tokenizer (tokenizer.ggml.model is missing)');
    if (model !== 'gpt2' && model !== 'llama') {
      throw new Error(`tokenizer: unsupported tokenizer.ggml.model "${model}" (supported: gpt2, llama)`);
    }
    this.model = model;

    const rawTokens = metaArray(meta, 'tokenizer.ggml.tokens');
    if (rawTokens === undefined) throw new Error('tokenizer: tokenizer.ggml.tokens is missing');
    if (rawTokens.length === 0) throw new Error('tokenizer: tokenizer.ggml.tokens is empty');
    rawTokens.forEach((t, i) => {
      if (typeof t !== 'string') throw new Error(`tokenizer: tokenizer.ggml.tokens[${i}] is not a string`);
    });
    const tokens = rawTokens as string[];
    const n = tokens.length;
    this.tokens = tokens;
    this.vocabSize = n;

    const types = new Uint8Array(n).fill(TokenType.Normal);
    const rawTypes = metaArray(meta, 'tokenizer.ggml.token_type');
    if (rawTypes !== undefined) {
      if (rawTypes.length !== n) {
        throw new Error(`tokenizer: tokenizer.ggml.token_type has ${rawTypes.length} entries for ${n} tokens`);
      }
      rawTypes.forEach((t, i) => {
        const v = typeof t === 'bigint' ? Number(t) : t;
        if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > 6) {
          throw new Error(`tokenizer: tokenizer.ggml.token_type[${i}] = ${String(t)} is not a token type (0..6)`);
        }
        types[i] = v === TokenType.Undefined ? TokenType.Normal : v;
      });
    } else if (model === 'llama') {
      // Without types, recognise byte tokens by their spelling.
      tokens.forEach((t, i) => {
        if (BYTE_TOKEN.test(t)) types[i] = TokenType.Byte;
      });
    }
    this.types = types;
    for (let i = 0; i < n; i++) if (!this.textToId.has(tokens[i])) this.textToId.set(tokens[i], i);

    this.bos = metaTokenId(meta, 'tokenizer.ggml.bos_token_id', n);
    this.eos = metaTokenId(meta, 'tokenizer.ggml.eos_token_id', n);
    let unk = metaTokenId(meta, 'tokenizer.ggml.unknown_token_id', n);
    if (unk === undefined) {
      const i = types.indexOf(TokenType.Unknown);
      if (i >= 0) unk = i;
    }
    this.unk = unk;
    const addBos = metaBool(meta, 'tokenizer.ggml.add_bos_token');
    this.addBos = addBos ?? model === 'llama';
    if (this.addBos && this.bos === undefined) {
      const why = addBos === undefined ? 'a llama vocabulary adds BOS by default' : 'tokenizer.ggml.add_bos_token is true';
      throw new Error(`tokenizer: ${why} but tokenizer.ggml.bos_token_id is missing`);
    }
    this.addSpacePrefix = model === 'llama' ? metaBool(meta, 'tokenizer.ggml.add_space_prefix') ?? true : false;
    this.chatTemplate = metaString(meta, 'tokenizer.chat_template');
    this.pre = metaString(meta, 'tokenizer.ggml.pre') ?? 'default';
    this.fim = this.findFim(meta);

    // Tokens that text can name directly.
    const specials: SpecialToken[] = [];
    for (let i = 0; i < n; i++) {
      const t = types[i];
      if (t === TokenType.Control || t === TokenType.UserDefined || t === TokenType.Unknown) {
        if (tokens[i].length > 0) specials.push({ text: tokens[i], id: i });
      }
    }
    this.specials = new SpecialMatcher(specials);
    this.bytesCache = new Array(n);

    // The tokens the models may produce from text.
    const normal = new Map<string, number>();
    for (let i = 0; i < n; i++) if (types[i] === TokenType.Normal && !normal.has(tokens[i])) normal.set(tokens[i], i);

    if (model === 'gpt2') {
      const merges = metaArray(meta, 'tokenizer.ggml.merges');
      if (merges === undefined) throw new Error('tokenizer: tokenizer.ggml.merges is missing (required for a gpt2 BPE vocabulary)');
      merges.forEach((m, i) => {
        if (typeof m !== 'string') throw new Error(`tokenizer: tokenizer.ggml.merges[${i}] is not a string`);
      });
      this.preTokenizer = createPreTokenizer(this.pre);
      const family = preFamily(this.pre);
      this.nfc = family === 'qwen2'; // Qwen's tokenizer.json has an NFC normalizer
      this.bpe = new BytePairEncoder({
        vocab: normal,
        merges: merges as string[],
        ignoreMerges: family === 'llama-bpe', // Llama 3's tokenizer.json: "ignore_merges": true
        unk: unk ?? -1,
      });
      const missing = this.bpe.missingBytes();
      if (missing.length > 0 && unk === undefined) {
        const hex = missing.slice(0, 8).map((b) => '0x' + b.toString(16).padStart(2, '0'));
        throw new Error(`tokenizer: the byte-level vocabulary has no token for ${missing.length} byte(s) (${hex.join(', ')}) and no unknown token`);
      }
    } else {
      const rawScores = metaArray(meta, 'tokenizer.ggml.scores');
      if (rawScores === undefined) throw new Error('tokenizer: tokenizer.ggml.scores is missing (required for a llama SentencePiece vocabulary)');
      if (rawScores.length !== n) throw new Error(`tokenizer: tokenizer.ggml.scores has ${rawScores.length} entries for ${n} tokens`);
      const scores = new Float64Array(n);
      rawScores.forEach((s, i) => {
        if (typeof s !== 'number' || Number.isNaN(s)) throw new Error(`tokenizer: tokenizer.ggml.scores[${i}] is not a number`);
        scores[i] = s;
      });
      const byteId = new Int32Array(256).fill(-1);
      for (let i = 0; i < n; i++) {
        if (types[i] !== TokenType.Byte) continue;
        const m = BYTE_TOKEN.exec(tokens[i]);
        if (m === null) throw new Error(`tokenizer: byte token ${i} "${tokens[i]}" is not spelled <0xXX>`);
        const b = parseInt(m[1], 16);
        if (byteId[b] < 0) byteId[b] = i;
      }
      if (byteId.includes(-1) && unk === undefined) {
        throw new Error('tokenizer: the llama vocabulary lacks some <0xXX> byte tokens and has no unknown token');
      }
      this.nfc = false;
      this.spm = new SentencePieceEncoder({ vocab: normal, scores, byteId, unk: unk ?? -1 });
    }
  }

  static fromMetadata(meta: ReadonlyMap<string, MetaValue>): Tokenizer {
    return new Tokenizer(meta);
  }

  private findFim(meta: ReadonlyMap<string, MetaValue>): FimTokens {
    const n = this.vocabSize;
    const byKey = (...keys: string[]): number | undefined => {
      for (const k of keys) {
        const id = metaTokenId(meta, `tokenizer.ggml.${k}`, n);
        if (id !== undefined) return id;
      }
      return undefined;
    };
    const byName = (...names: string[]): number | undefined => {
      for (const name of names) {
        const id = this.textToId.get(name);
        if (id !== undefined) return id;
      }
      return undefined;
    };
    const fim: FimTokens = {};
    const prefix =
      byKey('fim_pre_token_id', 'fim_prefix_token_id', 'prefix_token_id') ??
      byName('<|fim_prefix|>', '<fim_prefix>', '<fim-prefix>', '<PRE>', '▁<PRE>', '<|fim▁begin|>');
    const suffix =
      byKey('fim_suf_token_id', 'fim_suffix_token_id', 'suffix_token_id') ??
      byName('<|fim_suffix|>', '<fim_suffix>', '<fim-suffix>', '<SUF>', '▁<SUF>', '<|fim▁hole|>');
    const middle =
      byKey('fim_mid_token_id', 'fim_middle_token_id', 'middle_token_id') ??
      byName('<|fim_middle|>', '<fim_middle>', '<fim-middle>', '<MID>', '▁<MID>', '<|fim▁end|>');
    const pad = byKey('fim_pad_token_id') ?? byName('<|fim_pad|>', '<fim_pad>', '<fim-pad>');
    if (prefix !== undefined) fim.prefix = prefix;
    if (suffix !== undefined) fim.suffix = suffix;
    if (middle !== undefined) fim.middle = middle;
    if (pad !== undefined) fim.pad = pad;
    return fim;
  }

  // ---- encoding ----

  encode(text: string, opts?: EncodeOptions): number[] {
    if (typeof text !== 'string') throw new TypeError(`tokenizer: encode() needs a string, got ${typeof text}`);
    const out: number[] = [];
    if (opts?.addBos ?? this.addBos) {
      if (this.bos === undefined) throw new Error('tokenizer: addBos was asked for but the vocabulary has no BOS token');
      out.push(this.bos);
    }
    const clean = toWellFormed(text);
    if ((opts?.parseSpecial ?? true) && !this.specials.empty) {
      for (const frag of this.specials.split(clean)) {
        if (typeof frag === 'number') out.push(frag);
        else this.encodeText(frag, out);
      }
    } else if (clean.length > 0) {
      this.encodeText(clean, out);
    }
    return out;
  }

  /** Tokenizes text that holds no special tokens (one fragment between them). */
  private encodeText(text: string, out: number[]): void {
    if (this.spm !== undefined) {
      // Like sentencepiece (and HF's Prepend normalizer): every fragment gets the prefix.
      const escaped = (this.addSpacePrefix ? SPACE_MARK : '') + text.replace(/ /g, SPACE_MARK);
      this.spm.encode(escaped, out);
      return;
    }
    const bpe = this.bpe!;
    const normalized = this.nfc ? text.normalize('NFC') : text;
    for (const word of this.preTokenizer!.split(normalized)) bpe.encodeWord(word, out);
  }

  // ---- decoding ----

  /** The exact bytes token `id` contributes to decoded text (empty for ids outside the vocabulary). */
  tokenBytes(id: number): Uint8Array {
    if (!Number.isInteger(id) || id < 0 || id >= this.vocabSize) return new Uint8Array(0);
    let bytes = this.bytesCache[id];
    if (bytes === undefined) {
      bytes = this.computeTokenBytes(id);
      this.bytesCache[id] = bytes;
    }
    return bytes;
  }

  private computeTokenBytes(id: number): Uint8Array {
    const text = this.tokens[id];
    switch (this.types[id]) {
      case TokenType.Normal:
        return this.model === 'gpt2' ? byteLevelDecode(text) : utf8Encode(text.replaceAll(SPACE_MARK, ' '));
      case TokenType.Byte: {
        const m = BYTE_TOKEN.exec(text);
        return m !== null ? Uint8Array.of(parseInt(m[1], 16)) : utf8Encode(text);
      }
      case TokenType.Unused:
        return new Uint8Array(0); // padding entries ([PAD...]) stand for no text
      default:
        // Control, user-defined and unknown tokens are stored as their plain text.
        return utf8Encode(text);
    }
  }

  /** The text of one token, with U+FFFD for bytes that are not a whole character on their own. */
  tokenToPiece(id: number): string {
    return utf8Decode(this.tokenBytes(id));
  }

  /** The id of the token spelled exactly `text` in the vocabulary. */
  tokenId(text: string): number | undefined {
    return this.textToId.get(text);
  }

  isControl(id: number): boolean {
    return Number.isInteger(id) && id >= 0 && id < this.vocabSize && this.types[id] === TokenType.Control;
  }

  private skipped(id: number, skipSpecial: boolean): boolean {
    if (!skipSpecial || !Number.isInteger(id) || id < 0 || id >= this.vocabSize) return false;
    const t = this.types[id];
    return t === TokenType.Control || t === TokenType.Unknown;
  }

  decode(ids: ArrayLike<number>, opts?: DecodeOptions): string {
    const skipSpecial = opts?.skipSpecial ?? false;
    const parts: Uint8Array[] = [];
    let total = 0;
    for (let i = 0; i < ids.length; i++) {
      if (this.skipped(ids[i], skipSpecial)) continue;
      const b = this.tokenBytes(ids[i]);
      if (b.length === 0) continue;
      parts.push(b);
      total += b.length;
    }
    const all = new Uint8Array(total);
    let off = 0;
    for (const p of parts) {
      all.set(p, off);
      off += p.length;
    }
    // SentencePiece decoding drops the space the encoder put in front (HF's Strip decoder).
    const start = this.addSpacePrefix && total > 0 && all[0] === 0x20 ? 1 : 0;
    return utf8Decode(all.subarray(start));
  }

  /**
   * A decoder for tokens arriving one at a time. It emits only whole characters, holding back
   * the bytes of an unfinished UTF-8 sequence; the concatenation of everything it returns,
   * flush() included, equals decode() of all the ids pushed.
   */
  createStreamDecoder(opts?: DecodeOptions): StreamDecoder {
    const skipSpecial = opts?.skipSpecial ?? false;
    let held = new Uint8Array(0);
    let started = false;
    return {
      push: (id: number): string => {
        if (this.skipped(id, skipSpecial)) return '';
        let b = this.tokenBytes(id);
        if (b.length === 0) return '';
        if (!started) {
          started = true;
          if (this.addSpacePrefix && b[0] === 0x20) b = b.subarray(1);
        }
        let buf: Uint8Array;
        if (held.length === 0) buf = b;
        else {
          buf = new Uint8Array(held.length + b.length);
          buf.set(held);
          buf.set(b, held.length);
        }
        const keep = utf8IncompleteTail(buf);
        held = buf.slice(buf.length - keep);
        return keep === buf.length ? '' : utf8Decode(buf.subarray(0, buf.length - keep));
      },
      flush: (): string => {
        const text = held.length > 0 ? utf8Decode(held) : '';
        held = new Uint8Array(0);
        started = false;
        return text;
      },
    };
  }
}
