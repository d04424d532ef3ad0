// Line diffs between what the stream last saw of a document (its "stream view") and the document
// now, rendered as compact unified-diff hunks. Typing edits are local, so the common prefix and
// suffix are trimmed first and Myers' O(ND) algorithm runs only on the changed middle.

/** One replacement of whole lines: old lines [oldStart, oldStart+oldLines) became newLines. 0-based. */
export interface LineEdit {
  oldStart: number;
  oldCount: number;
  newStart: number;
  newLines: string[];
}

export interface Hunk {
  /** 1-based start lines and counts, as in a unified diff header. */
  oldStart: number; oldCount: number;
  newStart: number; newCount: number;
  /** Lines prefixed with ' ', '-' or '+'. */
  lines: string[];
  added: number;
  removed: number;
}

/** Splits text into lines without their terminators ("a\nb\n" -> ["a", "b", ""]). */
export function splitLines(text: string): string[] {
  return text.split(/\r\n|\n|\r/);
}

type Op = { kind: ' ' | '-' | '+'; a: number; b: number };

/** Myers' shortest edit script between a and b (line arrays). Returns ops in order. */
function myers(a: string[], b: string[]): Op[] {
  const n = a.length, m = b.length;
  const max = n + m;
  if (max === 0) return [];
  const off = max;
  let v = new Int32Array(2 * max + 2);
  const trace: Int32Array[] = [];
  let found = false;
  for (let d = 0; d <= max && !found; d++) {
    trace.push(v.slice());
    for (let k = -d; k <= d; k += 2) {
      let x: number;
      if (k === -d || (k !== d && v[off + k - 1] < v[off + k + 1])) x = v[off + k + 1];
      else x = v[off + k - 1] + 1;
      let y = x - k;
      while (x < n && y < m && a[x] === b[y]) { x++; y++; }
      v[off + k] = x;
      if (x >= n && y >= m) { found = true; break; }
    }
  }
  // Walk the trace backwards to recover the path.
  const ops: Op[] = [];
  let x = n, y = m;
  for (let d = trace.length - 1; d >= 0; d--) {
    const vd = trace[d];
    const k = x - y;
    let prevK: number;
    if (k === -d || (k !== d && vd[off + k - 1] < vd[off + k + 1])) prevK = k + 1;
    else prevK = k - 1;
    const prevX = d === 0 ? 0 : vd[off + prevK];
    const prevY = prevX - prevK;
    while (x > prevX && y > prevY) { x--; y--; ops.push({ kind: ' ', a: x, b: y }); }
    if (d > 0) {
      if (x === prevX) { y--; ops.push({ kind: '+', a: x, b: y }); }
      else { x--; ops.push({ kind: '-', a: x, b: y }); }
    }
  }
  ops.reverse();
  return ops;
}

/** Line-level edit script: the minimal replacements turning oldLines into newLines. */
export function diffLines(oldLines: string[], newLines: string[]): LineEdit[] {
  let pre = 0;
  const minLen = Math.min(oldLines.length, newLines.length);
  while (pre < minLen && oldLines[pre] === newLines[pre]) pre++;
  let suf = 0;
  while (suf < minLen - pre && oldLines[oldLines.length - 1 - suf] === newLines[newLines.length - 1 - suf]) suf++;
  const a = oldLines.slice(pre, oldLines.length - suf);
  const b = newLines.slice(pre, newLines.length - suf);
  if (a.length === 0 && b.length === 0) return [];
  // A very large middle (a paste over a large region) is one replacement: Myers would cost O(ND).
  const ops: Op[] = a.length * b.length > 4_000_000 || a.length === 0 || b.length === 0
    ? [...a.map((_, i) => ({ kind: '-' as const, a: i, b: 0 })), ...b.map((_, j) => ({ kind: '+' as const, a: a.length, b: j }))]
    : myers(a, b);
  const edits: LineEdit[] = [];
  let cur: LineEdit | null = null;
  let ai = 0, bi = 0;
  for (const op of ops) {
    if (op.kind === ' ') {
      if (cur) { edits.push(cur); cur = null; }
      ai++; bi++;
      continue;
    }
    if (!cur) cur = { oldStart: pre + ai, oldCount: 0, newStart: pre + bi, newLines: [] };
    if (op.kind === '-') { cur.oldCount++; ai++; }
    else { cur.newLines.push(b[bi]); bi++; }
  }
  if (cur) edits.push(cur);
  return edits;
}

/** Applies edits (from diffLines, in order) to oldLines. */
export function applyLineEdits(oldLines: string[], edits: readonly LineEdit[]): string[] {
  const out: string[] = [];
  let pos = 0;
  for (const e of edits) {
    if (e.oldStart < pos || e.oldStart + e.oldCount > oldLines.length) throw new Error(`line edit out of range: ${e.oldStart}+${e.oldCount} of ${oldLines.length}`);
    for (; pos < e.oldStart; pos++) out.push(oldLines[pos]);
    out.push(...e.newLines);
    pos = e.oldStart + e.oldCount;
  }
  for (; pos < oldLines.length; pos++) out.push(oldLines[pos]);
  return out;
}

/**
 * Groups edits into unified-diff hunks with `context` unchanged lines around each change; edits
 * closer than 2*context lines share a hunk. Header numbers follow diff -u (1-based; a count of
 * 0 names the line before).
 */
export function toHunks(oldLines: string[], edits: readonly LineEdit[], context = 1): Hunk[] {
  const hunks: Hunk[] = [];
  let i = 0;
  while (i < edits.length) {
    // Collect the edits of one hunk.
    let j = i;
    while (j + 1 < edits.length && edits[j + 1].oldStart - (edits[j].oldStart + edits[j].oldCount) <= 2 * context) j++;
    const first = edits[i], last = edits[j];
    const startOld = Math.max(0, first.oldStart - context);
    const endOld = Math.min(oldLines.length, last.oldStart + last.oldCount + context);
    const delta = first.newStart - first.oldStart; // line shift before this hunk
    const lines: string[] = [];
    let added = 0, removed = 0;
    let pos = startOld;
    for (let k = i; k <= j; k++) {
      const e = edits[k];
      for (; pos < e.oldStart; pos++) lines.push(' ' + oldLines[pos]);
      for (let r = 0; r < e.oldCount; r++) { lines.push('-' + oldLines[e.oldStart + r]); removed++; }
      for (const l of e.newLines) { lines.push('+' + l); added++; }
      pos = e.oldStart + e.oldCount;
    }
    for (; pos < endOld; pos++) lines.push(' ' + oldLines[pos]);
    const oldCount = endOld - startOld;
    const newCount = oldCount - removed + added;
    const newStartIdx = startOld + delta;
    hunks.push({
      oldStart: oldCount === 0 ? startOld : startOld + 1,
      oldCount,
      newStart: newCount === 0 ? newStartIdx : newStartIdx + 1,
      newCount,
      lines, added, removed,
    });
    i = j + 1;
  }
  return hunks;
}

export function hunkHeader(h: Hunk): string {
  return `@@ -${h.oldStart},${h.oldCount} +${h.newStart},${h.newCount} @@`;
}

/**
 * A copy of s that shares no memory with the string it was cut from. V8 keeps a whole string
 * alive behind any slice of it, so a line cached from a 100 KB document would keep that version
 * of the document alive (found by the edit storm, bench/storm.ts).
 */
export function flatCopy(s: string): string {
  return (' ' + s).slice(1);
}
