// Benchmarks (not tests). `npm run bench -- <suite> [options]`; each suite prints a table and
// writes bench/results/<suite>-<date>.json with the machine, the date and the command.
//
//   cpu     prefill and decode tokens/s on the CPU for a fixture model and for a random-weight
//           Qwen2.5-Coder-1.5B-shaped GGUF in Q8_0 and F16 (tools/make_qwen_shaped.py writes them
//           to /tmp when missing), Endless beside llama.cpp (node-llama-cpp 3.21.1, its prebuilt
//           CPU binaries) on the same files with the same threads, in the same run.
//   stream  per-token decode time and RSS at stream positions 1k, 10k, 100k, 1M through a
//           StreamingLLM session, and the per-token cost of sliding-window recompute at the same
//           window (the paper's baseline), with the ratio.
//   server  (not yet: the language server's request latencies)
//
// Options: --threads N (default: all cores), --prompt P (512), --gen G (64), --reps R (3),
// --models a.gguf,b.gguf (instead of the default set), --no-llama, --qwen-dir DIR (/tmp),
// stream: --model M, --window W (1024), --sinks S (4), --max N (1000000).
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { loadModel, readGgufMetadata, systemInfo } from '../server/engine/index';
import { benchEndless, round2, type BenchOptions, type BenchResult } from '../server/cli/bench';
import { benchLlamaCpp, llamaCppInfo } from './llama';

const ROOT = path.join(__dirname, '..');
const RESULTS = path.join(__dirname, 'results');
const FIXTURE = path.join(ROOT, 'test', 'fixtures', 'models', 'qwen2_tied-q8_0.gguf');
const QWEN_TYPES = ['q8_0', 'f16'];

function usage(msg?: string): never {
  if (msg) process.stderr.write(`bench: ${msg}\n`);
  process.stderr.write('usage: npm run bench -- cpu|stream|server [--threads N] [--prompt P] [--gen G] [--reps R] ' +
    '[--models a.gguf,b.gguf] [--no-llama] [--qwen-dir DIR] [--model M --window W --sinks S --max N]\n');
  process.exit(2);
}

function parse(argv: string[]): { suite: string; opts: Record<string, string | true> } {
  const [suite, ...rest] = argv;
  if (!suite) usage('name a suite');
  const opts: Record<string, string | true> = {};
  for (let i = 0; i < rest.length; i++) {
    const a = rest[i];
    if (!a.startsWith('--')) usage(`unexpected argument ${a}`);
    const key = a.slice(2);
    if (key === 'no-llama') { opts[key] = true; continue; }
    if (i + 1 >= rest.length) usage(`${a} needs a value`);
    opts[key] = rest[++i];
  }
  return { suite, opts };
}

function intOpt(opts: Record<string, string | true>, key: string, dflt: number, min = 1): number {
  const v = opts[key];
  if (v === undefined) return dflt;
  const n = Number(v);
  if (typeof v !== 'string' || !Number.isInteger(n) || n < min) usage(`--${key} must be an integer >= ${min}`);
  return n;
}

function machine(): Record<string, unknown> {
  const cpus = os.cpus();
  return {
    cpu: cpus[0]?.model ?? 'unknown',
    cores: cpus.length,
    memoryGiB: round2(os.totalmem() / 2 ** 30),
    platform: `${os.platform()} ${os.release()} ${os.arch()}`,
    node: process.version,
    engineFeatures: systemInfo().features,
    loadAverage1m: round2(os.loadavg()[0]),
  };
}

// Spin-waiting thread pools (llama.cpp's, and any engine's) collapse when other processes hold
// the cores, so a busy machine gives numbers that say nothing: say so loudly and record it.
function warnIfBusy(): void {
  const load = os.loadavg()[0];
  const cores = os.cpus().length;
  if (load > cores * 0.5) {
    console.warn(`[bench] WARNING: the machine is busy (1-minute load ${load.toFixed(1)} on ${cores} cores): ` +
      'results will be noisy, multi-threaded decode especially; rerun on an idle machine');
  }
}

function writeResult(suite: string, data: Record<string, unknown>): string {
  mkdirSync(RESULTS, { recursive: true });
  const date = new Date().toISOString().slice(0, 10);
  let file = path.join(RESULTS, `${suite}-${date}.json`);
  if (existsSync(file)) file = path.join(RESULTS, `${suite}-${new Date().toISOString().slice(0, 16).replace(/:/g, '')}.json`);
  writeFileSync(file, JSON.stringify(data, null, 2) + '\n');
  return file;
}

function table(rows: string[][]): string {
  const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => r[c].length)));
  return rows.map((r) => r.map((v, c) => (c === 0 ? v.padEnd(widths[c]) : v.padStart(widths[c]))).join('  ')).join('\n');
}

/** The Qwen-shaped files, generated into dir by tools/make_qwen_shaped.py when missing. */
function qwenShaped(dir: string): string[] {
  const files = QWEN_TYPES.map((t) => path.join(dir, `qwen2.5-coder-1.5b-shaped-${t}.gguf`));
  const missing = QWEN_TYPES.filter((_, i) => !existsSync(files[i]));
  if (missing.length) {
    console.log(`[bench] generating ${missing.join(', ')} Qwen2.5-Coder-1.5B-shaped GGUF(s) in ${dir} (a few minutes)`);
    const r = spawnSync('python3', [path.join(ROOT, 'tools', 'make_qwen_shaped.py'), '--types', ...missing, '--out-dir', dir],
      { stdio: 'inherit', cwd: ROOT });
    if (r.status !== 0) throw new Error(`tools/make_qwen_shaped.py failed (${r.error?.message ?? `exit code ${r.status}`})`);
  }
  return files;
}

function tokenizerSize(file: string): number | undefined {
  const t = readGgufMetadata(file).get('tokenizer.ggml.tokens');
  return Array.isArray(t) ? t.length : undefined;
}

async function suiteCpu(opts: Record<string, string | true>): Promise<void> {
  const threads = intOpt(opts, 'threads', os.cpus().length);
  const base: BenchOptions = {
    threads, device: 'cpu', promptTokens: intOpt(opts, 'prompt', 512), genTokens: intOpt(opts, 'gen', 64), reps: intOpt(opts, 'reps', 3),
  };
  const models = typeof opts.models === 'string' ? opts.models.split(',') : [FIXTURE, ...qwenShaped(typeof opts['qwen-dir'] === 'string' ? opts['qwen-dir'] : '/tmp')];
  for (const m of models) if (!existsSync(m)) usage(`model file not found: ${m}`);
  const withLlama = !opts['no-llama'];
  const llama = withLlama ? await llamaCppInfo() : null;
  const results: BenchResult[] = [];
  const rows = [['model', 'type', 'engine', 'prefill t/s', 'decode t/s', 'prefill ratio', 'decode ratio']];
  for (const file of models) {
    // the fixture's vocabulary is tiny: its prompt stays within its own size
    const o = { ...base, vocab: tokenizerSize(file) };
    console.log(`[bench] ${path.basename(file)}: Endless (${threads} threads, P=${o.promptTokens}, G=${o.genTokens}, ${o.reps} reps)`);
    const e = await benchEndless(file, o);
    results.push(e);
    let l: BenchResult | null = null;
    if (withLlama) {
      console.log(`[bench] ${path.basename(file)}: llama.cpp`);
      l = await benchLlamaCpp(file, o);
      results.push(l);
    }
    const name = path.basename(file, '.gguf');
    rows.push([name, e.fileType, 'endless', e.prefillTokensPerS.toFixed(1), e.decodeTokensPerS.toFixed(1),
      l ? (e.prefillTokensPerS / l.prefillTokensPerS).toFixed(2) : '-', l ? (e.decodeTokensPerS / l.decodeTokensPerS).toFixed(2) : '-']);
    if (l) rows.push([name, l.fileType, 'llama.cpp', l.prefillTokensPerS.toFixed(1), l.decodeTokensPerS.toFixed(1), '1.00', '1.00']);
  }
  const text = table(rows);
  console.log(`\n${text}\n(ratio = Endless / llama.cpp; medians of ${base.reps} repetitions)`);
  const file = writeResult('cpu', {
    suite: 'cpu', date: new Date().toISOString(), command: `npm run bench -- ${process.argv.slice(2).join(' ')}`,
    machine: machine(), llamaCpp: llama, options: base, results, table: text.split('\n'),
  });
  console.log(`[bench] wrote ${path.relative(ROOT, file)}`);
}

function rssMiB(): number {
  return round2(process.memoryUsage.rss() / 2 ** 20);
}

async function suiteStream(opts: Record<string, string | true>): Promise<void> {
  const modelPath = typeof opts.model === 'string' ? opts.model : FIXTURE;
  const window = intOpt(opts, 'window', 1024);
  const sinks = intOpt(opts, 'sinks', 4, 0);
  const max = intOpt(opts, 'max', 1_000_000);
  const threads = intOpt(opts, 'threads', os.cpus().length);
  const measureTokens = 256;
  const checkpoints = [1_000, 10_000, 100_000, 1_000_000].filter((c) => c <= max);
  const model = await loadModel(modelPath, { threads, device: 'cpu' });
  const nVocab = Math.min(model.info.nVocab, tokenizerSize(modelPath) ?? model.info.nVocab);
  const tokenAt = (i: number) => 1 + ((i * 7919) % (nVocab - 1));
  const s = model.createSession({ sinks, window });
  const points: Record<string, unknown>[] = [];
  let pos = 0;
  const t0 = performance.now();
  for (const cp of checkpoints) {
    // advance to just before the checkpoint in batches (no per-token logits needed)
    const target = cp - measureTokens;
    while (pos < target) {
      const n = Math.min(256, target - pos);
      // batches must not evict inside themselves: feed one at a time once the cache is full
      if (pos + n <= sinks + window) {
        await s.decode(Array.from({ length: n }, (_, k) => tokenAt(pos + k)), { logits: 'none' });
        pos += n;
      } else {
        await s.decode([tokenAt(pos)], { logits: 'none' });
        pos++;
      }
    }
    const a = performance.now();
    for (let k = 0; k < measureTokens; k++) await s.decode([tokenAt(pos++)], { logits: 'last' });
    const ms = (performance.now() - a) / measureTokens;
    const st = s.stats();
    points.push({ position: pos, msPerToken: round2(ms * 1000) / 1000, rssMiB: rssMiB(), cacheBytes: st.cacheBytes, evicted: st.evicted });
    console.log(`[bench] position ${pos}: ${(ms).toFixed(3)} ms/token, RSS ${rssMiB()} MiB, cache ${st.cacheBytes} bytes (${((performance.now() - t0) / 1000).toFixed(0)} s)`);
  }
  s.dispose();
  // sliding window with recompute: each new token re-reads the last S+W tokens from scratch
  const r = model.createSession({ sinks: 0, window: sinks + window });
  const ctx = Array.from({ length: sinks + window }, (_, k) => tokenAt(k));
  const reps = 3;
  const b = performance.now();
  for (let k = 0; k < reps; k++) { await r.clear(); await r.decode(ctx, { logits: 'last' }); }
  const recomputeMs = (performance.now() - b) / reps;
  r.dispose();
  model.dispose();
  const first = points[0]?.msPerToken as number;
  const last = points[points.length - 1]?.msPerToken as number;
  const summary = {
    timeRatioLastToFirst: first ? round2((last / first) * 1000) / 1000 : null,
    recomputeMsPerToken: round2(recomputeMs * 1000) / 1000,
    recomputeOverStreaming: last ? round2(recomputeMs / last) : null,
  };
  const rows = [['position', 'ms/token', 'RSS MiB', 'cache bytes'], ...points.map((p) => [String(p.position), String(p.msPerToken), String(p.rssMiB), String(p.cacheBytes)])];
  console.log(`\n${table(rows)}\nrecompute (S+W=${sinks + window} tokens per new token): ${summary.recomputeMsPerToken} ms/token, ${summary.recomputeOverStreaming}x streaming; time at last/first checkpoint: ${summary.timeRatioLastToFirst}`);
  const file = writeResult('stream', {
    suite: 'stream', date: new Date().toISOString(), command: `npm run bench -- ${process.argv.slice(2).join(' ')}`,
    machine: machine(), model: modelPath, sinks, window, threads, points, summary,
  });
  console.log(`[bench] wrote ${path.relative(ROOT, file)}`);
}

async function main(): Promise<void> {
  const { suite, opts } = parse(process.argv.slice(2));
  warnIfBusy();
  if (suite === 'cpu') await suiteCpu(opts);
  else if (suite === 'stream') await suiteStream(opts);
  else if (suite === 'server') usage('the server suite is not written yet');
  else usage(`unknown suite ${suite}`);
}

main().catch((e) => {
  process.stderr.write(`bench: ${(e as Error)?.stack ?? e}\n`);
  process.exit(1);
});
