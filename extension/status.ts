// What the status bar item and the cache picture say, computed from the server's StatusParams
// and the completion gate. Pure, so the wording and the arithmetic are unit-tested.

import type { CacheFill, StatusParams } from '../server/protocol';

export interface StatusView {
  /** Status bar text, with codicons. */
  text: string;
  /** Markdown tooltip. */
  tooltip: string;
  /** 'error' and 'warning' colour the item's background. */
  severity: 'normal' | 'warning' | 'error';
}

export interface GateView { enabled: boolean; snoozeMinutesLeft: number }

/** 1234 -> "1.2k", 2_500_000 -> "2.5M". */
export function humanCount(n: number): string {
  if (!Number.isFinite(n)) return '?';
  const a = Math.abs(n);
  if (a < 1000) return String(Math.round(n));
  if (a < 1_000_000) return `${(n / 1000).toFixed(a < 10_000 ? 1 : 0)}k`;
  return `${(n / 1_000_000).toFixed(a < 10_000_000 ? 1 : 0)}M`;
}

/** Fraction of the cache's capacity that holds tokens (0..1), over all four regions. */
export function cacheFillFraction(c: CacheFill | undefined): number {
  if (!c) return 0;
  const used = c.sinks + c.memory + c.window + c.branch;
  const max = c.sinksMax + c.memoryMax + c.windowMax + c.branchMax;
  return max > 0 ? Math.min(1, Math.max(0, used / max)) : 0;
}

export interface CacheSegment {
  name: 'sinks' | 'memory' | 'window' | 'branch';
  used: number;
  max: number;
  /** Share of the whole bar this region's capacity takes (0..1); all four add up to 1. */
  width: number;
  /** Share of this region that holds tokens (0..1). */
  fill: number;
}

/**
 * The four regions of the cache as bar segments. Tiny regions (the sinks are a few tokens out of
 * thousands) get a least width so they stay visible; the others share the rest by capacity.
 */
export function cacheSegments(c: CacheFill, minWidth = 0.04): CacheSegment[] {
  const raw: [CacheSegment['name'], number, number][] = [
    ['sinks', c.sinks, c.sinksMax], ['memory', c.memory, c.memoryMax], ['window', c.window, c.windowMax], ['branch', c.branch, c.branchMax],
  ];
  const total = raw.reduce((s, [, , m]) => s + Math.max(0, m), 0);
  const shown = raw.filter(([, , m]) => m > 0);
  if (total <= 0 || !shown.length) return raw.map(([name, used, max]) => ({ name, used, max, width: 0.25, fill: 0 }));
  let widths = raw.map(([, , m]) => (m > 0 ? Math.max(m / total, minWidth) : 0));
  const sum = widths.reduce((a, b) => a + b, 0);
  widths = widths.map((w) => w / sum);
  return raw.map(([name, used, max], i) => ({
    name, used, max, width: widths[i], fill: max > 0 ? Math.min(1, Math.max(0, used / max)) : 0,
  }));
}

function modelName(s: StatusParams): string {
  if (!s.model) return '';
  return s.model.name || s.model.path.split(/[\\/]/).pop() || s.model.architecture;
}

export function formatStatus(s: StatusParams | undefined, gate: GateView): StatusView {
  if (!s) return { text: '$(loading~spin) Endless', tooltip: 'Endless: starting the language server', severity: 'normal' };
  const model = modelName(s);
  const lines: string[] = [`**Endless** — ${escapeMd(s.message)}`, ''];
  if (s.model) lines.push(`- model: \`${escapeMd(model)}\` (${escapeMd(s.model.architecture)}, ${escapeMd(s.model.fileType)}, ${humanCount(s.model.nParams)} parameters)`);
  if (s.device) lines.push(`- device: ${escapeMd(s.device)}`);
  lines.push(`- speed: ${s.tokensPerSecond.prefill.toFixed(0)} tok/s prefill, ${s.tokensPerSecond.generate.toFixed(1)} tok/s generation`);
  if (s.cache) {
    const c = s.cache;
    lines.push(`- cache: ${Math.round(cacheFillFraction(c) * 100)}% — sinks ${c.sinks}/${c.sinksMax}, memory ${c.memory}/${c.memoryMax}, window ${c.window}/${c.windowMax}, branch ${c.branch}/${c.branchMax}`);
  }
  lines.push(`- stream: ${humanCount(s.seen)} tokens seen, ${humanCount(s.evicted)} evicted, ${humanCount(s.reused)} reused`);
  if (s.pendingTokens) lines.push(`- waiting: ${s.pendingTokens} tokens`);
  lines.push(`- session persistence: ${s.persistence.enabled ? 'on' : `off (${escapeMd(s.persistence.reason ?? 'unknown')})`}`);
  if (s.restartRequired.length) lines.push(`- restart needed for: ${s.restartRequired.map((k) => `\`endless.${k}\``).join(', ')}`);
  if (!gate.enabled) lines.push('', 'Inline completions are **off**.');
  else if (gate.snoozeMinutesLeft > 0) lines.push('', `Inline completions are snoozed for ${gate.snoozeMinutesLeft} more min.`);
  lines.push('', 'Click for the Endless menu.');
  const tooltip = lines.join('\n');

  if (s.state === 'error') return { text: '$(error) Endless', tooltip, severity: 'error' };
  if (s.state === 'starting' || s.state === 'loading') return { text: `$(loading~spin) Endless: ${s.state === 'loading' ? 'loading model' : 'starting'}`, tooltip, severity: 'normal' };

  const parts: string[] = [];
  if (model) parts.push(shorten(model, 24));
  if (s.device) parts.push(s.device.replace(/^cuda:.*/, 'cuda'));
  const gen = s.tokensPerSecond.generate;
  parts.push(gen > 0 ? `${gen.toFixed(gen < 10 ? 1 : 0)} tok/s` : '– tok/s');
  if (s.cache) parts.push(`${Math.round(cacheFillFraction(s.cache) * 100)}%`);
  let icon = '$(sparkle)';
  if (!gate.enabled) icon = '$(circle-slash)';
  else if (gate.snoozeMinutesLeft > 0) icon = '$(bell-slash)';
  const snooze = gate.enabled && gate.snoozeMinutesLeft > 0 ? ` · snoozed ${gate.snoozeMinutesLeft}m` : '';
  return { text: `${icon} ${parts.join(' · ')}${snooze}`, tooltip, severity: s.restartRequired.length ? 'warning' : 'normal' };
}

function shorten(s: string, n: number): string {
  return s.length <= n ? s : `${s.slice(0, n - 1)}…`;
}

/** Escapes characters Markdown would interpret (tooltips are MarkdownStrings). */
export function escapeMd(s: string): string {
  return s.replace(/[\\`*_{}[\]()#+!|<>]/g, (c) => `\\${c}`);
}
