// Persistence of the living session in the storage folder: the engine's snapshot (tokens and K/V,
// tied to the model's fingerprint), a meta file (what the snapshot covers: the event-log sequence
// number, the documents' stream views, chat history, summaries), and an append-only event log of
// everything appended to the stream after it. Restoring = snapshot + replay of the log's newer
// events. Files are created with mode 0600. When the folder cannot be written (read-only, full),
// persistence turns itself off and says why; the session keeps running. A write that fails
// half-way (ENOSPC) never leaves a torn record or a half-written file behind for the next start:
// the log is cut back to its last whole record, temporary files are removed, and the meta file
// names the engine state it belongs to, so a snapshot that got ahead of its meta is not used.
// A folder that can be read but not written still restores the session (read-only).

import { closeSync, existsSync, fstatSync, fsyncSync, ftruncateSync, mkdirSync, openSync, readFileSync, readSync, renameSync, statSync, unlinkSync, writeFileSync, writeSync, chmodSync } from 'node:fs';
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
  /**
   * The engine's counters when the snapshot was taken: a snapshot whose counters differ was
   * written after this meta file (a crash or a full disk between the two writes) and is not used.
   */
  engine?: { seen: number; processed: number };
}

export class Persistence {
  enabled = false;
  /** The folder exists and its files can be read (true also when it cannot be written). */
  readable = false;
  reason = 'no storage folder was given';
  readonly dir: string | null;
  private fd: number | null = null;
  private seqNext = 1;
  /** Bytes of whole records in the log: a failed append is cut back to this. */
  private logBytes = 0;
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
    const probe = path.join(this.dir, `.write-probe-${process.pid}`);
    try {
      mkdirSync(this.dir, { recursive: true, mode: 0o700 });
      this.readable = statSync(this.dir).isDirectory();
      writeFileSync(probe, 'ok', { mode: 0o600 });
      unlinkSync(probe);
      this.enabled = true;
      this.reason = '';
      return true;
    } catch (e) {
      try { unlinkSync(probe); } catch { /* not created */ }
      try { this.readable = statSync(this.dir).isDirectory(); } catch { this.readable = false; }
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
    if (!this.dir || !this.readable || !existsSync(this.metaPath)) return null;
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
    if (!this.dir || !this.readable || !existsSync(this.logPath)) return [];
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
      this.logBytes = this.cutTornTail(this.fd);
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
    const line = Buffer.from(JSON.stringify(rec) + '\n', 'utf8');
    try {
      let done = 0;
      while (done < line.length) {
        const n = writeSync(this.fd, line, done, line.length - done);
        if (n <= 0) throw new Error(`short write to the event log (${done} of ${line.length} bytes)`);
        done += n;
      }
      this.logBytes += line.length;
      return seq;
    } catch (e) {
      // Part of the record may be in the file (a full disk takes what fits): cut it off, so that
      // the log ends with a whole record and a later start appends after a newline.
      try { ftruncateSync(this.fd, this.logBytes); } catch { /* the next start cuts it */ }
      this.seqNext = seq;
      this.disable(`cannot append to the event log (${(e as Error).message})`);
      return 0;
    }
  }

  /**
   * Cuts a torn last record (a crash or a full disk in the middle of a write) off the log open
   * in fd, so that what is appended next starts on its own line. Returns the log's length.
   */
  private cutTornTail(fd: number): number {
    const size = fstatSync(fd).size;
    if (size === 0) return 0;
    const rd = openSync(this.logPath, 'r');
    try {
      const buf = Buffer.alloc(Math.min(size, 1 << 16));
      let end = size;
      while (end > 0) {
        const from = Math.max(0, end - buf.length);
        const n = readSync(rd, buf, 0, end - from, from);
        const nl = buf.subarray(0, n).lastIndexOf(0x0a);
        if (nl >= 0) { end = from + nl + 1; break; }
        end = from;
      }
      if (end === size) return size;
      ftruncateSync(fd, end);
      return end;
    } finally {
      closeSync(rd);
    }
  }

  /** Writes the meta file atomically (after the engine wrote the snapshot). */
  writeMeta(meta: Omit<SnapshotMeta, 'version'>): number {
    const tmp = this.metaPath + '.tmp';
    const body = Buffer.from(JSON.stringify({ version: META_VERSION, ...meta }), 'utf8');
    try {
      const fd = openSync(tmp, 'w', 0o600);
      try {
        let done = 0;
        while (done < body.length) {
          const n = writeSync(fd, body, done, body.length - done);
          if (n <= 0) throw new Error(`short write to ${tmp}`);
          done += n;
        }
        fsyncSync(fd);
      } finally {
        closeSync(fd);
      }
      renameSync(tmp, this.metaPath);
    } catch (e) {
      try { unlinkSync(tmp); } catch { /* not there */ }
      throw e;
    }
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
      this.logBytes = fstatSync(this.fd).size;
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
