// Fill-in-the-middle exact match of the default model on held-out files, through the engine:
//   lines  a random non-trivial line (code, not a comment; 8-150 characters after its
//          indentation): the middle is the line after its indentation; greedy generation until
//          <|endoftext|> or a newline (max 64 tokens);
//   spans  2-8 whole lines inside the body of a held-out function (Python `def`, JS/TS and C/C++
//          functions found by a brace heuristic): greedy generation until <|endoftext|> or
//          2 x the span's tokens + 16.
// Prefix: whole lines before the middle, at most --prefix-tokens tokens; suffix: whole lines after,
// at most --suffix-tokens. Prompt, as trained (models/README.md): PSM
// <|sink|><|fim_prefix|>P<|fim_suffix|>S<|fim_middle|> and SPM <|sink|><|fim_suffix|>S<|fim_prefix|>P<|fim_middle|>
// (the order the server uses). Scores: exact match, exact after collapsing whitespace, and
// character similarity 1 - Levenshtein / max length.
//
//   node --import tsx models/eval/fim_eval.ts --model models/endless-code-q8_0.gguf \
//     --heldout /tmp/endless-eval/heldout --out models/eval/results/fim.json
import { loadModel, type EngineSession } from '../../server/engine/index';
import { Tokenizer } from '../../server/tokenizer/index';
import { argmax, LANGS, loadHeldout, parseArgs, rng, specialIds, writeJson, type HeldoutFile, type Lang } from './common';

const USAGE = `usage: node --import tsx models/eval/fim_eval.ts --model M --heldout DIR --out OUT.json
  [--lines 200] [--spans 100] [--orders psm,spm] [--prefix-tokens 600] [--suffix-tokens 200] [--seed 1] [--threads 2]\n`;

interface Case { kind: 'line' | 'span'; lang: Lang; file: string; line: number; prefix: string; middle: string; suffix: string }

const COMMENT = /^(#|\/\/|\/\*|\*|"""|''')/;

function lineCases(files: HeldoutFile[], lang: Lang): Omit<Case, 'prefix' | 'middle' | 'suffix'>[] {
  const out: Omit<Case, 'prefix' | 'middle' | 'suffix'>[] = [];
  for (const f of files) {
    if (f.lang !== lang) continue;
    const lines = f.text.split('\n');
    for (let i = 1; i < lines.length - 1; i++) {
      const body = lines[i].trim();
      if (body.length < 8 || body.length > 150 || COMMENT.test(body)) continue;
      if ((body.match(/[A-Za-z0-9_]/g) ?? []).length < 4) continue;
      out.push({ kind: 'line', lang, file: f.file, line: i });
    }
  }
  return out;
}

const indentOf = (s: string) => s.length - s.trimStart().length;
const CONTROL = /^(}\s*)?(if|for|while|switch|catch|else|do|try|return|with|elif|except|class|struct|namespace|enum|interface|union|extern)\b/;

/** Function bodies as [first body line, end (exclusive)] line ranges. */
function functionBodies(lines: string[], lang: Lang): [number, number][] {
  const out: [number, number][] = [];
  for (let i = 0; i < lines.length; i++) {
    const t = lines[i].trim();
    if (lang === 'python') {
      if (!/^(async\s+)?def\s+\w+\s*\(/.test(t)) continue;
      let j = i;
      while (j < lines.length && j < i + 12 && !/:\s*(#.*)?$/.test(lines[j].trimEnd())) j++;
      if (j >= lines.length || j >= i + 12) continue;
      const ind = indentOf(lines[i]);
      let e = j + 1;
      while (e < lines.length && (lines[e].trim() === '' || indentOf(lines[e]) > ind)) e++;
      while (e > j + 1 && lines[e - 1].trim() === '') e--;
      if (e - (j + 1) >= 3) out.push([j + 1, e]);
    } else {
      if (!t.endsWith('{') || CONTROL.test(t) || t.startsWith('#')) continue;
      const fn = /\bfunction\b|=>\s*\{$/.test(t) ||
        /^[\w$][\w$:<>,\s*&~\[\].]*\([^;]*\)\s*(const\s*)?(noexcept\s*)?(override\s*)?(->\s*[^{]+)?(:\s*[^={]+)?\{$/.test(t);
      if (!fn) continue;
      let depth = 0, e = i;
      for (; e < lines.length && e < i + 400; e++) {
        for (const ch of lines[e]) { if (ch === '{') depth++; else if (ch === '}') depth--; }
        if (depth <= 0) break;
      }
      if (depth !== 0 || e >= lines.length) continue;
      if (e - (i + 1) >= 3) out.push([i + 1, e]);   // body lines i+1 .. e-1 (e holds the closing brace)
    }
  }
  return out;
}

function levenshtein(a: string, b: string): number {
  if (a === b) return 0;
  let prev = new Array(b.length + 1).fill(0).map((_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) cur[j] = Math.min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
    prev = cur;
  }
  return prev[b.length];
}
const similarity = (a: string, b: string) => (a.length === 0 && b.length === 0 ? 1 : 1 - levenshtein(a, b) / Math.max(a.length, b.length));
const normWs = (s: string) => s.replace(/\s+/g, ' ').trim();

async function main() {
  const a = parseArgs(process.argv.slice(2), {
    model: 'string', heldout: 'string', out: 'string', lines: 'int', spans: 'int', orders: 'string',
    'prefix-tokens': 'int', 'suffix-tokens': 'int', seed: 'int', threads: 'int',
  }, USAGE);
  for (const k of ['model', 'heldout', 'out']) if (a[k] === undefined) throw new Error(`--${k} is required\n${USAGE}`);
  const nLines = (a.lines as number | undefined) ?? 200;
  const nSpans = (a.spans as number | undefined) ?? 100;
  const orders = String(a.orders ?? 'psm,spm').split(',');
  for (const o of orders) if (o !== 'psm' && o !== 'spm') throw new Error(`--orders: unknown order ${o} (psm, spm)`);
  const maxPre = (a['prefix-tokens'] as number | undefined) ?? 600;
  const maxSuf = (a['suffix-tokens'] as number | undefined) ?? 200;
  const seed = (a.seed as number | undefined) ?? 1;
  const model = await loadModel(String(a.model), { threads: (a.threads as number | undefined) ?? 2, device: 'cpu' });
  const tok = Tokenizer.fromMetadata(model.metadata);
  const sp = specialIds(tok);
  const enc = (s: string) => tok.encode(s, { addBos: false, parseSpecial: false });
  const files = loadHeldout(String(a.heldout));
  const byFile = new Map(files.map((f) => [f.file, f.text.split('\n')]));
  const r = rng(seed);

  // Cases, balanced over the languages; sampled without replacement.
  const cases: Case[] = [];
  const cut = (lines: string[], i: number, midStartCol: number, endLine: number, kind: Case['kind'], lang: Lang, file: string): Case => {
    const midLine = lines[i];
    const prefix = lines.slice(0, i).map((l) => l + '\n').join('') + midLine.slice(0, midStartCol);
    const middle = kind === 'line' ? midLine.slice(midStartCol) : lines.slice(i, endLine).map((l) => l + '\n').join('');
    const suffix = kind === 'line' ? '\n' + lines.slice(i + 1).join('\n') : lines.slice(endLine).join('\n');
    return { kind, lang, file, line: i, prefix, middle, suffix };
  };
  for (const [li, lang] of LANGS.entries()) {
    const want = Math.floor(nLines / LANGS.length) + (li < nLines % LANGS.length ? 1 : 0);
    const cand = lineCases(files, lang);
    const picked = new Set<number>();
    while (picked.size < Math.min(want, cand.length)) picked.add(Math.floor(r() * cand.length));
    for (const k of [...picked]) {
      const c = cand[k];
      const lines = byFile.get(c.file)!;
      cases.push(cut(lines, c.line, indentOf(lines[c.line]), c.line + 1, 'line', lang, c.file));
    }
    const wantS = Math.floor(nSpans / LANGS.length) + (li < nSpans % LANGS.length ? 1 : 0);
    const fns: { file: string; b: [number, number] }[] = [];
    for (const f of files) if (f.lang === lang) for (const b of functionBodies(byFile.get(f.file)!, lang)) fns.push({ file: f.file, b });
    const seen = new Set<string>();
    for (let tries = 0; seen.size < wantS && tries < 100 * wantS && fns.length > 0; tries++) {
      const { file, b } = fns[Math.floor(r() * fns.length)];
      const lines = byFile.get(file)!;
      const len = Math.min(2 + Math.floor(r() * 7), b[1] - b[0]);
      const start = b[0] + Math.floor(r() * (b[1] - b[0] - len + 1));
      const span = lines.slice(start, start + len);
      if (span.filter((l) => l.trim() !== '').length < 2 || span.join('').replace(/\s/g, '').length < 20) continue;
      const key = `${file}:${start}`;
      if (seen.has(key)) continue;
      seen.add(key);
      cases.push(cut(lines, start, 0, start + len, 'span', lang, file));
    }
  }

  // Prefix/suffix cut at line boundaries to the token budgets.
  const fitPrefix = (p: string): number[] => {
    let s = p.length > 8000 ? p.slice(p.indexOf('\n', p.length - 8000) + 1) : p;
    let ids = enc(s);
    while (ids.length > maxPre) {
      const nl = s.indexOf('\n');
      if (nl < 0 || nl === s.length - 1) return ids.slice(-maxPre);
      s = s.slice(nl + 1);
      ids = enc(s);
    }
    return ids;
  };
  const fitSuffix = (x: string): number[] => {
    let s = x.length > 4000 ? x.slice(0, x.lastIndexOf('\n', 4000) + 1 || 4000) : x;
    let ids = enc(s);
    while (ids.length > maxSuf) {
      const nl = s.lastIndexOf('\n', s.length - 2);
      if (nl <= 0) return ids.slice(0, maxSuf);
      s = s.slice(0, nl + 1);
      ids = enc(s);
    }
    return ids;
  };

  const session: EngineSession = model.createSession({ sinks: 1, window: 1023, branchMax: 0 });
  const t0 = performance.now();
  const results: Record<string, unknown>[] = [];
  for (const c of cases) {
    const P = fitPrefix(c.prefix), S = fitSuffix(c.suffix);
    const midTokens = enc(c.middle).length;
    const maxNew = c.kind === 'line' ? 64 : 2 * midTokens + 16;
    for (const order of orders) {
      const prompt = order === 'psm' ? [sp.sink, sp.pre, ...P, sp.suf, ...S, sp.mid] : [sp.sink, sp.suf, ...S, sp.pre, ...P, sp.mid];
      await session.clear();
      let row = (await session.decode(prompt, { logits: 'last' }))!;
      const gen: number[] = [];
      let text = '';
      let reason = 'length';
      while (gen.length < maxNew) {
        const t = argmax(row);
        if (t === sp.eos) { reason = 'eos'; break; }
        gen.push(t);
        text = tok.decode(gen);
        if (c.kind === 'line' && text.includes('\n')) { reason = 'newline'; text = text.slice(0, text.indexOf('\n')); break; }
        row = (await session.decode([t], { logits: 'last' }))!;
      }
      results.push({
        kind: c.kind, order, lang: c.lang, file: c.file, line: c.line + 1, prompt_tokens: prompt.length, middle_tokens: midTokens,
        generated_tokens: gen.length, stop: reason, middle: c.middle, generated: text,
        exact: text === c.middle, exact_ws: normWs(text) === normWs(c.middle), similarity: similarity(text, c.middle),
      });
    }
  }
  const seconds = (performance.now() - t0) / 1000;
  const summary: Record<string, unknown> = {};
  for (const kind of ['line', 'span']) for (const order of orders) for (const lang of [...LANGS, 'all']) {
    const rs = results.filter((x) => x.kind === kind && x.order === order && (lang === 'all' || x.lang === lang));
    if (rs.length === 0) continue;
    const mean = (f: (x: Record<string, unknown>) => number) => rs.reduce((s, x) => s + f(x), 0) / rs.length;
    summary[`${kind}/${order}/${lang}`] = {
      n: rs.length, exact: mean((x) => +(x.exact as boolean)), exact_ws: mean((x) => +(x.exact_ws as boolean)),
      similarity: mean((x) => x.similarity as number), stopped_by_eos: mean((x) => +(x.stop === 'eos')),
      generated_tokens: mean((x) => x.generated_tokens as number),
    };
  }
  writeJson(String(a.out), {
    date: new Date().toISOString(), command: `node --import tsx models/eval/fim_eval.ts ${process.argv.slice(2).join(' ')}`,
    model: model.path, fingerprint: model.info.fingerprint, seconds, cases: { lines: cases.filter((c) => c.kind === 'line').length, spans: cases.filter((c) => c.kind === 'span').length },
    summary, results,
  });
  for (const [k, v] of Object.entries(summary)) {
    const s = v as Record<string, number>;
    process.stdout.write(`${k.padEnd(18)} n=${String(s.n).padStart(3)} exact ${(100 * s.exact).toFixed(1)}%  ws ${(100 * s.exact_ws).toFixed(1)}%  sim ${s.similarity.toFixed(3)}\n`);
  }
  process.stdout.write(`${results.length} generations in ${seconds.toFixed(1)} s\n`);
  session.dispose();
  model.dispose();
}

main().catch((e) => {
  process.stderr.write(`fim_eval: ${(e as Error).message}\n`);
  process.exit(1);
});
