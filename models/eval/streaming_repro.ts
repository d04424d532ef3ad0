// The StreamingLLM reproduction (Xiao et al., ICLR 2024, fig. 3) on the default model: one long
// stream of concatenated held-out code, scored token by token under
//   S=0  window attention (the last W tokens only),
//   S=1, S=4  sinks + window (the StreamingLLM cache),
//   dense1024  dense attention within the trained length: the stream cut into blocks of
//              <|sink|> + 1023 tokens (exactly the training samples' shape),
//   recompute  sliding window with re-computation, on sampled positions: for token t a fresh
//              session reads ids[t-W..t-1] (the paper's baseline, as `endless eval-stream --mode
//              recompute`), and `recompute+sink` reads <|sink|> + ids[t-W..t-1] (what S=1 keeps,
//              but every key computed afresh). Each costs one W-token forward per scored token,
//              so it is measured on --recompute sampled positions and compared, paired, with the
//              streaming modes at the very same positions.
// Streaming modes decode the stream in batches with all logits: the cache gives every query in
// a batch exactly the sinks + the W tokens before it (kv_cache.h), so this equals feeding one
// token at a time (`endless eval-stream --mode streaming`; checked by check_batched.sh), only
// faster. Modes advance round-robin, --every tokens at a time, and the result file is rewritten
// after every round, so a run stopped early still leaves equal-length results for every mode.
//
//   node --import tsx models/eval/streaming_repro.ts --model models/endless-code-q8_0.gguf \
//     --heldout /tmp/endless-eval/heldout --tokens 1048576 --out models/eval/results/streaming-repro.json
import { writeFileSync } from 'node:fs';
import { loadModel, type EngineSession } from '../../server/engine/index';
import { Tokenizer } from '../../server/tokenizer/index';
import { fileRecord, LANGS, loadHeldout, nllOf, parseArgs, rng, shuffle, specialIds, writeJson, type Lang } from './common';

const USAGE = `usage: node --import tsx models/eval/streaming_repro.ts --model M --heldout DIR --out OUT.json
  [--tokens N (1048576)] [--window W (1020)] [--sinks 0,1,4] [--every 8192] [--threads 2]
  [--recompute K (128) sampled positions] [--recompute-from A (2048)] [--recompute-to B (16384)]
  [--skip-recompute (sample the positions, score the modes there, but run no recompute)] [--no-dense] [--dense-tokens N (dense1024 on the first N tokens only)] [--early 8192 (per-token NLL kept for the first N positions)] [--seed 1] [--stream-text OUT.txt (the stream as text, for endless eval-stream)]\n`;

async function main() {
  const a = parseArgs(process.argv.slice(2), {
    model: 'string', heldout: 'string', out: 'string', tokens: 'int', window: 'int', sinks: 'string', every: 'int',
    threads: 'int', recompute: 'int', 'recompute-from': 'int', 'recompute-to': 'int', 'no-dense': 'flag', seed: 'int',
    'stream-text': 'string', early: 'int', 'dense-tokens': 'int', 'skip-recompute': 'flag',
  }, USAGE);
  for (const k of ['model', 'heldout', 'out']) if (a[k] === undefined) throw new Error(`--${k} is required\n${USAGE}`);
  const N = (a.tokens as number | undefined) ?? 1 << 20;
  const W = (a.window as number | undefined) ?? 1020;
  const sinkList = String(a.sinks ?? '0,1,4').split(',').map((s) => {
    if (!/^\d+$/.test(s)) throw new Error(`--sinks: not a list of integers: ${String(a.sinks)}`);
    return Number(s);
  });
  const every = (a.every as number | undefined) ?? 8192;
  const threads = (a.threads as number | undefined) ?? 2;
  const K = (a.recompute as number | undefined) ?? 128;
  const recFrom = (a['recompute-from'] as number | undefined) ?? 2048;
  const recTo = (a['recompute-to'] as number | undefined) ?? 16384;
  const seed = (a.seed as number | undefined) ?? 1;
  const dense = !a['no-dense'];
  const early = (a.early as number | undefined) ?? 8192;
  const denseMax = (a['dense-tokens'] as number | undefined) ?? Infinity;

  const model = await loadModel(String(a.model), { threads, device: 'cpu' });
  const tok = Tokenizer.fromMetadata(model.metadata);
  const sp = specialIds(tok);
  const nVocab = model.info.nVocab;

  // The stream: <|sink|>, then held-out files in a seeded random order, each as
  // <|file_sep|>path\n text <|endoftext|> (the training's plain format). Repeated only if short.
  const t0 = performance.now();
  const files = loadHeldout(String(a.heldout));
  const ids: number[] = [sp.sink];
  const langOf: Lang[] = ['python'];
  const texts: string[] = [];
  let passes = 0;
  const r = rng(seed);
  while (ids.length < N && passes < 1000) {
    passes++;
    for (const f of shuffle(files.slice(), r)) {
      if (ids.length >= N) break;
      const rec = fileRecord(f);
      texts.push(rec);
      for (const id of tok.encode(rec, { addBos: false })) { ids.push(id); langOf.push(f.lang); }
    }
  }
  const heldoutTokens = passes === 1 ? null : Math.round(ids.length / passes);
  ids.length = Math.min(ids.length, N);
  langOf.length = ids.length;
  const n = ids.length;
  const tokSeconds = (performance.now() - t0) / 1000;
  process.stderr.write(`stream: ${n} tokens from ${texts.length} file records, ${passes} pass(es) over the held-out set ` +
    `(${files.length} files); tokenized in ${tokSeconds.toFixed(1)} s\n`);
  if (a['stream-text']) writeFileSync(String(a['stream-text']), texts.join(''));

  // Sampled recompute positions (paired with every mode).
  const lo = Math.max(recFrom, W + 1), hi = Math.min(recTo, n);
  const positions: number[] = [];
  if (K > 0 && hi - lo >= K) {
    const pr = rng(seed + 1000);
    const set = new Set<number>();
    while (set.size < K) set.add(lo + Math.floor(pr() * (hi - lo)));
    positions.push(...[...set].sort((x, y) => x - y));
  }
  const posIndex = new Map(positions.map((p, i) => [p, i]));

  interface ModeState {
    name: string; sinks: number; window: number; session: EngineSession;
    done: number;                        // tokens scored up to (exclusive): positions 1..done-1 scored
    sum: number; count: number; seconds: number;
    chunks: { end: number; tokens: number; nll: number; ppl: number }[];
    chunkSum: number; chunkCount: number;
    lang: Record<string, { sum: number; count: number }>;
    atPos: number[];
    early: number[];                     // per-token NLL of the first --early positions
  }
  const mk = (name: string, sinks: number, window: number): ModeState => ({
    name, sinks, window, session: model.createSession({ sinks, window, branchMax: 0, batch: 256 }),
    done: 1, sum: 0, count: 0, seconds: 0, chunks: [], chunkSum: 0, chunkCount: 0,
    lang: Object.fromEntries(LANGS.map((l) => [l, { sum: 0, count: 0 }])), atPos: new Array(positions.length).fill(NaN), early: [],
  });
  const modes: ModeState[] = sinkList.map((s) => mk(`S=${s}`, s, W));
  if (dense) modes.push(mk('dense1024', 0, 1024));

  const scoreTok = (m: ModeState, t: number, nll: number) => {
    m.sum += nll; m.count++; m.chunkSum += nll; m.chunkCount++;
    const l = m.lang[langOf[t]]; l.sum += nll; l.count++;
    const pi = posIndex.get(t);
    if (pi !== undefined) m.atPos[pi] = nll;
    if (t < early) m.early[t - 1] = +nll.toFixed(4);
  };
  const ROWS = 512;
  // Streaming: decode ids[from-1 .. to-1), row j predicts ids[from+j].
  const advanceStreaming = async (m: ModeState, to: number) => {
    for (let s = m.done; s < to; s += ROWS) {
      const e = Math.min(to, s + ROWS);
      const logits = (await m.session.decode(ids.slice(s - 1, e - 1), { logits: 'all' }))!;
      for (let t = s; t < e; t++) scoreTok(m, t, nllOf(logits.subarray((t - s) * nVocab, (t - s + 1) * nVocab), ids[t]));
    }
    m.done = to;
  };
  // Dense within the trained length: blocks <|sink|> + ids[b .. b+1023), b = 1, 1025, 2049, ...;
  // row j predicts ids[b+j]. Blocks of 1024 fit the --every chunks when every is a multiple of 1024.
  const advanceDense = async (m: ModeState, to: number) => {
    while (m.done < to) {
      const b = m.done, e = Math.min(n, b + 1024, to);
      await m.session.clear();
      const block = [sp.sink, ...ids.slice(b, e - 1)];
      for (let s = 0; s < block.length; s += ROWS) {
        const logits = (await m.session.decode(block.slice(s, s + ROWS), { logits: 'all' }))!;
        const rows = Math.min(ROWS, block.length - s);
        for (let j = 0; j < rows; j++) scoreTok(m, b + s + j, nllOf(logits.subarray(j * nVocab, (j + 1) * nVocab), ids[b + s + j]));
      }
      m.done = e;
    }
  };

  const result: Record<string, unknown> = {};
  const recompute: Record<string, { nll: number[]; seconds: number }> = {};
  const write = (final: boolean) => {
    const modeOut = modes.map((m) => ({
      mode: m.name, sinks: m.sinks, window: m.window, scored: m.count, tokens: m.done,
      nll: m.sum / m.count, ppl: Math.exp(m.sum / m.count), seconds: m.seconds, tokens_per_s: m.count / m.seconds,
      first_chunk_ppl: m.chunks[0]?.ppl ?? null, last_chunk_ppl: m.chunks.at(-1)?.ppl ?? null,
      per_language: Object.fromEntries(LANGS.map((l) => [l, { tokens: m.lang[l].count, ppl: Math.exp(m.lang[l].sum / m.lang[l].count) }])),
      chunks: m.chunks, early_nll: m.early,
    }));
    // Paired comparison at the sampled positions (only those every mode has reached).
    const paired: Record<string, unknown> = {};
    const vec = (name: string) => recompute[name]?.nll ?? modes.find((m) => m.name === name)!.atPos;
    const names = [...modes.map((m) => m.name), ...Object.keys(recompute)].filter((nm) => vec(nm).some(Number.isFinite));
    const ok = positions.map((_, i) => names.every((nm) => Number.isFinite(vec(nm)[i])));
    const idx = ok.flatMap((v, i) => (v ? [i] : []));
    if (idx.length > 0) {
      const ref = 'recompute+sink' in recompute ? 'recompute+sink' : names[0];
      for (const nm of names) {
        const d = idx.map((i) => vec(nm)[i] - vec(ref)[i]);
        const mean = d.reduce((x, y) => x + y, 0) / d.length;
        const sd = Math.sqrt(d.reduce((x, y) => x + (y - mean) ** 2, 0) / Math.max(1, d.length - 1));
        const nll = idx.reduce((x, i) => x + vec(nm)[i], 0) / idx.length;
        paired[nm] = { positions: idx.length, nll, ppl: Math.exp(nll), ppl_ratio_vs_ref: Math.exp(mean),
          ppl_ratio_95ci: [Math.exp(mean - 1.96 * sd / Math.sqrt(d.length)), Math.exp(mean + 1.96 * sd / Math.sqrt(d.length))],
          seconds: recompute[nm]?.seconds };
      }
      paired.reference = ref;
    }
    const atPositions = Object.fromEntries(names.map((nm) => [nm, vec(nm).map((x) => (Number.isFinite(x) ? +x.toFixed(6) : null))]));
    Object.assign(result, {
      final, date: new Date().toISOString(), command: `node --import tsx models/eval/streaming_repro.ts ${process.argv.slice(2).join(' ')}`,
      model: model.path, fingerprint: model.info.fingerprint, device: model.info.device, threads: model.info.nThreads,
      stream: { tokens: n, files: texts.length, heldout_files: files.length, passes, repeated: passes > 1, heldout_tokens_per_pass: heldoutTokens,
        order: `seeded shuffle (seed ${seed}), <|sink|> first, each file as <|file_sep|>path\\n text <|endoftext|>` },
      every, window: W, modes: modeOut,
      recompute_sampled: { positions_range: [lo, hi], count: positions.length, positions, paired, nll_at_positions: atPositions },
    });
    writeJson(String(a.out), result);
  };

  // Round-robin over the modes, `every` tokens at a time.
  for (let end = Math.min(n, 1 + every); ; end = Math.min(n, end + every)) {
    for (const m of modes) {
      if (m.name === 'dense1024' && m.done >= denseMax) continue;
      const ts = performance.now();
      await (m.name === 'dense1024' ? advanceDense(m, Math.min(end, denseMax)) : advanceStreaming(m, end));
      m.seconds += (performance.now() - ts) / 1000;
      if (m.chunkCount > 0) {
        const nll = m.chunkSum / m.chunkCount;
        m.chunks.push({ end, tokens: m.chunkCount, nll, ppl: Math.exp(nll) });
        m.chunkSum = 0; m.chunkCount = 0;
      }
    }
    write(false);
    process.stderr.write(`${end}/${n}: ` + modes.map((m) => `${m.name} ppl ${Math.exp(m.sum / m.count).toFixed(3)} ` +
      `(${(m.count / m.seconds).toFixed(0)} tok/s)`).join(', ') + '\n');
    // Recompute once the stream has passed its range (so a stopped run still has it early).
    if (positions.length > 0 && !a['skip-recompute'] && Object.keys(recompute).length === 0 && end >= hi) {
      const s = model.createSession({ sinks: 0, window: W + 1, branchMax: 0, batch: 512 });
      for (const [name, withSink] of [['recompute', false], ['recompute+sink', true]] as const) {
        const ts = performance.now();
        const v: number[] = [];
        for (const t of positions) {
          await s.clear();
          const ctx = ids.slice(t - W, t);
          const logits = (await s.decode(withSink ? [sp.sink, ...ctx] : ctx, { logits: 'last' }))!;
          v.push(nllOf(logits, ids[t]));
        }
        recompute[name] = { nll: v, seconds: (performance.now() - ts) / 1000 };
        process.stderr.write(`${name}: ${positions.length} sampled positions in ${recompute[name].seconds.toFixed(1)} s\n`);
      }
      s.dispose();
      write(false);
    }
    if (end >= n) break;
  }
  write(true);
  for (const m of modes) m.session.dispose();
  model.dispose();
}

main().catch((e) => {
  process.stderr.write(`streaming_repro: ${(e as Error).message}\n`);
  process.exit(1);
});
