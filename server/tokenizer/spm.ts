// SentencePiece-style BPE (tokenizer.ggml.model "llama", Llama 2): the text (spaces already
// replaced by U+2581 "▁") starts as one symbol per character; the adjacent pair whose
// concatenation is the token with the highest score is merged first (leftmost among equal
// scores), until no pair forms a token. A final symbol that is no token falls back to its UTF-8
// bytes as <0xXX> tokens, or to the unknown token. This is the merge order of sentencepiece's BPE
// and of llama.cpp's SPM tokenizer.

export interface SpmOptions {
  /** text -> id of the tokens merging may produce (normal tokens). */
  vocab: ReadonlyMap<string, number>;
  scores: ArrayLike<number>;
  /** byte -> id of its <0xXX> token, or -1 */
  byteId: Int32Array;
  unk: number; // -1: none
}

import { CandidateHeap } from './heap';

const SPACE_MARK = '\u2581';
const CACHE_MAX = 100_000;

export class SentencePieceEncoder {
  /**
   * When every token is "▁"* followed by no "▁" (true of Llama 2), no token can span a place
   * where a "▁" follows another character, so the text is cut there and the pieces are merged
   * independently (and cached): the same result as merging the whole text, much faster.
   */
  private readonly splittable: boolean;
  private readonly cache = new Map<string, readonly number[]>();
  private readonly heap = new CandidateHeap();

  constructor(private readonly opts: SpmOptions) {
    this.splittable = true;
    for (const t of opts.vocab.keys()) {
      let i = 0;
      while (i < t.length && t[i] === SPACE_MARK) i++;
      if (t.indexOf(SPACE_MARK, i) >= 0) {
        this.splittable = false;
        break;
      }
    }
  }

  encode(text: string, out: number[]): void {
    if (!this.splittable) {
      this.encodePiece(text, out);
      return;
    }
    let start = 0;
    for (let i = 1; i <= text.length; i++) {
      if (i < text.length && !(text[i] === SPACE_MARK && text[i - 1] !== SPACE_MARK)) continue;
      const piece = text.slice(start, i);
      start = i;
      let ids = this.cache.get(piece);
      if (ids === undefined) {
        const fresh: number[] = [];
        this.encodePiece(piece, fresh);
        if (this.cache.size >= CACHE_MAX) this.cache.clear();
        this.cache.set(piece, fresh);
        ids = fresh;
      }
      for (const id of ids) out.push(id);
    }
  }

  /** Merges one piece of text as a whole. */
  encodePiece(text: string, out: number[]): void {
    const { vocab, scores } = this.opts;
    // Symbols: one per code point, as [start, end) ranges into text.
    const starts: number[] = [];
    for (let i = 0; i < text.length; i++) {
      starts.push(i);
      const c = text.charCodeAt(i);
      if (c >= 0xd800 && c <= 0xdbff && i + 1 < text.length) {
        const d = text.charCodeAt(i + 1);
        if (d >= 0xdc00 && d <= 0xdfff) i++;
      }
    }
    const n = starts.length;
    if (n === 0) return;
    const start = Int32Array.from(starts);
    const end = new Int32Array(n);
    for (let i = 0; i < n; i++) end[i] = i + 1 < n ? start[i + 1] : text.length;
    const next = new Int32Array(n);
    const prev = new Int32Array(n);
    for (let i = 0; i < n; i++) {
      next[i] = i + 1 < n ? i + 1 : -1;
      prev[i] = i - 1;
    }
    const dead = -2;

    // Highest score first: the heap keeps the smallest key, so the key is minus the score.
    const heap = this.heap;
    heap.clear();
    const tryPair = (left: number, right: number): void => {
      if (left < 0 || right < 0) return;
      const id = vocab.get(text.slice(start[left], end[right]));
      if (id === undefined) return;
      heap.push(-scores[id], left, right, end[right] - start[left]);
    };
    for (let i = 0; i + 1 < n; i++) tryPair(i, i + 1);

    while (heap.size > 0) {
      heap.pop();
      const left = heap.topPos;
      const right = heap.topA;
      const len = heap.topB;
      // Stale entries: a side was merged away, or the pair no longer spans the same text.
      if (next[left] !== right || next[right] === dead || end[right] - start[left] !== len) continue;
      end[left] = end[right];
      next[left] = next[right];
      if (next[right] >= 0) prev[next[right]] = left;
      next[right] = dead;
      tryPair(prev[left], left);
      tryPair(left, next[left]);
    }

    for (let i = 0; i >= 0; i = next[i]) {
      const piece = text.slice(start[i], end[i]);
      const id = vocab.get(piece);
      if (id !== undefined) {
        out.push(id);
        continue;
      }
      // Only single characters can be missing (merges only make tokens): byte fallback.
      for (const b of new TextEncoder().encode(piece)) {
        const bid = this.opts.byteId[b];
        if (bid >= 0) out.push(bid);
        else if (this.opts.unk >= 0) out.push(this.opts.unk);
      }
    }
  }
}
