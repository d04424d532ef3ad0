// A cancellable wait used before each automatic inline completion request: typing a key cancels
// the previous request's token, so only the last keystroke of a burst reaches the server.

export interface CancellationLike {
  readonly isCancellationRequested: boolean;
  onCancellationRequested(listener: () => void): { dispose(): void };
}

export interface TimerApi {
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

const realTimers: TimerApi = {
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (h) => clearTimeout(h as ReturnType<typeof setTimeout>),
};

/** Resolves true after `ms`, or false as soon as the token is cancelled (never rejects). */
export function debounce(ms: number, token: CancellationLike, timers: TimerApi = realTimers): Promise<boolean> {
  if (token.isCancellationRequested) return Promise.resolve(false);
  if (!(ms > 0)) return Promise.resolve(true);
  return new Promise<boolean>((resolve) => {
    let sub: { dispose(): void } | undefined;
    const handle = timers.setTimeout(() => { sub?.dispose(); resolve(!token.isCancellationRequested); }, ms);
    sub = token.onCancellationRequested(() => { timers.clearTimeout(handle); sub?.dispose(); resolve(false); });
  });
}
