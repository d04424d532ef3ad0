// Shows the server's work-done progress (model load, large ingests) as VS Code progress
// notifications with a Cancel button. vscode-languageclient's own progress feature puts it in the
// status bar only; registered after it, this feature's handler for window/workDoneProgress/create
// replaces that one.

import * as vscode from 'vscode';
import {
  BaseLanguageClient, ClientCapabilities, Disposable, FeatureState, ProgressToken, StaticFeature,
  WorkDoneProgress, WorkDoneProgressBegin, WorkDoneProgressCancelNotification, WorkDoneProgressCreateRequest,
  WorkDoneProgressReport,
} from 'vscode-languageclient/node';

interface Part {
  token: ProgressToken;
  handler: Disposable;
  progress?: vscode.Progress<{ message?: string; increment?: number }>;
  done?: () => void;
  percentage: number;
  ended: boolean;
}

export class NotificationProgressFeature implements StaticFeature {
  private parts = new Map<ProgressToken, Part>();

  constructor(private readonly client: BaseLanguageClient, private readonly log: (m: string) => void) {}

  fillClientCapabilities(capabilities: ClientCapabilities): void {
    capabilities.window = capabilities.window ?? {};
    capabilities.window.workDoneProgress = true;
  }

  getState(): FeatureState { return { kind: 'static' }; }

  initialize(): void {
    this.client.onRequest(WorkDoneProgressCreateRequest.type, (params) => { this.create(params.token); });
  }

  private create(token: ProgressToken): void {
    const part: Part = { token, percentage: 0, ended: false, handler: { dispose() {} } };
    this.parts.set(token, part);
    part.handler = this.client.onProgress(WorkDoneProgress.type, token, (value) => {
      if (value.kind === 'begin') this.begin(part, value);
      else if (value.kind === 'report') this.report(part, value);
      else this.end(part);
    });
  }

  private begin(part: Part, value: WorkDoneProgressBegin): void {
    this.log(`progress: ${value.title}${value.message ? ` — ${value.message}` : ''}`);
    void vscode.window.withProgress({
      location: vscode.ProgressLocation.Notification, title: value.title, cancellable: value.cancellable === true,
    }, (progress, cancel) => new Promise<void>((resolve) => {
      part.progress = progress;
      part.done = resolve;
      if (part.ended) { resolve(); return; }
      cancel.onCancellationRequested(() => {
        void this.client.sendNotification(WorkDoneProgressCancelNotification.type, { token: part.token }).catch(() => undefined);
      });
      this.report(part, { kind: 'report', message: value.message, percentage: value.percentage });
    }));
  }

  private report(part: Part, value: WorkDoneProgressReport): void {
    if (!part.progress) return;
    let increment: number | undefined;
    if (typeof value.percentage === 'number') {
      const pct = Math.max(part.percentage, Math.min(100, value.percentage));
      increment = pct - part.percentage;
      part.percentage = pct;
    }
    part.progress.report({ message: value.message, increment });
  }

  private end(part: Part): void {
    part.ended = true;
    part.done?.();
    part.handler.dispose();
    this.parts.delete(part.token);
  }

  clear(): void {
    for (const p of [...this.parts.values()]) this.end(p);
  }
}
