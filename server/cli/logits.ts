// `endless logits`: the logits of every position of a token sequence, as JSON.
// Without --sinks/--window the session is large enough to hold every token (dense attention) and
// the tokens go in as one batch; with them, the tokens are fed one at a time through the
// StreamingLLM cache, so positions past S + W see only the sinks and the last W tokens.
import { checkTokens } from '../engine/validate';
import { UsageError, type CommandSpec, type Parsed } from './args';
import { formatRow, loadModelFromArgs, MODEL_OPTIONS, writeOut } from './common';

export const logitsSpec: CommandSpec = {
  name: 'logits',
  summary: 'print {"n_vocab": N, "logits": [[...], ...]}: the logits after each token, tokens fed in order',
  options: {
    ...MODEL_OPTIONS,
    tokens: { type: 'int-list', required: true, help: 'token ids, comma-separated', placeholder: '1,2,3' },
    sinks: { type: 'int', min: 0, max: 1 << 20, help: 'StreamingLLM sink tokens S (streaming mode)', placeholder: 'S' },
    window: { type: 'int', min: 1, max: 1 << 26, help: 'StreamingLLM window W (streaming mode; required with --sinks)', placeholder: 'W' },
  },
};

export async function runLogits(opts: Parsed): Promise<void> {
  const tokens = opts.tokens as number[];
  if (tokens.length === 0) throw new UsageError('--tokens must name at least one token', 'logits');
  const streaming = opts.sinks !== undefined || opts.window !== undefined;
  if (streaming && opts.window === undefined) throw new UsageError('--sinks needs --window', 'logits');
  const model = await loadModelFromArgs(opts, 'logits');
  try {
    const nVocab = model.info.nVocab;
    let ids: Int32Array;
    try {
      ids = checkTokens(tokens, '--tokens', nVocab);
    } catch (e) {
      throw new UsageError(`${(e as Error).message} (the model's n_vocab)`, 'logits');
    }
    const rows: Float32Array[] = [];
    if (!streaming) {
      const session = model.createSession({ sinks: 0, window: ids.length });
      const all = (await session.decode(ids, { logits: 'all' }))!;
      for (let i = 0; i < ids.length; i++) rows.push(all.subarray(i * nVocab, (i + 1) * nVocab));
      session.dispose();
    } else {
      const params: { window: number; sinks?: number } = { window: opts.window as number };
      if (opts.sinks !== undefined) params.sinks = opts.sinks as number;
      const session = model.createSession(params);
      for (const t of ids) rows.push((await session.decode([t], { logits: 'last' }))!);
      session.dispose();
    }
    await writeOut(`{"n_vocab":${nVocab},"logits":[`);
    for (let i = 0; i < rows.length; i++) await writeOut((i ? ',' : '') + formatRow(rows[i]));
    await writeOut(']}\n');
  } finally {
    model.dispose();
  }
}
