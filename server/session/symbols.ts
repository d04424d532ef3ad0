// A small regex-based symbol extraction per language, for the summaries' digest ("symbols
// changed"). Not a parser: it recognises the usual declaration lines of common languages.

export interface SymbolDecl { name: string; kind: string; line: number }

type Rule = { re: RegExp; kind: string };

const TS_RULES: Rule[] = [
  { re: /^\s*(?:export\s+)?(?:default\s+)?(?:async\s+)?function\s*\*?\s*([A-Za-z_$][\w$]*)/, kind: 'function' },
  { re: /^\s*(?:export\s+)?(?:default\s+)?(?:abstract\s+)?class\s+([A-Za-z_$][\w$]*)/, kind: 'class' },
  { re: /^\s*(?:export\s+)?interface\s+([A-Za-z_$][\w$]*)/, kind: 'interface' },
  { re: /^\s*(?:export\s+)?type\s+([A-Za-z_$][\w$]*)\s*(?:<[^=]*>)?\s*=/, kind: 'type' },
  { re: /^\s*(?:export\s+)?(?:const\s+)?enum\s+([A-Za-z_$][\w$]*)/, kind: 'enum' },
  { re: /^\s*(?:export\s+)?(?:const|let|var)\s+([A-Za-z_$][\w$]*)\s*(?::[^=]*)?=\s*(?:async\s*)?(?:\([^)]*\)|[A-Za-z_$][\w$]*)\s*(?::[^=]*)?=>/, kind: 'function' },
  { re: /^\s*(?:export\s+)?const\s+([A-Z_][A-Z0-9_]*)\s*(?::[^=]*)?=/, kind: 'constant' },
  { re: /^\s+(?:public\s+|private\s+|protected\s+|static\s+|readonly\s+|async\s+|get\s+|set\s+)*([A-Za-z_$][\w$]*)\s*(?:<[^>]*>)?\([^)]*\)\s*(?::\s*[^{]+)?\{\s*$/, kind: 'method' },
];

const PY_RULES: Rule[] = [
  { re: /^\s*(?:async\s+)?def\s+([A-Za-z_]\w*)/, kind: 'function' },
  { re: /^\s*class\s+([A-Za-z_]\w*)/, kind: 'class' },
  { re: /^([A-Z_][A-Z0-9_]*)\s*(?::[^=]*)?=/, kind: 'constant' },
];

const GO_RULES: Rule[] = [
  { re: /^func\s+(?:\([^)]*\)\s*)?([A-Za-z_]\w*)/, kind: 'function' },
  { re: /^type\s+([A-Za-z_]\w*)\s+(struct|interface)/, kind: 'type' },
];

const RUST_RULES: Rule[] = [
  { re: /^\s*(?:pub(?:\([^)]*\))?\s+)?(?:async\s+)?(?:unsafe\s+)?fn\s+([A-Za-z_]\w*)/, kind: 'function' },
  { re: /^\s*(?:pub(?:\([^)]*\))?\s+)?struct\s+([A-Za-z_]\w*)/, kind: 'struct' },
  { re: /^\s*(?:pub(?:\([^)]*\))?\s+)?enum\s+([A-Za-z_]\w*)/, kind: 'enum' },
  { re: /^\s*(?:pub(?:\([^)]*\))?\s+)?trait\s+([A-Za-z_]\w*)/, kind: 'trait' },
  { re: /^\s*impl(?:<[^>]*>)?\s+(?:[\w:<>]+\s+for\s+)?([A-Za-z_]\w*)/, kind: 'impl' },
];

const C_RULES: Rule[] = [
  { re: /^\s*(?:class|struct|union|enum(?:\s+class)?)\s+([A-Za-z_]\w*)\s*(?:[:{]|$)/, kind: 'type' },
  { re: /^(?:[A-Za-z_][\w:<>*&\s]*?[\s*&])([A-Za-z_][\w:]*)\s*\([^;]*$/, kind: 'function' },
  { re: /^\s*#define\s+([A-Za-z_]\w*)/, kind: 'macro' },
];

const JAVA_RULES: Rule[] = [
  { re: /^\s*(?:public\s+|private\s+|protected\s+|abstract\s+|final\s+|static\s+|sealed\s+)*(?:class|interface|enum|record)\s+([A-Za-z_]\w*)/, kind: 'class' },
  { re: /^\s*(?:public\s+|private\s+|protected\s+|static\s+|final\s+|abstract\s+|synchronized\s+|override\s+|suspend\s+)*(?:fun\s+|[\w<>\[\],\s]+\s+)([a-zA-Z_]\w*)\s*\([^;]*$/, kind: 'method' },
];

const RULES: Record<string, Rule[]> = {
  typescript: TS_RULES, javascript: TS_RULES, typescriptreact: TS_RULES, javascriptreact: TS_RULES,
  python: PY_RULES, go: GO_RULES, rust: RUST_RULES,
  c: C_RULES, cpp: C_RULES, cuda: C_RULES, 'cuda-cpp': C_RULES,
  java: JAVA_RULES, kotlin: JAVA_RULES, csharp: JAVA_RULES,
};

const KEYWORDS = new Set(['if', 'for', 'while', 'switch', 'catch', 'return', 'else', 'do', 'new', 'function', 'sizeof', 'with']);

const EXT_LANG: Record<string, string> = {
  ts: 'typescript', tsx: 'typescriptreact', js: 'javascript', jsx: 'javascriptreact', mjs: 'javascript', cjs: 'javascript',
  py: 'python', go: 'go', rs: 'rust', c: 'c', h: 'c', cc: 'cpp', cpp: 'cpp', hpp: 'cpp', cu: 'cuda', cuh: 'cuda',
  java: 'java', kt: 'kotlin', cs: 'csharp',
};

export function languageFromPath(path: string): string {
  const m = /\.([A-Za-z0-9]+)$/.exec(path);
  return (m && EXT_LANG[m[1].toLowerCase()]) || 'plaintext';
}

/** Declarations on one line (at most one per line). */
export function symbolOnLine(line: string, languageId: string): { name: string; kind: string } | null {
  const rules = RULES[languageId];
  if (!rules) return null;
  for (const r of rules) {
    const m = r.re.exec(line);
    if (m && !KEYWORDS.has(m[1])) return { name: m[1], kind: r.kind };
  }
  return null;
}

export function extractSymbols(text: string, languageId: string): SymbolDecl[] {
  const out: SymbolDecl[] = [];
  const lines = text.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const s = symbolOnLine(lines[i], languageId);
    if (s) out.push({ ...s, line: i });
  }
  return out;
}

/** The enclosing declaration of a line: the nearest declaration above it with less or equal indentation. */
export function enclosingSymbol(lines: readonly string[], line: number, languageId: string): { name: string; kind: string } | null {
  const indent = (s: string) => s.length - s.trimStart().length;
  let limit = Infinity;
  for (let i = Math.min(line, lines.length - 1); i >= 0; i--) {
    const l = lines[i];
    if (l.trim() === '') continue;
    const ind = indent(l);
    if (ind > limit) continue;
    const s = symbolOnLine(l, languageId);
    if (s) return s;
    limit = Math.min(limit, ind);
  }
  return null;
}
