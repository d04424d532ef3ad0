// The chat UI inside the webview: renders the transcript (Markdown through markdown-it, then
// DOMPurify), streams answers chunk by chunk, shows the cache picture, and sends the user's
// actions to the host (extension/chatView.ts) as typed messages. It talks to nothing else: the
// CSP allows only this bundled script and its stylesheet.

import DOMPurify from 'dompurify';
import type { ViewTurn } from '../transcript';
import type { CacheView, FromWebview, ToWebview } from '../webviewProtocol';
import { renderCachePicture } from './cachePicture';
import { closeOpenFence, createMarkdown } from './markdown';

declare function acquireVsCodeApi(): { postMessage(m: unknown): void; setState(s: unknown): void; getState(): unknown };

const vscode = acquireVsCodeApi();
const md = createMarkdown();
const post = (m: FromWebview) => vscode.postMessage(m);

let turns: ViewTurn[] = [];
let readOnly: { title: string } | undefined;
let busy = false;
let cache: CacheView | undefined;

function el<K extends keyof HTMLElementTagNameMap>(tag: K, cls?: string, text?: string): HTMLElementTagNameMap[K] {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}

// ---- layout ----------------------------------------------------------------------------------

const app = document.getElementById('app')!;
const header = el('header', 'chat-header');
const cacheRoot = el('div', 'cache-picture');
cacheRoot.id = 'cache-picture';
const toolbar = el('div', 'toolbar');
const newBtn = el('button', 'secondary', 'New chat');
newBtn.id = 'new-chat';
newBtn.type = 'button';
const stopBtn = el('button', 'secondary', 'Stop');
stopBtn.id = 'stop';
stopBtn.type = 'button';
const historySel = el('select', 'history');
historySel.id = 'history';
historySel.title = 'Earlier chats';
toolbar.append(newBtn, stopBtn, historySel);
header.append(cacheRoot, toolbar);

const banner = el('div', 'banner');
banner.hidden = true;
const messages = el('main', 'messages');
messages.id = 'messages';
messages.setAttribute('aria-live', 'polite');

const form = el('form', 'composer');
const input = el('textarea', 'input');
input.id = 'input';
input.rows = 3;
input.placeholder = 'Ask about your code (Enter to send, Shift+Enter for a new line)';
const row = el('div', 'composer-row');
const selLabel = el('label', 'include-selection');
const selBox = el('input');
selBox.type = 'checkbox';
selBox.id = 'include-selection';
selLabel.append(selBox, document.createTextNode(' include the selection'));
const sendBtn = el('button', 'primary', 'Send');
sendBtn.id = 'send';
sendBtn.type = 'submit';
row.append(selLabel, sendBtn);
form.append(input, row);
app.append(header, banner, messages, form);

// ---- rendering -------------------------------------------------------------------------------

function renderMarkdown(text: string, streaming: boolean): string {
  const html = md.render(streaming ? closeOpenFence(text) : text);
  return DOMPurify.sanitize(html, { USE_PROFILES: { html: true }, ADD_ATTR: ['data-action', 'data-lang'], FORBID_TAGS: ['style', 'form', 'input', 'img'] });
}

function turnKey(t: ViewTurn): string { return `${t.role}:${t.turnId}`; }

function renderTurn(t: ViewTurn): HTMLElement {
  const div = el('div', `turn turn-${t.role}${t.streaming ? ' streaming' : ''}${t.error ? ' failed' : ''}`);
  div.dataset.key = turnKey(t);
  const who = el('div', 'who', t.role === 'user' ? 'You' : 'Endless');
  const body = el('div', 'body');
  if (t.role === 'user') body.textContent = t.text;
  else body.innerHTML = renderMarkdown(t.text, t.streaming);
  div.append(who, body);
  if (t.role === 'assistant') {
    const meta = el('div', 'meta');
    if (t.error) meta.textContent = `error: ${t.error}`;
    else if (t.streaming) meta.textContent = t.tokens ? `${t.tokens} tokens…` : 'thinking…';
    else if (t.reason) meta.textContent = `${t.tokens ?? 0} tokens${t.reason === 'stop' ? '' : ` — ${t.reason === 'cancelled' ? 'stopped' : t.reason}`}`;
    div.append(meta);
  }
  return div;
}

function renderAll(): void {
  messages.replaceChildren(...turns.map(renderTurn));
  if (!turns.length) messages.append(el('div', 'empty', readOnly ? 'This chat is empty.' : 'Ask a question: the model already knows what you have been editing.'));
  banner.hidden = !readOnly;
  banner.replaceChildren();
  if (readOnly) {
    const back = el('button', 'secondary', 'Back to the current chat');
    back.type = 'button';
    back.addEventListener('click', () => post({ type: 'backToChat' }));
    banner.append(el('span', undefined, `Earlier chat: ${readOnly.title}`), back);
  }
  input.disabled = !!readOnly;
  updateButtons();
  scrollToEnd();
}

function replaceTurn(t: ViewTurn): void {
  const i = turns.findIndex((x) => turnKey(x) === turnKey(t));
  if (i >= 0) turns[i] = t; else turns.push(t);
  const old = messages.querySelector<HTMLElement>(`[data-key="${CSS.escape(turnKey(t))}"]`);
  const fresh = renderTurn(t);
  if (old) old.replaceWith(fresh); else { messages.querySelector('.empty')?.remove(); messages.append(fresh); }
  scrollToEnd();
}

// Chunks arrive faster than frames: re-render a streaming answer at most once per frame.
const dirty = new Set<string>();
let frame = 0;
function scheduleRender(key: string): void {
  dirty.add(key);
  if (frame) return;
  frame = requestAnimationFrame(() => {
    frame = 0;
    for (const k of dirty) { const t = turns.find((x) => turnKey(x) === k); if (t) replaceTurn(t); }
    dirty.clear();
  });
}

function nearBottom(): boolean { return messages.scrollHeight - messages.scrollTop - messages.clientHeight < 80; }
let stick = true;
messages.addEventListener('scroll', () => { stick = nearBottom(); });
function scrollToEnd(): void { if (stick) messages.scrollTop = messages.scrollHeight; }

function updateButtons(): void {
  stopBtn.disabled = !busy || !!readOnly;
  sendBtn.disabled = busy || !!readOnly;
}

function renderHistory(chats: { id: string; title: string; time: number }[]): void {
  const first = el('option', undefined, chats.length ? `History (${chats.length})` : 'History (empty)');
  first.value = '';
  historySel.replaceChildren(first, ...chats.map((c) => {
    const o = el('option', undefined, `${new Date(c.time).toLocaleString()} — ${c.title}`);
    o.value = c.id;
    return o;
  }));
  historySel.disabled = !chats.length;
}

// ---- events ----------------------------------------------------------------------------------

window.addEventListener('message', (e: MessageEvent<ToWebview>) => {
  const m = e.data;
  switch (m.type) {
    case 'reset': turns = m.turns.map((t) => ({ ...t })); readOnly = m.readOnly; renderAll(); break;
    case 'turn': replaceTurn({ ...m.turn }); break;
    case 'chunk': {
      const t = [...turns].reverse().find((x) => x.turnId === m.turnId && x.role === 'assistant');
      if (!t) break;
      t.text += m.delta;
      t.tokens = m.tokens;
      if (m.done) t.streaming = false;
      scheduleRender(turnKey(t));
      break;
    }
    case 'cache': cache = m.view; renderCachePicture(cacheRoot, cache); break;
    case 'history': renderHistory(m.chats); break;
    case 'busy': busy = m.busy; updateButtons(); break;
    case 'focusInput': input.focus(); break;
  }
});

function send(): void {
  const text = input.value;
  if (!text.trim() || busy || readOnly) return;
  post({ type: 'send', text, includeSelection: selBox.checked });
  input.value = '';
  stick = true;
}

form.addEventListener('submit', (e) => { e.preventDefault(); send(); });
input.addEventListener('keydown', (e) => {
  if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) { e.preventDefault(); send(); }
});
stopBtn.addEventListener('click', () => post({ type: 'stop' }));
newBtn.addEventListener('click', () => post({ type: 'newChat' }));
historySel.addEventListener('change', () => {
  const id = historySel.value;
  historySel.value = '';
  if (id) post({ type: 'openHistory', id });
});

// Code-block buttons (event delegation: the blocks are re-rendered while streaming).
messages.addEventListener('click', (e) => {
  const target = e.target as HTMLElement;
  const a = target.closest('a');
  if (a) { e.preventDefault(); return; } // no navigation inside the webview
  const btn = target.closest<HTMLButtonElement>('button[data-action]');
  if (!btn) return;
  const block = btn.closest<HTMLElement>('.code-block');
  const code = block?.querySelector('code')?.textContent ?? '';
  const action = btn.dataset.action;
  if (action === 'copy') post({ type: 'copy', code });
  else if (action === 'insert') post({ type: 'insert', code });
  else if (action === 'apply') post({ type: 'apply', code, language: block?.dataset.lang ?? '' });
});

renderCachePicture(cacheRoot, undefined);
renderAll();
post({ type: 'ready' });
