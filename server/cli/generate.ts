// `endless generate`: continues a prompt, streaming the text to stdout as tokens arrive (whole
// UTF-8 characters only); timing and counts go to stderr so stdout is exactly the text.
import type { SamplerParams } from '../engine/index';
import { UsageError, type CommandSpec, type Parsed } from './args';
import { loadModelFromArgs, MODEL_OPTIONS, tokenizerFromMetadata, writeOut } from './common';

export const generateSpec: CommandSpec = {
  name: 'generate',
  summary: 'continue a prompt; the text streams to stdout, statistics (JSON) to stderr',
  options: {
    ...MODEL_OPTIONS,
    prompt: { type: 'string', required: true, help: 'the prompt text', placeholder: 'TEXT' },
    'n-predict': { type: 'int', short: 'n', min: 0, max: 1 << 24, help: 'tokens to generate (default 64)', placeholder: 'N' },
    temperature: { type: 'number', min: 0, max: 100, help: '0 = greedy (default 0)', placeholder: 'T' },
    'top-k': { type: 'int', min: 0, help: '0 = off', placeholder: 'K' },
    'top-p': { type: 'number', min: 0, max: 1, help: '1 = off', placeholder: 'P' },
    'min-p': { type: 'number', min: 0, max: 1, help: '0 = off', placeholder: 'P' },
    'repeat-penalty': { type: 'number', min: 0.01, max: 100, help: '1 = off', placeholder: 'R' },
    'repeat-last-n': { type: 'int', min: 0, help: 'tokens the penalty looks back over', placeholder: 'N' },
    seed: { type: 'int', min: 0, help: 'sampling seed', placeholder: 'N' },
    window: { type: 'int', min: 1, max: 1 << 26, help: 'StreamingLLM window W (default: trained context)', placeholder: 'W' },
    sinks: { type: 'int', min: 0, max: 1 << 20, help: 'StreamingLLM sinks S (default 4)', placeholder: 'S' },
    'ignore-eos': { type: 'flag', help: 'do not stop at the end-of-text token' },
  },
};

export async function runGenerate(opts: Parsed): Promise<void> {
  const model = await loadModelFromArgs(opts, 'generate');
  const ac = new AbortController();
  const onSigint = () => ac.abort();
  process.once('SIGINT', onSigint);
  try {
    const tok = tokenizerFromMetadata(model.metadata);
    const prompt = tok.encode(String(opts.prompt));
    if (prompt.length === 0) throw new UsageError('--prompt encodes to no tokens (and the model adds no BOS)', 'generate');
    const sampler: SamplerParams = { temperature: (opts.temperature as number | undefined) ?? 0 };
    if (opts['top-k'] !== undefined) sampler.topK = opts['top-k'] as number;
    if (opts['top-p'] !== undefined) sampler.topP = opts['top-p'] as number;
    if (opts['min-p'] !== undefined) sampler.minP = opts['min-p'] as number;
    if (opts['repeat-penalty'] !== undefined) sampler.repeatPenalty = opts['repeat-penalty'] as number;
    if (opts['repeat-last-n'] !== undefined) sampler.repeatLastN = opts['repeat-last-n'] as number;
    if (opts.seed !== undefined) sampler.seed = opts.seed as number;
    const params: { window?: number; sinks?: number } = {};
    if (opts.window !== undefined) params.window = opts.window as number;
    if (opts.sinks !== undefined) params.sinks = opts.sinks as number;
    const session = model.createSession(params);
    const nPredict = (opts['n-predict'] as number | undefined) ?? 64;
    const stop = !opts['ignore-eos'] && tok.eos !== undefined ? [tok.eos] : [];
    const t0 = performance.now();
    await session.decode(prompt, { logits: 'last', signal: ac.signal });
    const t1 = performance.now();
    const decoder = tok.createStreamDecoder();
    let pending = Promise.resolve();
    const r = await session.generate({
      maxTokens: nPredict,
      stop,
      sampler,
      signal: ac.signal,
      onToken: (t) => {
        if (stop.includes(t)) return;
        const text = decoder.push(t);
        if (text) pending = pending.then(() => writeOut(text));
      },
    });
    const tail = decoder.flush();
    await pending;
    if (tail) await writeOut(tail);
    await writeOut('\n');
    const t2 = performance.now();
    const st = session.stats();
    session.dispose();
    process.stderr.write(JSON.stringify({
      prompt_tokens: prompt.length,
      generated_tokens: r.tokens.length,
      reason: r.reason,
      prefill_ms: +(t1 - t0).toFixed(1),
      prefill_tokens_per_s: +(prompt.length / ((t1 - t0) / 1000)).toFixed(2),
      decode_ms: +(t2 - t1).toFixed(1),
      decode_tokens_per_s: r.tokens.length ? +(r.tokens.length / ((t2 - t1) / 1000)).toFixed(2) : null,
      device: model.info.device,
      cache: { sinks: st.sinks, window: st.window, windowMax: st.windowMax, evicted: st.evicted },
    }) + '\n');
    if (r.reason === 'cancelled') process.exitCode = 130; // interrupted (SIGINT), as shells report it
  } finally {
    process.off('SIGINT', onSigint);
    model.dispose();
  }
}
