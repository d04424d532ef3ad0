// Persistence of the living session in the storage folder: the engine's snapshot (tokens and K/V,
// tied to the model's fingerprint), a meta file (what the snapshot covers: the event-log sequence
// number, the documents' stream views, chat history, summaries), and an append-only event log of
// everything appended to the stream after it. Restoring = snapshot + replay of the log's newer
// events. Files are created with mode 0600. When the folder cannot be written (read-only, full),
// persistence turns itself off and says why; the session keeps running.

import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, statSync, unlinkSync, writeFileSync, writeSync, chmodSync } from 'node:fs';
import path from 'node:path';
import type { ChatMessage, Summary } from '../protocol';
import type { LineEdit } from './diff';

export const SNAPSHOT_FILE = 'session.snapshot';
export const META_FILE = 'session.meta.json';
export const LOG_FILE = 'events.jsonl';
const META_VERSION = 1;

export interface DocView { path: string; languageId: string; text: string; version: number }

export type LogEvent =
  | { t: 'header'; fingerprint: string; time: number }
  /** Tokens appended to the stream; for edits, the line edits of the document's stream view. */
  | { t: 'append'; kind: string; tokens: number[]; uri?: string; view?: DocView; edits?: LineEdit[]; version?: number }
  | { t: 'memory'; tokens: number[]; summary: Summary }
  | { t: 'chat'; message: ChatMessage }
  | { t: 'clear'; keepMemory: boolean };

export type LogRecord = LogEvent & { seq: number; time: number };

export interface SnapshotMeta {
  version: number;
  fingerprint: string;
  /** Last event-log sequence number the snapshot includes. */
  seq: number;
  time: number;
  views: Record<string, DocView>;
  chat: ChatMessage[];
  summaries: Summary[];
  sessionParams: { sinks: number; window: number; memoryMax: number; branchMax: number };
}

export class Persistence {
  enabled = false;
  reason = 'no storage folder was given';
  readonly dir: string | null;
  private fd: number | null = null;
  private seqNext = 1;
  onDisabled: ((reason: string) => void) | null = null;

  constructor(dir: string | undefined | null) {
    this.dir = dir ? path.resolve(dir) : null;
  }

  get snapshotPath(): string { return path.join(this.dir!, SNAPSHOT_FILE); }
  get metaPath(): string { return path.join(this.dir!, META_FILE); }
  get logPath(): string { return path.join(this.dir!, LOG_FILE); }
  get lastSeq(): number { return this.seqNext - 1; }

  /** Checks the folder can be written; turns persistence on or says why not. */
  open(): boolean {
    if (!this.dir) { this.enabled = false; return false; }
    try {
      mkdirSync(this.dir, { recursive: true, mode: 0o700 });
      const probe = path.join(this.dir, `.write-probe-${process.pid}`);
      writeFileSync(probe, 'ok', { mode: 0o600 });
      unlinkSync(probe);
      this.enabled = true;
      this.reason = '';
      return true;
    } catch (e) {
      this.disable(`the storage folder ${this.dir} is not writable (${(e as Error).message})`);
      return false;
    }
  }

  disable(reason: string): void {
    const was = this.enabled;
    this.enabled = false;
    this.reason = reason;
    if (this.fd !== null) { try { closeSync(this.fd); } catch { /* already gone */ } this.fd = null; }
    if (was || reason) this.onDisabled?.(reason);
  }

  readMeta(): SnapshotMeta | null {
    if (!this.dir || !existsSync(this.metaPath)) return null;
    try {
      const m = JSON.parse(readFileSync(this.metaPath, 'utf8')) as SnapshotMeta;
      if (m.version !== META_VERSION || typeof m.fingerprint !== 'string' || typeof m.seq !== 'number') return null;
      return m;
    } catch {
      return null;
    }
  }

  /** All readable records of the log (a torn last line from a crash is skipped). */
  readLog(): LogRecord[] {
    if (!this.dir || !existsSync(this.logPath)) return [];
    let text: string;
    try { text = readFileSync(this.logPath, 'utf8'); } catch { return []; }
    const out: LogRecord[] = [];
    for (const line of text.split('\n')) {
      if (!line.trim()) continue;
      try {
        const r = JSON.parse(line) as LogRecord;
        if (typeof r.seq === 'number' && typeof r.t === 'string') out.push(r);
      } catch { /* torn write */ }
    }
    return out;
  }

  /** Starts appending after the given records (continuing their numbering). */
  startLog(existing: readonly LogRecord[], fingerprint: string, fresh: boolean): void {
    if (!this.enabled) return;
    try {
      if (fresh && existsSync(this.logPath)) {
        renameSync(this.logPath, this.logPath + '.old');
        existing = [];
      }
      this.seqNext = existing.length ? existing[existing.length - 1].seq + 1 : 1;
      this.fd = openSync(this.logPath, 'a', 0o600);
      chmodSync(this.logPath, 0o600);
      if (!existing.length) this.append({ t: 'header', fingerprint, time: Date.now() });
    } catch (e) {
      this.disable(`cannot write the event log ${this.logPath} (${(e as Error).message})`);
    }
  }

  /** Appends one event; returns its sequence number (0 when persistence is off). */
  append(ev: LogEvent): number {
    if (!this.enabled || this.fd === null) return 0;
    const seq = this.seqNext++;
    const rec = { ...ev, seq, time: Date.now() };
    try {
      writeSync(this.fd, JSON.stringify(rec) + '\n');
      return seq;
    } catch (e) {
      this.disable(`cannot append to the event log (${(e as Error).message})`);
      return 0;
    }
  }

  /** Writes the meta file atomically (after the engine wrote the snapshot). */
  writeMeta(meta: Omit<SnapshotMeta, 'version'>): number {
    const tmp = this.metaPath + '.tmp';
    const body = JSON.stringify({ version: META_VERSION, ...meta });
    const fd = openSync(tmp, 'w', 0o600);
    try {
      writeSync(fd, body);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, this.metaPath);
    if (this.fd !== null) { try { fsyncSync(this.fd); } catch { /* best effort */ } }
    return body.length;
  }

  /**
   * After a snapshot, a log grown past maxBytes starts over (the previous one is kept as
   * events.jsonl.1): everything in it is covered by the snapshot, and a restart reads only the
   * current file. Sequence numbers continue.
   */
  rotateIfLarge(fingerprint: string, maxBytes = 16 * 2 ** 20): void {
    if (!this.enabled || this.fd === null) return;
    try {
      if (statSync(this.logPath).size <= maxBytes) return;
      closeSync(this.fd);
      this.fd = null;
      renameSync(this.logPath, this.logPath + '.1');
      this.fd = openSync(this.logPath, 'a', 0o600);
      this.append({ t: 'header', fingerprint, time: Date.now() });
    } catch (e) {
      this.disable(`cannot rotate the event log (${(e as Error).message})`);
    }
  }

  /** Makes the engine's snapshot file private (the engine writes it). */
  protectSnapshot(): number {
    try {
      chmodSync(this.snapshotPath, 0o600);
      return statSync(this.snapshotPath).size;
    } catch {
      return 0;
    }
  }

  close(): void {
    if (this.fd !== null) { try { fsyncSync(this.fd); closeSync(this.fd); } catch { /* closing anyway */ } this.fd = null; }
  }
}
