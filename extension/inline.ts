// Inline completions (ghost text). vscode-languageclient registers the provider for the server's
// textDocument/inlineCompletion; this middleware decides whether a request goes out at all
// (toggle, snooze, language), waits out the typing debounce (a keystroke cancels the previous
// request's token, so a burst of typing sends one request), and forwards it with its
// cancellation. Multi-line items, cycling (Alt+] / Alt+[ ask again with triggerKind Invoke, and
// the server then returns several items) and partial accept (VS Code's acceptNextWord /
// acceptNextLine commands) work on what the server returns, with nothing more here.

import * as vscode from 'vscode';
import { clientSettings } from './config';
import { debounce } from './debounce';
import { CompletionGate } from './gate';

/** What vscode-languageclient's middleware passes as `next` (the request to the server). */
type ProvideInlineCompletionItemsSignature = (
  document: vscode.TextDocument, position: vscode.Position, context: vscode.InlineCompletionContext, token: vscode.CancellationToken,
) => vscode.ProviderResult<vscode.InlineCompletionItem[] | vscode.InlineCompletionList>;

export interface InlineStats {
  requests: number;
  skipped: number;
  cancelled: number;
  items: number;
  lastMs: number;
}

export class InlineController {
  readonly stats: InlineStats = { requests: 0, skipped: 0, cancelled: 0, items: 0, lastMs: 0 };

  constructor(readonly gate: CompletionGate, private readonly log: vscode.LogOutputChannel) {}

  async provide(
    document: vscode.TextDocument, position: vscode.Position, context: vscode.InlineCompletionContext,
    token: vscode.CancellationToken, next: ProvideInlineCompletionItemsSignature,
  ): Promise<vscode.InlineCompletionItem[] | vscode.InlineCompletionList | null | undefined> {
    const cfg = clientSettings();
    const verdict = this.gate.check(document.languageId, cfg.enabledLanguages, Date.now());
    const explicit = context.triggerKind === vscode.InlineCompletionTriggerKind.Invoke;
    // An explicit request (Alt+\ or cycling) ignores a snooze but not the toggle or the language list.
    if (!verdict.allowed && !(explicit && verdict.reason === 'snoozed')) { this.stats.skipped++; return undefined; }
    if (!explicit && !(await debounce(cfg.debounceMs, token))) { this.stats.cancelled++; return undefined; }
    const t0 = Date.now();
    this.stats.requests++;
    try {
      const r = await next(document, position, context, token);
      if (token.isCancellationRequested) { this.stats.cancelled++; return undefined; }
      const items = Array.isArray(r) ? r : r?.items ?? [];
      this.stats.items += items.length;
      this.stats.lastMs = Date.now() - t0;
      this.log.trace(`inline completion ${document.uri.toString()}:${position.line + 1}:${position.character + 1} ` +
        `(${explicit ? 'invoked' : 'automatic'}): ${items.length} item(s) in ${this.stats.lastMs} ms`);
      return r;
    } catch (e) {
      if (!token.isCancellationRequested) this.log.warn(`inline completion failed: ${(e as Error).message}`);
      return undefined;
    }
  }
}
