// The Endless extension's entry point: it holds no model logic. It starts the language server
// (client.ts), and wires what the user sees to it: inline completions (inline.ts), the status bar
// (statusBar.ts), the chat view (chatView.ts), the Summaries view (summariesView.ts), Apply diffs
// (applyDiff.ts), and the commands. `activate` returns a small API the in-host tests use.

import * as vscode from 'vscode';
import {
  ActiveDocumentNotification, SessionInspectRequest, SessionNewRequest, SessionRestoreRequest, SessionSaveRequest,
  SETTINGS_SECTION, StatusParams,
} from '../server/protocol';
import { ApplyDiff } from './applyDiff';
import { ChatViewProvider } from './chatView';
import { ServerManager } from './client';
import { CompletionGate } from './gate';
import { InlineController } from './inline';
import { showStatusMenu, StatusBar } from './statusBar';
import { SummariesView } from './summariesView';

const GATE_KEY = 'endless.gate';

export interface EndlessApi {
  server: ServerManager;
  gate: CompletionGate;
  chat: ChatViewProvider;
  summaries: SummariesView;
  inline: InlineController;
  apply: ApplyDiff;
  status(): StatusParams | undefined;
}

let manager: ServerManager | undefined;

export function activate(context: vscode.ExtensionContext): EndlessApi {
  const output = vscode.window.createOutputChannel('Endless', { log: true });
  context.subscriptions.push(output);

  // The toggle and the snooze survive a reload of the window (per machine, not per workspace).
  const gate = new CompletionGate(context.globalState.get(GATE_KEY, {}));
  context.subscriptions.push(gate.onChange(() => { void context.globalState.update(GATE_KEY, gate.snapshot); }));

  const inline = new InlineController(gate, output);
  const server = new ServerManager(context, output, inline);
  manager = server;
  context.subscriptions.push(server);

  const statusBar = new StatusBar(gate);
  context.subscriptions.push(statusBar,
    server.onStatus((s) => statusBar.update(s)),
    server.onStopped((reason) => statusBar.stopped(reason)));

  const apply = new ApplyDiff();
  const chat = new ChatViewProvider(context, server, apply);
  const summaries = new SummariesView(server);
  context.subscriptions.push(apply, chat, summaries,
    vscode.window.registerWebviewViewProvider(ChatViewProvider.viewId, chat, { webviewOptions: { retainContextWhenHidden: true } }));

  registerActiveDocument(context, server);
  registerCommands(context, server, gate, chat, output);

  server.start();
  return { server, gate, chat, summaries, inline, apply, status: () => server.lastStatus };
}

export async function deactivate(): Promise<void> {
  await manager?.stop();
  manager = undefined;
}

/** Tells the server which document is active and where the cursor is (it shows their surroundings to the model). */
function registerActiveDocument(context: vscode.ExtensionContext, server: ServerManager): void {
  let last: { uri: string; line: number } | undefined;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const send = (editor: vscode.TextEditor | undefined, force: boolean) => {
    if (!editor || !['file', 'untitled'].includes(editor.document.uri.scheme)) return;
    const uri = editor.document.uri.toString();
    const line = editor.selection.active.line;
    // Moving within the same region is not news; a jump of many lines is.
    if (!force && last && last.uri === uri && Math.abs(last.line - line) < 40) return;
    last = { uri, line };
    void server.notify(ActiveDocumentNotification, { uri, position: { line, character: editor.selection.active.character } })
      .catch(() => undefined);
  };
  context.subscriptions.push(
    vscode.window.onDidChangeActiveTextEditor((e) => send(e, true)),
    vscode.window.onDidChangeTextEditorSelection((e) => {
      if (timer) clearTimeout(timer);
      timer = setTimeout(() => send(e.textEditor, false), 400);
    }),
    server.onReady(() => { last = undefined; send(vscode.window.activeTextEditor, true); }),
    { dispose: () => { if (timer) clearTimeout(timer); } },
  );
}

async function reportErrors<T>(what: string, fn: () => Promise<T>): Promise<T | undefined> {
  try {
    return await fn();
  } catch (e) {
    void vscode.window.showErrorMessage(`Endless: ${what}: ${(e as Error).message ?? e}`);
    return undefined;
  }
}

function registerCommands(
  context: vscode.ExtensionContext, server: ServerManager, gate: CompletionGate, chat: ChatViewProvider, output: vscode.LogOutputChannel,
): void {
  const reg = (id: string, fn: (...args: any[]) => unknown) => context.subscriptions.push(vscode.commands.registerCommand(id, fn));

  reg('endless.statusMenu', () => showStatusMenu(gate));
  reg('endless.toggleCompletions', () => {
    const on = gate.toggle();
    void vscode.window.setStatusBarMessage(`Endless: inline completions ${on ? 'on' : 'off'}`, 2500);
    return on;
  });
  reg('endless.snooze', async (minutes?: number) => {
    let m = minutes;
    if (m === undefined) {
      const pick = await vscode.window.showQuickPick(
        ['5', '15', '30', '60', '120'].map((v) => ({ label: `${v} minutes`, value: Number(v) })),
        { title: 'Endless: snooze inline completions for' });
      if (!pick) return undefined;
      m = pick.value;
    }
    try {
      const until = gate.snooze(m, Date.now());
      void vscode.window.setStatusBarMessage(`Endless: inline completions snoozed until ${new Date(until).toLocaleTimeString()}`, 3000);
      return until;
    } catch (e) {
      void vscode.window.showErrorMessage(`Endless: ${(e as Error).message}`);
      return undefined;
    }
  });
  reg('endless.unsnooze', () => gate.unsnooze());
  reg('endless.pickModel', async () => {
    const picked = await vscode.window.showOpenDialog({
      title: 'Endless: pick a GGUF model file', canSelectMany: false, openLabel: 'Use this model',
      filters: { 'GGUF models': ['gguf'], 'All files': ['*'] },
    });
    if (!picked?.length) return undefined;
    // Machine scope: the user's (or the remote machine's) settings; the server restarts on the change.
    await vscode.workspace.getConfiguration(SETTINGS_SECTION).update('modelPath', picked[0].fsPath, vscode.ConfigurationTarget.Global);
    return picked[0].fsPath;
  });
  reg('endless.openChat', () => chat.reveal());
  reg('endless.chat.new', () => chat.newChat());
  reg('endless.chat.stop', () => chat.stop());
  reg('endless.chat.history', () => chat.pickHistory());
  reg('endless.showLogs', () => output.show(true));
  reg('endless.restartServer', () => server.restart('restart requested'));
  reg('endless.newSession', async (keepMemory?: boolean) => {
    let keep = keepMemory;
    if (typeof keep !== 'boolean') {
      const pick = await vscode.window.showQuickPick([
        { label: 'Keep the last summary as memory', keep: true },
        { label: 'Start from nothing', keep: false },
      ], { title: 'Endless: start a new session (the cache is emptied)' });
      if (!pick) return undefined;
      keep = pick.keep;
    }
    return reportErrors('new session', async () => {
      await server.request(SessionNewRequest, { keepMemory: keep });
      void vscode.window.showInformationMessage('Endless: a new session started.');
      return true;
    });
  });
  reg('endless.saveSession', () => reportErrors('save session', async () => {
    const r = await server.request(SessionSaveRequest);
    void vscode.window.showInformationMessage(`Endless: session saved (${(r.bytes / 1e6).toFixed(1)} MB in ${r.ms} ms) to ${r.path}`);
    return r;
  }));
  reg('endless.restoreSession', () => reportErrors('restore session', async () => {
    const r = await server.request(SessionRestoreRequest);
    const msg = r.restored ? `session restored: ${r.seen} tokens seen, ${r.replayed} events replayed` : `session not restored: ${r.reason}`;
    void (r.restored ? vscode.window.showInformationMessage(`Endless: ${msg}`) : vscode.window.showWarningMessage(`Endless: ${msg}`));
    return r;
  }));
  reg('endless.inspectSession', () => reportErrors('inspect session', async () => {
    const r = await server.request(SessionInspectRequest, { tailTokens: 512 });
    const doc = await vscode.workspace.openTextDocument({ language: 'json', content: JSON.stringify(r, null, 2) });
    await vscode.window.showTextDocument(doc, { preview: true });
    return r;
  }));
}
