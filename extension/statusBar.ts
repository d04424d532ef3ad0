// The status bar item (model, device, tokens/s, cache fill; off/snoozed state) and the menu it
// opens. The text comes from status.ts; this file only puts it on screen.

import * as vscode from 'vscode';
import type { StatusParams } from '../server/protocol';
import { CompletionGate } from './gate';
import { formatStatus } from './status';

export class StatusBar implements vscode.Disposable {
  private readonly item: vscode.StatusBarItem;
  private status: StatusParams | undefined;
  private readonly timer: ReturnType<typeof setInterval>;
  private readonly subs: vscode.Disposable[] = [];

  constructor(private readonly gate: CompletionGate) {
    this.item = vscode.window.createStatusBarItem('endless.status', vscode.StatusBarAlignment.Right, 100);
    this.item.name = 'Endless';
    this.item.command = 'endless.statusMenu';
    this.subs.push(gate.onChange(() => this.render()));
    // The snooze countdown, and its end, show without any other event.
    this.timer = setInterval(() => this.render(), 30_000);
    this.render();
    this.item.show();
  }

  update(s: StatusParams | undefined): void {
    this.status = s;
    this.render();
  }

  stopped(reason: string): void {
    this.item.text = '$(error) Endless';
    this.item.tooltip = `Endless: ${reason}`;
    this.item.backgroundColor = new vscode.ThemeColor('statusBarItem.errorBackground');
  }

  private render(): void {
    const now = Date.now();
    const v = formatStatus(this.status, { enabled: this.gate.snapshot.enabled, snoozeMinutesLeft: this.gate.snoozeMinutesLeft(now) });
    this.item.text = v.text;
    const md = new vscode.MarkdownString(v.tooltip);
    md.supportThemeIcons = true;
    this.item.tooltip = md;
    this.item.backgroundColor = v.severity === 'error' ? new vscode.ThemeColor('statusBarItem.errorBackground')
      : v.severity === 'warning' ? new vscode.ThemeColor('statusBarItem.warningBackground') : undefined;
  }

  dispose(): void {
    clearInterval(this.timer);
    for (const d of this.subs) d.dispose();
    this.item.dispose();
  }
}

interface MenuItem extends vscode.QuickPickItem { command: string; args?: unknown[] }

/** The menu behind the status bar item. */
export async function showStatusMenu(gate: CompletionGate): Promise<void> {
  const s = gate.snapshot;
  const snoozed = s.snoozedUntil > Date.now();
  const items: MenuItem[] = [
    s.enabled
      ? { label: '$(circle-slash) Disable inline completions', command: 'endless.toggleCompletions' }
      : { label: '$(check) Enable inline completions', command: 'endless.toggleCompletions' },
    snoozed
      ? { label: '$(bell) End the snooze', command: 'endless.unsnooze' }
      : { label: '$(bell-slash) Snooze inline completions…', command: 'endless.snooze' },
    { label: '$(file) Pick a model file…', command: 'endless.pickModel' },
    { label: '$(comment-discussion) Open chat', command: 'endless.openChat' },
    { label: '$(output) Show logs', command: 'endless.showLogs' },
    { label: '$(notebook) Summarize now', command: 'endless.summarizeNow' },
    { label: '$(debug-restart) Restart the server', command: 'endless.restartServer' },
  ];
  const pick = await vscode.window.showQuickPick(items, { title: 'Endless', placeHolder: 'Endless' });
  if (pick) await vscode.commands.executeCommand(pick.command, ...(pick.args ?? []));
}
