// The one engine worker. Jobs run one step at a time (a step is one short engine call or a few:
// a 64-128 token prefill chunk, a completion, a handful of chat tokens); between steps the worker
// picks the most urgent job again, so a completion never waits behind a long prefill.
// Priorities: control > completion > chat > ingest > summary. Jobs that append to the stream are
// "ordered": they start in submission order, and a more urgent ordered job lifts the ones queued
// before it to its own priority (a chat turn first flushes the edits typed before it).
// Every job is cancellable; a step that may run long can ask to be preempted (aborted and retried)
// when something more urgent arrives.

export type JobKind = 'control' | 'completion' | 'chat' | 'ingest' | 'summary';

export const PRIORITY: Readonly<Record<JobKind, number>> = Object.freeze({
  control: 5, completion: 4, chat: 3, ingest: 2, summary: 1,
});

export class CancelledError extends Error {
  constructor(message = 'cancelled') {
    super(message);
    this.name = 'CancelledError';
  }
}

export type StepResult<T> = { done: true; value: T } | { done: false };

export interface StepContext {
  /** Aborted when the job is cancelled or preempted. */
  signal: AbortSignal;
  /** The job was cancelled (not just preempted). */
  cancelled(): boolean;
  /** The step was preempted by a more urgent job (it will run again). */
  preempted(): boolean;
}

export interface JobSpec<T> {
  kind: JobKind;
  /** A label for logs and the inspect view. */
  label?: string;
  /** Appends to the stream: starts only after earlier ordered jobs are done. */
  ordered?: boolean;
  /** 'abort': a more urgent job aborts the running step, which is retried later. Default 'wait'. */
  preempt?: 'abort' | 'wait';
  /** External cancellation (a request's token). */
  signal?: AbortSignal;
  step(ctx: StepContext): Promise<StepResult<T>>;
  /** Called once when the job ends for any reason (also when cancelled before it ran). */
  finally?(): void;
}

export interface JobHandle<T> {
  readonly id: number;
  readonly promise: Promise<T>;
  cancel(): void;
}

interface Job {
  id: number;
  seq: number;
  spec: JobSpec<unknown>;
  priority: number;
  cancelCtl: AbortController;
  preemptCtl: AbortController | null;
  started: boolean;
  resolve(v: unknown): void;
  reject(e: unknown): void;
  detach?: () => void;
}

export class Scheduler {
  private queue: Job[] = [];
  private running: Job | null = null;
  private nextId = 1;
  private seq = 0;
  private pumping = false;
  private disposed = false;
  private idleWaiters: (() => void)[] = [];
  /** Steps run per kind (for tests and the inspect view). */
  readonly stepsRun: Record<JobKind, number> = { control: 0, completion: 0, chat: 0, ingest: 0, summary: 0 };
  /** Called after every step (status updates). */
  onStep: ((kind: JobKind) => void) | null = null;
  /** Called for errors of jobs nobody awaits. */
  onError: ((e: unknown, kind: JobKind) => void) | null = null;

  submit<T>(spec: JobSpec<T>): JobHandle<T> {
    let resolve!: (v: T) => void, reject!: (e: unknown) => void;
    const promise = new Promise<T>((res, rej) => { resolve = res; reject = rej; });
    const job: Job = {
      id: this.nextId++, seq: this.seq++, spec: spec as JobSpec<unknown>, priority: PRIORITY[spec.kind],
      cancelCtl: new AbortController(), preemptCtl: null, started: false,
      resolve: resolve as (v: unknown) => void, reject,
    };
    // Callers that do not await a job still see its outcome through their own handlers; an
    // un-awaited rejection must not take the process down.
    promise.catch(() => undefined);
    const handle: JobHandle<T> = { id: job.id, promise, cancel: () => this.cancelJob(job) };
    if (this.disposed) {
      reject(new CancelledError('the engine worker is shut down'));
      spec.finally?.();
      return handle;
    }
    if (spec.signal) {
      if (spec.signal.aborted) {
        reject(new CancelledError());
        spec.finally?.();
        return handle;
      }
      const onAbort = () => this.cancelJob(job);
      spec.signal.addEventListener('abort', onAbort, { once: true });
      job.detach = () => spec.signal!.removeEventListener('abort', onAbort);
    }
    if (spec.ordered) {
      // Earlier ordered jobs must run first: lift them to this job's priority.
      for (const q of this.queue) if (q.spec.ordered && q.priority < job.priority) q.priority = job.priority;
    }
    this.queue.push(job);
    const r = this.running;
    if (r && r.spec.preempt === 'abort' && job.priority > r.priority && r.preemptCtl) r.preemptCtl.abort();
    this.pump();
    return handle;
  }

  /** Jobs queued per kind (not counting the running one). */
  counts(): Record<JobKind, number> {
    const c: Record<JobKind, number> = { control: 0, completion: 0, chat: 0, ingest: 0, summary: 0 };
    for (const j of this.queue) c[j.spec.kind]++;
    return c;
  }

  get runningKind(): JobKind | null {
    return this.running ? this.running.spec.kind : null;
  }

  get busy(): boolean {
    return this.running !== null || this.queue.length > 0;
  }

  /** Resolves when nothing is queued or running. */
  idle(): Promise<void> {
    if (!this.busy) return Promise.resolve();
    return new Promise((res) => this.idleWaiters.push(res));
  }

  /** Cancels every job of a kind (all when kind is omitted). */
  cancelAll(kind?: JobKind): void {
    for (const j of [...this.queue]) if (!kind || j.spec.kind === kind) this.cancelJob(j);
    if (this.running && (!kind || this.running.spec.kind === kind)) this.cancelJob(this.running);
  }

  dispose(): void {
    this.disposed = true;
    this.cancelAll();
  }

  private cancelJob(job: Job): void {
    if (job.cancelCtl.signal.aborted) return;
    job.cancelCtl.abort();
    job.preemptCtl?.abort();
    const i = this.queue.indexOf(job);
    if (i >= 0) {
      // Not running now: it ends here.
      this.queue.splice(i, 1);
      this.finish(job, false, new CancelledError());
      this.notifyIdle();
    }
  }

  private finish(job: Job, ok: boolean, value: unknown): void {
    job.detach?.();
    try { job.spec.finally?.(); } catch { /* cleanup must not break the worker */ }
    if (ok) job.resolve(value);
    else job.reject(value);
  }

  private pick(): Job | null {
    let best: Job | null = null;
    let firstOrdered: Job | null = null;
    for (const j of this.queue) if (j.spec.ordered && (!firstOrdered || j.seq < firstOrdered.seq)) firstOrdered = j;
    for (const j of this.queue) {
      if (j.spec.ordered && j !== firstOrdered) continue; // waits for earlier ordered jobs
      if (!best || j.priority > best.priority || (j.priority === best.priority && j.seq < best.seq)) best = j;
    }
    return best;
  }

  private pump(): void {
    if (this.pumping) return;
    this.pumping = true;
    // Run asynchronously so that submit() returns before any step starts.
    queueMicrotask(() => { void this.loop(); });
  }

  private async loop(): Promise<void> {
    try {
      for (;;) {
        const job = this.pick();
        if (!job) break;
        this.queue.splice(this.queue.indexOf(job), 1);
        this.running = job;
        job.started = true;
        job.preemptCtl = new AbortController();
        const signal = AbortSignal.any([job.cancelCtl.signal, job.preemptCtl.signal]);
        const preemptSignal = job.preemptCtl.signal;
        let result: StepResult<unknown> | null = null;
        let error: unknown = null;
        try {
          result = await job.spec.step({
            signal,
            cancelled: () => job.cancelCtl.signal.aborted,
            preempted: () => preemptSignal.aborted && !job.cancelCtl.signal.aborted,
          });
        } catch (e) {
          error = e;
        }
        this.running = null;
        job.preemptCtl = null;
        this.stepsRun[job.spec.kind]++;
        if (error !== null) {
          this.finish(job, false, job.cancelCtl.signal.aborted ? new CancelledError() : error);
        } else if (result && result.done) {
          this.finish(job, true, result.value);
        } else if (job.cancelCtl.signal.aborted) {
          this.finish(job, false, new CancelledError());
        } else {
          this.queue.push(job); // more steps: compete again (keeps its seq, so FIFO order holds)
        }
        try { this.onStep?.(job.spec.kind); } catch { /* status errors must not stop the worker */ }
      }
    } finally {
      this.pumping = false;
      this.notifyIdle();
    }
  }

  private notifyIdle(): void {
    if (this.busy) return;
    const w = this.idleWaiters;
    this.idleWaiters = [];
    for (const f of w) f();
  }
}
