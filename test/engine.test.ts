// The engine through its TypeScript wrapper (server/engine), on the CPU, against references that
// do not come from the engine itself:
//   - transformers' logits for the fixture models (tools/make_fixtures.py), per weight type with
//     the tolerances documented in test/engine-fixtures.ts;
//   - StreamingLLM: dense equality before the first eviction; transformers on exactly the kept
//     tokens (what a fresh session on those tokens must give); the cached-K/V float64 reference of
//     tools/stream_reference.py through a streaming session fed token by token (when present);
//   - generation streaming, cancellation, the per-session queue, errors, dispose.
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { EngineError, loadModel, readGgufMetadata, systemInfo, type EngineModel } from '../server/engine/index';
import {
  argmax, fixturePath, listModelFixtures, loadModelFixture, loadStreamFixture, relErr, rowsOf, roundedKey,
  splitRows, TOLERANCE,
} from './engine-fixtures';

const FIXTURES = listModelFixtures();
const tmp = mkdtempSync(path.join(tmpdir(), 'endless-engine-test-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

async function withModel<T>(file: string, fn: (m: EngineModel) => Promise<T>): Promise<T> {
  const m = await loadModel(fixturePath(file), { device: 'cpu' });
  try {
    return await fn(m);
  } finally {
    m.dispose();
  }
}

test('fixture models are present', () => {
  assert.ok(FIXTURES.length >= 3, `expected the fixture models in test/fixtures/models, found ${FIXTURES.join(', ') || 'none'}`);
});

test('asking for CUDA where there is none runs on the CPU and says why', { skip: systemInfo().cudaDevices > 0 ? 'a CUDA device is present (test/engine-cuda.test.ts covers it)' : false }, async () => {
  const file = fixturePath(loadModelFixture(FIXTURES[0]).files.f32);
  const m = await loadModel(file, { device: 'cuda' });
  try {
    assert.equal(m.info.device, 'cpu');
    assert.match(m.info.notice, /^(no CUDA device found|this build has no CUDA backend|CUDA not used \(.+\)); running on the CPU$/);
  } finally {
    m.dispose();
  }
  const c = await loadModel(file, { device: 'cpu' });
  assert.equal(c.info.notice, '');
  c.dispose();
});

test('systemInfo reports the engine', () => {
  const info = systemInfo();
  assert.equal(info.apiVersion, 1);
  assert.ok(Array.isArray(info.features));
  assert.ok(Number.isInteger(info.cudaDevices) && info.cudaDevices >= 0);
});

for (const name of FIXTURES) {
  const fx = loadModelFixture(name);
  const ref = rowsOf(fx.logits);
  const nVocab = fx.logits.shape[1];

  describe(`${name}: dense logits against transformers`, () => {
    for (const [type, file] of Object.entries(fx.files)) {
      test(`${type}`, { skip: existsSync(fixturePath(file)) ? false : `${file} is not in the repository` }, async () => {
        const tol = TOLERANCE[type];
        assert.ok(tol, `no tolerance documented for type ${type}`);
        const key = roundedKey(type);
        const rounded = key ? rowsOf(fx.weights_rounded[key]) : ref;
        await withModel(file, async (m) => {
          assert.equal(m.info.nVocab, nVocab);
          assert.equal(m.info.architecture, fx.architecture);
          const s = m.createSession({ sinks: 0, window: fx.ids.length });
          const rows = splitRows((await s.decode(fx.ids, { logits: 'all' }))!, nVocab);
          assert.equal(rows.length, fx.ids.length);
          let worstRounded = 0, worstF32 = 0, ties = 0;
          for (let p = 0; p < rows.length; p++) {
            worstRounded = Math.max(worstRounded, relErr(rows[p], rounded[p]));
            worstF32 = Math.max(worstF32, relErr(rows[p], ref[p]));
            const want = argmax(rounded[p]);
            const got = argmax(rows[p]);
            if (got !== want) {
              const gap = rounded[p][want] - rounded[p][got];
              assert.ok(gap <= tol.tie, `${name} ${type} position ${p}: argmax ${got}, reference ${want} (reference gap ${gap} > ${tol.tie})`);
              ties++;
            }
          }
          assert.ok(worstRounded <= tol.rounded, `${name} ${type}: relative error ${worstRounded} vs the rounded-weights reference > ${tol.rounded}`);
          assert.ok(worstF32 <= tol.f32, `${name} ${type}: relative error ${worstF32} vs transformers F32 > ${tol.f32}`);
          assert.ok(ties <= rows.length / 8, `${name} ${type}: ${ties} near-tie argmax flips`);
          if (type === 'f32' || type === 'f16' || type === 'bf16') assert.equal(ties, 0, `${name} ${type}: argmax differs`);
          s.dispose();
        });
      });
    }
  });

  describe(`${name}: StreamingLLM cache (F32)`, () => {
    test('before the first eviction, token-by-token streaming equals dense', async () => {
      const b = fx.before_eviction;
      const want = rowsOf(b.logits);
      await withModel(fx.files.f32, async (m) => {
        const s = m.createSession({ sinks: b.sinks, window: b.window });
        for (let k = 0; k < b.steps.length; k++) {
          const t = b.steps[k];
          assert.equal(t, k, 'before_eviction steps are the stream prefix');
          const row = (await s.decode([fx.ids[t]], { logits: 'last' }))!;
          const e = relErr(row, want[k]);
          assert.ok(e <= 1e-4, `step ${t}: relative error ${e}`);
          assert.ok(relErr(row, ref[t]) <= 1e-4, `step ${t}: differs from the dense reference`);
        }
        assert.equal(s.stats().evicted, 0);
        s.dispose();
      });
    });

    test('a fresh session on exactly the kept tokens equals transformers on them', async () => {
      await withModel(fx.files.f32, async (m) => {
        for (const c of fx.streaming) {
          const want = rowsOf(c.logits);
          for (let k = 0; k < c.steps.length; k++) {
            const t = c.steps[k];
            const kept = [...fx.ids.slice(0, c.sinks), ...fx.ids.slice(t - c.window + 1, t + 1)];
            const s = m.createSession({ sinks: 0, window: kept.length });
            const row = (await s.decode(kept, { logits: 'last' }))!;
            s.dispose();
            const e = relErr(row, want[k]);
            assert.ok(e <= 1e-4, `S=${c.sinks} W=${c.window} t=${t}: relative error ${e}`);
          }
        }
      });
    });

    const stream = loadStreamFixture(name);
    test('streaming sessions fed token by token match the cached-K/V reference past eviction', { skip: stream ? false : `no ${name}.stream.json (tools/stream_reference.py)` }, async () => {
      assert.ok(stream);
      assert.deepEqual(stream.ids, fx.ids);
      await withModel(fx.files.f32, async (m) => {
        for (const c of stream.streaming) {
          const s = m.createSession({ sinks: c.sinks, window: c.window });
          assert.equal(s.params.sinks, c.sinks);
          assert.equal(s.params.window, c.window);
          const want = rowsOf(c.logits);
          const last = Math.max(...c.steps);
          const rows: Float32Array[] = [];
          for (let t = 0; t <= last; t++) rows.push((await s.decode([stream.ids[t]], { logits: 'last' }))!);
          c.steps.forEach((t, k) => {
            const e = relErr(rows[t], want[k]);
            assert.ok(e <= 1e-4, `S=${c.sinks} W=${c.window} t=${t}: relative error ${e}`);
          });
          const pastEviction = c.steps.filter((t) => t >= c.sinks + c.window).length;
          assert.ok(pastEviction >= 8, `S=${c.sinks} W=${c.window}: only ${pastEviction} steps past eviction`);
          const st = s.stats();
          assert.equal(st.evicted, last + 1 - c.sinks - c.window);
          assert.equal(st.window, c.window);
          s.dispose();
        }
      });
    });
  });
}

describe('sessions through the wrapper', () => {
  const name = FIXTURES[0];
  const fx = name ? loadModelFixture(name) : null;

  test('stats, tokens and lastLogits follow decode', { skip: !fx }, async () => {
    await withModel(fx!.files.f32, async (m) => {
      const s = m.createSession({ sinks: 2, window: 8 });
      assert.deepEqual(s.params, { sinks: 2, window: 8, memoryMax: s.params.memoryMax, branchMax: s.params.branchMax, batch: 256 });
      const ids = fx!.ids.slice(0, 12);
      const last = (await s.decode(ids, { logits: 'last' }))!;
      assert.equal(last.length, m.info.nVocab);
      const st = s.stats();
      assert.equal(st.seen, 12);
      assert.equal(st.sinks, 2);
      assert.equal(st.window, 8);
      assert.equal(st.evicted, 2);
      assert.equal(st.nVocab, m.info.nVocab);
      assert.deepEqual(Array.from(s.tokens()), [...ids.slice(0, 2), ...ids.slice(4)]);
      assert.deepEqual(await s.lastLogits(), last);
      assert.equal(await s.decode([ids[0]], { logits: 'none' }), null);
      s.dispose();
    });
  });

  test('calls issued without awaiting run in order, one at a time', { skip: !fx }, async () => {
    await withModel(fx!.files.f32, async (m) => {
      const ids = fx!.ids.slice(0, 10);
      const a = m.createSession({ sinks: 0, window: 16 });
      const seq: Float32Array[] = [];
      for (const t of ids) seq.push((await a.decode([t]))!);
      const b = m.createSession({ sinks: 0, window: 16 });
      const par = await Promise.all(ids.map((t) => b.decode([t])));
      for (let i = 0; i < ids.length; i++) assert.deepEqual(par[i], seq[i], `token ${i}`);
      a.dispose();
      b.dispose();
    });
  });

  test('branch discard restores the next logits bit for bit; commit equals appending', { skip: !fx }, async () => {
    await withModel(fx!.files.f32, async (m) => {
      const ids = fx!.ids;
      const s = m.createSession({ sinks: 1, window: 16, branchMax: 16 });
      await s.decode(ids.slice(0, 10));
      const plain = m.createSession({ sinks: 1, window: 16 });
      await plain.decode(ids.slice(0, 10));
      await s.branchBegin();
      assert.equal(s.stats().branchOpen, true);
      await s.decode(ids.slice(10, 14));
      await s.branchDiscard();
      assert.deepEqual(await s.decode([ids[10]]), await plain.decode([ids[10]]));
      await s.branchBegin();
      await s.decode(ids.slice(11, 14));
      await s.branchCommit();
      const committed = (await s.decode([ids[14]]))!;
      const appended = (await plain.decode(ids.slice(11, 15)))!;
      // the same tokens in other batch splits: equal up to summation order
      assert.ok(relErr(committed, appended) <= 1e-5, `commit vs append: ${relErr(committed, appended)}`);
      assert.deepEqual(Array.from(s.tokens()), Array.from(plain.tokens()));
      s.dispose();
      plain.dispose();
    });
  });

  test('snapshot round trip gives identical logits; a bad snapshot leaves the session as it was', { skip: !fx }, async () => {
    await withModel(fx!.files.f32, async (m) => {
      const ids = fx!.ids;
      const s = m.createSession({ sinks: 2, window: 12 });
      await s.decode(ids.slice(0, 20));
      const snap = path.join(tmp, 'snap.bin');
      await s.save(snap);
      const saved = Array.from(s.tokens());
      const want = await s.decode([ids[20]]);
      const r = m.createSession({ sinks: 2, window: 12 });
      await r.restore(snap);
      assert.deepEqual(Array.from(r.tokens()), saved);
      assert.equal(r.stats().seen, 20);
      assert.deepEqual(await r.decode([ids[20]]), want);
      const bad = path.join(tmp, 'bad.bin');
      writeFileSync(bad, readFileSync(snap).subarray(0, 100));
      const before = Array.from(r.tokens());
      await assert.rejects(r.restore(bad), (e: EngineError) => e instanceof EngineError && e.code !== undefined && e.message.length > 0);
      assert.deepEqual(Array.from(r.tokens()), before);
      s.dispose();
      r.dispose();
    });
  });

  test('setMemory pins tokens after the sinks', { skip: !fx }, async () => {
    await withModel(fx!.files.f32, async (m) => {
      const ids = fx!.ids;
      const s = m.createSession({ sinks: 2, window: 8, memoryMax: 4 });
      await s.decode(ids.slice(0, 4));
      await s.setMemory(ids.slice(30, 33));
      assert.equal(s.stats().memory, 3);
      assert.deepEqual(Array.from(s.tokens()).slice(2, 5), ids.slice(30, 33));
      await assert.rejects(s.setMemory(ids.slice(0, 5)), (e: EngineError) => e.code === 'ENDLESS_ERR_CAPACITY' || e.code === 'ENDLESS_ERR_INVALID_ARGUMENT');
      s.dispose();
    });
  });
});

describe('generation', () => {
  const name = FIXTURES[0];
  const fx = name ? loadModelFixture(name) : null;

  test('greedy generate streams each token and equals argmax decoding', { skip: !fx }, async () => {
    await withModel(fx!.files.f32, async (m) => {
      const prompt = fx!.ids.slice(0, 8);
      const g = m.createSession({ sinks: 4, window: 64 });
      await g.decode(prompt);
      const streamed: number[] = [];
      const r = await g.generate({ maxTokens: 12, onToken: (t) => streamed.push(t) });
      assert.equal(r.reason, 'length');
      assert.equal(r.tokens.length, 12);
      assert.deepEqual(streamed, r.tokens);
      const d = m.createSession({ sinks: 4, window: 64 });
      let logits = (await d.decode(prompt))!;
      const want: number[] = [];
      for (let i = 0; i < 12; i++) {
        want.push(argmax(logits));
        logits = (await d.decode([want[i]]))!;
      }
      assert.deepEqual(r.tokens, want);
      g.dispose();
      d.dispose();
    });
  });

  test('a stop token ends generation and is reported', { skip: !fx }, async () => {
    await withModel(fx!.files.f32, async (m) => {
      const s = m.createSession({ sinks: 4, window: 64 });
      await s.decode(fx!.ids.slice(0, 8));
      const free = await s.generate({ maxTokens: 6 });
      await s.clear();
      await s.decode(fx!.ids.slice(0, 8));
      const r = await s.generate({ maxTokens: 6, stop: [free.tokens[2]] });
      assert.equal(r.reason, 'stop');
      assert.deepEqual(r.tokens, free.tokens.slice(0, free.tokens.indexOf(free.tokens[2]) + 1));
      s.dispose();
    });
  });

  test('the same seed gives the same sample; sampling stays in the vocabulary', { skip: !fx }, async () => {
    await withModel(fx!.files.f32, async (m) => {
      const run = async () => {
        const s = m.createSession({ sinks: 4, window: 64 });
        await s.decode(fx!.ids.slice(0, 8));
        const r = await s.generate({ maxTokens: 16, sampler: { temperature: 1.0, topK: 40, topP: 0.95, minP: 0.01, repeatPenalty: 1.1, seed: 42 } });
        s.dispose();
        return r.tokens;
      };
      const a = await run();
      assert.deepEqual(await run(), a);
      for (const t of a) assert.ok(t >= 0 && t < m.info.nVocab);
    });
  });

  test('abort mid-generate returns reason cancelled quickly', { skip: !fx }, async () => {
    await withModel(fx!.files.f32, async (m) => {
      const s = m.createSession({ sinks: 4, window: 32 });
      await s.decode(fx!.ids.slice(0, 8));
      const ac = new AbortController();
      let abortedAt = 0;
      const seen: number[] = [];
      const r = await s.generate({
        maxTokens: 1_000_000,
        signal: ac.signal,
        onToken: (t) => {
          seen.push(t);
          if (seen.length === 5) { abortedAt = performance.now(); ac.abort(); }
        },
      });
      const latency = performance.now() - abortedAt;
      assert.equal(r.reason, 'cancelled');
      assert.ok(r.tokens.length >= 5 && r.tokens.length < 1000, `${r.tokens.length} tokens`);
      assert.deepEqual(seen, r.tokens);
      assert.ok(latency < 500, `cancel took ${latency} ms`);
      // the session stays usable
      const more = await s.generate({ maxTokens: 2 });
      assert.equal(more.tokens.length, 2);
      s.dispose();
    });
  });

  test('an already-aborted signal rejects at once with an AbortError', { skip: !fx }, async () => {
    await withModel(fx!.files.f32, async (m) => {
      const s = m.createSession({ sinks: 4, window: 32 });
      const signal = AbortSignal.abort();
      await assert.rejects(s.decode([1], { signal }), { name: 'AbortError' });
      await assert.rejects(s.generate({ maxTokens: 3, signal }), { name: 'AbortError' });
      await assert.rejects(loadModel(fixturePath(fx!.files.f32), { signal }), { name: 'AbortError' });
      assert.equal(s.stats().seen, 0);
      s.dispose();
    });
  });

  test('an abort of a long decode rejects with AbortError and keeps whole chunks', { skip: !fx }, async () => {
    await withModel(fx!.files.f32, async (m) => {
      const n = 20_000;
      const s = m.createSession({ sinks: 4, window: n, batch: 16 });
      const many = Array.from({ length: n }, (_, i) => fx!.ids[i % fx!.ids.length]);
      const ac = new AbortController();
      const p = s.decode(many, { signal: ac.signal, logits: 'none' });
      setTimeout(() => ac.abort(), 20);
      await assert.rejects(p, { name: 'AbortError' });
      // tokens of the chunks completed before the cancel stay appended
      const seen = s.stats().seen;
      assert.ok(seen < n, `seen ${seen}`);
      assert.equal(s.tokens().length, seen);
      assert.ok((await s.decode([1]))!.length > 0, 'the session stays usable');
      s.dispose();
    });
  });

  test('a throwing onToken stops generation and rejects with its error', { skip: !fx }, async () => {
    await withModel(fx!.files.f32, async (m) => {
      const s = m.createSession({ sinks: 4, window: 32 });
      await s.decode(fx!.ids.slice(0, 4));
      // The worker runs ahead of the JS callbacks, so some tokens may be generated after the
      // throw; with a budget far larger than it can reach before the cancel lands, stopping
      // early is what shows.
      const budget = 200000;
      await assert.rejects(s.generate({ maxTokens: budget, onToken: () => { throw new Error('callback failed'); } }), /callback failed/);
      assert.ok(s.stats().seen < budget / 2, `seen ${s.stats().seen}`);
      s.dispose();
    });
  });
});

describe('errors', () => {
  const name = FIXTURES[0];
  const fx = name ? loadModelFixture(name) : null;

  test('a missing file, a non-GGUF file and a truncated GGUF each fail with a clear error', async () => {
    await assert.rejects(loadModel(path.join(tmp, 'nope.gguf')), (e: EngineError) => e.code === 'ENDLESS_ERR_IO' && /not found/.test(e.message));
    await assert.rejects(loadModel(tmp), (e: EngineError) => e.code === 'ENDLESS_ERR_IO' && /not a regular file/.test(e.message));
    const notGguf = path.join(tmp, 'not.gguf');
    writeFileSync(notGguf, 'this is not a gguf file at all, just some text'.repeat(4));
    await assert.rejects(loadModel(notGguf), (e: EngineError) => e.code === 'ENDLESS_ERR_FORMAT' && e.message.length > 0);
    assert.throws(() => readGgufMetadata(notGguf), (e: EngineError) => e.code === 'ENDLESS_ERR_FORMAT');
    if (fx) {
      const cut = path.join(tmp, 'cut.gguf');
      const full = readFileSync(fixturePath(fx.files.f32));
      writeFileSync(cut, full.subarray(0, Math.floor(full.length / 2)));
      await assert.rejects(loadModel(cut), (e: EngineError) => e.code === 'ENDLESS_ERR_FORMAT' && e.message.length > 0);
    }
  });

  test('bad arguments are rejected in TypeScript with the argument named', { skip: !fx }, async () => {
    await assert.rejects(loadModel(fixturePath(fx!.files.f32), { device: 'tpu' as never }), /device must be one of/);
    await assert.rejects(loadModel(fixturePath(fx!.files.f32), { threads: -1 }), /threads must be in \[0, 4096\], got -1/);
    await assert.rejects(loadModel(fixturePath(fx!.files.f32), { threads: 1.5 }), /threads must be an integer/);
    await withModel(fx!.files.f32, async (m) => {
      const n = m.info.nVocab;
      assert.throws(() => m.createSession({ window: -3 }), /window must be/);
      assert.throws(() => m.createSession({ sinks: 0.5 }), /sinks must be an integer/);
      assert.throws(() => m.createSession({ windwo: 3 } as never), /unknown session parameter: windwo/);
      const s = m.createSession({ sinks: 0, window: 8 });
      await assert.rejects(s.decode([1, 2.5]), /tokens\[1\] must be an integer/);
      await assert.rejects(s.decode([n]), new RegExp(`tokens\\[0\\] = ${n} is out of range`));
      await assert.rejects(s.decode([-1]), /out of range/);
      await assert.rejects(s.decode([]), /must not be empty/);
      await assert.rejects(s.decode('abc' as never), /array of token ids/);
      await assert.rejects(s.decode([1], { logits: 'most' as never }), /logits must be one of/);
      await assert.rejects(s.generate({ maxTokens: -1 }), /maxTokens must be/);
      await assert.rejects(s.generate({ maxTokens: 1, sampler: { topP: 2 } }), /topP must be in/);
      await assert.rejects(s.generate({ maxTokens: 1, stop: [n + 5] }), /stop\[0\]/);
      await assert.rejects(s.generate(undefined as never), /generate options are required/);
      assert.equal(s.stats().seen, 0, 'nothing reached the engine');
      s.dispose();
    });
  });

  test('engine errors carry the native message and the status name as code', { skip: !fx }, async () => {
    await withModel(fx!.files.f32, async (m) => {
      const s = m.createSession({ sinks: 0, window: 8 });
      await assert.rejects(s.branchDiscard(), (e: EngineError) => e instanceof EngineError && e.code === 'ENDLESS_ERR_STATE' && e.message.length > 0);
      s.dispose();
    });
  });

  test('a disposed session or model gives a clear error; dispose cancels what is queued', { skip: !fx }, async () => {
    const m = await loadModel(fixturePath(fx!.files.f32));
    const s = m.createSession({ sinks: 4, window: 32 });
    await s.decode(fx!.ids.slice(0, 4));
    const running = s.generate({ maxTokens: 1_000_000 });
    const queued = s.decode([1]).then(() => null, (e: Error) => e);
    s.dispose();
    assert.equal((await running).reason, 'cancelled');
    assert.match(String((await queued)?.message), /session has been disposed/);
    assert.throws(() => s.stats(), /session has been disposed/);
    await assert.rejects(s.decode([1]), /session has been disposed/);
    const s2 = m.createSession();
    m.dispose();
    assert.throws(() => s2.tokens(), /session has been disposed/);
    assert.throws(() => m.createSession(), /model has been disposed/);
    m.dispose(); // twice is harmless
  });
});

describe('metadata', () => {
  test('readGgufMetadata reads the metadata without the weights, as the model sees it', { skip: FIXTURES.length === 0 }, async () => {
    const fx = loadModelFixture(FIXTURES[0]);
    const meta = readGgufMetadata(fixturePath(fx.files.f32));
    assert.equal(meta.get('general.architecture'), fx.architecture);
    const tokens = meta.get('tokenizer.ggml.tokens');
    assert.ok(Array.isArray(tokens) && tokens.length > 0 && typeof tokens[0] === 'string');
    await withModel(fx.files.f32, async (m) => {
      assert.deepEqual([...m.metadata.keys()], [...meta.keys()]);
      assert.deepEqual(m.metadata.get('tokenizer.ggml.tokens'), tokens);
    });
  });

  test('a 150k-entry vocabulary converts quickly; every value type converts', async () => {
    const big = path.join(tmp, 'vocab.gguf');
    writeFileSync(big, makeVocabGguf(151_936));
    const t0 = performance.now();
    const meta = readGgufMetadata(big);
    const ms = performance.now() - t0;
    const tokens = meta.get('tokenizer.ggml.tokens') as string[];
    assert.equal(tokens.length, 151_936);
    assert.equal(tokens[12345], 'tok_12345_é');
    assert.equal(tokens[0], '');
    assert.deepEqual(meta.get('x.nul'), Array.from({ length: 100 }, (_, i) => (i === 7 ? 'a\u0000b' : `s${i}`)));
    assert.equal(meta.get('x.u8'), 255);
    assert.equal(meta.get('x.i8'), -128);
    assert.equal(meta.get('x.f32'), 0.5);
    assert.equal(meta.get('x.bool'), true);
    assert.equal(meta.get('x.u64'), 2n ** 64n - 1n);
    assert.equal(meta.get('x.i64'), -(2 ** 40));
    assert.equal(meta.get('x.f64'), 0.1);
    assert.deepEqual(meta.get('x.i32s'), [1, -2, 3]);
    assert.ok(ms < 1000, `metadata took ${ms} ms`);
  });
});

// A metadata-only GGUF v3 (no tensors) with a large string array and one value of each type,
// written here so the test needs no generator.
function makeVocabGguf(n: number): Buffer {
  const parts: Buffer[] = [];
  const num = (write: (b: Buffer) => void, size: number) => { const b = Buffer.alloc(size); write(b); return b; };
  const u32 = (v: number) => num((b) => b.writeUInt32LE(v), 4);
  const u64 = (v: number | bigint) => num((b) => b.writeBigUInt64LE(BigInt(v)), 8);
  const str = (s: string) => { const b = Buffer.from(s, 'utf8'); return Buffer.concat([u64(b.length), b]); };
  const strings = (k: string, xs: string[]) => { const out = [str(k), u32(9), u32(8), u64(xs.length)]; for (const x of xs) out.push(str(x)); return out; };
  const kv: Buffer[][] = [
    [str('general.architecture'), u32(8), str('llama')],
    strings('tokenizer.ggml.tokens', Array.from({ length: n }, (_, i) => (i === 0 ? '' : `tok_${i}_é`))),
    strings('x.nul', Array.from({ length: 100 }, (_, i) => (i === 7 ? 'a\u0000b' : `s${i}`))),
    [str('x.u8'), u32(0), Buffer.from([255])],
    [str('x.i8'), u32(1), Buffer.from([0x80])],
    [str('x.f32'), u32(6), num((b) => b.writeFloatLE(0.5), 4)],
    [str('x.bool'), u32(7), Buffer.from([1])],
    [str('x.u64'), u32(10), u64(2n ** 64n - 1n)],
    [str('x.i64'), u32(11), num((b) => b.writeBigInt64LE(-(2n ** 40n)), 8)],
    [str('x.f64'), u32(12), num((b) => b.writeDoubleLE(0.1), 8)],
    [str('x.i32s'), u32(9), u32(5), u64(3), ...[1, -2, 3].map((v) => num((b) => b.writeInt32LE(v), 4))],
  ];
  parts.push(Buffer.from('GGUF'), u32(3), u64(0), u64(kv.length));
  for (const e of kv) for (const b of e) parts.push(b);
  return Buffer.concat(parts);
}
