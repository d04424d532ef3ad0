// The small picture of the cache in the chat view's header: one bar with the four regions
// (sinks | memory | window | branch), each as wide as its share of the capacity and filled as far
// as it holds tokens, with the stream's tokens seen and evicted underneath. Widths are set through
// the CSSOM (the CSP forbids inline style attributes).

import { cacheSegments, humanCount } from '../status';
import type { CacheView } from '../webviewProtocol';

const TITLES: Record<string, string> = {
  sinks: 'attention sinks: the first tokens of the stream, always kept',
  memory: 'pinned memory: the latest session summary',
  window: 'rolling window: the newest tokens of the stream',
  branch: 'branch: scratch space of the current request',
};

export function renderCachePicture(root: HTMLElement, view: CacheView | undefined): void {
  root.replaceChildren();
  const bar = document.createElement('div');
  bar.className = 'cache-bar';
  const legend = document.createElement('div');
  legend.className = 'cache-legend';
  if (!view?.cache) {
    legend.textContent = view ? `cache: ${view.state} — ${view.message}` : 'cache: waiting for the server';
    root.append(bar, legend);
    return;
  }
  for (const seg of cacheSegments(view.cache)) {
    const el = document.createElement('div');
    el.className = `cache-seg cache-${seg.name}`;
    el.style.width = `${(seg.width * 100).toFixed(2)}%`;
    el.title = `${seg.name}: ${seg.used} / ${seg.max} tokens — ${TITLES[seg.name]}`;
    const fill = document.createElement('div');
    fill.className = 'cache-fill';
    fill.style.width = `${(seg.fill * 100).toFixed(1)}%`;
    el.append(fill);
    bar.append(el);
    const item = document.createElement('span');
    item.className = `cache-key cache-${seg.name}`;
    item.textContent = `${seg.name} ${humanCount(seg.used)}/${humanCount(seg.max)}`;
    legend.append(item);
  }
  const stream = document.createElement('span');
  stream.className = 'cache-stream';
  stream.textContent = `seen ${humanCount(view.seen)} · evicted ${humanCount(view.evicted)}`;
  stream.title = `${view.seen} tokens appended to the stream over the session, ${view.evicted} evicted from the window`;
  legend.append(stream);
  root.append(bar, legend);
}
