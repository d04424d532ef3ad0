// `npm run bench -- server`: the language server measured through its real stdio protocol.
//  1. A long session: documents opened and code pasted until the stream has seen --session-tokens
//     tokens (default 200k), reporting ingest throughput.
//  2. Inline completion latency (client-observed, p50/p99) while typing in that session: type a
//     few characters, ask, as an editor does after its debounce.
//  3. Ingest cost per edit against edit size (1..256 lines), in a small and in a large document:
//     tokens appended and milliseconds until the engine is done. The cost should follow the edit,
//     not the document.
// Results go to bench/results/server-<date>.json with the machine, the model and the command.
//
// Flags: --model FILE  --device auto|cpu|cuda  --session-tokens N  --completions N  --window N  --out FILE

import { mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { InlineCompletionList } from 'vscode-languageserver-protocol';
import { defaultModel, ROOT, ServerClient } from '../server/session/client';

interface Flags { model?: string; device?: string; sessionTokens: number; completions: number; window: number; out?: string }

function parse(argv: string[]): Flags {
  const f: Flags = { sessionTokens: 200_000, completions: 60, window: 0 };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const v = () => { const x = argv[++i]; if (x === undefined) throw new Error(`${a} needs a value`); return x; };
    const n = (name: string, min: number) => { const x = Number(v()); if (!Number.isInteger(x) || x < min) throw new Error(`${name} must be an integer >= ${min}`); return x; };
    if (a === 'server') continue;
    else if (a === '--model') f.model = v();
    else if (a === '--device') f.device = v();
    else if (a === '--session-tokens') f.sessionTokens = n(a, 0);
    else if (a === '--completions') f.completions = n(a, 1);
    else if (a === '--window') f.window = n(a, 0);
    else if (a === '--out') f.out = v();
    else throw new Error(`unknown argument ${a} (usage: npm run bench -- server [--model FILE] [--device D] [--session-tokens N] [--completions N] [--window N] [--out FILE])`);
  }
  return f;
}

function pct(xs: number[], p: number): number {
  if (!xs.length) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)];
}

const median = (xs: number[]) => pct(xs, 50);
const r1 = (x: number) => Math.round(x * 10) / 10;

/** Source text of this repository, as material to paste (deterministic order). */
function corpus(): string[] {
  const out: string[] = [];
  const walk = (dir: string) => {
    let names: string[];
    try { names = readdirSync(dir).sort(); } catch { return; }
    for (const n of names) {
      const p = path.join(dir, n);
      const st = statSync(p);
      if (st.isDirectory()) walk(p);
      else if (/\.(ts|cpp|h|cu|cuh|py|md)$/.test(n) && st.size < 200_000) out.push(readFileSync(p, 'utf8'));
    }
  };
  for (const d of ['server', 'native/src', 'extension', 'docs', 'models/train', 'tools']) walk(path.join(ROOT, d));
  return out;
}

export async function runServerBench(argv: string[]): Promise<Record<string, unknown>> {
  const f = parse(argv);
  const model = f.model ? path.resolve(f.model) : defaultModel();
  const log = (s: string) => process.stdout.write(s + '\n');
  const extra = f.device ? ['--device', f.device] : [];
  const s = new ServerClient({
    model, storage: null, extraArgs: extra, workDoneProgress: false,
    settings: { window: f.window, summaryIdleMs: 0, editIdleMs: 300, memorySize: 256 },
    stderr: (l) => { if (process.env.ENDLESS_DEBUG) process.stderr.write(`[server] ${l}\n`); },
  });
  const result: Record<string, unknown> = {};
  try {
    await s.initialize(path.join(ROOT, 'test', 'fixtures', 'sample-project'));
    const st = await s.ready(600_000);
    log(`model ${path.relative(ROOT, model)} on ${st.device}: ${st.message}`);
    const i0 = await s.settle();
    log(`cache: S=${i0.stats.cache.sinksMax} W=${i0.stats.cache.windowMax} M=${i0.stats.cache.memoryMax} B=${i0.stats.cache.branchMax}`);

    // 1. A long session.
    const texts = corpus();
    const t1 = Date.now();
    let docN = 0, pasteN = 0, ci = 0;
    let uri = '';
    let lines = 0;
    const newDoc = async () => {
      uri = `file://${ROOT}/bench/workspace/file_${docN++}.ts`;
      await s.open(uri, '// a file of the benchmark session\n');
      lines = 1;
    };
    await newDoc();
    let seen = i0.stats.seen;
    while (seen < f.sessionTokens) {
      const block = texts[ci++ % texts.length].split('\n').slice(0, 120).join('\n') + '\n';
      const text = s.text(uri);
      await s.edit(uri, text.length, text.length, block);
      lines += block.split('\n').length - 1;
      pasteN++;
      if (lines > 1500) await newDoc();
      if (pasteN % 2 === 0) {
        const i = await s.settle(600_000);
        seen = i.stats.seen;
        process.stdout.write(`\r  session: ${seen} tokens seen, ${i.stats.evicted} evicted, ${((Date.now() - t1) / 1000).toFixed(0)} s`);
      }
    }
    const i1 = await s.settle(600_000);
    const sessionMs = Date.now() - t1;
    process.stdout.write('\n');
    log(`session built: ${i1.stats.seen} tokens seen (${i1.stats.evicted} evicted) in ${(sessionMs / 1000).toFixed(1)} s, ` +
      `${r1(((i1.appended - i0.appended) / sessionMs) * 1000)} tokens/s ingest; processed - appended = ${i1.stats.processed - i1.appended}`);
    result.session = { tokensSeen: i1.stats.seen, evicted: i1.stats.evicted, ms: sessionMs, documents: docN, pastes: pasteN,
      ingestTokensPerSecond: r1(((i1.appended - i0.appended) / sessionMs) * 1000), processed: i1.stats.processed, appended: i1.appended };

    // 2. Completion latency while typing.
    const code = readFileSync(path.join(ROOT, 'test', 'fixtures', 'sample-project', 'src', 'todo.ts'), 'utf8');
    const cu = `file://${ROOT}/bench/workspace/todo.ts`;
    await s.open(cu, code);
    await s.settle();
    const target = '  pendingTitles(): string[] {\n    return this.items.filter((t) => !t.done).map((t) => t.title);\n  }\n\n' +
      '  totalEstimate(): number {\n    let total = 0;\n    for (const t of this.items) {\n      total += t.estimate;\n    }\n    return total;\n  }\n\n';
    let cursor = code.indexOf('  averageEstimate(): number {');
    const lat: number[] = [];
    const engineLat: number[] = [];
    const reusedPer: number[] = [];
    let k = 0, empty = 0;
    while (lat.length < f.completions) {
      // 1-4 characters per pause, like a typist between debounces
      const n = 1 + (k % 4);
      const chunk = target.slice(k % target.length, (k % target.length) + n) || target[0];
      k += n;
      cursor = await s.type(cu, cursor, chunk);
      const before = await s.inspect(0);
      const t = performance.now();
      const r = await s.complete(cu, cursor) as InlineCompletionList;
      lat.push(performance.now() - t);
      const after = await s.inspect(0);
      reusedPer.push(after.stats.reused - before.stats.reused);
      // Served by the engine (it processed tokens), not from the prefix cache.
      if (after.stats.processed > before.stats.processed) engineLat.push(lat[lat.length - 1]);
      if (!r.items.length) empty++;
      await new Promise((res) => setTimeout(res, 40)); // the user reads the ghost text
    }
    const i2 = await s.settle();
    log(`inline completion (${lat.length} requests while typing, after a ${i1.stats.seen}-token session): ` +
      `p50 ${r1(pct(lat, 50))} ms, p90 ${r1(pct(lat, 90))} ms, p99 ${r1(pct(lat, 99))} ms, max ${r1(Math.max(...lat))} ms; ` +
      `median branch tokens reused ${median(reusedPer)}; empty ${empty}`);
    log(`  served by the engine: ${engineLat.length} (p50 ${r1(pct(engineLat, 50))} ms, p90 ${r1(pct(engineLat, 90))} ms, p99 ${r1(pct(engineLat, 99))} ms); ` +
      `from the prefix cache: ${lat.length - engineLat.length}`);
    result.completion = { requests: lat.length, p50Ms: r1(pct(lat, 50)), p90Ms: r1(pct(lat, 90)), p99Ms: r1(pct(lat, 99)), maxMs: r1(Math.max(...lat)),
      medianReusedTokens: median(reusedPer), empty, goalP50Ms: 150, seenAtStart: i1.stats.seen, seenAtEnd: i2.stats.seen,
      engine: { requests: engineLat.length, p50Ms: r1(pct(engineLat, 50)), p90Ms: r1(pct(engineLat, 90)), p99Ms: r1(pct(engineLat, 99)) },
      fromCache: lat.length - engineLat.length };

    // 3. Ingest cost per edit against edit size, in a small and a large document.
    const big = texts.join('\n').split('\n').slice(0, 3000);
    const docs = { small: big.slice(0, 60), large: big.slice(0, 3000) };
    const sizes = [1, 4, 16, 64, 256];
    const rows: Record<string, unknown>[] = [];
    for (const [name, base] of Object.entries(docs)) {
      const du = `file://${ROOT}/bench/workspace/ingest_${name}.ts`;
      await s.open(du, base.join('\n') + '\n');
      await s.settle();
      for (const n of sizes) {
        const toks: number[] = [], ms: number[] = [], proc: number[] = [];
        for (let rep = 0; rep < (n >= 64 ? 1 : 3); rep++) {
          const text = s.text(du);
          // Replace n lines in the middle with n new lines.
          const ls = text.split('\n');
          const at = Math.max(0, Math.floor(ls.length / 2) - Math.floor(n / 2));
          const start = ls.slice(0, at).join('\n').length + (at ? 1 : 0);
          const end = ls.slice(0, Math.min(ls.length, at + n)).join('\n').length;
          const fresh = Array.from({ length: n }, (_, j) => `  const v${rep}_${j} = compute(${j}, "${name}") + ${n};`).join('\n');
          const b = await s.inspect(0);
          await s.edit(du, start, end, fresh);
          const t = performance.now();
          const a = await s.settle(600_000, true);
          ms.push(performance.now() - t);
          toks.push(a.appended - b.appended);
          proc.push(a.stats.processed - b.stats.processed);
        }
        const row = { document: name, documentLines: base.length, editLines: n, tokens: median(toks), processed: median(proc), ms: r1(median(ms)),
          msPerToken: Math.round((median(ms) / Math.max(1, median(toks))) * 1000) / 1000 };
        rows.push(row);
        log(`  ingest ${name.padEnd(5)} (${String(base.length).padStart(4)} lines): edit of ${String(n).padStart(3)} lines -> ${String(row.tokens).padStart(5)} tokens, ` +
          `${String(row.ms).padStart(7)} ms (${row.msPerToken} ms/token), engine processed ${row.processed}`);
      }
    }
    result.ingest = rows;
    const st2 = await s.conn.sendRequest('endless/status/get') as { tokensPerSecond: unknown };
    result.tokensPerSecond = st2.tokensPerSecond;
    result.model = { path: path.relative(ROOT, model), ...(st.model ?? {}), device: st.device };
  } finally {
    await s.shutdown();
  }
  const record = {
    bench: 'server', date: new Date().toISOString(), command: `npm run bench -- server ${argv.filter((a) => a !== 'server').join(' ')}`.trim(),
    machine: { cpu: os.cpus()[0]?.model, cores: os.cpus().length, memoryGiB: Math.round(os.totalmem() / 2 ** 30), platform: `${os.platform()} ${os.release()}`, node: process.version },
    ...result,
  };
  const outFile = f.out ?? path.join(ROOT, 'bench', 'results', `server-${record.date.replace(/[:.]/g, '-')}.json`);
  mkdirSync(path.dirname(outFile), { recursive: true });
  writeFileSync(outFile, JSON.stringify(record, null, 2) + '\n');
  log(`results: ${path.relative(process.cwd(), outFile)}`);
  return record;
}

export const main = runServerBench;

if (require.main === module) {
  runServerBench(process.argv.slice(2)).catch((e) => {
    process.stderr.write(`bench server: ${(e as Error).message}\n`);
    process.exitCode = 1;
  });
}
