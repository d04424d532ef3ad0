// `npm run bench -- stream`: per-token decode time and RSS at stream positions 1k, 10k, 100k
// and 1M through one StreamingLLM session, and the per-token cost of sliding-window recompute
// (re-running the last W tokens from scratch) at the same window, with their ratio.
// Writes bench/results/stream-<date>.json and prints a table.
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { loadModel } from '../server/engine/index';

const root = path.resolve(__dirname, '..');

function arg(argv: string[], name: string, fallback: string): string {
  const i = argv.indexOf(name);
  return i >= 0 && i + 1 < argv.length ? argv[i + 1] : fallback;
}

export async function runStreamBench(argv: string[]): Promise<void> {
  const defaultModel = path.join(root, 'models', 'endless-code-q8_0.gguf');
  const modelPath = arg(argv, '--model', existsSync(defaultModel) ? defaultModel : path.join(root, 'test/fixtures/models/llama_gqa-q8_0.gguf'));
  const threads = Number(arg(argv, '--threads', String(os.availableParallelism?.() ?? os.cpus().length)));
  const positions = arg(argv, '--positions', '1000,10000,100000,1000000').split(',').map(Number);
  const measure = Number(arg(argv, '--measure', '64'));
  const sinks = Number(arg(argv, '--sinks', '4'));
  const model = await loadModel(modelPath, { device: 'cpu', threads });
  const window = Number(arg(argv, '--window', String(Math.min(1024, model.info.nCtxTrain) - sinks)));
  const vocab = model.info.nVocab;
  // a fixed pseudo-random token stream (the cost does not depend on the ids)
  let x = 12345;
  const next = () => { x = (x * 1103515245 + 12345) >>> 0; return x % vocab; };
  const chunk = (n: number) => Int32Array.from({ length: n }, next);

  const s = model.createSession({ sinks, window, batch: 256 });
  const rows: { position: number; ms_per_token: number; rss_mib: number; cache_mib: number }[] = [];
  let pos = 0;
  for (const p of positions) {
    const target = p - measure - 8;
    while (pos < target) {
      const n = Math.min(4096, target - pos);
      await s.decode(chunk(n), { logits: 'none' });
      pos += n;
    }
    // warm up (thread pool, caches), then time single-token decode steps
    for (let i = 0; i < 8; i++) await s.decode([next()], { logits: 'last' });
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < measure; i++) await s.decode([next()], { logits: 'last' });
    const ms = Number(process.hrtime.bigint() - t0) / 1e6 / measure;
    pos += measure + 8;
    const st = s.stats();
    rows.push({ position: st.seen, ms_per_token: ms, rss_mib: process.memoryUsage().rss / 2 ** 20, cache_mib: st.cacheBytes / 2 ** 20 });
    console.error(`position ${st.seen}: ${ms.toFixed(3)} ms/token, RSS ${(process.memoryUsage().rss / 2 ** 20).toFixed(1)} MiB`);
  }
  s.dispose();

  // Sliding-window recompute: every token re-runs the last W tokens from an empty cache.
  const rec = model.createSession({ sinks: 0, window: window + sinks + 1, batch: 256 });
  const ctx = chunk(window + sinks);
  const reps = Number(arg(argv, '--recompute-reps', '8'));
  await rec.decode(ctx, { logits: 'last' });  // warm-up
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < reps; i++) {
    await rec.clear();
    await rec.decode(ctx, { logits: 'last' });
  }
  const recomputeMs = Number(process.hrtime.bigint() - t0) / 1e6 / reps;
  rec.dispose();

  const first = rows[0], last = rows[rows.length - 1];
  const streamingMs = rows.reduce((a, r) => a + r.ms_per_token, 0) / rows.length;
  const result = {
    bench: 'stream',
    date: new Date().toISOString(),
    command: `npm run bench -- stream ${argv.join(' ')}`.trim(),
    machine: { cpu: os.cpus()[0]?.model, cores: os.cpus().length, threads, platform: `${os.platform()} ${os.arch()}` },
    model: { path: path.relative(root, modelPath), ...model.info },
    sinks, window,
    rows,
    flatness: { time_last_over_first: last.ms_per_token / first.ms_per_token, rss_growth_mib: last.rss_mib - first.rss_mib },
    recompute: { ms_per_token: recomputeMs, streaming_ms_per_token: streamingMs, ratio: recomputeMs / streamingMs },
    goal: 'time at 1M / time at 1k <= 1.05, RSS constant',
  };
  model.dispose();
  mkdirSync(path.join(root, 'bench', 'results'), { recursive: true });
  const out = path.join(root, 'bench', 'results', `stream-${result.date.slice(0, 10)}.json`);
  writeFileSync(out, JSON.stringify(result, null, 2) + '\n');
  console.log('position     ms/token   RSS MiB   cache MiB');
  for (const r of rows) console.log(`${String(r.position).padEnd(12)} ${r.ms_per_token.toFixed(3).padStart(8)} ${r.rss_mib.toFixed(1).padStart(9)} ${r.cache_mib.toFixed(1).padStart(11)}`);
  console.log(`time(last)/time(first) = ${result.flatness.time_last_over_first.toFixed(3)} (goal <= 1.05); RSS growth ${result.flatness.rss_growth_mib.toFixed(1)} MiB`);
  console.log(`sliding-window recompute at W=${window}: ${recomputeMs.toFixed(2)} ms/token vs streaming ${streamingMs.toFixed(3)} ms/token: ${result.recompute.ratio.toFixed(1)}x`);
  console.log(`wrote ${path.relative(root, out)}`);
}

if (require.main === module) {
  runStreamBench(process.argv.slice(2)).catch((e) => { console.error(e); process.exit(1); });
}
