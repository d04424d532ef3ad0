// The stream's view of each document, rebuilt from what the server appended to the engine: the
// token ids of every document event (a `<|file|>` header, `<|edit|>` hunks, `<|save|>`) are split
// at their marker tokens, the text between is decoded, and the hunks are replayed line by line.
// The soak test (issue 8) compares this view with the editor's text: an edit lost, reordered,
// mis-diffed or mangled by the tokenizer shows up as a difference or as an error here.
//
// What the stream cannot say, and the rules this replay follows (docs/protocol.md repeats them):
// - A `<|file|>` header shows only the surroundings of the cursor, without line numbers. The rest
//   of the document comes from the record the header was appended with (the text the server diffs
//   later edits against, the same text its event log records). The shown surroundings must be a
//   run of that text's lines, and when the stream already had a view of the document, the record
//   must equal it line for line: otherwise an error. Lines known only from a record are counted
//   (`recordLines`) until a later hunk shows them as context or removes them.
// - Lines longer than the clip limit are shown cut, ending in "…": a line the stream showed cut
//   keeps its cut text and is counted (`clippedLines`); it matches a document line whose cut is
//   the same.
// - An edit past the changed-line budget shows a line `+… (N more changed lines)` in place of the
//   rest of its changed lines: the hunk's remaining new lines become unknown (empty text, counted
//   in `unknownLines`) until a later hunk shows them.
// - Views reset when the stream is cleared or restored; models without the stream markers are
//   not supported (their plain-text rendering is ambiguous).

import { splitLines } from './diff';
import type { TokenizerLike } from './render';
import type { StreamDocumentView } from '../protocol';

/** Where a line's text comes from. */
const SHOWN = 0, RECORD = 1, CLIPPED = 2, UNKNOWN = 3;

const MAX_ERRORS = 20;

/** A document as the stream shows it (protocol.ts's StreamDocumentView without the URI, which the session adds). */
export type DocStreamView = Omit<StreamDocumentView, 'uri'>;

interface ViewState {
  lines: string[];
  flags: number[];
  errors: string[];
  errorCount: number;
}

const HUNK_HEADER = /^(.*) @@ -(\d+),(\d+) \+(\d+),(\d+) @@$/;
const PLACEHOLDER = /^\+… \((\d+) more changed lines\)$/;

export class StreamViewTracker {
  private readonly views = new Map<string, ViewState>();
  private readonly file: number | undefined;
  private readonly edit: number | undefined;
  private readonly save: number | undefined;
  /** Stream-level problems (not tied to one document). */
  readonly errors: string[] = [];
  errorCount = 0;

  constructor(private readonly tok: TokenizerLike, private readonly maxLineChars: number) {
    this.file = tok.tokenId('<|file|>');
    this.edit = tok.tokenId('<|edit|>');
    this.save = tok.tokenId('<|save|>');
  }

  get supported(): boolean {
    return this.file !== undefined && this.edit !== undefined && this.save !== undefined;
  }

  /** Forgets every view (the stream was cleared or restored). */
  reset(): void {
    this.views.clear();
    this.errors.length = 0;
    this.errorCount = 0;
  }

  /** A view known without stream text (restored from a snapshot's record): every line is record-only. */
  setRecord(path: string, text: string): void {
    const lines = splitLines(text);
    this.views.set(path, { lines, flags: lines.map(() => RECORD), errors: [], errorCount: 0 });
  }

  /**
   * One append of document events: the exact token ids sent to the engine, and for a `<|file|>`
   * header the text of the document it was shown from.
   */
  append(tokens: readonly number[], record?: string): void {
    if (!this.supported || !tokens.length) return;
    // A diagnostic must never break the append it watches: a surprise here becomes an error entry.
    try {
      this.replay(tokens, record);
    } catch (e) {
      this.fail(null, `replay failed: ${(e as Error).message}`);
    }
  }

  private replay(tokens: readonly number[], record: string | undefined): void {
    let start = -1;
    for (let i = 0; i <= tokens.length; i++) {
      const t = tokens[i];
      if (i < tokens.length && t !== this.file && t !== this.edit && t !== this.save) {
        if (start < 0) { this.fail(null, `text outside a document event: ${JSON.stringify(this.tok.decode(tokens.slice(i, i + 16)))}`); return; }
        continue;
      }
      if (start >= 0) this.segment(tokens[start], this.tok.decode(tokens.slice(start + 1, i)), record);
      start = i;
    }
  }

  private segment(marker: number, text: string, record: string | undefined): void {
    const nl = text.indexOf('\n');
    if (nl < 0) { this.fail(null, `a document event without a line end: ${JSON.stringify(text.slice(0, 80))}`); return; }
    const first = text.slice(0, nl);
    const body = text.slice(nl + 1);
    if (marker === this.file) this.header(first, body, record);
    else if (marker === this.edit) this.hunk(first, body);
    // `<|save|>path`: no change of the view.
  }

  private clip(l: string): string {
    return l.length > this.maxLineChars ? l.slice(0, this.maxLineChars) + '…' : l;
  }

  private isClipped(shown: string): boolean {
    return shown.length === this.maxLineChars + 1 && shown.endsWith('…');
  }

  private header(path: string, body: string, record: string | undefined): void {
    const prev = this.views.get(path);
    if (record === undefined) { this.fail(prev ?? null, `header of ${path} without the record of its document`); this.views.delete(path); return; }
    const base = splitLines(record);
    const flags = base.map(() => RECORD);
    const st: ViewState = { lines: base, flags, errors: prev?.errors ?? [], errorCount: prev?.errorCount ?? 0 };
    if (prev) {
      // The stream already had a view: the header's document must be that view.
      let diff = prev.lines.length !== base.length ? Math.min(prev.lines.length, base.length) : -1;
      for (let i = 0; diff < 0 && i < base.length; i++) {
        const f = prev.flags[i];
        if (f === UNKNOWN) continue;
        if (f === CLIPPED ? prev.lines[i] !== this.clip(base[i]) : prev.lines[i] !== base[i]) diff = i;
        else if (f === SHOWN) flags[i] = SHOWN;
      }
      if (diff >= 0) {
        this.fail(st, `header of ${path}: its document (${base.length} lines) differs from the stream's view (${prev.lines.length} lines) at line ${diff + 1}`);
        flags.fill(RECORD);
      }
    }
    // The shown surroundings: a run of the document's (clipped) lines.
    const shown = body.length ? splitLines(body.endsWith('\n') ? body.slice(0, -1) : body) : [];
    if (shown.length) {
      let at = -1;
      for (let i = 0; at < 0 && i + shown.length <= base.length; i++) {
        let k = 0;
        while (k < shown.length && this.clip(base[i + k]) === shown[k]) k++;
        if (k === shown.length) at = i;
      }
      if (at < 0) this.fail(st, `header of ${path}: its ${shown.length} shown lines are not a run of its document's lines`);
      else for (let k = 0; k < shown.length; k++) if (!this.isClipped(shown[k]) || base[at + k] === shown[k]) flags[at + k] = SHOWN;
    }
    this.views.set(path, st);
  }

  private hunk(first: string, body: string): void {
    const m = HUNK_HEADER.exec(first);
    if (!m) { this.fail(null, `an edit with a bad hunk header: ${JSON.stringify(first.slice(0, 120))}`); return; }
    const path = m[1];
    const oldCount = Number(m[3]), newStart = Number(m[4]), newCount = Number(m[5]);
    const st = this.views.get(path);
    if (!st) { this.fail(null, `edit of ${path} before any header of it`); return; }
    const lines = body.length ? splitLines(body.endsWith('\n') ? body.slice(0, -1) : body) : [];
    for (const l of lines) {
      if (l[0] !== ' ' && l[0] !== '-' && l[0] !== '+') { this.fail(st, `edit of ${path}: a hunk line without a ' ', '-' or '+': ${JSON.stringify(l.slice(0, 80))}`); return; }
    }
    // The placeholder of a truncated edit: the last changed line, only context after it, and the
    // hidden count it names must fit the header's line counts. (A real added line of that text
    // that fits them too is read as a placeholder: its line becomes unknown, never wrong.)
    let cut = -1, hidden = 0;
    let lastChange = -1;
    for (let i = 0; i < lines.length; i++) if (lines[i][0] !== ' ') lastChange = i;
    const ph = lastChange >= 0 ? PLACEHOLDER.exec(lines[lastChange]) : null;
    if (ph) {
      let ctx = 0, rem = 0, add = 0;
      for (let i = 0; i < lastChange; i++) { const c = lines[i][0]; if (c === ' ') ctx++; else if (c === '-') rem++; else add++; }
      const after = lines.length - lastChange - 1;
      const restOld = oldCount - ctx - rem, restNew = newCount - ctx - add;
      if (restOld >= after && restNew >= after && restOld + restNew - 2 * after === Number(ph[1])) { cut = lastChange; hidden = Number(ph[1]); }
    }
    const idx = newCount === 0 ? newStart : newStart - 1;
    if (idx < 0 || idx + oldCount > st.lines.length) {
      this.fail(st, `edit of ${path}: hunk ${first.slice(path.length + 1)} is outside the view's ${st.lines.length} lines`);
      return;
    }
    const shownEnd = cut >= 0 ? cut : lines.length;
    const outLines: string[] = [], outFlags: number[] = [];
    let o = idx; // position in the old region
    for (let i = 0; i < shownEnd; i++) {
      const kind = lines[i][0], s = lines[i].slice(1);
      if (kind === '+') { outLines.push(s); outFlags.push(this.isClipped(s) ? CLIPPED : SHOWN); continue; }
      if (o >= idx + oldCount) { this.fail(st, `edit of ${path}: hunk ${first.slice(path.length + 1)} has more old lines than its header says`); return; }
      const v = st.lines[o], f = st.flags[o];
      let line = v, flag = f;
      if (f === UNKNOWN) { line = s; flag = this.isClipped(s) ? CLIPPED : SHOWN; }
      else if (f === CLIPPED ? v !== s : this.clip(v) !== s) {
        this.fail(st, `edit of ${path}: line ${o + 1} is ${JSON.stringify(v.slice(0, 80))} in the stream's view but the hunk shows ${JSON.stringify(s.slice(0, 80))}`);
      } else if (f === RECORD && !this.isClipped(s)) flag = SHOWN;
      o++;
      if (kind === ' ') { outLines.push(line); outFlags.push(flag); }
    }
    if (cut < 0) {
      if (o !== idx + oldCount || outLines.length !== newCount) {
        this.fail(st, `edit of ${path}: hunk ${first.slice(path.length + 1)} has ${o - idx} old and ${outLines.length} new lines`);
      }
    } else {
      const after = lines.length - cut - 1; // context lines after the placeholder
      const restOld = oldCount - (o - idx), restNew = newCount - outLines.length;
      if (restOld < after || restNew < after || restOld + restNew - 2 * after !== hidden) {
        this.fail(st, `edit of ${path}: hunk ${first.slice(path.length + 1)} hides ${hidden} lines but its counts say ${restOld + restNew - 2 * after}`);
      }
      for (let k = 0; k < Math.max(0, restNew); k++) { outLines.push(''); outFlags.push(UNKNOWN); }
    }
    // concat, not splice(...): a paste can be more lines than a call takes arguments
    st.lines = st.lines.slice(0, idx).concat(outLines, st.lines.slice(idx + oldCount));
    st.flags = st.flags.slice(0, idx).concat(outFlags, st.flags.slice(idx + oldCount));
  }

  private fail(st: ViewState | null, message: string): void {
    const target = st ?? this;
    target.errorCount++;
    if (target.errors.length < MAX_ERRORS) target.errors.push(message);
  }

  /** The views, one per document path the stream has shown. */
  snapshot(): DocStreamView[] {
    const out: DocStreamView[] = [];
    for (const [path, st] of this.views) {
      let recordLines = 0, clippedLines = 0, unknownLines = 0;
      for (const f of st.flags) {
        if (f === RECORD) recordLines++;
        else if (f === CLIPPED) clippedLines++;
        else if (f === UNKNOWN) unknownLines++;
      }
      out.push({ path, text: st.lines.join('\n'), lines: st.lines.length, recordLines, clippedLines, unknownLines, errors: [...st.errors], errorCount: st.errorCount });
    }
    return out;
  }
}
