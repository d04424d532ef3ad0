// Soak (engine level): a long token stream through ONE StreamingLLM session on the CPU, through
// the TypeScript engine wrapper (loadModel, createSession, decode), sampling the process RSS and
// the session's cache bytes every --every tokens. Now and then a completion-like branch is
// opened, decoded and discarded, as the server does. Pass: the cache bytes never change, the
// session's counters add up, every logits row is finite, and RSS after the warm-up grows by at
// most --rss-bound MiB (V8's heap is collected before each sample so garbage is not counted).
//
//   node --import tsx bench/soak.ts [--model M] [--tokens 4000000] [--sinks 4] [--window 256]
//        [--chunk 4096] [--every 100000] [--warmup 500000] [--rss-bound 8] [--threads N]
//        [--branch-every 25] [--out FILE]
// Default model: models/endless-code-q8_0.gguf when it exists, else the llama_gqa Q8_0 fixture.
// Default threads: 1 when the machine is busy (1-minute load >= cores), else all cores.
// Prints a table; writes bench/results/soak-<date>.json (machine, date, command, samples, verdict).
// Exit status: 0 pass, 1 fail, 2 bad arguments.
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import v8 from 'node:v8';
import { runInNewContext } from 'node:vm';
import { loadModel, systemInfo } from '../server/engine/index';

const root = path.resolve(__dirname, '..');

interface Sample {
  tokens: number;          // tokens fed to the stream so far
  seconds: number;         // since the start of the stream
  tokens_per_s: number;    // over the last interval
  rss_mib: number;
  heap_used_mib: number;
  external_mib: number;    // V8's view of native memory held by JS objects (addon buffers included)
  cache_bytes: number;
  window: number;
  evicted: number;
}

function usage(msg: string): never {
  process.stderr.write(`soak: ${msg}\n` +
    'usage: node --import tsx bench/soak.ts [--model M] [--tokens N] [--sinks S] [--window W] [--chunk C] ' +
    '[--every E] [--warmup N] [--rss-bound MiB] [--threads T] [--branch-every K] [--out FILE]\n');
  process.exit(2);
}

function parseArgs(argv: string[]): Map<string, string> {
  const known = new Set(['model', 'tokens', 'sinks', 'window', 'chunk', 'every', 'warmup', 'rss-bound', 'threads', 'branch-every', 'out']);
  const m = new Map<string, string>();
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (!a.startsWith('--') || !known.has(a.slice(2))) usage(`unknown argument ${JSON.stringify(a)}`);
    if (i + 1 >= argv.length) usage(`${a} needs a value`);
    m.set(a.slice(2), argv[++i]);
  }
  return m;
}

function intArg(args: Map<string, string>, name: string, fallback: number, min: number): number {
  const s = args.get(name);
  if (s === undefined) return fallback;
  const v = Number(s);
  if (!Number.isInteger(v) || v < min) usage(`--${name} must be an integer >= ${min}, got ${JSON.stringify(s)}`);
  return v;
}

/** V8's gc(), exposed at run time so the soak needs no node flags. */
function exposeGc(): () => void {
  v8.setFlagsFromString('--expose-gc');
  return runInNewContext('gc') as () => void;
}

const mib = (b: number) => b / 2 ** 20;

export async function runSoak(argv: string[]): Promise<boolean> {
  const args = parseArgs(argv);
  const defaultModel = path.join(root, 'models', 'endless-code-q8_0.gguf');
  const fixture = path.join(root, 'test', 'fixtures', 'models', 'llama_gqa-q8_0.gguf');
  const modelPath = path.resolve(args.get('model') ?? (existsSync(defaultModel) ? defaultModel : fixture));
  const total = intArg(args, 'tokens', 4_000_000, 1);
  const sinks = intArg(args, 'sinks', 4, 0);
  const window = intArg(args, 'window', 256, 1);
  const chunkSize = intArg(args, 'chunk', 4096, 1);
  const every = intArg(args, 'every', 100_000, 1);
  const warmup = intArg(args, 'warmup', 500_000, 0);
  const rssBound = Number(args.get('rss-bound') ?? '8');
  if (!(rssBound > 0)) usage('--rss-bound must be a positive number of MiB');
  const cores = os.availableParallelism?.() ?? os.cpus().length;
  const load0 = os.loadavg()[0];
  const threads = intArg(args, 'threads', load0 >= cores ? 1 : cores, 1);
  const branchEvery = intArg(args, 'branch-every', 25, 0);
  const branchLen = 64;

  const gc = exposeGc();
  const model = await loadModel(modelPath, { device: 'cpu', threads });
  const vocab = model.info.nVocab;
  const session = model.createSession({ sinks, window, batch: 256, branchMax: branchLen });
  // A fixed pseudo-random token stream (the cost and the memory do not depend on the ids).
  let x = 0x2545f491;
  const next = () => { x = (Math.imul(x, 1103515245) + 12345) >>> 0; return x % vocab; };
  const chunk = new Int32Array(chunkSize);
  const branch = new Int32Array(branchLen);

  const problems: string[] = [];
  const samples: Sample[] = [];
  const t0 = process.hrtime.bigint();
  let lastT = t0, lastTokens = 0;
  const sample = (fed: number) => {
    gc();
    const now = process.hrtime.bigint();
    const mem = process.memoryUsage();
    const st = session.stats();
    const s: Sample = {
      tokens: fed,
      seconds: Number(now - t0) / 1e9,
      tokens_per_s: fed > lastTokens ? (fed - lastTokens) / (Number(now - lastT) / 1e9) : 0,
      rss_mib: mib(mem.rss),
      heap_used_mib: mib(mem.heapUsed),
      external_mib: mib(mem.external),
      cache_bytes: st.cacheBytes,
      window: st.window,
      evicted: st.evicted,
    };
    lastT = now;
    lastTokens = fed;
    samples.push(s);
    // the session's own accounting must add up after every interval
    if (st.seen !== fed) problems.push(`at ${fed} tokens the session has seen ${st.seen}`);
    const wantSinks = Math.min(sinks, fed), wantWindow = Math.min(window, Math.max(0, fed - sinks));
    if (st.sinks !== wantSinks || st.window !== wantWindow || st.evicted !== Math.max(0, fed - sinks - window)) {
      problems.push(`at ${fed} tokens: sinks ${st.sinks}, window ${st.window}, evicted ${st.evicted} (want ${wantSinks}, ${wantWindow}, ${Math.max(0, fed - sinks - window)})`);
    }
    if (st.branchOpen) problems.push(`at ${fed} tokens a branch is still open`);
    process.stderr.write(`soak: ${fed} tokens, ${s.tokens_per_s.toFixed(0)} tok/s, RSS ${s.rss_mib.toFixed(1)} MiB, cache ${st.cacheBytes} B\n`);
  };

  process.stderr.write(`soak: ${path.relative(root, modelPath)} (${model.info.nParams} params, ${model.info.fileType}), ` +
    `S=${sinks} W=${window}, ${total} tokens in chunks of ${chunkSize}, ${threads} thread(s) (1-min load ${load0.toFixed(1)} on ${cores} cores)\n`);
  sample(0);
  let fed = 0, chunks = 0, nextSample = every;
  while (fed < total) {
    const n = Math.min(chunkSize, total - fed, nextSample - fed);
    const view = chunk.subarray(0, n);
    for (let i = 0; i < n; i++) view[i] = next();
    const logits = await session.decode(view, { logits: 'last' });
    if (!logits || logits.length !== vocab) problems.push(`decode at ${fed} returned ${logits ? logits.length : 'no'} logits`);
    else if (!logits.every(Number.isFinite)) problems.push(`non-finite logits after ${fed + n} tokens`);
    fed += n;
    chunks++;
    if (branchEvery > 0 && chunks % branchEvery === 0 && fed >= sinks) {
      // a completion: draft in a branch, then throw it away
      for (let i = 0; i < branchLen; i++) branch[i] = next();
      await session.branchBegin();
      const bl = await session.decode(branch, { logits: 'last' });
      if (!bl || !bl.every(Number.isFinite)) problems.push(`non-finite branch logits after ${fed} tokens`);
      await session.branchDiscard();
    }
    if (fed === nextSample || fed === total) {
      sample(fed);
      nextSample += every;
    }
  }
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  const finalStats = session.stats();
  session.dispose();
  model.dispose();

  // Verdict.
  const cacheValues = [...new Set(samples.map((s) => s.cache_bytes))];
  if (cacheValues.length !== 1) problems.push(`cache bytes changed: ${cacheValues.join(', ')}`);
  const base = samples.find((s) => s.tokens >= warmup) ?? samples[samples.length - 1];
  const after = samples.filter((s) => s.tokens >= base.tokens);
  const rssMax = Math.max(...after.map((s) => s.rss_mib));
  const rssGrowth = rssMax - base.rss_mib;
  if (rssGrowth > rssBound) problems.push(`RSS grew by ${rssGrowth.toFixed(1)} MiB after the warm-up (bound ${rssBound} MiB)`);
  const last = samples[samples.length - 1];
  const pass = problems.length === 0;

  const date = new Date().toISOString();
  const cpus = os.cpus();
  const result = {
    bench: 'soak',
    date,
    command: ['node', '--import', 'tsx', path.relative(root, process.argv[1] ?? 'bench/soak.ts'), ...argv].join(' '),
    machine: {
      cpu: cpus[0]?.model, cores: cpus.length, platform: `${os.platform()} ${os.arch()}`, memory_gib: +(os.totalmem() / 2 ** 30).toFixed(1),
      node: process.version, engine_features: systemInfo().features, load_average_at_start: +load0.toFixed(2),
      addon: process.env.ENDLESS_ADDON ?? 'build/endless.node',
    },
    model: { path: path.relative(root, modelPath), architecture: model.info.architecture, params: model.info.nParams, file_type: model.info.fileType, fingerprint: model.info.fingerprint },
    params: { tokens: total, sinks, window, chunk: chunkSize, every, warmup, rss_bound_mib: rssBound, threads, branch_every_chunks: branchEvery, branch_len: branchLen },
    samples,
    summary: {
      seconds: +seconds.toFixed(1),
      tokens_per_s: +(total / seconds).toFixed(0),
      cache_bytes: cacheValues,
      rss_at_warmup_mib: +base.rss_mib.toFixed(1),
      rss_max_after_warmup_mib: +rssMax.toFixed(1),
      rss_growth_after_warmup_mib: +rssGrowth.toFixed(2),
      rss_final_mib: +last.rss_mib.toFixed(1),
      final_stats: finalStats,
    },
    pass,
    problems,
    criteria: `cache bytes constant; session counters consistent at every sample; finite logits; RSS growth after ${warmup} tokens <= ${rssBound} MiB`,
  };
  const out = args.get('out') ?? path.join(root, 'bench', 'results', `soak-${date.slice(0, 10)}.json`);
  mkdirSync(path.dirname(out), { recursive: true });
  writeFileSync(out, JSON.stringify(result, null, 2) + '\n');

  console.log('tokens      seconds   tok/s   RSS MiB  heap MiB  ext MiB  cache bytes  window  evicted');
  for (const s of samples) {
    console.log(`${String(s.tokens).padEnd(10)} ${s.seconds.toFixed(1).padStart(8)} ${s.tokens_per_s.toFixed(0).padStart(7)} ` +
      `${s.rss_mib.toFixed(1).padStart(9)} ${s.heap_used_mib.toFixed(1).padStart(9)} ${s.external_mib.toFixed(1).padStart(8)} ` +
      `${String(s.cache_bytes).padStart(12)} ${String(s.window).padStart(7)} ${String(s.evicted).padStart(8)}`);
  }
  console.log(`${total} tokens in ${seconds.toFixed(0)} s (${(total / seconds).toFixed(0)} tok/s, ${threads} thread(s)); ` +
    `cache bytes ${cacheValues.join(', ')}; RSS ${base.rss_mib.toFixed(1)} MiB at ${base.tokens} tokens, ` +
    `max ${rssMax.toFixed(1)} MiB after: growth ${rssGrowth.toFixed(2)} MiB (bound ${rssBound} MiB)`);
  console.log(pass ? 'soak: PASS' : `soak: FAIL\n  ${problems.slice(0, 20).join('\n  ')}`);
  const shown = path.relative(root, out);
  console.log(`wrote ${shown.startsWith('..') ? path.resolve(out) : shown}`);
  return pass;
}

if (require.main === module) {
  runSoak(process.argv.slice(2)).then((ok) => process.exit(ok ? 0 : 1), (e) => {
    console.error(e);
    process.exit(1);
  });
}
