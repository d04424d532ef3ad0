// Stop rules for inline completions, evaluated on the text generated so far after every token:
// - mid-line (text after the cursor on its line): the end of the line;
// - the cursor line has code before the cursor: the end of that line, unless it opens a block
//   (an unclosed bracket, or a trailing ':'), then the end of that block;
// - an empty line: a block of lines at the cursor's indentation or deeper;
// - everywhere: a line that dedents below the cursor's indentation, a bracket closing something
//   opened before the completion (when it starts a line), the model repeating the text that follows
//   the cursor, two blank lines in a row, or maxLines.
// Max tokens and the time budget are enforced by the caller.

export interface StopContext {
  /** Text of the cursor's line before the cursor. */
  linePrefix: string;
  /** Text of the cursor's line after the cursor. */
  lineSuffix: string;
  /** The first non-blank line after the cursor's line (trimmed), if any. */
  nextLine?: string;
  maxLines?: number;
}

export interface StopVerdict {
  /** Generation should end now. */
  done: boolean;
  /** The completion to show (the generated text cut where the rules say). */
  text: string;
}

const OPEN = '([{';
const CLOSE = ')]}';

function indentOf(line: string): number {
  let n = 0;
  for (const ch of line) {
    if (ch === ' ') n++;
    else if (ch === '\t') n += 4;
    else break;
  }
  return n;
}

/** Bracket depth change of a line, skipping string literals and line comments (roughly). */
export function bracketDelta(line: string): { delta: number; minDepth: number } {
  let depth = 0, minDepth = 0;
  let quote: string | null = null;
  for (let i = 0; i < line.length; i++) {
    const ch = line[i];
    if (quote) {
      if (ch === '\\') i++;
      else if (ch === quote) quote = null;
      continue;
    }
    if (ch === '"' || ch === "'" || ch === '`') { quote = ch; continue; }
    if (ch === '/' && line[i + 1] === '/') break;
    if (ch === '#' && (i === 0 || /\s/.test(line[i - 1]))) break;
    if (OPEN.includes(ch)) depth++;
    else if (CLOSE.includes(ch)) { depth--; minDepth = Math.min(minDepth, depth); }
  }
  return { delta: depth, minDepth };
}

/** Does the line (its code part) end by opening a block? */
function opensBlock(line: string): boolean {
  const t = line.replace(/\s*(\/\/.*|#.*)?$/, '');
  return /[({[]$/.test(t) || /:$/.test(t) || /=>$/.test(t);
}

export function evaluateStop(generated: string, ctx: StopContext): StopVerdict {
  const maxLines = ctx.maxLines ?? 16;
  const lines = generated.split('\n');
  const complete = lines.length - 1; // lines ended by '\n' so far

  // Mid-line: only the rest of this line.
  if (ctx.lineSuffix.trim() !== '') {
    if (complete >= 1) return { done: true, text: lines[0] };
    return { done: false, text: generated };
  }

  const baseIndent = indentOf(ctx.linePrefix);
  const hasCode = ctx.linePrefix.trim() !== '';
  const firstLine = ctx.linePrefix + lines[0];
  // Depth of brackets opened by the completion itself (the first line continues the cursor's line).
  let depth = bracketDelta(lines[0]).delta;

  // A completed first line that opens nothing ends a line completion.
  if (complete >= 1 && hasCode && depth <= 0 && !opensBlock(firstLine)) {
    return { done: true, text: lines[0] };
  }

  let blank = 0;
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i];
    const finished = i < lines.length - 1; // a line already ended by '\n'
    if (!finished) {
      // The line being generated: check only what cannot change by more text.
      if (line.trim() !== '' && indentOf(line) < baseIndent && !CLOSE.includes(line.trim()[0] ?? '')) {
        return { done: true, text: lines.slice(0, i).join('\n') };
      }
      break;
    }
    if (line.trim() === '') {
      blank++;
      if (blank >= 2) return { done: true, text: trimEnd(lines.slice(0, i - 1).join('\n')) };
      continue;
    }
    blank = 0;
    const ind = indentOf(line);
    const trimmed = line.trim();
    const d = bracketDelta(line);
    // A closing bracket that starts a line and closes something opened before the completion.
    if (CLOSE.includes(trimmed[0]) && depth + d.minDepth < 0) {
      return { done: true, text: trimEnd(lines.slice(0, i).join('\n')) };
    }
    // Dedent below the cursor's indentation: the block is over (a closing bracket of our own block is kept).
    if (ind < baseIndent && !(CLOSE.includes(trimmed[0]) && depth > 0)) {
      return { done: true, text: trimEnd(lines.slice(0, i).join('\n')) };
    }
    // The body of a block opened on the cursor's line is over when a line returns to its indentation.
    if (hasCode && ind <= baseIndent && !CLOSE.includes(trimmed[0])) {
      return { done: true, text: trimEnd(lines.slice(0, i).join('\n')) };
    }
    // The model repeating the code after the cursor.
    if (ctx.nextLine && trimmed === ctx.nextLine.trim()) {
      return { done: true, text: trimEnd(lines.slice(0, i).join('\n')) };
    }
    depth += d.delta;
    // A line completion that opened a block ends when the block closes.
    if (hasCode && depth <= 0 && ind <= baseIndent && CLOSE.includes(trimmed[0])) {
      return { done: true, text: lines.slice(0, i + 1).join('\n') };
    }
    if (i >= maxLines - 1) return { done: true, text: lines.slice(0, i + 1).join('\n') };
  }
  return { done: false, text: generated };
}

function trimEnd(s: string): string {
  return s.replace(/\s+$/, '');
}

/** Final cleanup of a completion when generation ended for another reason (max tokens, time, EOS). */
export function finishCompletion(generated: string, ctx: StopContext): string {
  const v = evaluateStop(generated, ctx);
  let text = v.text;
  if (!v.done) {
    // Cut an unfinished last line of a multi-line completion only if it is whitespace.
    text = text.replace(/\n[ \t]*$/, '');
  }
  return text.replace(/[ \t]+$/, '');
}
