// Unit tests for the engine worker's scheduling (server/session/scheduler.ts): priorities,
// ordered stream jobs, chunked jobs yielding to completions, cancellation and preemption.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CancelledError, JobKind, Scheduler, StepResult } from '../../server/session/scheduler';

const tick = (ms = 1) => new Promise((r) => setTimeout(r, ms));

function oneStep<T>(kind: JobKind, log: string[], name: string, value?: T, ms = 2) {
  return {
    kind,
    async step(): Promise<StepResult<T | undefined>> { log.push(name); await tick(ms); return { done: true, value }; },
  };
}

test('priorities: completion > chat > ingest > summary, FIFO within a priority', async () => {
  const s = new Scheduler();
  const log: string[] = [];
  const blocker = s.submit(oneStep('control', log, 'block', undefined, 10));
  const jobs = [
    s.submit(oneStep('summary', log, 'sum')),
    s.submit(oneStep('ingest', log, 'ing1')),
    s.submit(oneStep('chat', log, 'chat')),
    s.submit(oneStep('completion', log, 'c1')),
    s.submit(oneStep('ingest', log, 'ing2')),
    s.submit(oneStep('completion', log, 'c2')),
  ];
  await Promise.all([blocker.promise, ...jobs.map((j) => j.promise)]);
  assert.deepEqual(log, ['block', 'c1', 'c2', 'chat', 'ing1', 'ing2', 'sum']);
});

test('a chunked ingest yields to completions between chunks', async () => {
  const s = new Scheduler();
  const log: string[] = [];
  let chunks = 0;
  const ingest = s.submit({
    kind: 'ingest', ordered: true,
    async step(): Promise<StepResult<number>> {
      chunks++;
      log.push(`chunk${chunks}`);
      await tick(3);
      return chunks === 5 ? { done: true, value: chunks } : { done: false };
    },
  });
  await tick(4);
  const c = s.submit(oneStep('completion', log, 'completion'));
  await Promise.all([ingest.promise, c.promise]);
  const at = log.indexOf('completion');
  assert.ok(at > 0 && at < log.length - 1, `completion ran between chunks: ${log.join(',')}`);
  assert.equal(log.filter((l) => l.startsWith('chunk')).length, 5);
});

test('ordered jobs keep their order; a chat turn lifts the edits queued before it', async () => {
  const s = new Scheduler();
  const log: string[] = [];
  const block = s.submit(oneStep('control', log, 'block', undefined, 5));
  const a = s.submit({ ...oneStep('ingest', log, 'edit1'), ordered: true });
  const sum = s.submit(oneStep('summary', log, 'summary'));
  const b = s.submit({ ...oneStep('chat', log, 'chat'), ordered: true });
  const c = s.submit({ ...oneStep('ingest', log, 'edit2'), ordered: true });
  await Promise.all([block.promise, a.promise, b.promise, c.promise, sum.promise]);
  assert.deepEqual(log, ['block', 'edit1', 'chat', 'edit2', 'summary']);
});

test('cancelling a queued job rejects it and it never runs', async () => {
  const s = new Scheduler();
  const log: string[] = [];
  let finals = 0;
  const block = s.submit(oneStep('control', log, 'block', undefined, 5));
  const j = s.submit({ ...oneStep('completion', log, 'never'), finally: () => { finals++; } });
  j.cancel();
  await assert.rejects(j.promise, CancelledError);
  await block.promise;
  await s.idle();
  assert.deepEqual(log, ['block']);
  assert.equal(finals, 1);
});

test('an external AbortSignal cancels the running step', async () => {
  const s = new Scheduler();
  const ctl = new AbortController();
  const j = s.submit({
    kind: 'chat', signal: ctl.signal,
    step: (ctx) => new Promise<StepResult<string>>((resolve) => {
      ctx.signal.addEventListener('abort', () => resolve({ done: false }));
    }),
  });
  await tick(2);
  ctl.abort();
  await assert.rejects(j.promise, CancelledError);
  assert.equal(s.busy, false);
});

test('a preemptible step is aborted by a more urgent job and retried', async () => {
  const s = new Scheduler();
  const log: string[] = [];
  let tries = 0;
  const summary = s.submit({
    kind: 'summary', preempt: 'abort',
    step: (ctx) => new Promise<StepResult<number>>((resolve) => {
      tries++;
      log.push(`summary${tries}`);
      const t = setTimeout(() => resolve({ done: true, value: tries }), 30);
      ctx.signal.addEventListener('abort', () => { clearTimeout(t); resolve({ done: false }); });
    }),
  });
  await tick(5);
  const c = s.submit(oneStep('completion', log, 'completion'));
  assert.equal(await summary.promise, 2);
  await c.promise;
  assert.deepEqual(log, ['summary1', 'completion', 'summary2']);
});

test('a cancellation storm leaves nothing queued or running', async () => {
  const s = new Scheduler();
  const handles = [];
  for (let i = 0; i < 200; i++) {
    const h = s.submit({
      kind: i % 3 === 0 ? 'completion' : i % 3 === 1 ? 'ingest' : 'summary',
      step: async (ctx) => { await tick(1); return ctx.cancelled() ? { done: false } : { done: true, value: i }; },
    });
    handles.push(h);
    if (i % 2 === 0) h.cancel();
  }
  const results = await Promise.allSettled(handles.map((h) => h.promise));
  assert.equal(results.filter((r) => r.status === 'rejected').length >= 100, true);
  await s.idle();
  assert.equal(s.busy, false);
  const c = s.counts();
  assert.equal(c.completion + c.ingest + c.summary + c.chat + c.control, 0);
});

test('a failing step rejects its job and the worker keeps going', async () => {
  const s = new Scheduler();
  const bad = s.submit({ kind: 'ingest', step: async () => { throw new Error('boom'); } });
  const good = s.submit({ kind: 'ingest', step: async () => ({ done: true, value: 'ok' }) });
  await assert.rejects(bad.promise, /boom/);
  assert.equal(await good.promise, 'ok');
});
