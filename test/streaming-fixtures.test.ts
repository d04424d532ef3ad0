// The StreamingLLM cache against external references, for the llama, llama3-scaled and qwen2
// fixture models (F32):
// - streaming (cached K/V, positions in the cache) against tools/stream_reference.py, a float64
//   numpy implementation whose dense part matches transformers (*.stream.json);
// - sliding-window recompute (a fresh dense run on exactly the kept tokens, first S + last W)
//   against transformers itself (*.json "streaming", made on the GPU machine);
// for (S, W) in (4,16), (1,24), (0,16), (2,8), 12 steps past the first eviction.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { loadModel } from '../server/engine/index';
import type { EngineModel } from '../server/engine/api';

const dir = path.join(__dirname, 'fixtures', 'models');

interface Encoded { shape: number[]; base64: string }
function decodeRows(e: Encoded): Float32Array[] {
  const buf = Buffer.from(e.base64, 'base64');
  const all = new Float32Array(buf.buffer, buf.byteOffset, buf.byteLength / 4);
  const [rows, cols] = e.shape;
  return Array.from({ length: rows }, (_, i) => all.slice(i * cols, (i + 1) * cols));
}
function relError(a: Float32Array, b: Float32Array): number {
  let num = 0, den = 0;
  for (let i = 0; i < b.length; i++) { const d = a[i] - b[i]; num += d * d; den += b[i] * b[i]; }
  return Math.sqrt(num / den);
}
interface Case { sinks: number; window: number; steps: number[]; logits: Encoded }

for (const name of ['llama_gqa', 'llama3_scaled', 'qwen2_tied']) {
  const tf = JSON.parse(readFileSync(path.join(dir, `${name}.json`), 'utf8')) as { ids: number[]; streaming: Case[] };
  const ref = JSON.parse(readFileSync(path.join(dir, `${name}.stream.json`), 'utf8')) as { ids: number[]; streaming: Case[] };
  let model: EngineModel;

  test(`${name}: load`, async () => {
    model = await loadModel(path.join(dir, `${name}-f32.gguf`), { device: 'cpu', threads: 2 });
  });

  for (const c of ref.streaming) {
    test(`${name}: streaming S=${c.sinks} W=${c.window} matches the cached StreamingLLM reference past eviction`, async () => {
      const s = model.createSession({ sinks: c.sinks, window: c.window });
      const want = decodeRows(c.logits);
      let worst = 0;
      for (let t = 0; t <= c.steps[c.steps.length - 1]; t++) {
        const logits = (await s.decode([ref.ids[t]], { logits: 'last' }))!;
        const k = c.steps.indexOf(t);
        if (k >= 0) worst = Math.max(worst, relError(logits, want[k]));
      }
      const st = s.stats();
      assert.equal(st.evicted, c.steps[c.steps.length - 1] + 1 - c.sinks - c.window);
      assert.ok(worst < 1e-4, `rel error ${worst}`);
      s.dispose();
    });
  }

  for (const c of tf.streaming) {
    test(`${name}: recompute S=${c.sinks} W=${c.window} matches transformers on the kept tokens`, async () => {
      const want = decodeRows(c.logits);
      let worst = 0;
      for (let k = 0; k < c.steps.length; k++) {
        const t = c.steps[k];
        const kept = [...tf.ids.slice(0, c.sinks), ...tf.ids.slice(t - c.window + 1, t + 1)];
        const s = model.createSession({ sinks: 0, window: kept.length });
        const logits = (await s.decode(kept, { logits: 'last' }))!;
        worst = Math.max(worst, relError(logits, want[k]));
        s.dispose();
      }
      assert.ok(worst < 1e-4, `rel error ${worst}`);
    });
  }

  test(`${name}: dispose`, () => model.dispose());
}
