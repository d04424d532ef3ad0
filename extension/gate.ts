// Whether an inline completion may be requested right now: the global toggle, a snooze that ends
// at a given time, and the per-language list. Pure (the clock is passed in) so node:test covers it.

export interface GateState {
  enabled: boolean;
  /** ms since the epoch when the snooze ends; 0 = not snoozed. */
  snoozedUntil: number;
}

export type GateVerdict =
  | { allowed: true }
  | { allowed: false; reason: 'disabled' | 'snoozed' | 'language' };

export class CompletionGate {
  private state: GateState;
  private listeners: (() => void)[] = [];

  constructor(initial: Partial<GateState> = {}) {
    this.state = { enabled: initial.enabled ?? true, snoozedUntil: initial.snoozedUntil ?? 0 };
  }

  get snapshot(): GateState { return { ...this.state }; }

  onChange(fn: () => void): { dispose(): void } {
    this.listeners.push(fn);
    return { dispose: () => { this.listeners = this.listeners.filter((l) => l !== fn); } };
  }

  private changed(): void { for (const l of this.listeners) l(); }

  /** Turns completions on or off; turning them on also ends a snooze. Returns the new state. */
  toggle(): boolean {
    this.state.enabled = !this.state.enabled;
    if (this.state.enabled) this.state.snoozedUntil = 0;
    this.changed();
    return this.state.enabled;
  }

  setEnabled(enabled: boolean): void {
    this.state.enabled = enabled;
    if (enabled) this.state.snoozedUntil = 0;
    this.changed();
  }

  /** Pauses completions for `minutes` (a positive number, at most a day). */
  snooze(minutes: number, now: number): number {
    if (typeof minutes !== 'number' || !Number.isFinite(minutes) || minutes <= 0 || minutes > 24 * 60) {
      throw new RangeError(`snooze minutes must be a number in (0, 1440], got ${JSON.stringify(minutes)}`);
    }
    this.state.snoozedUntil = now + Math.round(minutes * 60_000);
    this.changed();
    return this.state.snoozedUntil;
  }

  unsnooze(): void {
    this.state.snoozedUntil = 0;
    this.changed();
  }

  /** Minutes of snooze left (rounded up), 0 when not snoozed. */
  snoozeMinutesLeft(now: number): number {
    return this.state.snoozedUntil > now ? Math.ceil((this.state.snoozedUntil - now) / 60_000) : 0;
  }

  check(languageId: string, enabledLanguages: readonly string[], now: number): GateVerdict {
    if (!this.state.enabled) return { allowed: false, reason: 'disabled' };
    if (this.state.snoozedUntil > now) return { allowed: false, reason: 'snoozed' };
    if (!languageAllowed(languageId, enabledLanguages)) return { allowed: false, reason: 'language' };
    return { allowed: true };
  }
}

/** The per-language rule (the server applies the same one): an empty list means every language. */
export function languageAllowed(languageId: string, list: readonly string[]): boolean {
  return !list.length || list.includes(languageId);
}
