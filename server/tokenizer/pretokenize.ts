// Pre-tokenizers of byte-level BPE vocabularies: the regex that splits text into words before BPE,
// chosen by tokenizer.ggml.pre. The patterns are those of the models' tokenizer.json files
// (Hugging Face `tokenizers`, which runs them with Oniguruma), rewritten for JavaScript:
// - `(?i:'s|'t|...)` has no JavaScript form: each letter becomes a class of the characters that
//   case-fold to it ('s' also matches U+017F LATIN SMALL LETTER LONG S under Unicode folding).
// - `\s` is Unicode White_Space in Oniguruma but a different set in JavaScript (JS adds U+FEFF
//   and lacks U+0085), so it is spelled out.
// - `\p{L}` and `\p{N}` are those of Unicode 16.0 (Oniguruma's), spelled out in
//   unicode-classes.ts, so that ids do not depend on the runtime's Unicode version.

import { LETTER as L, NUMBER as N } from './unicode-classes';

const WS = '\\t\\n\\v\\f\\r \\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000';
const S = `[${WS}]`; // \s
const NOT_S = `[^${WS}]`; // \S

/** `(?i:'s|'t|'re|'ve|'m|'ll|'d)` without the inline flag. */
const CONTRACTIONS_CI = "'[sS\\u017f]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD]";
const CONTRACTIONS = "'s|'t|'re|'ve|'m|'ll|'d";

/** The pattern of a vocabulary, given the spelling of the letter and number classes. */
type PatternOf = (l: string, n: string) => string;

function qwenLike(digits: (n: string) => string): PatternOf {
  return (l, n) =>
    [
      CONTRACTIONS_CI,
      `[^\\r\\n${l}${n}]?[${l}]+`,
      digits(n),
      ` ?[^${WS}${l}${n}]+[\\r\\n]*`,
      `${S}*[\\r\\n]+`,
      `${S}+(?!${NOT_S})`,
      `${S}+`,
    ].join('|');
}

const PATTERNS: Record<string, PatternOf> = {
  // Qwen2 / Qwen2.5 / Qwen3: single digits.
  qwen2: qwenLike((n) => `[${n}]`),
  // Llama 3: up to three digits per word.
  'llama-bpe': qwenLike((n) => `[${n}]{1,3}`),
  // The original GPT-2 pattern (case-sensitive contractions, optional leading space).
  'gpt-2': (l, n) => [CONTRACTIONS, ` ?[${l}]+`, ` ?[${n}]+`, ` ?[^${WS}${l}${n}]+`, `${S}+(?!${NOT_S})`, `${S}+`].join('|'),
};
PATTERNS.default = PATTERNS['gpt-2'];

/** Other names llama.cpp's converter writes for the same pre-tokenizers. */
const ALIASES: Record<string, string> = { llama3: 'llama-bpe', 'llama-v3': 'llama-bpe' };

/** The pre-tokenizer family of a tokenizer.ggml.pre value (undefined: not supported). */
export function preFamily(pre: string): string | undefined {
  const name = ALIASES[pre] ?? pre;
  return Object.prototype.hasOwnProperty.call(PATTERNS, name) ? name : undefined;
}

/**
 * The spelled-out classes make the regex several times slower than \p{L}/\p{N}. Below the first
 * BMP code point where the runtime's \p{L} or \p{N} differs from Unicode 16.0 (U+088F on a
 * Unicode 17 runtime) both give the same words, so text made only of such characters (most code)
 * takes the fast regex.
 */
export const FAST_LIMIT: number = (() => {
  const runtimeL = /\p{L}/u;
  const runtimeN = /\p{N}/u;
  const tableL = new RegExp(`[${L}]`, 'u');
  const tableN = new RegExp(`[${N}]`, 'u');
  for (let cp = 0; cp < 0xd800; cp++) {
    const c = String.fromCharCode(cp);
    if (runtimeL.test(c) !== tableL.test(c) || runtimeN.test(c) !== tableN.test(c)) return cp;
  }
  return 0xd800;
})();

export const SUPPORTED_PRE: readonly string[] = [...Object.keys(PATTERNS), ...Object.keys(ALIASES)];

export interface PreTokenizer {
  readonly name: string;
  /** Splits text into words; every character of `text` lands in exactly one word, in order. */
  split(text: string): string[];
  /** The same split using only the Unicode 16.0 classes (slower; for tests of the fast path). */
  splitExact(text: string): string[];
}

function nextSlow(text: string, from: number): number {
  for (let i = from; i < text.length; i++) if (text.charCodeAt(i) >= FAST_LIMIT) return i;
  return text.length;
}

export function createPreTokenizer(pre: string): PreTokenizer {
  const family = preFamily(pre);
  const patternOf = family === undefined ? undefined : PATTERNS[family];
  if (patternOf === undefined) {
    throw new Error(
      `tokenizer: unsupported pre-tokenizer tokenizer.ggml.pre = "${pre}" (supported: ${SUPPORTED_PRE.join(', ')})`,
    );
  }
  // Sticky regexes: each match is tried exactly at the current position, on the whole text (so
  // the lookahead of \s+(?!\S) sees the real next character).
  const exact = new RegExp(patternOf(L, N), 'uy');
  const fast = new RegExp(patternOf('\\p{L}', '\\p{N}'), 'uy');

  const run = (text: string, useFast: boolean): string[] => {
    const words: string[] = [];
    let gapStart = -1; // "Isolated" split behaviour: text no match covers is a word of its own
    let slow = useFast ? nextSlow(text, 0) : -1;
    let pos = 0;
    while (pos < text.length) {
      let m: RegExpExecArray | null = null;
      if (useFast) {
        if (slow < pos) slow = nextSlow(text, pos);
        if (slow > pos) {
          fast.lastIndex = pos;
          m = fast.exec(text);
          // A match decides by the classes of the characters it covers and of the one after it
          // (failed alternatives look at most two characters in): if one of those is a
          // character where the runtime may differ from Unicode 16.0, decide again exactly.
          if (m !== null && slow <= pos + m[0].length) m = null;
        }
      }
      if (m === null) {
        exact.lastIndex = pos;
        m = exact.exec(text);
      }
      if (m === null || m[0].length === 0) {
        // Not reachable with these patterns (every character is a letter, number, space or
        // other); kept so that odd input can never loop or lose text.
        if (gapStart < 0) gapStart = pos;
        pos += text.codePointAt(pos)! > 0xffff ? 2 : 1;
        continue;
      }
      if (gapStart >= 0) {
        words.push(text.slice(gapStart, pos));
        gapStart = -1;
      }
      words.push(m[0]);
      pos += m[0].length;
    }
    if (gapStart >= 0) words.push(text.slice(gapStart));
    return words;
  };

  return {
    name: pre,
    split: (text) => run(text, true),
    splitExact: (text) => run(text, false),
  };
}
