// The engine on a CUDA device, through the wrapper: the fixture models' logits against
// transformers, and CUDA against the CPU backend for dense and StreamingLLM sessions.
// scripts/test.mjs runs this file only when the addon reports a CUDA device; run alone on a
// machine without one, every test skips.
// Tolerances: the CUDA matmuls may run on tensor cores (inputs rounded to 16-bit floats, as the
// backend's own op tests allow: 2e-3 per matmul, 1e-2 for BF16), so whole-model errors on these
// random-weight fixtures are larger than the CPU's; the same near-tie argmax rule as the CPU test.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { describe, test } from 'node:test';
import { loadModel, systemInfo } from '../server/engine/index';
import { argmax, fixturePath, listModelFixtures, loadModelFixture, loadStreamFixture, relErr, rowsOf, roundedKey, splitRows } from './engine-fixtures';

function cudaDevices(): number {
  try {
    return systemInfo().cudaDevices;
  } catch {
    return 0;
  }
}

const SKIP = cudaDevices() > 0 ? false : 'no CUDA device';
const CUDA_TOLERANCE: Record<string, { ref: number; cpu: number; tie: number }> = {
  f32: { ref: 2e-2, cpu: 2e-2, tie: 0.05 },
  f16: { ref: 2e-2, cpu: 2e-2, tie: 0.05 },
  bf16: { ref: 4e-2, cpu: 4e-2, tie: 0.1 },
  q8_0: { ref: 0.15, cpu: 0.1, tie: 0.3 },
};

for (const name of listModelFixtures()) {
  const fx = loadModelFixture(name);
  const nVocab = fx.logits.shape[1];
  describe(`${name} on CUDA`, { skip: SKIP }, () => {
    for (const [type, file] of Object.entries(fx.files)) {
      test(`${type}: dense logits against transformers and the CPU`, { skip: existsSync(fixturePath(file)) ? false : `${file} missing` }, async () => {
        const tol = CUDA_TOLERANCE[type];
        const key = roundedKey(type);
        const ref = key ? rowsOf(fx.weights_rounded[key]) : rowsOf(fx.logits);
        const gpu = await loadModel(fixturePath(file), { device: 'cuda' });
        const cpu = await loadModel(fixturePath(file), { device: 'cpu' });
        assert.match(gpu.info.device, /^cuda/);
        const run = async (m: typeof gpu) => {
          const s = m.createSession({ sinks: 0, window: fx.ids.length });
          const r = splitRows((await s.decode(fx.ids, { logits: 'all' }))!, nVocab);
          s.dispose();
          return r;
        };
        const g = await run(gpu);
        const c = await run(cpu);
        for (let p = 0; p < g.length; p++) {
          assert.ok(relErr(g[p], ref[p]) <= tol.ref, `${type} position ${p}: vs reference ${relErr(g[p], ref[p])}`);
          assert.ok(relErr(g[p], c[p]) <= tol.cpu, `${type} position ${p}: vs CPU ${relErr(g[p], c[p])}`);
          const want = argmax(ref[p]), got = argmax(g[p]);
          if (got !== want) assert.ok(ref[p][want] - ref[p][got] <= tol.tie, `${type} position ${p}: argmax ${got} vs ${want}`);
        }
        gpu.dispose();
        cpu.dispose();
      });
    }

    const stream = loadStreamFixture(name);
    test('streaming token by token matches the cached-K/V reference', { skip: stream ? false : 'no stream fixture' }, async () => {
      const m = await loadModel(fixturePath(fx.files.f32), { device: 'cuda' });
      for (const c of stream!.streaming) {
        const s = m.createSession({ sinks: c.sinks, window: c.window });
        const want = rowsOf(c.logits);
        const rows: Float32Array[] = [];
        for (let t = 0; t <= Math.max(...c.steps); t++) rows.push((await s.decode([stream!.ids[t]], { logits: 'last' }))!);
        c.steps.forEach((t, k) => assert.ok(relErr(rows[t], want[k]) <= CUDA_TOLERANCE.f32.ref, `S=${c.sinks} W=${c.window} t=${t}: ${relErr(rows[t], want[k])}`));
        s.dispose();
      }
      m.dispose();
    });

    test('generation streams and cancels on the device', async () => {
      const m = await loadModel(fixturePath(fx.files.f32), { device: 'cuda' });
      const s = m.createSession({ sinks: 4, window: 64 });
      await s.decode(fx.ids.slice(0, 8));
      const ac = new AbortController();
      const seen: number[] = [];
      const r = await s.generate({ maxTokens: 1_000_000, signal: ac.signal, onToken: (t) => { seen.push(t); if (seen.length === 5) ac.abort(); } });
      assert.equal(r.reason, 'cancelled');
      assert.deepEqual(seen, r.tokens);
      s.dispose();
      m.dispose();
    });
  });
}
