// `npm run bench -- sampler [--draws N] [--model m.gguf]`: the time of one token draw
// (endless_sampler_sample: penalties, temperature, top-k / top-p / min-p, the draw) for the sampler
// settings the product uses, on two kinds of logits:
//   - real: the shipped default model's logits after a code prompt (its own vocabulary);
//   - 151,936 synthetic: a Qwen2.5-sized vocabulary, N(0, 3^2) logits with three clear leaders
//     (the shape of a confident next token; the time of a draw depends on the vocabulary size and on
//     how many tokens lie near the top, not on their ids);
//   - 151,936 flat: N(0, 0.5^2) logits, no leader (a worst case: the top-p set holds most of the
//     vocabulary; random-weight models look like this).
// Every draw runs on the CPU, whatever device decodes; a 2 ms GPU decode step is paced by it.
// Writes bench/results/sampler-<date>.json and prints a table.
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { loadModel } from '../server/engine/index';
import { getAddon, type NativeSamplerParams } from '../server/engine/native';
import { Tokenizer } from '../server/tokenizer/index';

const root = path.resolve(__dirname, '..');

function arg(argv: string[], name: string, fallback: string): string {
  const i = argv.indexOf(name);
  return i >= 0 && i + 1 < argv.length ? argv[i + 1] : fallback;
}

// the settings the language server passes (server/session/session.ts), and two common others
const SETTINGS: { name: string; p: NativeSamplerParams }[] = [
  { name: 'greedy (completions)', p: { temperature: 0 } },
  { name: 'chat: T 0.2, top-p 0.95, penalty 1.1/64', p: { temperature: 0.2, topP: 0.95, repeatPenalty: 1.1, repeatLastN: 64, seed: 7 } },
  { name: 'summary: T 0.6, top-p 0.95', p: { temperature: 0.6, topP: 0.95, seed: 1 } },
  { name: 'summary: T 0.9, top-p 0.95', p: { temperature: 0.9, topP: 0.95, seed: 2 } },
  { name: 'T 1.0, top-k 40, top-p 0.95, min-p 0.01', p: { temperature: 1.0, topK: 40, topP: 0.95, minP: 0.01, seed: 3 } },
  { name: 'T 1.0, no cut (every token sorted)', p: { temperature: 1.0, seed: 4 } },
];

export async function runSamplerBench(argv: string[]): Promise<void> {
  const draws = Number(arg(argv, '--draws', '200'));
  const modelPath = arg(argv, '--model', path.join(root, 'models', 'endless-code-q8_0.gguf'));
  if (!existsSync(modelPath)) throw new Error(`no model at ${modelPath}`);
  const addon = getAddon();

  // real logits: the default model after a source file of this repository
  const model = await loadModel(modelPath, { device: 'cpu', threads: 0 });
  const tok = Tokenizer.fromMetadata(model.metadata);
  const prompt = tok.encode(readFileSync(path.join(root, 'server', 'engine', 'api.ts'), 'utf8')).slice(0, 384);
  const s = model.createSession({ sinks: 4, window: 1020, batch: 256 });
  const real = (await s.decode(prompt, { logits: 'last' }))!;
  s.dispose();
  model.dispose();

  let x = 12345;
  const uniform = () => { x = (x * 1103515245 + 12345) >>> 0; return (x + 0.5) / 2 ** 32; };
  const gauss = () => Math.sqrt(-2 * Math.log(uniform())) * Math.cos(2 * Math.PI * uniform());
  const big = Float32Array.from({ length: 151936 }, () => 3 * gauss());
  big[5] = 25; big[7] = 24; big[9] = 23.5;
  const flat = Float32Array.from({ length: 151936 }, () => 0.5 * gauss());
  const recent = Int32Array.from({ length: 64 }, (_, i) => (i * 7919) % 151936);

  const rows: { logits: string; vocab: number; setting: string; ms_per_draw: number }[] = [];
  for (const [label, logits] of [['real (default model)', real], ['synthetic 151,936', big], ['flat 151,936', flat]] as const) {
    for (const st of SETTINGS) {
      const smp = new addon.Sampler(st.p);
      const rec = recent.map((t) => t % logits.length);
      for (let i = 0; i < 5; i++) smp.sample(logits, rec);  // warm
      const t0 = process.hrtime.bigint();
      for (let i = 0; i < draws; i++) smp.sample(logits, rec);
      const ms = Number(process.hrtime.bigint() - t0) / 1e6 / draws;
      smp.dispose();
      rows.push({ logits: label, vocab: logits.length, setting: st.name, ms_per_draw: ms });
      console.error(`${label}, ${st.name}: ${ms.toFixed(3)} ms/draw`);
    }
  }
  const result = {
    bench: 'sampler',
    date: new Date().toISOString(),
    command: `npm run bench -- sampler ${argv.join(' ')}`.trim(),
    machine: { cpu: os.cpus()[0]?.model, cores: os.cpus().length, platform: `${os.platform()} ${os.arch()}` },
    model: path.relative(root, modelPath),
    draws,
    rows,
  };
  mkdirSync(path.join(root, 'bench', 'results'), { recursive: true });
  const out = path.join(root, 'bench', 'results', `sampler-${result.date.slice(0, 16).replace(':', '')}.json`);
  writeFileSync(out, JSON.stringify(result, null, 2) + '\n');
  console.log('logits                 vocab    ms/draw  setting');
  for (const r of rows) console.log(`${r.logits.padEnd(22)} ${String(r.vocab).padStart(6)} ${r.ms_per_draw.toFixed(3).padStart(10)}  ${r.setting}`);
  console.log(`wrote ${path.relative(root, out)}`);
}
