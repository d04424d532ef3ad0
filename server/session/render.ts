// Rendering of editor events into stream text, per docs/stream-format.md: a document becoming
// active, edits as compact unified-diff hunks, saves, the pinned summary, and the fill-in-the-middle
// prompt of an inline completion. Vocabularies without the stream markers get a plain-text
// rendering of the same events. Marker tokens are inserted by id and user text is encoded with
// special-token parsing off, so text that merely looks like a marker stays text.

import { Hunk, hunkHeader } from './diff';

/** The part of the tokenizer the session uses (server/tokenizer/index.ts implements it). */
export interface TokenizerLike {
  readonly bos: number | undefined;
  readonly eos: number | undefined;
  readonly addBos: boolean;
  readonly vocabSize: number;
  readonly fim: { prefix?: number; suffix?: number; middle?: number; pad?: number };
  readonly chatTemplate: string | undefined;
  encode(text: string, opts?: { addBos?: boolean; parseSpecial?: boolean }): number[];
  decode(ids: ArrayLike<number>, opts?: { skipSpecial?: boolean }): string;
  tokenToPiece(id: number): string;
  tokenId(text: string): number | undefined;
  isControl(id: number): boolean;
  createStreamDecoder(opts?: { skipSpecial?: boolean }): { push(id: number): string; flush(): string };
}

/** A piece of stream text: a marker token by name, plain text, or template text whose special tokens are parsed. */
export type Piece = { token: number } | { text: string; parseSpecial?: boolean };

export function encodePieces(tok: TokenizerLike, pieces: readonly Piece[]): number[] {
  const out: number[] = [];
  for (const p of pieces) {
    if ('token' in p) out.push(p.token);
    else if (p.text.length) out.push(...tok.encode(p.text, { addBos: false, parseSpecial: p.parseSpecial === true }));
  }
  return out;
}

export function piecesText(tok: TokenizerLike, pieces: readonly Piece[]): string {
  return pieces.map((p) => ('token' in p ? tok.tokenToPiece(p.token) : p.text)).join('');
}

export type FimOrder = 'psm' | 'spm';

export class StreamFormat {
  readonly file?: number;
  readonly edit?: number;
  readonly save?: number;
  readonly summary?: number;
  readonly endOfText?: number;
  readonly sink?: number;
  /** The vocabulary has the stream-format markers (the default model). */
  readonly hasMarkers: boolean;
  readonly hasFim: boolean;

  constructor(readonly tok: TokenizerLike) {
    this.file = tok.tokenId('<|file|>');
    this.edit = tok.tokenId('<|edit|>');
    this.save = tok.tokenId('<|save|>');
    this.summary = tok.tokenId('<|summary|>');
    this.endOfText = tok.tokenId('<|endoftext|>') ?? tok.eos;
    this.sink = tok.tokenId('<|sink|>');
    this.hasMarkers = this.file !== undefined && this.edit !== undefined && this.save !== undefined;
    this.hasFim = tok.fim.prefix !== undefined && tok.fim.suffix !== undefined && tok.fim.middle !== undefined;
  }

  /** The first tokens of every stream: BOS (the sink token for the default model) when the model uses one. */
  streamStart(): number[] {
    if (this.sink !== undefined) return [this.sink];
    if (this.tok.bos !== undefined && this.tok.addBos) return [this.tok.bos];
    return [];
  }

  /** Default number of sinks: 1 for a model trained with a sink token as BOS, else 4 (StreamingLLM). */
  defaultSinks(): number {
    return this.sink !== undefined && (this.tok.bos === undefined || this.tok.bos === this.sink) ? 1 : 4;
  }

  /** A document became active: its path and the surroundings of the cursor (may be empty). */
  fileActivated(path: string, surroundings: string): Piece[] {
    const body = surroundings.length && !surroundings.endsWith('\n') ? surroundings + '\n' : surroundings;
    if (this.hasMarkers) return [{ token: this.file! }, { text: `${path}\n${body}` }];
    return [{ text: `\n# File: ${path}\n${body}` }];
  }

  /** One hunk of an edit. */
  editHunk(path: string, h: Hunk): Piece[] {
    const body = h.lines.join('\n') + '\n';
    if (this.hasMarkers) return [{ token: this.edit! }, { text: `${path} ${hunkHeader(h)}\n${body}` }];
    return [{ text: `\n--- a/${path}\n+++ b/${path}\n${hunkHeader(h)}\n${body}` }];
  }

  saved(path: string): Piece[] {
    if (this.hasMarkers) return [{ token: this.save! }, { text: `${path}\n` }];
    return [{ text: `\n# Saved: ${path}\n` }];
  }

  /** The pinned memory: the latest summary. */
  memory(text: string): Piece[] {
    if (this.summary !== undefined && this.endOfText !== undefined) {
      return [{ token: this.summary }, { text }, { token: this.endOfText }];
    }
    return [{ text: `# Session summary\n${text}\n` }];
  }

  /** The prompt the model continues to write a summary of the stream (in a branch). */
  summaryPrompt(): Piece[] | null {
    if (this.summary !== undefined) return [{ token: this.summary }];
    return null;
  }

  /**
   * The fill-in-the-middle prompt. SPM puts the suffix first: while the user types at the cursor,
   * the suffix and most of the prefix stay the same, so consecutive completions share a long
   * token prefix and the engine reuses its K/V.
   */
  fim(prefix: string, suffix: string, order: FimOrder): number[] {
    const f = this.tok.fim;
    const enc = (s: string) => (s.length ? this.tok.encode(s, { addBos: false, parseSpecial: false }) : []);
    if (!this.hasFim) return enc(prefix); // a plain model continues the prefix
    if (order === 'spm') return [f.suffix!, ...enc(suffix), f.prefix!, ...enc(prefix), f.middle!];
    return [f.prefix!, ...enc(prefix), f.suffix!, ...enc(suffix), f.middle!];
  }

  /** Tokens that end an inline completion. */
  completionStops(): number[] {
    const ids = new Set<number>();
    for (const id of [this.tok.eos, this.endOfText, this.tok.fim.pad, this.tok.fim.prefix, this.tok.fim.suffix, this.tok.fim.middle,
      this.file, this.edit, this.save, this.summary, this.tok.tokenId('<|file_sep|>'), this.tok.tokenId('<|im_start|>'), this.tok.tokenId('<|im_end|>')]) {
      if (id !== undefined) ids.add(id);
    }
    return [...ids];
  }
}

/**
 * Picks the lines around the cursor that fit a token budget: two thirds above, one third below,
 * growing line by line. Returns the text and the line range [start, end).
 */
export function surroundingsOf(lines: readonly string[], cursorLine: number, budget: number, countTokens: (s: string) => number): { text: string; start: number; end: number } {
  if (lines.length === 0 || budget <= 0) return { text: '', start: 0, end: 0 };
  const c = Math.max(0, Math.min(lines.length - 1, cursorLine));
  let start = c, end = c + 1;
  let used = countTokens(lines[c] + '\n');
  if (used > budget) return { text: '', start: c, end: c };
  let usedAbove = 0, usedBelow = 0;
  let canUp = start > 0, canDown = end < lines.length;
  while (canUp || canDown) {
    const preferUp = canUp && (!canDown || usedAbove <= 2 * usedBelow); // keeps about 2:1
    if (preferUp) {
      const n = countTokens(lines[start - 1] + '\n');
      if (used + n > budget) { canUp = false; continue; }
      start--; used += n; usedAbove += n; canUp = start > 0;
    } else {
      const n = countTokens(lines[end] + '\n');
      if (used + n > budget) { canDown = false; continue; }
      end++; used += n; usedBelow += n; canDown = end < lines.length;
    }
  }
  return { text: lines.slice(start, end).join('\n') + '\n', start, end };
}
