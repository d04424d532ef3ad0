// The `endless` command line, run as a child process (server/cli.ts under tsx, and the shipped
// bin/endless.js -> dist/cli.js when it has been bundled): each command's happy path against
// references that do not come from the engine, and exit code 2 with usage for bad arguments.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import {
  fixturePath, listModelFixtures, loadModelFixture, loadStreamFixture, relErr, rowsOf, ROOT,
} from './engine-fixtures';

const CLI = path.join(ROOT, 'server', 'cli.ts');
const BIN = path.join(ROOT, 'bin', 'endless.js');
const FIXTURES = listModelFixtures();
const NAME = FIXTURES.find((n) => n.startsWith('llama')) ?? FIXTURES[0];
const fx = NAME ? loadModelFixture(NAME) : null;
const MODEL = fx ? fixturePath(fx.files.f32) : '';
const tmp = mkdtempSync(path.join(tmpdir(), 'endless-cli-test-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

interface Run { code: number | null; stdout: string; stderr: string }

function run(args: string[], opts: { bin?: boolean } = {}): Promise<Run> {
  const argv = opts.bin ? [BIN, ...args] : ['--import', 'tsx', CLI, ...args];
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, argv, { cwd: ROOT, env: process.env, stdio: ['ignore', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    p.stdout.on('data', (b: Buffer) => out.push(b));
    p.stderr.on('data', (b: Buffer) => err.push(b));
    p.on('error', reject);
    p.on('close', (code) => resolve({ code, stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8') }));
  });
}

function jsonLines(s: string): Record<string, unknown>[] {
  return s.trim().split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>);
}

function textFile(name: string, text: string): string {
  const p = path.join(tmp, name);
  writeFileSync(p, text);
  return p;
}

// Some source text to evaluate: the repository's own files, so the test needs nothing else.
const SAMPLE = readFileSync(path.join(ROOT, 'server', 'engine', 'api.ts'), 'utf8').slice(0, 1500);

describe('usage errors exit with code 2 and print usage', () => {
  const cases: [string, string[], RegExp][] = [
    ['no command', [], /usage: endless <command>/],
    ['unknown command', ['frobnicate'], /unknown command "frobnicate"/],
    ['unknown option', ['logits', '--model', 'x', '--tokens', '1', '--frob'], /unknown option --frob/],
    ['missing required option', ['logits', '--model', 'x'], /--tokens is required/],
    ['malformed token list', ['logits', '--model', 'x', '--tokens', '1,two'], /--tokens: must be a comma-separated list/],
    ['missing value', ['generate', '--model', 'x', '--prompt'], /--prompt needs a value/],
    ['bad number', ['generate', '--model', 'x', '--prompt', 'a', '-n', 'lots'], /--n-predict: must be an integer/],
    ['bad choice', ['eval-stream', '--model', 'x', '--text-file', 'y', '--mode', 'sparse'], /--mode: must be one of dense, window, streaming, recompute/],
    ['missing model file', ['logits', '--model', '/nonexistent/model.gguf', '--tokens', '1'], /model file not found: \/nonexistent\/model.gguf/],
    ['serve without --stdio', ['serve'], /serve needs --stdio/],
    ['tokenize without text', ['tokenize', '--model', 'x'], /exactly one of --text-file and --text/],
  ];
  if (existsSync(path.join(ROOT, 'server', 'main.ts'))) {
    cases.push(['serve with an unknown flag', ['serve', '--stdio', '--bogus'], /unknown argument: --bogus/]);
  }
  for (const [what, args, re] of cases) {
    test(what, async () => {
      const r = await run(args);
      assert.equal(r.code, 2, `exit code for ${args.join(' ')}; stderr: ${r.stderr}`);
      assert.match(r.stderr, re);
      assert.match(r.stderr, /usage: endless/);
      assert.equal(r.stdout, '');
    });
  }

  test('--help prints the usage of a command on stdout with code 0', async () => {
    const r = await run(['eval-stream', '--help']);
    assert.equal(r.code, 0);
    assert.match(r.stdout, /usage: endless eval-stream/);
    assert.match(r.stdout, /--every N/);
  });
});

describe('commands on a fixture model', { skip: fx ? false : 'no fixture models' }, () => {
  test('logits: dense logits of every position equal transformers', async () => {
    const n = 24;
    const r = await run(['logits', '--model', MODEL, '--tokens', fx!.ids.slice(0, n).join(','), '--device', 'cpu']);
    assert.equal(r.code, 0, r.stderr);
    const out = JSON.parse(r.stdout) as { n_vocab: number; logits: number[][] };
    assert.equal(out.n_vocab, fx!.logits.shape[1]);
    assert.equal(out.logits.length, n);
    const ref = rowsOf(fx!.logits);
    for (let p = 0; p < n; p++) {
      const e = relErr(out.logits[p], ref[p]);
      assert.ok(e <= 1e-4, `position ${p}: relative error ${e}`);
    }
  });

  test('logits --sinks --window: equal to dense before eviction, the StreamingLLM reference after', async () => {
    const stream = loadStreamFixture(NAME!);
    const S = 2, W = 8;
    const c = stream?.streaming.find((k) => k.sinks === S && k.window === W);
    const n = c ? Math.max(...c.steps) + 1 : 20;
    const r = await run(['logits', '--model', MODEL, '--tokens', fx!.ids.slice(0, n).join(','), '--sinks', String(S), '--window', String(W)]);
    assert.equal(r.code, 0, r.stderr);
    const out = JSON.parse(r.stdout) as { n_vocab: number; logits: number[][] };
    assert.equal(out.logits.length, n);
    const ref = rowsOf(fx!.logits);
    for (let p = 0; p < S + W; p++) assert.ok(relErr(out.logits[p], ref[p]) <= 1e-4, `position ${p} before eviction`);
    // after eviction the window really drops tokens: dense logits no longer apply
    assert.ok(relErr(out.logits[n - 1], ref[n - 1]) > 1e-3, 'logits past eviction equal dense ones');
    if (c) {
      const want = rowsOf(c.logits);
      c.steps.forEach((t, k) => {
        const e = relErr(out.logits[t], want[k]);
        assert.ok(e <= 1e-4, `t=${t}: relative error ${e} against the cached-K/V reference`);
      });
    }
  });

  test('logits: out-of-range token ids are a usage error naming the id', async () => {
    const r = await run(['logits', '--model', MODEL, '--tokens', `1,${fx!.logits.shape[1]}`]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, new RegExp(`--tokens\\[1\\] = ${fx!.logits.shape[1]} is out of range`));
  });

  test('a file that is not a GGUF fails with exit code 1 and the engine error', async () => {
    const bad = textFile('bad.gguf', 'not a gguf file, only text, long enough to be read as a header');
    const r = await run(['logits', '--model', bad, '--tokens', '1']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /ENDLESS_ERR_FORMAT/);
  });

  test('tokenize: ids equal the `tokenizers` reference of the fixture tokenizer', async () => {
    const ref = JSON.parse(readFileSync(path.join(ROOT, 'test', 'fixtures', 'tokenizer', 'fixture.ids.json'), 'utf8')) as
      { cases: { index: number; ids: number[] }[] };
    const texts = (JSON.parse(readFileSync(path.join(ROOT, 'test', 'fixtures', 'tokenizer', 'texts.json'), 'utf8')) as { texts: string[] }).texts;
    const c = ref.cases[0];
    const r = await run(['tokenize', '--model', MODEL, '--text-file', textFile('t0.txt', texts[c.index]), '--bos', 'no']);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(JSON.parse(r.stdout), c.ids);
    const withBos = await run(['tokenize', '--model', MODEL, '--text', texts[c.index]]);
    assert.deepEqual(JSON.parse(withBos.stdout), [0, ...c.ids], 'add_bos_token=true prepends <|sink|> (id 0)');
  });

  test('generate: text on stdout, statistics on stderr', async () => {
    const r = await run(['generate', '--model', MODEL, '--prompt', 'def main():', '-n', '8', '--ignore-eos']);
    assert.equal(r.code, 0, r.stderr);
    const stats = JSON.parse(r.stderr.trim().split('\n').pop()!) as Record<string, unknown>;
    assert.equal(stats.generated_tokens, 8);
    assert.equal(stats.reason, 'length');
    assert.ok((stats.prompt_tokens as number) > 1);
    assert.ok(r.stdout.endsWith('\n'));
    const seeded = ['generate', '--model', MODEL, '--prompt', 'x = ', '-n', '6', '--temperature', '0.9', '--top-k', '20', '--top-p', '0.9', '--min-p', '0.02', '--repeat-penalty', '1.1', '--seed', '7', '--ignore-eos'];
    const a = await run(seeded);
    const b = await run(seeded);
    assert.equal(a.code, 0, a.stderr);
    assert.equal(a.stdout, b.stdout, 'the same seed gives the same text');
  });

  test('eval-stream: all four modes; with no eviction streaming and recompute equal dense', async () => {
    const text = textFile('sample.txt', SAMPLE);
    const common = ['--model', MODEL, '--text-file', text, '--max-tokens', '48', '--every', '16'];
    const dense = jsonLines((await run(['eval-stream', ...common, '--mode', 'dense'])).stdout);
    const total = dense.pop()!;
    assert.equal(total.total, true);
    assert.equal(total.mode, 'dense');
    assert.equal(total.scored, 47);
    assert.equal(dense.length, 3, 'chunks of 16 scored tokens: 16, 16, 15');
    assert.ok(Number.isFinite(total.ppl) && (total.ppl as number) > 1);
    const nll = dense.reduce((s, c) => s + (c.nll as number) * (c.tokens as number), 0) / 47;
    assert.ok(Math.abs(nll - (total.nll as number)) < 1e-5, 'chunks add up to the total');

    const big = (mode: string, extra: string[]) => run(['eval-stream', ...common, '--mode', mode, ...extra]);
    const streamingAll = jsonLines((await big('streaming', ['--sinks', '4', '--window', '64'])).stdout).pop()!;
    assert.ok(Math.abs((streamingAll.nll as number) - (total.nll as number)) < 1e-4, 'no eviction: streaming = dense');
    assert.equal(streamingAll.evicted, 0);
    const recomputeAll = jsonLines((await big('recompute', ['--window', '64'])).stdout).pop()!;
    assert.ok(Math.abs((recomputeAll.nll as number) - (total.nll as number)) < 1e-4, 'window over the text: recompute = dense');

    const streaming = jsonLines((await big('streaming', ['--sinks', '2', '--window', '8'])).stdout).pop()!;
    const window = jsonLines((await big('window', ['--window', '8'])).stdout).pop()!;
    const recompute = jsonLines((await big('recompute', ['--window', '8'])).stdout).pop()!;
    for (const t of [streaming, window, recompute]) {
      assert.equal(t.scored, 47);
      assert.ok(Number.isFinite(t.ppl), JSON.stringify(t));
    }
    assert.equal(streaming.sinks, 2);
    assert.equal(window.sinks, 0);
    assert.equal(streaming.evicted, 48 - 1 - 2 - 8);
    assert.notEqual(streaming.nll, total.nll);
  });

  test('eval-stream: mode and option mismatches are usage errors', async () => {
    const text = textFile('s2.txt', SAMPLE);
    const base = ['eval-stream', '--model', MODEL, '--text-file', text];
    const a = await run([...base, '--mode', 'dense', '--window', '8']);
    assert.equal(a.code, 2);
    assert.match(a.stderr, /--mode dense takes no --sinks\/--window/);
    const b = await run([...base, '--mode', 'streaming']);
    assert.equal(b.code, 2);
    assert.match(b.stderr, /--mode streaming needs --window/);
    const c = await run([...base, '--mode', 'window', '--sinks', '4', '--window', '8']);
    assert.equal(c.code, 2);
    assert.match(c.stderr, /keeps no sinks/);
  });

  test('bench and info print JSON', async () => {
    const b = await run(['bench', '--model', MODEL, '--prompt-tokens', '16', '--gen-tokens', '4', '--reps', '1', '--threads', '1']);
    assert.equal(b.code, 0, b.stderr);
    const r = JSON.parse(b.stdout) as Record<string, unknown>;
    assert.equal(r.engine, 'endless');
    assert.ok((r.prefillTokensPerS as number) > 0 && (r.decodeTokensPerS as number) > 0);
    assert.equal(r.threads, 1);
    const i = await run(['info', '--model', MODEL]);
    assert.equal(i.code, 0, i.stderr);
    const info = JSON.parse(i.stdout) as { model: { nVocab: number }; system: { apiVersion: number } };
    assert.equal(info.model.nVocab, fx!.logits.shape[1]);
    assert.equal(info.system.apiVersion, 1);
  });

  test('bin/endless.js runs the bundled CLI', { skip: existsSync(path.join(ROOT, 'dist', 'cli.js')) ? false : 'dist/cli.js not built (npm run bundle)' }, async () => {
    const r = await run(['logits', '--model', MODEL, '--tokens', fx!.ids.slice(0, 3).join(',')], { bin: true });
    assert.equal(r.code, 0, r.stderr);
    assert.equal((JSON.parse(r.stdout) as { logits: number[][] }).logits.length, 3);
    const u = await run(['logits'], { bin: true });
    assert.equal(u.code, 2);
  });
});
