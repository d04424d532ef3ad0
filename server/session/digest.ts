// The structured digest of recent activity that every summary carries: files touched (edits,
// lines added/removed, saved), symbols changed (regex declarations around each edit) and chat
// topics. Pure bookkeeping; the session feeds it events and takes a digest when it summarizes.

import type { Summary, SymbolChange } from '../protocol';
import { flatCopy, type LineEdit } from './diff';
import { enclosingSymbol, symbolOnLine } from './symbols';

type Digest = Summary['digest'];

export class ActivityTracker {
  private files = new Map<string, Digest['files'][number]>();
  private symbols = new Map<string, SymbolChange>();
  private topics: string[] = [];
  private events = 0;

  /** Something happened since the last digest. */
  get active(): boolean {
    return this.events > 0;
  }

  private file(uri: string, path: string): Digest['files'][number] {
    let f = this.files.get(uri);
    if (!f) {
      f = { uri, path, edits: 0, linesAdded: 0, linesRemoved: 0, saved: false };
      this.files.set(uri, f);
    }
    return f;
  }

  /** An edit (diff of old -> new lines) of a document. */
  edited(uri: string, path: string, languageId: string, oldLines: readonly string[], newLines: readonly string[], edits: readonly LineEdit[]): void {
    const f = this.file(uri, path);
    f.edits++;
    this.events++;
    for (const e of edits) {
      f.linesRemoved += e.oldCount;
      f.linesAdded += e.newLines.length;
      const removed = new Map<string, string>();
      for (let i = e.oldStart; i < e.oldStart + e.oldCount; i++) {
        const s = symbolOnLine(oldLines[i] ?? '', languageId);
        if (s) removed.set(s.name, s.kind);
      }
      const added = new Map<string, string>();
      for (const l of e.newLines) {
        const s = symbolOnLine(l, languageId);
        if (s) added.set(s.name, s.kind);
      }
      for (const [name, kind] of added) this.noteSymbol(uri, name, kind, removed.has(name) ? 'modified' : 'added');
      for (const [name, kind] of removed) if (!added.has(name)) this.noteSymbol(uri, name, kind, 'removed');
      if (added.size === 0 && removed.size === 0) {
        const enc = enclosingSymbol(newLines, e.newStart, languageId);
        if (enc) this.noteSymbol(uri, enc.name, enc.kind, 'modified');
      }
    }
  }

  private noteSymbol(uri: string, name: string, kind: string, change: SymbolChange['change']): void {
    const key = `${uri}#${name}`;
    const prev = this.symbols.get(key);
    // added then removed in one period: it never existed as far as the digest is concerned
    if (prev && prev.change === 'added' && change === 'removed') { this.symbols.delete(key); return; }
    if (prev && prev.change === 'added') return; // still new
    if (prev && prev.change === 'removed' && change === 'added') change = 'modified';
    this.symbols.set(flatCopy(key), { name: flatCopy(name), kind, uri, change });
  }

  saved(uri: string, path: string): void {
    this.file(uri, path).saved = true;
    this.events++;
  }

  opened(uri: string, path: string): void {
    this.file(uri, path);
    this.events++;
  }

  chat(topic: string): void {
    if (topic) this.topics.push(topic);
    this.events++;
  }

  /** The digest of everything since the last take(); resets the tracker. */
  take(): Digest {
    const d: Digest = {
      files: [...this.files.values()],
      symbols: [...this.symbols.values()],
      chatTopics: [...this.topics],
    };
    this.files.clear();
    this.symbols.clear();
    this.topics = [];
    this.events = 0;
    return d;
  }
}

/** The digest as plain text lines (what gets pinned with the model's summary). */
export function digestText(d: Digest): string {
  const out: string[] = [];
  if (d.files.length) {
    out.push('Files: ' + d.files.map((f) => {
      const parts: string[] = [];
      if (f.edits) parts.push(`${f.edits} edit${f.edits === 1 ? '' : 's'}, +${f.linesAdded} -${f.linesRemoved}`);
      if (f.saved) parts.push('saved');
      if (!parts.length) parts.push('opened');
      return `${f.path} (${parts.join(', ')})`;
    }).join('; '));
  }
  if (d.symbols.length) {
    const byChange = (c: SymbolChange['change']) => d.symbols.filter((s) => s.change === c).map((s) => `${s.kind} ${s.name}`);
    for (const c of ['added', 'modified', 'removed'] as const) {
      const l = byChange(c);
      if (l.length) out.push(`${c[0].toUpperCase()}${c.slice(1)}: ${l.join(', ')}`);
    }
  }
  if (d.chatTopics.length) out.push('Chat: ' + d.chatTopics.map((t) => JSON.stringify(t)).join('; '));
  if (!out.length) out.push('No activity.');
  return out.join('\n');
}
