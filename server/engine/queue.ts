// A FIFO of async jobs that never overlap: the native session is single-threaded, so every call
// on one session waits for the previous one. A job still waiting when its AbortSignal fires leaves
// the queue at once; close() fails every waiting job (used by dispose()).
import { abortError } from './validate';

interface Job {
  start: () => void;
  fail: (e: unknown) => void;
}

export class SerialQueue {
  private readonly jobs: Job[] = [];
  private active = false;
  private closedWith: (() => Error) | null = null;

  /** Number of jobs waiting or running. */
  get size(): number {
    return this.jobs.length + (this.active ? 1 : 0);
  }

  enqueue<T>(task: () => Promise<T>, signal?: AbortSignal): Promise<T> {
    if (this.closedWith) return Promise.reject(this.closedWith());
    if (signal?.aborted) return Promise.reject(abortError(signal));
    return new Promise<T>((resolve, reject) => {
      let onAbort: (() => void) | undefined;
      const detach = () => { if (signal && onAbort) signal.removeEventListener('abort', onAbort); };
      const job: Job = {
        start: () => {
          detach();
          if (signal?.aborted) { this.finish(() => reject(abortError(signal))); return; }
          let p: Promise<T>;
          try { p = task(); } catch (e) { this.finish(() => reject(e)); return; }
          p.then((v) => this.finish(() => resolve(v)), (e) => this.finish(() => reject(e)));
        },
        fail: (e) => { detach(); reject(e); },
      };
      if (signal) {
        onAbort = () => {
          const i = this.jobs.indexOf(job);
          if (i >= 0) { this.jobs.splice(i, 1); job.fail(abortError(signal)); }
        };
        signal.addEventListener('abort', onAbort, { once: true });
      }
      this.jobs.push(job);
      this.next();
    });
  }

  /** Fails every waiting job with make() and refuses new ones; a running job finishes. */
  close(make: () => Error): void {
    this.closedWith = make;
    for (const job of this.jobs.splice(0)) job.fail(make());
  }

  // The queue is marked idle before the caller hears of the result, so a call made from the
  // caller's continuation starts at once instead of waiting a turn behind nothing.
  private finish(settle: () => void): void {
    this.active = false;
    settle();
    this.next();
  }

  private next(): void {
    if (this.active) return;
    const job = this.jobs.shift();
    if (!job) return;
    this.active = true;
    job.start();
  }
}
