// `endless eval-stream`: perplexity of a text under four attention set-ups, the comparison of the
// StreamingLLM paper (Xiao et al., ICLR 2024, fig. 3), runnable on any model:
//   dense      every token sees all before it (one session as large as the text, at most the
//              model's trained context: a longer text is cut there, and the output says so);
//   window     the last W tokens only (S = 0): collapses once the first tokens are evicted;
//   streaming  S sinks + the last W tokens, fed one token at a time through the cache;
//   recompute  for each token, a cleared session re-reads the last W tokens (the slow baseline).
// stdout: one JSON line per chunk of --every scored tokens, then one JSON line with the totals.
import type { EngineModel, EngineSession } from '../engine/index';
import { UsageError, type CommandSpec, type Parsed } from './args';
import { loadModelFromArgs, logProb, MODEL_OPTIONS, readTextFile, tokenizerFromMetadata, writeOut } from './common';

export const evalStreamSpec: CommandSpec = {
  name: 'eval-stream',
  summary: 'perplexity per chunk and in total (JSON lines) under dense, window, streaming or recompute attention',
  options: {
    ...MODEL_OPTIONS,
    'text-file': { type: 'string', required: true, help: 'the text (UTF-8)', placeholder: 'F' },
    mode: { type: 'string', required: true, choices: ['dense', 'window', 'streaming', 'recompute'], help: 'attention set-up' },
    sinks: { type: 'int', min: 0, max: 1 << 20, help: 'sink tokens S (streaming; default 4)', placeholder: 'S' },
    window: { type: 'int', min: 1, max: 1 << 26, help: 'window W (window, streaming, recompute)', placeholder: 'W' },
    every: { type: 'int', min: 1, help: 'scored tokens per reported chunk (default 256)', placeholder: 'N' },
    'max-tokens': { type: 'int', min: 2, help: 'evaluate at most the first N tokens of the text', placeholder: 'N' },
  },
};

type Mode = 'dense' | 'window' | 'streaming' | 'recompute';

// Rows of logits per decode call when all rows are kept: bounded so a large vocabulary stays
// within ~64 MB per call.
function rowsPerCall(nVocab: number): number {
  return Math.max(1, Math.min(512, Math.floor((16 << 20) / nVocab)));
}

/** Decodes tokens in bounded batches, calling score(row, i) with the logits after tokens[i]. */
async function decodeAll(session: EngineSession, tokens: Int32Array | number[], nVocab: number,
                         from: number, to: number, score: (row: Float32Array, i: number) => void): Promise<void> {
  const step = rowsPerCall(nVocab);
  for (let a = from; a < to; a += step) {
    const b = Math.min(to, a + step);
    const all = (await session.decode(tokens.slice(a, b), { logits: 'all' }))!;
    for (let i = a; i < b; i++) score(all.subarray((i - a) * nVocab, (i - a + 1) * nVocab), i);
  }
}

export async function runEvalStream(opts: Parsed): Promise<void> {
  const mode = opts.mode as Mode;
  const window = opts.window as number | undefined;
  let sinks = opts.sinks as number | undefined;
  if (mode === 'dense' && (window !== undefined || sinks !== undefined)) {
    throw new UsageError('--mode dense takes no --sinks/--window (the session holds the whole text)', 'eval-stream');
  }
  if (mode !== 'dense' && window === undefined) throw new UsageError(`--mode ${mode} needs --window`, 'eval-stream');
  if ((mode === 'window' || mode === 'recompute') && sinks !== undefined && sinks !== 0) {
    throw new UsageError(`--mode ${mode} keeps no sinks (S = 0); use --mode streaming for S > 0`, 'eval-stream');
  }
  if (mode === 'streaming' && sinks === undefined) sinks = 4;
  const text = readTextFile(String(opts['text-file']), 'eval-stream');
  const model: EngineModel = await loadModelFromArgs(opts, 'eval-stream');
  try {
    const tok = tokenizerFromMetadata(model.metadata);
    let ids = tok.encode(text);
    const maxTokens = opts['max-tokens'] as number | undefined;
    if (maxTokens !== undefined && ids.length > maxTokens) ids = ids.slice(0, maxTokens);
    let truncated = false;
    if (mode === 'dense' && model.info.nCtxTrain > 0 && ids.length > model.info.nCtxTrain) {
      process.stderr.write(`eval-stream: dense mode: the text has ${ids.length} tokens, more than the model's trained ` +
        `context (${model.info.nCtxTrain}); evaluating the first ${model.info.nCtxTrain}\n`);
      ids = ids.slice(0, model.info.nCtxTrain);
      truncated = true;
    }
    if (ids.length < 2) throw new UsageError('the text must encode to at least 2 tokens', 'eval-stream');
    const nVocab = model.info.nVocab;
    const every = (opts.every as number | undefined) ?? 256;

    // Scored positions are 1..n-1: the logits after token i-1 predict token i.
    let chunkSum = 0, chunkCount = 0, chunkStart = 1, totalSum = 0, totalCount = 0;
    let chunkIndex = 0;
    const lines: string[] = [];
    const flushChunk = (end: number) => {
      if (chunkCount === 0) return;
      const nll = chunkSum / chunkCount;
      lines.push(JSON.stringify({ chunk: chunkIndex++, start: chunkStart, end, tokens: chunkCount, nll: +nll.toFixed(6), ppl: +Math.exp(nll).toFixed(4) }));
      chunkSum = 0; chunkCount = 0; chunkStart = end;
    };
    const score = (row: Float32Array, i: number) => {
      const next = i + 1;
      if (next >= ids.length) return;
      const nll = -logProb(row, ids[next]);
      chunkSum += nll; chunkCount++; totalSum += nll; totalCount++;
      if (chunkCount === every) flushChunk(next + 1);
    };
    const emit = async () => { for (const l of lines.splice(0)) await writeOut(l + '\n'); };

    const t0 = performance.now();
    let session: EngineSession;
    const n = ids.length;
    if (mode === 'dense') {
      session = model.createSession({ sinks: 0, window: n });
      for (let a = 0; a < n - 1; a += rowsPerCall(nVocab)) {
        await decodeAll(session, ids, nVocab, a, Math.min(n - 1, a + rowsPerCall(nVocab)), score);
        await emit();
      }
    } else if (mode === 'window' || mode === 'streaming') {
      session = model.createSession({ sinks: sinks ?? 0, window: window! });
      // Until the cache is full nothing is evicted and a batch equals token-by-token feeding.
      const capacity = session.params.sinks + session.params.window;
      const batched = Math.min(n - 1, capacity);
      await decodeAll(session, ids, nVocab, 0, batched, score);
      await emit();
      for (let i = batched; i < n - 1; i++) {
        score((await session.decode([ids[i]], { logits: 'last' }))!, i);
        await emit();
      }
    } else {
      session = model.createSession({ sinks: 0, window: window! });
      for (let i = 0; i < n - 1; i++) {
        await session.clear();
        score((await session.decode(ids.slice(Math.max(0, i + 1 - window!), i + 1), { logits: 'last' }))!, i);
        await emit();
      }
    }
    flushChunk(n);
    await emit();
    const seconds = (performance.now() - t0) / 1000;
    const st = session.stats();
    session.dispose();
    const nll = totalSum / totalCount;
    await writeOut(JSON.stringify({
      total: true,
      mode,
      sinks: mode === 'streaming' ? st.sinksMax : 0,
      window: mode === 'dense' ? n : window,
      tokens: n,
      scored: totalCount,
      truncated,
      nll: +nll.toFixed(6),
      ppl: +Math.exp(nll).toFixed(4),
      evicted: st.evicted,
      seconds: +seconds.toFixed(3),
      ms_per_token: +((seconds * 1000) / totalCount).toFixed(3),
      model: model.path,
      device: model.info.device,
    }) + '\n');
  } finally {
    model.dispose();
  }
}
