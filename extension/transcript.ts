// The chat as the view shows it: turns in order, each assistant answer growing chunk by chunk.
// Kept in the extension host (so the view can be rebuilt when it is hidden and shown again) and
// mirrored in the webview. Pure, unit-tested.

import type { ChatChunkParams, ChatMessage, ChatStopReason } from '../server/protocol';

export interface ViewTurn {
  turnId: string;
  role: 'user' | 'assistant';
  text: string;
  time: number;
  /** Assistant turns: still streaming. */
  streaming: boolean;
  reason?: ChatStopReason;
  tokens?: number;
  error?: string;
}

export class Transcript {
  turns: ViewTurn[] = [];

  clear(): void { this.turns = []; }

  /** Replaces the transcript with the server's history (after a reload or a server restart). */
  load(messages: readonly ChatMessage[]): void {
    this.turns = messages.map((m) => ({ turnId: m.turnId, role: m.role, text: m.text, time: m.time, streaming: false }));
  }

  addUser(turnId: string, text: string, time: number): ViewTurn {
    const t: ViewTurn = { turnId, role: 'user', text, time, streaming: false };
    this.turns.push(t);
    const a: ViewTurn = { turnId, role: 'assistant', text: '', time, streaming: true, tokens: 0 };
    this.turns.push(a);
    return a;
  }

  assistant(turnId: string): ViewTurn | undefined {
    for (let i = this.turns.length - 1; i >= 0; i--) {
      const t = this.turns[i];
      if (t.turnId === turnId && t.role === 'assistant') return t;
    }
    return undefined;
  }

  /** Applies one streamed chunk; returns the turn, or undefined for a turn this chat does not have. */
  applyChunk(p: ChatChunkParams): ViewTurn | undefined {
    const a = this.assistant(p.turnId);
    if (!a || !a.streaming) return undefined;
    a.text += p.delta;
    a.tokens = p.tokens;
    if (p.done) { a.streaming = false; a.reason = p.reason; }
    return a;
  }

  /** The send request answered: its text is authoritative (chunks may have been dropped). */
  finish(turnId: string, text: string, reason: ChatStopReason, tokens: number): ViewTurn | undefined {
    const a = this.assistant(turnId);
    if (!a) return undefined;
    a.text = text;
    a.streaming = false;
    a.reason = reason;
    a.tokens = tokens;
    return a;
  }

  fail(turnId: string, message: string): ViewTurn | undefined {
    const a = this.assistant(turnId);
    if (!a) return undefined;
    a.streaming = false;
    a.reason = 'error';
    a.error = message;
    return a;
  }

  get streamingTurn(): ViewTurn | undefined { return this.turns.find((t) => t.streaming); }

  /** A short title for the history list: the first user message, on one line. */
  title(): string {
    const first = this.turns.find((t) => t.role === 'user');
    const line = (first?.text ?? '').replace(/\s+/g, ' ').trim();
    return line.length > 60 ? `${line.slice(0, 59)}…` : line || '(empty chat)';
  }
}

/** A chat kept in the history list after "New chat". */
export interface ArchivedChat { id: string; title: string; time: number; turns: ViewTurn[] }

/** Adds a chat to the front of the history, keeping at most `max` (empty chats are not kept). */
export function archiveChat(history: readonly ArchivedChat[], chat: Transcript, id: string, now: number, max = 30): ArchivedChat[] {
  if (!chat.turns.some((t) => t.role === 'user')) return [...history];
  const turns = chat.turns.map((t) => ({ ...t, streaming: false }));
  return [{ id, title: chat.title(), time: now, turns }, ...history].slice(0, max);
}
