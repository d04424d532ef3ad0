// When the client restarts the language server: after a crash (unless it keeps crashing), and
// after a change to a setting that shapes the model or the cache. Pure, unit-tested.

import { RESTART_SETTINGS, SETTINGS_SECTION } from '../server/protocol';

/** The `endless.*` keys a configuration change touches that need a server restart. */
export function restartKeysAffected(affects: (section: string) => boolean): string[] {
  return RESTART_SETTINGS.filter((k) => affects(`${SETTINGS_SECTION}.${k}`)).map((k) => `${SETTINGS_SECTION}.${k}`);
}

/**
 * Counts crashes in a sliding time window: the server is restarted after each crash until it has
 * crashed `maxCrashes` times within `windowMs`, then it stays down until the user restarts it.
 */
export class CrashPolicy {
  private times: number[] = [];
  constructor(readonly maxCrashes = 4, readonly windowMs = 3 * 60_000) {}

  /** Records a crash at `now`; true when the server should be restarted. */
  crashed(now: number): boolean {
    this.times = this.times.filter((t) => now - t < this.windowMs);
    this.times.push(now);
    return this.times.length < this.maxCrashes;
  }

  reset(): void { this.times = []; }
  get recent(): number { return this.times.length; }
}

/** Keeps the last lines the server wrote to stderr, to say why it died. */
export class TailBuffer {
  private lines: string[] = [];
  constructor(readonly max = 30) {}
  push(line: string): void {
    this.lines.push(line);
    if (this.lines.length > this.max) this.lines.shift();
  }
  /** The last `n` non-empty lines. */
  last(n: number): string[] { return this.lines.filter((l) => l.trim()).slice(-n); }
  clear(): void { this.lines = []; }
}

/** One sentence for the crash notification, from the exit status and the server's last words. */
export function crashReason(exit: { code: number | null; signal: string | null } | undefined, tail: string[]): string {
  let how = 'the language server stopped';
  if (exit?.signal) how = `the language server was killed by ${exit.signal}`;
  else if (exit && exit.code !== null) how = `the language server exited with code ${exit.code}`;
  const errLine = [...tail].reverse().find((l) => /error|fail|abort|exception|fatal|segmentation|out of memory/i.test(l)) ?? tail[tail.length - 1];
  return errLine ? `${how}: ${errLine.trim().slice(0, 300)}` : how;
}
