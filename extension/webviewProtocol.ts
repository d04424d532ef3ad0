// Messages between the chat view's host side (extension/chatView.ts) and its UI
// (extension/webview/main.ts), typed once here so both sides agree.

import type { CacheFill } from '../server/protocol';
import type { ArchivedChat, ViewTurn } from './transcript';

export interface CacheView {
  cache?: CacheFill;
  seen: number;
  evicted: number;
  state: string;
  message: string;
}

/** Host -> webview. */
export type ToWebview =
  | { type: 'reset'; turns: ViewTurn[]; readOnly?: { title: string } }
  | { type: 'turn'; turn: ViewTurn }
  | { type: 'chunk'; turnId: string; delta: string; tokens: number; done: boolean }
  | { type: 'cache'; view: CacheView }
  | { type: 'history'; chats: Pick<ArchivedChat, 'id' | 'title' | 'time'>[] }
  | { type: 'busy'; busy: boolean }
  | { type: 'focusInput' };

/** Webview -> host. */
export type FromWebview =
  | { type: 'ready' }
  | { type: 'send'; text: string; includeSelection: boolean }
  | { type: 'stop' }
  | { type: 'newChat' }
  | { type: 'copy'; code: string }
  | { type: 'insert'; code: string }
  | { type: 'apply'; code: string; language: string }
  | { type: 'openHistory'; id: string }
  | { type: 'backToChat' };

/** Checks a message from the webview (it is a separate, less trusted context). */
export function parseFromWebview(m: unknown): FromWebview | string {
  if (typeof m !== 'object' || m === null) return 'message is not an object';
  const o = m as Record<string, unknown>;
  const str = (k: string, max = 1_000_000): string | null => (typeof o[k] === 'string' && (o[k] as string).length <= max ? o[k] as string : null);
  switch (o.type) {
    case 'ready': case 'stop': case 'newChat': case 'backToChat':
      return { type: o.type };
    case 'send': {
      const text = str('text', 200_000);
      if (text === null || !text.trim()) return 'send: text must be a non-empty string';
      return { type: 'send', text, includeSelection: o.includeSelection === true };
    }
    case 'copy': case 'insert': {
      const code = str('code');
      if (code === null) return `${o.type}: code must be a string`;
      return { type: o.type, code };
    }
    case 'apply': {
      const code = str('code');
      if (code === null) return 'apply: code must be a string';
      return { type: 'apply', code, language: str('language', 100) ?? '' };
    }
    case 'openHistory': {
      const id = str('id', 200);
      if (id === null) return 'openHistory: id must be a string';
      return { type: 'openHistory', id };
    }
    default:
      return `unknown message type ${JSON.stringify(o.type)}`;
  }
}
