// Unit tests of the stream-view replay (server/session/streamview.ts) against the renderer: random
// editor edits of this repository's sources are diffed, bounded and rendered exactly as the session
// does it (diff.ts, render.ts, boundHunks), encoded with the shipped model's tokenizer, and fed to
// the tracker as token ids; the view it rebuilds must equal the document after every flush. The
// lossy rules (cut long lines, truncated pastes, headers) and bad input are checked too.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { readGgufMetadata } from '../../server/engine/index';
import { Tokenizer } from '../../server/tokenizer';
import { diffLines, splitLines, toHunks } from '../../server/session/diff';
import { encodePieces, StreamFormat, surroundingsOf } from '../../server/session/render';
import { boundHunks, MAX_EDIT_LINES, MAX_LINE_CHARS } from '../../server/session/session';
import { StreamViewTracker } from '../../server/session/streamview';

const root = path.resolve(__dirname, '..', '..');
const tok = Tokenizer.fromMetadata(readGgufMetadata(path.join(root, 'models', 'endless-code-q8_0.gguf')));
const fmt = new StreamFormat(tok);
const clip = (l: string) => (l.length > MAX_LINE_CHARS ? l.slice(0, MAX_LINE_CHARS) + '…' : l);

function rnd(seed: number) {
  let s = seed >>> 0;
  return () => { s = (s * 1664525 + 1013904223) >>> 0; return s / 2 ** 32; };
}

/** The session's side, reduced to what the stream gets: headers and bounded diffs of whole flushes. */
class Renderer {
  view: string[] | null = null;
  constructor(readonly tracker: StreamViewTracker, readonly path: string) {}
  header(text: string, cursorLine: number, budget = 200): void {
    const lines = splitLines(text);
    const s = surroundingsOf(lines.map(clip), cursorLine, budget, (t) => tok.encode(t, { addBos: false }).length);
    this.tracker.append(encodePieces(tok, fmt.fileActivated(this.path, s.text)), text);
    this.view = lines;
  }
  flush(text: string): void {
    const now = splitLines(text);
    const edits = diffLines(this.view!, now);
    if (!edits.length) return;
    const hunks = boundHunks(toHunks(this.view!, edits, 1));
    this.tracker.append(encodePieces(tok, hunks.flatMap((h) => fmt.editHunk(this.path, h))));
    this.view = now;
  }
}

const sources = ['server/session/session.ts', 'server/session/diff.ts', 'server/session/render.ts', 'server/main.ts']
  .map((p) => readFileSync(path.join(root, p), 'utf8'));

/** An editor-like random edit of text: typing, deleting, pasting a block, replacing lines. */
function randomEdit(text: string, r: () => number): string {
  const at = Math.floor(r() * (text.length + 1));
  const k = r();
  if (k < 0.4) return text.slice(0, at) + 'xyz(){};\n'.slice(Math.floor(r() * 8)).slice(0, 1 + Math.floor(r() * 4)) + text.slice(at);
  if (k < 0.6) return text.slice(0, at) + text.slice(Math.min(text.length, at + 1 + Math.floor(r() * 40)));
  const src = sources[Math.floor(r() * sources.length)];
  const from = Math.floor(r() * src.length);
  const block = src.slice(from, from + Math.floor(r() * 1500));
  if (k < 0.8) return text.slice(0, at) + block + text.slice(at);
  const end = Math.min(text.length, at + Math.floor(r() * 600));
  return text.slice(0, at) + block + text.slice(end);
}

function viewOf(tracker: StreamViewTracker, p: string) {
  const v = tracker.snapshot().find((x) => x.path === p);
  assert.ok(v, `a view of ${p}`);
  return v;
}

test('the replayed view equals the document after random edit sequences', () => {
  for (let seed = 1; seed <= 6; seed++) {
    const r = rnd(seed);
    const tracker = new StreamViewTracker(tok, MAX_LINE_CHARS);
    const p = `src/file ${seed}.ts`; // a space in the path, as a real path may have
    const rd = new Renderer(tracker, p);
    let text = sources[seed % sources.length].slice(0, 6000 + seed * 1000);
    rd.header(text, Math.floor(r() * 50));
    for (let step = 0; step < 60; step++) {
      const n = 1 + Math.floor(r() * 8);
      for (let i = 0; i < n; i++) text = randomEdit(text, r);
      if (r() < 0.1) { rd.flush(text); rd.header(text, Math.floor(r() * 80)); }
      else rd.flush(text);
      const v = viewOf(tracker, p);
      assert.deepEqual(v.errors, [], `seed ${seed} step ${step}`);
      assert.equal(v.unknownLines + v.clippedLines, 0);
      assert.equal(v.text, splitLines(text).join('\n'), `seed ${seed} step ${step}`);
    }
  }
});

test('several documents and several hunks per flush keep their own views', () => {
  const tracker = new StreamViewTracker(tok, MAX_LINE_CHARS);
  const a = new Renderer(tracker, 'a.ts'), b = new Renderer(tracker, 'b.ts');
  let ta = sources[0].slice(0, 5000), tb = sources[1];
  a.header(ta, 0); b.header(tb, 10);
  const r = rnd(42);
  for (let i = 0; i < 40; i++) {
    // edits far apart in one flush give one hunk each
    const lines = splitLines(ta);
    for (let k = 0; k < 3; k++) lines[Math.floor(r() * lines.length)] += ` // ${i}.${k}`;
    ta = lines.join('\n');
    a.flush(ta);
    tb = randomEdit(tb, r);
    b.flush(tb);
  }
  assert.equal(viewOf(tracker, 'a.ts').text, ta);
  assert.equal(viewOf(tracker, 'b.ts').text, tb);
  assert.equal(viewOf(tracker, 'a.ts').errorCount + viewOf(tracker, 'b.ts').errorCount, 0);
  // the first header showed only the surroundings: the rest is known from its record
  assert.ok(viewOf(tracker, 'b.ts').recordLines > 0);
});

test('a line past the clip limit stays cut in the view and is counted', () => {
  const tracker = new StreamViewTracker(tok, MAX_LINE_CHARS);
  const rd = new Renderer(tracker, 'min.js');
  let text = 'a\nb\nc\n';
  rd.header(text, 0);
  const long = 'x'.repeat(MAX_LINE_CHARS + 500);
  text = `a\n${long}\nc\n`;
  rd.flush(text);
  let v = viewOf(tracker, 'min.js');
  assert.deepEqual(v.errors, []);
  assert.equal(v.clippedLines, 1);
  assert.equal(v.text, `a\n${clip(long)}\nc\n`);
  // a later edit next to it shows the cut line as context: it still matches
  text = `a\n${long}\nc2\n`;
  rd.flush(text);
  v = viewOf(tracker, 'min.js');
  assert.deepEqual(v.errors, []);
  assert.equal(v.text, `a\n${clip(long)}\nc2\n`);
});

test('a paste past the changed-line budget leaves unknown lines until a header resyncs', () => {
  const tracker = new StreamViewTracker(tok, MAX_LINE_CHARS);
  const rd = new Renderer(tracker, 'big.ts');
  let text = 'head\ntail\n';
  rd.header(text, 0);
  const block = Array.from({ length: MAX_EDIT_LINES + 50 }, (_, i) => `line ${i}`).join('\n') + '\n';
  text = 'head\n' + block + 'tail\n';
  rd.flush(text);
  let v = viewOf(tracker, 'big.ts');
  assert.deepEqual(v.errors, []);
  assert.equal(v.lines, splitLines(text).length);
  assert.equal(v.unknownLines, 51); // the 50 hidden lines and the context line after them
  // an edit inside the hidden part shows its line as context: that line becomes known
  const lines = splitLines(text);
  lines[MAX_EDIT_LINES + 20] = 'changed';
  text = lines.join('\n');
  rd.flush(text);
  v = viewOf(tracker, 'big.ts');
  assert.deepEqual(v.errors, []);
  assert.equal(v.unknownLines, 48); // the changed line and its two context lines are known now
  // a header re-syncs: the record fills the rest
  rd.header(text, 0);
  v = viewOf(tracker, 'big.ts');
  assert.deepEqual(v.errors, []);
  assert.equal(v.unknownLines, 0);
  assert.equal(v.text, text);
});

test('a lost edit is found: the next hunk does not fit the view', () => {
  const tracker = new StreamViewTracker(tok, MAX_LINE_CHARS);
  const rd = new Renderer(tracker, 'lost.ts');
  let text = sources[1];
  rd.header(text, 0);
  const lines = splitLines(text);
  lines[30] = 'a change the stream never got';
  rd.view = lines.slice(); // the server's view moved on, but nothing was appended
  lines[31] += ' // and a later one';
  text = lines.join('\n');
  rd.flush(text);
  const v = viewOf(tracker, 'lost.ts');
  assert.ok(v.errorCount >= 1);
  assert.match(v.errors[0], /line 31 .* in the stream's view but the hunk shows/);
  // and a header whose record differs from the view says so
  rd.header(text, 0);
  assert.match(viewOf(tracker, 'lost.ts').errors.join('\n'), /differs from the stream's view/);
});

test('bad input gives errors, never a throw', () => {
  const tracker = new StreamViewTracker(tok, MAX_LINE_CHARS);
  tracker.append(tok.encode('plain text, no marker', { addBos: false }));
  tracker.append([fmt.edit!, ...tok.encode('x.ts @@ -1,1 +1,1 @@\n-a\n+b\n', { addBos: false })]);
  tracker.append([fmt.edit!, ...tok.encode('x.ts @@ nonsense\n', { addBos: false })]);
  tracker.append([fmt.file!, ...tok.encode('y.ts\nnot in the record\n', { addBos: false })], 'a\nb\n');
  tracker.append([fmt.edit!, ...tok.encode('y.ts @@ -5,1 +5,1 @@\n-a\n+b\n', { addBos: false })]);
  tracker.append([fmt.edit!, ...tok.encode('y.ts @@ -1,1 +1,1 @@\n*a\n', { addBos: false })]);
  tracker.append([fmt.save!]);
  assert.equal(tracker.errorCount, 4);
  assert.match(tracker.errors.join('\n'), /text outside a document event/);
  assert.match(tracker.errors.join('\n'), /before any header/);
  assert.match(tracker.errors.join('\n'), /bad hunk header/);
  assert.match(tracker.errors.join('\n'), /without a line end/);
  const y = viewOf(tracker, 'y.ts');
  assert.equal(y.errorCount, 3);
  assert.equal(y.text, 'a\nb\n'.split('\n').join('\n'));
  tracker.reset();
  assert.equal(tracker.snapshot().length, 0);
});

test('random sequences with huge pastes and long lines: no error, and every line known, cut or unknown as the rules say', () => {
  for (let seed = 11; seed <= 14; seed++) {
    const r = rnd(seed);
    const tracker = new StreamViewTracker(tok, MAX_LINE_CHARS);
    const rd = new Renderer(tracker, 'lossy.ts');
    let text = sources[0].slice(0, 4000);
    rd.header(text, 0);
    let lossy = 0;
    for (let step = 0; step < 30; step++) {
      const k = r();
      if (k < 0.15) {
        const lines = Array.from({ length: 300 + Math.floor(r() * 300) }, (_, i) => `pasted ${step}.${i}`);
        const at = Math.floor(r() * text.length);
        text = text.slice(0, at) + lines.join('\n') + text.slice(at);
      } else if (k < 0.3) {
        const at = text.indexOf('\n', Math.floor(r() * text.length));
        if (at >= 0) text = text.slice(0, at) + '\n' + 'y'.repeat(MAX_LINE_CHARS + Math.floor(r() * 50)) + text.slice(at);
      } else {
        text = randomEdit(text, r);
      }
      if (r() < 0.1) { rd.flush(text); rd.header(text, Math.floor(r() * 40)); } else rd.flush(text);
      const v = viewOf(tracker, 'lossy.ts');
      assert.deepEqual(v.errors, [], `seed ${seed} step ${step}`);
      const a = v.text.split('\n'), b = splitLines(text);
      assert.equal(a.length, b.length);
      let odd = 0;
      for (let i = 0; i < a.length; i++) {
        if (a[i] === b[i]) continue;
        odd++;
        assert.ok(a[i] === clip(b[i]) || a[i] === '', `seed ${seed} step ${step} line ${i + 1}`);
      }
      assert.ok(odd <= v.unknownLines + v.clippedLines);
      lossy += v.unknownLines + v.clippedLines;
    }
    assert.ok(lossy > 0, 'the sequence had lossy edits');
  }
});
