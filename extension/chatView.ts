// The chat view (a WebviewView in the Endless activity-bar container). The host side keeps the
// transcript, sends turns to the server (endless/chat/send), forwards the streamed chunks to the
// webview, stops turns, archives chats for the history list, and carries out the code-block
// actions (copy, insert at cursor, apply as a diff). The webview itself (extension/webview/)
// only renders: it loads one bundled script under a strict Content Security Policy with a nonce.

import * as crypto from 'node:crypto';
import * as vscode from 'vscode';
import { ChatHistoryRequest, ChatNewRequest, ChatSendRequest, ChatStopRequest, StatusParams } from '../server/protocol';
import { ApplyDiff } from './applyDiff';
import { chatHtml, chatNonce } from './chatHtml';
import { ServerManager } from './client';
import { archiveChat, ArchivedChat, Transcript } from './transcript';
import { CacheView, FromWebview, parseFromWebview, ToWebview } from './webviewProtocol';

const HISTORY_KEY = 'endless.chatHistory';

export class ChatViewProvider implements vscode.WebviewViewProvider, vscode.Disposable {
  static readonly viewId = 'endless.chat';
  private view: vscode.WebviewView | undefined;
  private readonly transcript = new Transcript();
  private readonly pending = new Map<string, vscode.CancellationTokenSource>();
  private cache: CacheView | undefined;
  private readOnly: ArchivedChat | undefined;
  private lastEditor: vscode.TextEditor | undefined;
  private readonly subs: vscode.Disposable[] = [];
  private loadedFromServer = false;
  /** Resolvers waiting for the webview's `ready` (tests and commands that post before it loaded). */
  private readyWaiters: (() => void)[] = [];
  private webviewReady = false;

  constructor(
    private readonly context: vscode.ExtensionContext,
    private readonly server: ServerManager,
    private readonly apply: ApplyDiff,
  ) {
    this.lastEditor = vscode.window.activeTextEditor;
    this.subs.push(
      vscode.window.onDidChangeActiveTextEditor((e) => { if (e) this.lastEditor = e; }),
      server.onChatChunk((p) => {
        const turn = this.transcript.applyChunk(p);
        if (turn) this.post({ type: 'chunk', turnId: p.turnId, delta: p.delta, tokens: p.tokens, done: p.done });
      }),
      server.onStatus((s) => this.setStatus(s)),
      server.onReady(() => { void this.loadHistory(); }),
    );
  }

  resolveWebviewView(view: vscode.WebviewView): void {
    this.view = view;
    this.webviewReady = false;
    const dist = vscode.Uri.joinPath(this.context.extensionUri, 'dist');
    view.webview.options = { enableScripts: true, localResourceRoots: [dist] };
    view.webview.html = this.html(view.webview, dist);
    this.subs.push(
      view.webview.onDidReceiveMessage((m) => { void this.onMessage(m); }),
      view.onDidDispose(() => { if (this.view === view) { this.view = undefined; this.webviewReady = false; } }),
    );
  }

  private html(webview: vscode.Webview, dist: vscode.Uri): string {
    // No inline script or style, nothing remote: only the bundled script (by nonce) and stylesheet.
    return chatHtml({
      nonce: chatNonce(),
      cspSource: webview.cspSource,
      scriptUri: webview.asWebviewUri(vscode.Uri.joinPath(dist, 'webview.js')).toString(),
      styleUri: webview.asWebviewUri(vscode.Uri.joinPath(dist, 'webview.css')).toString(),
    });
  }

  private setBusy(busy: boolean): void {
    // The view title's Stop button shows only while an answer streams.
    void vscode.commands.executeCommand('setContext', 'endless.chatBusy', busy);
    this.post({ type: 'busy', busy });
  }

  private post(m: ToWebview): void {
    if (this.view && this.webviewReady) void this.view.webview.postMessage(m);
  }

  private setStatus(s: StatusParams): void {
    this.cache = { cache: s.cache, seen: s.seen, evicted: s.evicted, state: s.state, message: s.message };
    this.post({ type: 'cache', view: this.cache });
  }

  private history(): ArchivedChat[] {
    return this.context.workspaceState.get<ArchivedChat[]>(HISTORY_KEY, []);
  }

  private sendReset(): void {
    if (this.readOnly) this.post({ type: 'reset', turns: this.readOnly.turns, readOnly: { title: this.readOnly.title } });
    else this.post({ type: 'reset', turns: this.transcript.turns });
    this.post({ type: 'history', chats: this.history().map(({ id, title, time }) => ({ id, title, time })) });
    if (this.cache) this.post({ type: 'cache', view: this.cache });
    this.post({ type: 'busy', busy: !!this.transcript.streamingTurn });
  }

  /** After a (re)start of the server, show what it remembers of the current chat. */
  private async loadHistory(): Promise<void> {
    if (this.transcript.streamingTurn) return;
    try {
      const { messages } = await this.server.request(ChatHistoryRequest);
      if (messages.length || !this.loadedFromServer) {
        this.transcript.load(messages);
        this.loadedFromServer = true;
        if (!this.readOnly) this.sendReset();
      }
    } catch (e) {
      this.server.output.warn(`chat history: ${(e as Error).message}`);
    }
  }

  private async onMessage(raw: unknown): Promise<void> {
    const m = parseFromWebview(raw);
    if (typeof m === 'string') { this.server.output.warn(`chat view: ${m}`); return; }
    await this.handle(m);
  }

  private async handle(m: FromWebview): Promise<void> {
    switch (m.type) {
      case 'ready':
        this.webviewReady = true;
        this.sendReset();
        for (const w of this.readyWaiters.splice(0)) w();
        return;
      case 'send': await this.send(m.text, m.includeSelection); return;
      case 'stop': await this.stop(); return;
      case 'newChat': await this.newChat(); return;
      case 'copy':
        await vscode.env.clipboard.writeText(m.code);
        void vscode.window.setStatusBarMessage('$(check) Endless: code copied', 2000);
        return;
      case 'insert': await this.insert(m.code); return;
      case 'apply': {
        const editor = this.editor();
        if (!editor) { void vscode.window.showWarningMessage('Endless: open a file to apply the code to.'); return; }
        await this.apply.propose(editor, m.code);
        return;
      }
      case 'openHistory': {
        const chat = this.history().find((c) => c.id === m.id);
        if (!chat) { void vscode.window.showWarningMessage('Endless: that chat is no longer in the history.'); return; }
        this.readOnly = chat;
        this.sendReset();
        return;
      }
      case 'backToChat':
        this.readOnly = undefined;
        this.sendReset();
        return;
    }
  }

  private editor(): vscode.TextEditor | undefined {
    const active = vscode.window.activeTextEditor;
    if (active) return active;
    const last = this.lastEditor;
    return last && vscode.window.visibleTextEditors.includes(last) ? last : vscode.window.visibleTextEditors[0];
  }

  private async insert(code: string): Promise<void> {
    const editor = this.editor();
    if (!editor) { void vscode.window.showWarningMessage('Endless: open a file to insert the code into.'); return; }
    await editor.edit((b) => b.replace(editor.selection, code));
    await vscode.window.showTextDocument(editor.document, editor.viewColumn);
  }

  /** Sends one user turn and streams the answer into the view. Resolves with the final text. */
  async send(text: string, includeSelection = false): Promise<string> {
    if (this.transcript.streamingTurn) {
      void vscode.window.showInformationMessage('Endless: the answer is still streaming; stop it first.');
      return '';
    }
    this.readOnly = undefined;
    const turnId = `t${Date.now().toString(36)}-${crypto.randomBytes(4).toString('hex')}`;
    let context: { uri: string; text: string } | undefined;
    const editor = this.editor();
    if (includeSelection && editor && !editor.selection.isEmpty) {
      context = { uri: editor.document.uri.toString(), text: editor.document.getText(editor.selection) };
    }
    const now = Date.now();
    this.transcript.addUser(turnId, text, now);
    this.sendReset();
    const cts = new vscode.CancellationTokenSource();
    this.pending.set(turnId, cts);
    this.setBusy(true);
    try {
      const r = await this.server.request(ChatSendRequest, { turnId, text, context }, cts.token);
      const turn = this.transcript.finish(turnId, r.text, r.reason, r.tokens);
      if (turn) this.post({ type: 'turn', turn });
      this.server.output.info(`chat turn ${turnId}: ${r.tokens} tokens, ${r.reason}, first token ${r.firstTokenMs} ms, total ${r.totalMs} ms`);
      return r.text;
    } catch (e) {
      const msg = (e as Error).message ?? String(e);
      const turn = this.transcript.fail(turnId, msg);
      if (turn) this.post({ type: 'turn', turn });
      this.server.output.warn(`chat turn ${turnId} failed: ${msg}`);
      return '';
    } finally {
      this.pending.delete(turnId);
      cts.dispose();
      this.setBusy(false);
    }
  }

  /** Stops the streaming answer; true when the server stopped it (false: nothing was streaming). */
  async stop(): Promise<boolean> {
    const turn = this.transcript.streamingTurn;
    if (!turn) return false;
    try {
      return (await this.server.request(ChatStopRequest, { turnId: turn.turnId })).stopped;
    } catch (e) {
      // The server could not stop it by id: cancel the request itself.
      this.server.output.warn(`chat stop: ${(e as Error).message}`);
      this.pending.get(turn.turnId)?.cancel();
      return true;
    }
  }

  async newChat(): Promise<void> {
    await this.stop();
    const history = archiveChat(this.history(), this.transcript, `c${Date.now().toString(36)}`, Date.now());
    await this.context.workspaceState.update(HISTORY_KEY, history);
    this.transcript.clear();
    this.readOnly = undefined;
    this.sendReset();
    try { await this.server.request(ChatNewRequest); } catch (e) { this.server.output.warn(`new chat: ${(e as Error).message}`); }
  }

  /** Shows the history as a quick pick (the view title's History button). */
  async pickHistory(): Promise<void> {
    const chats = this.history();
    if (!chats.length) { void vscode.window.showInformationMessage('Endless: no earlier chats yet.'); return; }
    const pick = await vscode.window.showQuickPick(
      chats.map((c) => ({ label: c.title, description: new Date(c.time).toLocaleString(), id: c.id })),
      { title: 'Endless: earlier chats' });
    if (pick) { await this.reveal(); await this.handle({ type: 'openHistory', id: pick.id }); }
  }

  async reveal(): Promise<void> {
    await vscode.commands.executeCommand(`${ChatViewProvider.viewId}.focus`);
    if (!this.webviewReady) {
      await new Promise<void>((resolve) => { const t = setTimeout(resolve, 10_000); this.readyWaiters.push(() => { clearTimeout(t); resolve(); }); });
    }
    this.post({ type: 'focusInput' });
  }

  /** For tests: the transcript the view shows. */
  get turns() { return this.transcript.turns; }

  dispose(): void {
    for (const c of this.pending.values()) c.cancel();
    for (const s of this.subs) s.dispose();
  }
}
