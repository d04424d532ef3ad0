// Coalescing of document edits while the user types: changes mark a document dirty and restart an
// idle timer; when the typing pauses (idleMs), or when edits have waited maxDelayMs during
// continuous typing, the dirty documents are flushed (diffed and appended to the stream) at once.
// Requests that need the stream up to date take the pending documents explicitly.

export interface Timers {
  now(): number;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

export const realTimers: Timers = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => { const t = setTimeout(fn, ms); (t as { unref?: () => void }).unref?.(); return t; },
  clearTimeout: (h) => clearTimeout(h as ReturnType<typeof setTimeout>),
};

export class EditCoalescer {
  private readonly dirty = new Map<string, number>(); // uri -> time of its first pending change
  private timer: unknown = null;
  /** While this says so (a completion is running), the idle flush waits (up to maxDelay). */
  holdWhile: (() => boolean) | null = null;

  constructor(
    private idleMs: number,
    private maxDelayMs: number,
    private readonly onFlush: (uris: string[]) => void,
    private readonly timers: Timers = realTimers,
  ) {}

  setDelays(idleMs: number, maxDelayMs: number): void {
    this.idleMs = idleMs;
    this.maxDelayMs = maxDelayMs;
  }

  /** A change arrived for uri. */
  touch(uri: string): void {
    const now = this.timers.now();
    if (!this.dirty.has(uri)) this.dirty.set(uri, now);
    let oldest = Infinity;
    for (const t of this.dirty.values()) oldest = Math.min(oldest, t);
    if (now - oldest >= this.maxDelayMs) {
      this.fire();
      return;
    }
    this.arm(Math.min(this.idleMs, oldest + this.maxDelayMs - now));
  }

  /**
   * The user is still busy (a completion was asked for or shown): restart the idle wait of the
   * pending edits without adding any. Appending while completions are being asked for would
   * also spoil the engine's reuse of the previous completion's branch.
   */
  defer(): void {
    if (this.dirty.size === 0) return;
    const now = this.timers.now();
    let oldest = Infinity;
    for (const t of this.dirty.values()) oldest = Math.min(oldest, t);
    if (now - oldest >= this.maxDelayMs) { this.fire(); return; }
    this.arm(Math.min(this.idleMs, oldest + this.maxDelayMs - now));
  }

  isPending(uri: string): boolean {
    return this.dirty.has(uri);
  }

  get pendingCount(): number {
    return this.dirty.size;
  }

  /** Removes and returns the pending documents (all, or just uri), for an explicit flush. */
  take(uri?: string): string[] {
    let out: string[];
    if (uri === undefined) {
      out = [...this.dirty.keys()];
      this.dirty.clear();
    } else {
      out = this.dirty.delete(uri) ? [uri] : [];
    }
    if (this.dirty.size === 0) this.disarm();
    return out;
  }

  /** Forgets a document (closed) without flushing it. */
  forget(uri: string): void {
    this.dirty.delete(uri);
    if (this.dirty.size === 0) this.disarm();
  }

  dispose(): void {
    this.disarm();
    this.dirty.clear();
  }

  private fire(): void {
    this.disarm();
    const uris = this.take();
    if (uris.length) this.onFlush(uris);
  }

  private arm(ms: number): void {
    this.disarm();
    this.timer = this.timers.setTimeout(() => {
      this.timer = null;
      if (this.holdWhile?.()) { this.defer(); return; }
      this.fire();
    }, Math.max(0, ms));
  }

  private disarm(): void {
    if (this.timer !== null) { this.timers.clearTimeout(this.timer); this.timer = null; }
  }
}
