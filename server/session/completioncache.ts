// Inline completion results cached by prefix: a request whose text before the cursor equals a
// cached one's, or extends it by characters the user typed that match the start of a cached
// completion, is answered from the cache (the rest of that completion) without the engine.

export interface CacheEntry {
  uri: string;
  /** The last PREFIX_KEEP characters before the cursor when the completion was made. */
  prefixTail: string;
  /** The first SUFFIX_KEEP characters after the cursor. */
  suffixHead: string;
  items: string[];
  time: number;
}

const PREFIX_KEEP = 512;
const SUFFIX_KEEP = 256;
const MAX_TYPED = 160;

export class CompletionCache {
  private entries: CacheEntry[] = [];
  hits = 0;
  misses = 0;

  constructor(private readonly max = 32) {}

  put(uri: string, prefix: string, suffix: string, items: string[]): void {
    const useful = items.filter((s) => s.length > 0);
    if (!useful.length) return;
    const prefixTail = prefix.slice(-PREFIX_KEEP);
    const suffixHead = suffix.slice(0, SUFFIX_KEEP);
    this.entries = this.entries.filter((e) => !(e.uri === uri && e.prefixTail === prefixTail && e.suffixHead === suffixHead));
    this.entries.push({ uri, prefixTail, suffixHead, items: [...new Set(useful)], time: Date.now() });
    if (this.entries.length > this.max) this.entries.shift();
  }

  /** Completions for this position, or undefined. Newest entries first. */
  get(uri: string, prefix: string, suffix: string): string[] | undefined {
    const suffixHead = suffix.slice(0, SUFFIX_KEEP);
    for (let i = this.entries.length - 1; i >= 0; i--) {
      const e = this.entries[i];
      if (e.uri !== uri || e.suffixHead !== suffixHead) continue;
      const longest = Math.max(...e.items.map((s) => s.length));
      for (let t = 0; t <= Math.min(MAX_TYPED, longest, prefix.length); t++) {
        const typed = prefix.slice(prefix.length - t);
        const before = prefix.slice(0, prefix.length - t);
        if (!before.endsWith(e.prefixTail) && !(before.length < PREFIX_KEEP && e.prefixTail === before)) continue;
        if (e.prefixTail.length === PREFIX_KEEP || before.length === e.prefixTail.length) {
          const rest = e.items.filter((s) => s.startsWith(typed) && s.length > typed.length).map((s) => s.slice(typed.length));
          if (rest.length) { this.hits++; return rest; }
        }
      }
    }
    this.misses++;
    return undefined;
  }

  /** Drops the entries of a document (it changed other than by typing at the cursor). */
  invalidate(uri: string): void {
    this.entries = this.entries.filter((e) => e.uri !== uri);
  }

  clear(): void {
    this.entries = [];
  }
}
