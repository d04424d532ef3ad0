// `endless bench`: prefill and decode speed of one model on this machine, as JSON. The same
// measurement backs bench/run.ts, which puts llama.cpp beside it.
//   prefill: P random tokens decoded as one call into a cleared session (logits of the last);
//   decode:  G tokens generated greedily one at a time after the prompt (sample, report, decode).
// Each is repeated --reps times; the median rate is reported with every sample.
import { cpus } from 'node:os';
import { loadModel, systemInfo, type Device } from '../engine/index';
import type { CommandSpec, Parsed } from './args';
import { requireFile, writeOut } from './common';

export const benchSpec: CommandSpec = {
  name: 'bench',
  summary: 'prefill and decode tokens/s of a model (JSON); `npm run bench -- cpu` adds llama.cpp beside it',
  options: {
    model: { type: 'string', required: true, help: 'GGUF model file', placeholder: 'M' },
    device: { type: 'string', choices: ['auto', 'cpu', 'cuda'], help: 'where the model runs (default cpu)' },
    threads: { type: 'int', min: 0, max: 4096, help: 'CPU threads (default: all cores)', placeholder: 'N' },
    'prompt-tokens': { type: 'int', min: 1, max: 1 << 20, help: 'prefill length P (default 512)', placeholder: 'P' },
    'gen-tokens': { type: 'int', min: 1, max: 1 << 20, help: 'decoded tokens G (default 64)', placeholder: 'G' },
    reps: { type: 'int', min: 1, max: 100, help: 'repetitions (default 3)', placeholder: 'R' },
  },
};

export interface BenchOptions {
  threads: number;        // 0: all cores
  device: Device;
  promptTokens: number;
  genTokens: number;
  reps: number;
  seed?: number;
  vocab?: number;         // draw prompt ids below this (default: the model's n_vocab)
}

export interface BenchResult {
  engine: string;
  model: string;
  fileType: string;
  device: string;
  threads: number;
  promptTokens: number;
  genTokens: number;
  loadSeconds: number;
  prefillTokensPerS: number;    // median
  decodeTokensPerS: number;     // median
  prefillSamples: number[];
  decodeSamples: number[];
  // tokens per second of CPU time used by the whole process (all threads), median: on a busy
  // machine this stays near the idle-machine rate for single-threaded runs, where wall-clock
  // rates do not (spin-waiting threads inflate it for multi-threaded runs)
  prefillTokensPerCpuS: number;
  decodeTokensPerCpuS: number;
}

/** CPU seconds used by this process so far (user + system, all threads). */
export function cpuSeconds(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** Deterministic pseudo-random token ids in [lo, hi) (xorshift32): both engines get the same. */
export function randomTokens(n: number, lo: number, hi: number, seed = 1234): number[] {
  let x = seed >>> 0 || 1;
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0;
    out.push(lo + (x % (hi - lo)));
  }
  return out;
}

export const round2 = (v: number) => Math.round(v * 100) / 100;

export async function benchEndless(path: string, o: BenchOptions): Promise<BenchResult> {
  const t0 = performance.now();
  const model = await loadModel(path, { threads: o.threads, device: o.device });
  const loadSeconds = (performance.now() - t0) / 1000;
  try {
    // Ids 0..255 are avoided: byte and control tokens of many vocabularies.
    const nVocab = Math.min(o.vocab ?? model.info.nVocab, model.info.nVocab);
    const prompt = randomTokens(o.promptTokens, Math.min(256, nVocab - 1), nVocab, o.seed);
    const session = model.createSession({ sinks: 4, window: o.promptTokens + o.genTokens + 8 });
    const prefill: number[] = [];
    const decode: number[] = [];
    const prefillCpu: number[] = [];
    const decodeCpu: number[] = [];
    // one untimed repetition first: first-touch page faults and allocations are not throughput
    for (let r = -1; r < o.reps; r++) {
      await session.clear();
      const a = performance.now();
      const ca = cpuSeconds();
      await session.decode(prompt, { logits: 'last' });
      const b = performance.now();
      const cb = cpuSeconds();
      const g = await session.generate({ maxTokens: o.genTokens, sampler: { temperature: 0 } });
      const c = performance.now();
      const cc = cpuSeconds();
      if (r < 0) continue;
      prefill.push(round2(o.promptTokens / ((b - a) / 1000)));
      decode.push(round2(g.tokens.length / ((c - b) / 1000)));
      prefillCpu.push(round2(o.promptTokens / (cb - ca)));
      decodeCpu.push(round2(g.tokens.length / (cc - cb)));
    }
    session.dispose();
    return {
      engine: 'endless',
      model: path,
      fileType: model.info.fileType,
      device: model.info.device,
      threads: model.info.nThreads,
      promptTokens: o.promptTokens,
      genTokens: o.genTokens,
      loadSeconds: round2(loadSeconds),
      prefillTokensPerS: round2(median(prefill)),
      decodeTokensPerS: round2(median(decode)),
      prefillSamples: prefill,
      decodeSamples: decode,
      prefillTokensPerCpuS: round2(median(prefillCpu)),
      decodeTokensPerCpuS: round2(median(decodeCpu)),
    };
  } finally {
    model.dispose();
  }
}

export async function runBench(opts: Parsed): Promise<void> {
  const path = requireFile(String(opts.model), 'model file', 'bench');
  const r = await benchEndless(path, {
    threads: (opts.threads as number | undefined) ?? 0,
    device: (opts.device as Device | undefined) ?? 'cpu',
    promptTokens: (opts['prompt-tokens'] as number | undefined) ?? 512,
    genTokens: (opts['gen-tokens'] as number | undefined) ?? 64,
    reps: (opts.reps as number | undefined) ?? 3,
  });
  await writeOut(JSON.stringify({ ...r, cpu: cpus()[0]?.model ?? 'unknown', features: systemInfo().features }) + '\n');
}
