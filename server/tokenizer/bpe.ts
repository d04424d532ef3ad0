// Byte-level BPE (tokenizer.ggml.model "gpt2"): a word's UTF-8 bytes start as one symbol each
// (the byte-level characters of byte-level.ts) and adjacent pairs are merged by merge rank, lowest
// rank first and leftmost first among equal ranks, until no listed merge applies. This is the
// order of Hugging Face `tokenizers`' BPE model. Results are cached per word.

import { BYTE_TO_CHAR } from './byte-level';
import { CandidateHeap } from './heap';

/** Short words are merged by scanning; longer ones through a heap (same order, O(n log n)). */
const SCAN_MAX = 24;
const CACHE_MAX = 200_000;
const encoder = new TextEncoder();

export interface BpeOptions {
  /** token text -> id, for the tokens BPE may produce (normal tokens). */
  vocab: ReadonlyMap<string, number>;
  /** merges as "left right" in rank order. */
  merges: readonly string[];
  /** When the whole word is a token, take it without merging (Llama 3's `ignore_merges`). */
  ignoreMerges: boolean;
  /** Id used for bytes that have no token (only for malformed vocabularies); -1: none. */
  unk: number;
}

export class BytePairEncoder {
  private readonly vocab: ReadonlyMap<string, number>;
  private readonly ignoreMerges: boolean;
  /** (left id, right id) -> rank */
  private readonly pairRank: PairTable;
  /** rank -> id of the merged token */
  private readonly mergeResult: Int32Array;
  private readonly heap = new CandidateHeap();
  /** byte -> id of its single-byte token, or -1 */
  private readonly byteId = new Int32Array(256);
  private readonly unk: number;
  private readonly cache = new Map<string, readonly number[]>();

  constructor(opts: BpeOptions) {
    this.vocab = opts.vocab;
    this.ignoreMerges = opts.ignoreMerges;
    this.unk = opts.unk;
    this.pairRank = new PairTable(opts.merges.length);
    for (let b = 0; b < 256; b++) this.byteId[b] = opts.vocab.get(BYTE_TO_CHAR[b]) ?? -1;

    this.mergeResult = new Int32Array(opts.merges.length);
    opts.merges.forEach((merge, rank) => {
      const sp = merge.indexOf(' ', 1); // a left part never starts with a space (" " is "Ġ")
      if (sp < 0) throw new Error(`tokenizer: malformed merge #${rank} "${merge}" (expected "left right")`);
      const left = merge.slice(0, sp);
      const right = merge.slice(sp + 1);
      const a = opts.vocab.get(left);
      const b = opts.vocab.get(right);
      const r = opts.vocab.get(left + right);
      // A merge whose parts or result are not tokens can never apply to token symbols.
      if (a === undefined || b === undefined || r === undefined) return;
      this.pairRank.setIfAbsent(a, b, rank);
      this.mergeResult[rank] = r;
    });
  }

  /** Which bytes have no single-byte token. */
  missingBytes(): number[] {
    const missing: number[] = [];
    for (let b = 0; b < 256; b++) if (this.byteId[b] < 0) missing.push(b);
    return missing;
  }

  /** Appends the token ids of one pre-tokenized word. */
  encodeWord(word: string, out: number[]): void {
    const cached = this.cache.get(word);
    if (cached !== undefined) {
      for (const id of cached) out.push(id);
      return;
    }
    const ids = this.bpe(encoder.encode(word));
    if (this.cache.size >= CACHE_MAX) this.cache.clear();
    this.cache.set(word, ids);
    for (const id of ids) out.push(id);
  }

  private bpe(bytes: Uint8Array): number[] {
    if (this.ignoreMerges) {
      let text = '';
      for (let i = 0; i < bytes.length; i++) text += BYTE_TO_CHAR[bytes[i]];
      const whole = this.vocab.get(text);
      if (whole !== undefined) return [whole];
    }
    const ids: number[] = [];
    for (let i = 0; i < bytes.length; i++) {
      const id = this.byteId[bytes[i]];
      if (id >= 0) ids.push(id);
      else if (this.unk >= 0) ids.push(this.unk);
    }
    return ids.length <= SCAN_MAX ? this.mergeScan(ids) : this.mergeHeap(ids);
  }

  private rankOf(a: number, b: number): number {
    return this.pairRank.get(a, b);
  }

  /** O(n^2) merging for short words: repeatedly merge the lowest-rank, leftmost pair. */
  mergeScan(ids: number[]): number[] {
    const sym = ids.slice();
    for (;;) {
      let bestRank = 0x7fffffff;
      let bestPos = -1;
      for (let i = 0; i + 1 < sym.length; i++) {
        const r = this.rankOf(sym[i], sym[i + 1]);
        if (r >= 0 && r < bestRank) {
          bestRank = r;
          bestPos = i;
        }
      }
      if (bestPos < 0) return sym;
      sym.splice(bestPos, 2, this.mergeResult[bestRank]);
    }
  }

  /** Linked-list merging with a heap of candidate pairs keyed by (rank, position). */
  mergeHeap(ids: number[]): number[] {
    const n = ids.length;
    const sym = Int32Array.from(ids);
    const next = new Int32Array(n);
    const prev = new Int32Array(n);
    for (let i = 0; i < n; i++) {
      next[i] = i + 1 < n ? i + 1 : -1;
      prev[i] = i - 1;
    }
    const heap = this.heap;
    heap.clear();
    for (let i = 0; i + 1 < n; i++) {
      const r = this.rankOf(sym[i], sym[i + 1]);
      if (r >= 0) heap.push(r, i, sym[i], sym[i + 1]);
    }
    const dead = -2;
    while (heap.size > 0) {
      heap.pop();
      const pos = heap.topPos;
      // Stale entries: the left symbol was merged away or changed, or its right neighbour changed.
      if (next[pos] === dead || sym[pos] !== heap.topA) continue;
      const rpos = next[pos];
      if (rpos < 0 || sym[rpos] !== heap.topB) continue;
      const merged = this.mergeResult[heap.topKey];
      sym[pos] = merged;
      next[pos] = next[rpos];
      if (next[rpos] >= 0) prev[next[rpos]] = pos;
      next[rpos] = dead;
      const before = prev[pos];
      if (before >= 0) {
        const r = this.rankOf(sym[before], merged);
        if (r >= 0) heap.push(r, before, sym[before], merged);
      }
      const after = next[pos];
      if (after >= 0) {
        const r = this.rankOf(merged, sym[after]);
        if (r >= 0) heap.push(r, pos, merged, sym[after]);
      }
    }
    const out: number[] = [];
    for (let i = 0; i >= 0; i = next[i]) out.push(sym[i]);
    return out;
  }
}

/** An open-addressing hash table from a pair of token ids to a rank (no boxed keys). */
class PairTable {
  private readonly left: Int32Array;
  private readonly right: Int32Array;
  private readonly value: Int32Array;
  private readonly mask: number;

  constructor(n: number) {
    let cap = 16;
    while (cap < n * 2) cap *= 2;
    this.left = new Int32Array(cap).fill(-1);
    this.right = new Int32Array(cap);
    this.value = new Int32Array(cap);
    this.mask = cap - 1;
  }

  private slot(a: number, b: number): number {
    // A murmur3-style finalizer over both ids, so that the low bits used as the slot mix all bits.
    let h = Math.imul(a, 0x9e3779b1) ^ b;
    h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
    h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
    return (h ^ (h >>> 16)) & this.mask;
  }

  setIfAbsent(a: number, b: number, v: number): void {
    let i = this.slot(a, b);
    while (this.left[i] !== -1) {
      if (this.left[i] === a && this.right[i] === b) return;
      i = (i + 1) & this.mask;
    }
    this.left[i] = a;
    this.right[i] = b;
    this.value[i] = v;
  }

  get(a: number, b: number): number {
    let i = this.slot(a, b);
    for (;;) {
      const l = this.left[i];
      if (l === -1) return -1;
      if (l === a && this.right[i] === b) return this.value[i];
      i = (i + 1) & this.mask;
    }
  }
}
