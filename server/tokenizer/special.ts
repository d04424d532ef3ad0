// Finds special and added tokens (control, user-defined and unknown tokens) in text, leftmost
// first and longest first at a position, the way Hugging Face `tokenizers` extracts added tokens
// before normalization and pre-tokenization, and llama.cpp with parse_special.

export interface SpecialToken {
  text: string;
  id: number;
}

/** A piece of text to tokenize normally, or the id of a special token found in the text. */
export type Fragment = string | number;

export class SpecialMatcher {
  /** first UTF-16 code unit -> candidates, longest first */
  private readonly byFirst = new Map<number, SpecialToken[]>();

  constructor(tokens: readonly SpecialToken[]) {
    for (const t of tokens) {
      if (t.text.length === 0) continue;
      const k = t.text.charCodeAt(0);
      let list = this.byFirst.get(k);
      if (list === undefined) this.byFirst.set(k, (list = []));
      list.push(t);
    }
    for (const list of this.byFirst.values()) list.sort((a, b) => b.text.length - a.text.length || a.id - b.id);
  }

  get empty(): boolean {
    return this.byFirst.size === 0;
  }

  split(text: string): Fragment[] {
    const out: Fragment[] = [];
    let segStart = 0;
    let i = 0;
    while (i < text.length) {
      const list = this.byFirst.get(text.charCodeAt(i));
      let found: SpecialToken | undefined;
      if (list !== undefined) {
        for (const t of list) {
          if (text.startsWith(t.text, i)) {
            found = t;
            break;
          }
        }
      }
      if (found === undefined) {
        i++;
        continue;
      }
      if (i > segStart) out.push(text.slice(segStart, i));
      out.push(found.id);
      i += found.text.length;
      segStart = i;
    }
    if (segStart < text.length) out.push(text.slice(segStart));
    return out;
  }
}
