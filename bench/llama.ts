// llama.cpp through node-llama-cpp (devDependency, pinned 3.21.1; its prebuilt linux-x64 CPU
// binaries come inside the npm package @node-llama-cpp/linux-x64, nothing is downloaded or
// built), measured exactly as server/cli/bench.ts measures Endless: the same random prompt,
// prefill as one evaluation, then greedy decoding one token at a time, the same thread count.
import { readFileSync } from 'node:fs';
import { cpus } from 'node:os';
import path from 'node:path';
import { cpuSeconds, median, randomTokens, round2, type BenchOptions, type BenchResult } from '../server/cli/bench';

export interface LlamaCppInfo {
  package: string;      // node-llama-cpp version
  llamaCpp: string;     // llama.cpp release the binaries were built from
  binary: string;       // 'prebuilt' or 'local build'
}

type NodeLlamaCpp = typeof import('node-llama-cpp');

async function importNodeLlamaCpp(): Promise<NodeLlamaCpp> {
  try {
    return await import('node-llama-cpp');
  } catch (e) {
    throw new Error(`node-llama-cpp is not installed (npm install installs it as a devDependency): ${(e as Error).message}`);
  }
}

function packageVersion(): string {
  // its package.json is not among its exports: read the file
  try {
    const file = path.join(__dirname, '..', 'node_modules', 'node-llama-cpp', 'package.json');
    return (JSON.parse(readFileSync(file, 'utf8')) as { version: string }).version;
  } catch {
    return 'unknown';
  }
}

export async function llamaCppInfo(): Promise<LlamaCppInfo> {
  const m = await importNodeLlamaCpp();
  const llama = await m.getLlama({ gpu: false, build: 'never', usePrebuiltBinaries: true, logLevel: m.LlamaLogLevel.error, maxThreads: 1 });
  const info = { package: packageVersion(), llamaCpp: llama.llamaCppRelease.release, binary: llama.buildType };
  await llama.dispose();
  return info;
}

export async function benchLlamaCpp(path: string, o: BenchOptions): Promise<BenchResult> {
  const m = await importNodeLlamaCpp();
  const threads = o.threads > 0 ? o.threads : cpus().length;
  // build: 'never' makes a missing prebuilt binary an error instead of a download or a build.
  const llama = await m.getLlama({
    gpu: false, build: 'never', usePrebuiltBinaries: true, logLevel: m.LlamaLogLevel.error, maxThreads: threads,
  });
  try {
    const t0 = performance.now();
    const model = await llama.loadModel({ modelPath: path, gpuLayers: 0 });
    const loadSeconds = (performance.now() - t0) / 1000;
    const vocab = o.vocab ?? model.tokens.bos ?? 256;
    const prompt = randomTokens(o.promptTokens, Math.min(256, vocab - 1), vocab, o.seed) as unknown as import('node-llama-cpp').Token[];
    const context = await model.createContext({
      contextSize: o.promptTokens + o.genTokens + 8,
      batchSize: Math.max(512, Math.min(o.promptTokens, 2048)),
      threads: { ideal: threads, min: threads },
      sequences: 1,
    });
    const seq = context.getSequence();
    const prefill: number[] = [];
    const decode: number[] = [];
    const prefillCpu: number[] = [];
    const decodeCpu: number[] = [];
    // one untimed repetition first: graph allocation and page faults are not throughput
    for (let r = -1; r < o.reps; r++) {
      await seq.clearHistory();
      const a = performance.now();
      const ca = cpuSeconds();
      await seq.evaluateWithoutGeneratingNewTokens(prompt.slice(0, -1));
      const b = performance.now();
      const cb = cpuSeconds();
      // The last prompt token goes in with the first decoding step, as Endless's generate()
      // decodes each token it samples; G evaluations of one token each.
      let n = 0;
      const c0 = performance.now();
      for await (const _tok of seq.evaluate([prompt[prompt.length - 1]], { temperature: 0 })) {
        if (++n >= o.genTokens) break;
      }
      const c = performance.now();
      const cc = cpuSeconds();
      if (r < 0) continue;
      prefill.push(round2((o.promptTokens - 1) / ((b - a) / 1000)));
      decode.push(round2(n / ((c - c0) / 1000)));
      prefillCpu.push(round2((o.promptTokens - 1) / (cb - ca)));
      decodeCpu.push(round2(n / (cc - cb)));
    }
    const fileType = m.GgufFileType?.[model.fileInfo.metadata.general.file_type as number] ?? String(model.fileInfo.metadata.general.file_type);
    await context.dispose();
    await model.dispose();
    return {
      engine: 'llama.cpp',
      model: path,
      fileType,
      device: 'cpu',
      threads,
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
    await llama.dispose();
  }
}
