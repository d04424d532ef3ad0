// Chat turns as stream text. The history lives in the cache, so each turn appends only what is
// new: the template is rendered for the conversation before and after the turn, and the
// difference is appended. Templates come from the GGUF (tokenizer.chat_template) and run on
// @huggingface/jinja; message contents are replaced by sentinels while rendering so that the
// template's own text (with its special tokens) and the user's text (never parsed for special
// tokens) are encoded apart. Models without a template get ChatML when their vocabulary has
// <|im_start|>/<|im_end|> (the default model, docs/stream-format.md), else a plain format.

import { Template } from '@huggingface/jinja';
import type { Piece, TokenizerLike } from './render';

export interface Turn { role: 'system' | 'user' | 'assistant'; content: string }

const SENTINEL = (i: number) => `\u0001ENDLESS_MSG_${i}\u0002`;
const SENTINEL_RE = /\u0001ENDLESS_MSG_(\d+)\u0002/g;

export const SYSTEM_PROMPT =
  'You are Endless, a coding assistant that lives in the editor. You have seen the files the user opened and the edits ' +
  'they made, in order. Answer briefly and precisely; use fenced code blocks for code.';

export class ChatFormat {
  readonly kind: 'template' | 'chatml' | 'plain';
  private readonly template: Template | null = null;
  private readonly imStart?: number;
  private readonly imEnd?: number;

  constructor(private readonly tok: TokenizerLike, templateSource?: string) {
    this.imStart = tok.tokenId('<|im_start|>');
    this.imEnd = tok.tokenId('<|im_end|>');
    const src = templateSource ?? tok.chatTemplate;
    if (src) {
      try {
        this.template = new Template(src);
        // Probe it once: a template that fails on a simple conversation is not used.
        this.renderTemplate([{ role: 'user', content: 'x' }], true);
        this.kind = 'template';
        return;
      } catch {
        this.template = null;
      }
    }
    this.kind = this.imStart !== undefined && this.imEnd !== undefined ? 'chatml' : 'plain';
  }

  /** Token ids that end an answer. */
  stopTokens(): number[] {
    const ids = new Set<number>();
    for (const id of [this.tok.eos, this.imEnd, this.tok.tokenId('<|endoftext|>'), this.tok.tokenId('<|eot_id|>'), this.tok.tokenId('<end_of_turn>')]) {
      if (id !== undefined) ids.add(id);
    }
    return [...ids];
  }

  /** Text that ends an answer when the model writes it as text (plain format). */
  stopStrings(): string[] {
    if (this.kind === 'plain') return ['\nUser:', '\nuser:', '\n### User'];
    if (this.kind === 'template') {
      // An end-of-turn marker the vocabulary spells as text (not one token) ends an answer too.
      const closing = this.closingText([{ role: 'user', content: 'x' }, { role: 'assistant', content: 'y' }])?.trim();
      if (closing && this.tok.tokenId(closing) === undefined) return [closing];
    }
    return [];
  }

  /**
   * What to append for a user turn (ending with the assistant's generation prompt), given the
   * conversation so far (which the stream already holds).
   */
  userTurn(history: readonly Turn[], user: string): Piece[] {
    const before = this.withSystem(history);
    const after = [...before, { role: 'user' as const, content: user }];
    return this.delta(after, true, history.length === 0);
  }

  /** What to append after the generated answer so the stream holds the closed turn. */
  assistantEnd(historyWithUser: readonly Turn[], answer: string): Piece[] {
    if (this.kind === 'chatml') return [{ token: this.imEnd! }, { text: '\n' }];
    if (this.kind === 'plain') return [{ text: '\n' }];
    const before = this.withSystem(historyWithUser);
    const after = [...before, { role: 'assistant' as const, content: answer }];
    const closing = this.closingText(after);
    if (closing !== null) return this.toPieces(closing, after);
    const end = this.imEnd ?? this.tok.eos;
    return end !== undefined ? [{ token: end }, { text: '\n' }] : [{ text: '\n' }];
  }

  /**
   * What the template writes after the last turn's content (an assistant turn), up to its
   * end-of-turn marker and newline: some templates append more (a new generation prompt) that
   * belongs to the next turn. null when the template cannot say.
   */
  private closingText(turns: Turn[]): string | null {
    try {
      const b = this.renderTemplate(turns, false).text;
      const mark = SENTINEL(turns.length - 1);
      const idx = b.lastIndexOf(mark);
      if (idx < 0) return null;
      const closing = b.slice(idx + mark.length);
      const cut = this.endOfTurn(closing);
      return cut >= 0 ? closing.slice(0, cut) : closing;
    } catch {
      return null;
    }
  }

  /** Index just after the first end-of-turn marker (and its newline) in text, or -1. */
  private endOfTurn(text: string): number {
    let cut = -1;
    for (const id of this.stopTokens()) {
      const e = this.tok.tokenToPiece(id);
      if (!e) continue;
      const k = text.indexOf(e);
      if (k >= 0 && (cut < 0 || k + e.length < cut)) cut = k + e.length;
    }
    if (cut >= 0 && text[cut] === '\n') cut++;
    return cut;
  }

  private withSystem(history: readonly Turn[]): Turn[] {
    return [{ role: 'system', content: SYSTEM_PROMPT }, ...history];
  }

  private delta(after: Turn[], genAfter: boolean, first: boolean): Piece[] {
    if (this.kind === 'template') {
      try {
        const bos = this.tok.bos !== undefined ? this.tok.tokenToPiece(this.tok.bos) : '';
        const text = this.renderTemplate(after, genAfter).text;
        if (first) return this.toPieces(bos && text.startsWith(bos) ? text.slice(bos.length) : text, after);
        // The stream holds everything up to the previous turn's end-of-turn marker (see
        // assistantEnd); the new text starts after it. This needs no prefix-stable template
        // (Qwen3 renders earlier assistant turns differently once more follow).
        const mark = SENTINEL(after.length - 2);
        const idx = text.lastIndexOf(mark);
        if (idx >= 0) {
          const rest = text.slice(idx + mark.length);
          let cut = this.endOfTurn(rest);
          if (cut < 0) {
            // No end-of-turn token in this vocabulary: the closing is what assistantEnd appended.
            const closing = this.closingText(after.slice(0, -1));
            if (closing !== null && rest.startsWith(closing)) cut = closing.length;
          }
          if (cut >= 0) return this.toPieces(rest.slice(cut), after);
        }
      } catch { /* a template that fails here: ChatML or plain below */ }
    }
    const turns = first ? after : after.slice(-1);
    const out: Piece[] = [];
    if (this.kind !== 'plain' && this.imStart !== undefined && this.imEnd !== undefined) {
      for (const t of turns) out.push({ token: this.imStart }, { text: `${t.role}\n${t.content}` }, { token: this.imEnd }, { text: '\n' });
      if (genAfter) out.push({ token: this.imStart }, { text: 'assistant\n' });
      return out;
    }
    for (const t of turns) out.push({ text: `\n${t.role === 'system' ? 'System' : t.role === 'user' ? 'User' : 'Assistant'}: ${t.content}\n` });
    if (genAfter) out.push({ text: 'Assistant:' });
    return out;
  }

  private renderTemplate(turns: Turn[], addGenerationPrompt: boolean): { text: string } {
    const messages = turns.map((t, i) => ({ role: t.role, content: SENTINEL(i) }));
    const bos = this.tok.bos !== undefined ? this.tok.tokenToPiece(this.tok.bos) : '';
    const eos = this.tok.eos !== undefined ? this.tok.tokenToPiece(this.tok.eos) : '';
    const render = (gen: boolean) => this.template!.render({ messages, add_generation_prompt: gen, bos_token: bos, eos_token: eos });
    let text = render(addGenerationPrompt);
    // A template that ignores add_generation_prompt: open the assistant's turn the ChatML way
    // when the vocabulary has ChatML's tokens (and the template writes them).
    if (addGenerationPrompt && this.imStart !== undefined && text.includes('<|im_start|>') && text === render(false)) {
      text += '<|im_start|>assistant\n';
    }
    return { text };
  }

  /** Template text -> pieces: template parts parse special tokens, message contents never do. */
  private toPieces(text: string, turns: readonly Turn[]): Piece[] {
    const out: Piece[] = [];
    let last = 0;
    for (const m of text.matchAll(SENTINEL_RE)) {
      const i = Number(m[1]);
      if (m.index! > last) out.push({ text: text.slice(last, m.index), parseSpecial: true });
      out.push({ text: turns[i]?.content ?? '' });
      last = m.index! + m[0].length;
    }
    if (last < text.length) out.push({ text: text.slice(last), parseSpecial: true });
    return out;
  }
}

/** A short topic line for a user message (the digest's "chat topics"). */
export function chatTopic(text: string): string {
  const line = text.trim().split('\n')[0].replace(/\s+/g, ' ');
  return line.length > 80 ? line.slice(0, 77) + '...' : line;
}
