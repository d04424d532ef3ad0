// What "Apply" on a chat code block proposes: the selection replaced by the code; with no
// selection, the whole document when the code looks like a rewrite of it (it keeps at least half
// of the document's non-blank lines), else the code inserted at the cursor. The proposal is shown as a diff before anything
// changes. Pure, unit-tested; offsets are UTF-16 code units as in VS Code.

export interface ApplyPlan {
  /** Replaced range [start, end) in the original text. */
  start: number;
  end: number;
  /** The whole proposed document. */
  proposed: string;
  mode: 'selection' | 'document' | 'insert';
}

export function planApply(original: string, code: string, selection: { start: number; end: number }, eol = '\n'): ApplyPlan {
  const text = code.replace(/\r?\n/g, eol);
  const s = Math.max(0, Math.min(selection.start, selection.end, original.length));
  const e = Math.min(original.length, Math.max(selection.start, selection.end));
  if (e > s) {
    return { start: s, end: e, proposed: original.slice(0, s) + text + original.slice(e), mode: 'selection' };
  }
  if (!original.trim() || looksLikeRewrite(original, text)) {
    const withEol = original.endsWith(eol) && !text.endsWith(eol) ? text + eol : text;
    return { start: 0, end: original.length, proposed: withEol, mode: 'document' };
  }
  return { start: s, end: s, proposed: original.slice(0, s) + text + original.slice(s), mode: 'insert' };
}

/** The code keeps at least half of the document's non-blank lines (ignoring indentation). */
export function looksLikeRewrite(original: string, code: string): boolean {
  const lines = (t: string) => t.split(/\r?\n/).map((l) => l.trim()).filter((l) => l.length > 0);
  const orig = lines(original);
  if (!orig.length) return true;
  const inCode = new Set(lines(code));
  const kept = orig.filter((l) => inCode.has(l)).length;
  return kept * 2 >= orig.length;
}
