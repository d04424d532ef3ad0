// Benchmarks (not tests). `npm run bench -- <suite> [options]`; each suite prints a table and
// writes bench/results/<suite>-<date>.json with the machine, the date and the command.
//
//   cpu     prefill and decode tokens/s on the CPU for a fixture model and for a random-weight
//           Qwen2.5-Coder-1.5B-shaped GGUF in Q8_0 and F16 (tools/make_qwen_shaped.py writes them
//           to /tmp when missing), Endless beside llama.cpp (node-llama-cpp 3.21.1, its prebuilt
//           CPU binaries) on the same files with the same threads, in the same run; each
//           measurement in a fresh child process (bench/child.ts).
//   stream  per-token decode time and RSS at stream positions 1k..1M, and the sliding-window
//           recompute ratio (bench/stream.ts, its own options)
//   server  the language server over stdio: ingest, completion latency (bench/server.ts)
//   soak    a multi-million-token stream through one session: flat memory (bench/soak.ts)
//   sampler the time of one token draw for the product's sampler settings (bench/sampler.ts)
//   storm   10k edits/min for 10 min through the language server: memory, completion p99, and the
//           stream's view of each document equal to the editor's text (bench/storm.ts)
//
// cpu options: --threads N (default: all cores), --prompt P (512), --gen G (64), --reps R (3),
// --models a.gguf,b.gguf (instead of the default set), --no-llama, --qwen-dir DIR (/tmp),
// --note TEXT (recorded in the result: the conditions of the run).
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { readGgufMetadata, systemInfo } from '../server/engine/index';
import { round2, type BenchOptions, type BenchResult } from '../server/cli/bench';
import { llamaCppInfo } from './llama';
import { runServerBench } from './server';
import { runSamplerBench } from './sampler';
import { runSoak } from './soak';
import { runStormBench } from './storm';
import { runStreamBench } from './stream';

const ROOT = path.join(__dirname, '..');
const RESULTS = path.join(__dirname, 'results');
const FIXTURE = path.join(ROOT, 'test', 'fixtures', 'models', 'qwen2_tied-q8_0.gguf');
const QWEN_TYPES = ['q8_0', 'f16'];

function usage(msg?: string): never {
  if (msg) process.stderr.write(`bench: ${msg}\n`);
  process.stderr.write('usage: npm run bench -- cpu [--threads N] [--prompt P] [--gen G] [--reps R] ' +
    '[--models a.gguf,b.gguf] [--no-llama] [--qwen-dir DIR] [--note TEXT]\n' +
    '       npm run bench -- stream|server|soak|storm|sampler [their own options]\n');
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

/** One engine's measurement in a fresh child process (bench/child.ts). */
function runChild(engine: 'endless' | 'llama.cpp', file: string, options: BenchOptions): BenchResult {
  const r = spawnSync(process.execPath, ['--import', 'tsx', path.join(__dirname, 'child.ts'), JSON.stringify({ engine, path: file, options })],
    { cwd: ROOT, encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], maxBuffer: 16 << 20 });
  if (r.status !== 0) {
    throw new Error(`${engine} on ${path.basename(file)} failed: ${r.error?.message ?? (r.signal ? `killed by ${r.signal}` : `exit code ${r.status}`)}`);
  }
  return JSON.parse(r.stdout.trim().split('\n').pop()!) as BenchResult;
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
  const rows = [['model', 'type', 'engine', 'prefill t/s', 'decode t/s', 'prefill ratio', 'decode ratio',
    'prefill t/cpu-s', 'decode t/cpu-s', 'cpu ratios p/d']];
  for (const file of models) {
    // the fixture's vocabulary is tiny: its prompt stays within its own size
    const o = { ...base, vocab: tokenizerSize(file) };
    console.log(`[bench] ${path.basename(file)}: Endless (${threads} threads, P=${o.promptTokens}, G=${o.genTokens}, ${o.reps} reps)`);
    const e = runChild('endless', file, o);
    results.push(e);
    let l: BenchResult | null = null;
    if (withLlama) {
      console.log(`[bench] ${path.basename(file)}: llama.cpp`);
      l = runChild('llama.cpp', file, o);
      results.push(l);
    }
    const name = path.basename(file, '.gguf');
    rows.push([name, e.fileType, 'endless', e.prefillTokensPerS.toFixed(1), e.decodeTokensPerS.toFixed(1),
      l ? (e.prefillTokensPerS / l.prefillTokensPerS).toFixed(2) : '-', l ? (e.decodeTokensPerS / l.decodeTokensPerS).toFixed(2) : '-',
      e.prefillTokensPerCpuS.toFixed(1), e.decodeTokensPerCpuS.toFixed(1),
      l ? `${(e.prefillTokensPerCpuS / l.prefillTokensPerCpuS).toFixed(2)}/${(e.decodeTokensPerCpuS / l.decodeTokensPerCpuS).toFixed(2)}` : '-']);
    if (l) {
      rows.push([name, l.fileType, 'llama.cpp', l.prefillTokensPerS.toFixed(1), l.decodeTokensPerS.toFixed(1), '1.00', '1.00',
        l.prefillTokensPerCpuS.toFixed(1), l.decodeTokensPerCpuS.toFixed(1), '1.00/1.00']);
    }
  }
  const text = table(rows);
  console.log(`\n${text}\n(ratio = Endless / llama.cpp; medians of ${base.reps} repetitions; t/cpu-s = tokens per second of ` +
    'process CPU time, all threads)');
  const file = writeResult('cpu', {
    suite: 'cpu', date: new Date().toISOString(), command: `npm run bench -- ${process.argv.slice(2).join(' ')}`,
    note: typeof opts.note === 'string' ? opts.note : undefined,
    machine: machine(), llamaCpp: llama, options: base, results, table: text.split('\n'),
  });
  console.log(`[bench] wrote ${path.relative(ROOT, file)}`);
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  const suite = argv[0];
  // suites written in their own files take their own arguments
  if (suite === 'stream') { warnIfBusy(); await runStreamBench(argv.slice(1)); return; }
  if (suite === 'server') { warnIfBusy(); await runServerBench(argv.slice(1)); return; }
  if (suite === 'soak') { warnIfBusy(); process.exitCode = (await runSoak(argv.slice(1))) ? 0 : 1; return; }
  if (suite === 'storm') { warnIfBusy(); process.exitCode = (await runStormBench(argv.slice(1))) ? 0 : 1; return; }
  if (suite === 'sampler') { warnIfBusy(); await runSamplerBench(argv.slice(1)); return; }
  const { opts } = parse(argv);
  if (suite === 'cpu') { warnIfBusy(); await suiteCpu(opts); return; }
  usage(`unknown suite ${suite}`);
}

main().catch((e) => {
  process.stderr.write(`bench: ${(e as Error)?.stack ?? e}\n`);
  process.exit(1);
});
