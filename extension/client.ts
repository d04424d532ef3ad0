// Runs the language server (dist/server.js) with vscode-languageclient over stdio and keeps it
// running: a crash is reported (notification + output channel, with the exit status and the
// server's last stderr lines) and followed by a restart, unless it keeps crashing; a change to a
// setting that shapes the model or the cache restarts it. Each server run gets a fresh
// LanguageClient, so everything registered for one run is freed with it. The rest of the
// extension talks to the server only through this class: typed requests that wait for the
// server, and events for its notifications.

import * as cp from 'node:child_process';
import * as fs from 'node:fs';
import * as readline from 'node:readline';
import * as vscode from 'vscode';
import {
  CancellationToken, CloseAction, ErrorAction, LanguageClient, LanguageClientOptions, ProtocolNotificationType,
  ProtocolRequestType, ProtocolRequestType0, State,
} from 'vscode-languageclient/node';
import {
  ChatChunkNotification, ChatChunkParams, EndlessInitializationOptions, SETTINGS_SECTION, StatusNotification, StatusParams,
  StatusRequest, Summary, SummaryPublishedNotification,
} from '../server/protocol';
import { serverSettings } from './config';
import { InlineController } from './inline';
import { NotificationProgressFeature } from './progress';
import { CrashPolicy, crashReason, restartKeysAffected, TailBuffer } from './restart';

export class ServerManager implements vscode.Disposable {
  private client: LanguageClient | undefined;
  private clientReady: Promise<LanguageClient> | undefined;
  private child: cp.ChildProcess | undefined;
  private lastExit: { code: number | null; signal: string | null } | undefined;
  private exitWaiters: (() => void)[] = [];
  private readonly tail = new TailBuffer(40);
  private readonly crashes = new CrashPolicy();
  private stopping = false;
  private disposed = false;
  private restartTimer: ReturnType<typeof setTimeout> | undefined;
  private readonly subscriptions: vscode.Disposable[] = [];

  private readonly statusEmitter = new vscode.EventEmitter<StatusParams>();
  private readonly chunkEmitter = new vscode.EventEmitter<ChatChunkParams>();
  private readonly summaryEmitter = new vscode.EventEmitter<Summary>();
  private readonly readyEmitter = new vscode.EventEmitter<void>();
  private readonly stoppedEmitter = new vscode.EventEmitter<string>();
  readonly onStatus = this.statusEmitter.event;
  readonly onChatChunk = this.chunkEmitter.event;
  readonly onSummary = this.summaryEmitter.event;
  /** A server run started and finished initializing (also after a restart). */
  readonly onReady = this.readyEmitter.event;
  /** A server run ended (crash or restart); the reason as a sentence. */
  readonly onStopped = this.stoppedEmitter.event;
  lastStatus: StatusParams | undefined;

  constructor(
    private readonly context: vscode.ExtensionContext,
    readonly output: vscode.LogOutputChannel,
    private readonly inline: InlineController,
  ) {
    this.subscriptions.push(vscode.workspace.onDidChangeConfiguration((e) => {
      const keys = restartKeysAffected((s) => e.affectsConfiguration(s));
      if (keys.length) this.scheduleRestart(`${keys.join(', ')} changed`, 600);
    }));
    this.subscriptions.push(vscode.workspace.onDidGrantWorkspaceTrust(() => this.scheduleRestart('the workspace is now trusted', 100)));
  }

  get running(): boolean { return this.client?.state === State.Running; }

  /** The running client, waiting for the current start; rejects when the server cannot start. */
  async ready(): Promise<LanguageClient> {
    if (!this.clientReady) this.start();
    return this.clientReady!;
  }

  async request<R>(type: ProtocolRequestType0<R, never, void, void>, token?: CancellationToken): Promise<R>;
  async request<P, R>(type: ProtocolRequestType<P, R, never, void, void>, params: P, token?: CancellationToken): Promise<R>;
  async request(type: ProtocolRequestType0<unknown, never, void, void> | ProtocolRequestType<unknown, unknown, never, void, void>, a?: unknown, b?: unknown): Promise<unknown> {
    const client = await this.ready();
    if (type.numberOfParams === 0) return client.sendRequest(type as ProtocolRequestType0<unknown, never, void, void>, a as CancellationToken | undefined);
    return client.sendRequest(type as ProtocolRequestType<unknown, unknown, never, void, void>, a, b as CancellationToken | undefined);
  }

  async notify<P>(type: ProtocolNotificationType<P, void>, params: P): Promise<void> {
    if (!this.running) return;
    await this.client!.sendNotification(type, params as never);
  }

  /** The client's inline completion provider (for the in-host tests). */
  inlineProvider(document: vscode.TextDocument): vscode.InlineCompletionItemProvider | undefined {
    return this.client?.getFeature('textDocument/inlineCompletion')?.getProvider(document);
  }

  start(): void {
    if (this.disposed || this.clientReady) return;
    const client = this.createClient();
    this.client = client;
    this.output.info(`starting the language server (${this.serverModule()})`);
    this.clientReady = client.start().then(async () => {
      this.readyEmitter.fire();
      try {
        const s = await client.sendRequest(StatusRequest);
        this.setStatus(s);
      } catch (e) {
        this.output.warn(`status request failed: ${(e as Error).message}`);
      }
      return client;
    }, (e: unknown) => {
      const reason = crashReason(this.lastExit, this.tail.last(5));
      const message = `the language server could not start: ${(e as Error)?.message ?? e}`;
      this.output.error(`${message}; ${reason}`);
      if (this.client === client) {
        this.stoppedEmitter.fire(message);
        void vscode.window.showErrorMessage(`Endless: ${message}`, 'Show Logs', 'Restart').then((a) => {
          if (a === 'Show Logs') this.output.show(true);
          else if (a === 'Restart') void this.restart('restart requested');
        });
      }
      throw new Error(`Endless: ${message}`);
    });
    this.clientReady.catch(() => undefined);
  }

  /** Stops the current run (if any) and starts a new one. */
  async restart(why: string): Promise<void> {
    if (this.disposed) return;
    this.output.info(`restarting the language server: ${why}`);
    await this.stop();
    this.crashes.reset();
    this.start();
    await this.clientReady?.catch(() => undefined);
  }

  private scheduleRestart(why: string, delayMs: number): void {
    if (this.restartTimer) clearTimeout(this.restartTimer);
    this.restartTimer = setTimeout(() => {
      this.restartTimer = undefined;
      void vscode.window.setStatusBarMessage(`$(sync~spin) Endless: restarting the server (${why})`, 5000);
      void this.restart(why);
    }, delayMs);
  }

  async stop(): Promise<void> {
    const client = this.client;
    this.client = undefined;
    this.clientReady = undefined;
    this.lastStatus = undefined;
    if (!client) return;
    this.stopping = true;
    try {
      if (client.state === State.Running || client.state === State.Starting) await client.stop(4000);
    } catch (e) {
      this.output.warn(`stopping the server: ${(e as Error).message}`);
    } finally {
      this.stopping = false;
      await client.dispose().catch(() => undefined);
      this.killChild();
    }
  }

  private killChild(): void {
    const child = this.child;
    if (child && child.exitCode === null && child.signalCode === null) {
      try { child.kill('SIGTERM'); } catch { /* already gone */ }
    }
  }

  private serverModule(): string {
    return this.context.asAbsolutePath('dist/server.js');
  }

  private storagePath(): string | undefined {
    const uri = this.context.storageUri ?? this.context.globalStorageUri;
    try {
      fs.mkdirSync(uri.fsPath, { recursive: true });
      return uri.fsPath;
    } catch (e) {
      this.output.warn(`no storage folder for the session (${(e as Error).message}); persistence is off`);
      return undefined;
    }
  }

  private async waitForExit(ms: number): Promise<void> {
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    await new Promise<void>((resolve) => {
      const t = setTimeout(resolve, ms);
      this.exitWaiters.push(() => { clearTimeout(t); resolve(); });
    });
  }

  private createClient(): LanguageClient {
    const module = this.serverModule();
    const serverOptions = async (): Promise<cp.ChildProcess> => {
      if (!fs.existsSync(module)) throw new Error(`${module} is missing (run \`npm run bundle\`)`);
      this.lastExit = undefined;
      this.tail.clear();
      // The extension host may be Electron (desktop VS Code): ELECTRON_RUN_AS_NODE makes it plain Node.
      const child = cp.spawn(process.execPath, [module, '--stdio'], {
        cwd: this.context.extensionPath,
        env: { ...process.env, ELECTRON_RUN_AS_NODE: '1' },
        stdio: ['pipe', 'pipe', 'pipe'],
      });
      this.child = child;
      child.on('exit', (code, signal) => {
        this.lastExit = { code, signal };
        this.output.info(`the language server process ${child.pid} exited (${signal ? `signal ${signal}` : `code ${code}`})`);
        const w = this.exitWaiters;
        this.exitWaiters = [];
        for (const f of w) f();
      });
      child.on('error', (e) => this.output.error(`the language server process failed: ${e.message}`));
      return child;
    };

    const initializationOptions: EndlessInitializationOptions = { storagePath: this.storagePath(), settings: serverSettings() };
    const clientOptions: LanguageClientOptions = {
      documentSelector: [{ scheme: 'file' }, { scheme: 'untitled' }],
      outputChannel: this.output,
      initializationOptions,
      // The server keeps its own output on stderr; keep its last lines to say why it died.
      stdioOptions: {
        stdout: (input, out) => { readline.createInterface({ input, crlfDelay: Infinity }).on('line', (l) => out.info(l)); },
        stderr: (input, out) => {
          readline.createInterface({ input, crlfDelay: Infinity }).on('line', (l) => { this.tail.push(l); out.error(`[server] ${l}`); });
        },
      },
      middleware: {
        provideInlineCompletionItems: (document, position, context, token, next) => this.inline.provide(document, position, context, token, next),
        workspace: {
          // The server pulls `endless`; answer with the machine-scoped model path fixed up.
          configuration: async (params, token, next) => {
            const result = await next(params, token);
            if (!Array.isArray(result)) return result;
            return params.items.map((item, i) => (item.section === SETTINGS_SECTION ? serverSettings() : result[i]));
          },
        },
      },
      errorHandler: {
        error: (error, _message, count) => {
          this.output.error(`connection error: ${error.message}`);
          return { action: (count ?? 0) <= 3 ? ErrorAction.Continue : ErrorAction.Shutdown, handled: true };
        },
        closed: async () => {
          if (this.stopping || this.disposed || this.client !== client) return { action: CloseAction.DoNotRestart, handled: true };
          await this.waitForExit(1500);
          this.onCrash(client);
          return { action: CloseAction.DoNotRestart, handled: true };
        },
      },
    };

    const client = new LanguageClient('endless', 'Endless', serverOptions, clientOptions);
    client.registerFeature(new NotificationProgressFeature(client, (m) => this.output.info(m)));
    client.onNotification(StatusNotification, (s) => this.setStatus(s));
    client.onNotification(ChatChunkNotification, (p) => this.chunkEmitter.fire(p));
    client.onNotification(SummaryPublishedNotification, (s) => this.summaryEmitter.fire(s));
    return client;
  }

  private setStatus(s: StatusParams): void {
    this.lastStatus = s;
    this.statusEmitter.fire(s);
  }

  private onCrash(client: LanguageClient): void {
    const reason = crashReason(this.lastExit, this.tail.last(8));
    this.output.error(`${reason}`);
    for (const l of this.tail.last(20)) this.output.error(`  | ${l}`);
    this.client = undefined;
    this.clientReady = undefined;
    this.lastStatus = undefined;
    void client.dispose().catch(() => undefined);
    this.stoppedEmitter.fire(reason);
    const restart = this.crashes.crashed(Date.now());
    const n = this.crashes.recent;
    if (restart) {
      void vscode.window.showWarningMessage(`Endless: ${reason}. Restarting it (crash ${n} in the last 3 minutes).`, 'Show Logs')
        .then((a) => { if (a === 'Show Logs') this.output.show(true); });
      setTimeout(() => this.start(), 500 * n);
    } else {
      void vscode.window.showErrorMessage(`Endless: ${reason}. It crashed ${n} times in 3 minutes and stays stopped.`, 'Restart', 'Show Logs')
        .then((a) => {
          if (a === 'Restart') void this.restart('restart requested');
          else if (a === 'Show Logs') this.output.show(true);
        });
    }
  }

  /** Process id of the running server (tests kill it to check the restart). */
  get serverPid(): number | undefined { return this.child?.exitCode === null ? this.child.pid : undefined; }

  dispose(): void {
    this.disposed = true;
    if (this.restartTimer) clearTimeout(this.restartTimer);
    for (const d of this.subscriptions) d.dispose();
    void this.stop();
    this.statusEmitter.dispose();
    this.chunkEmitter.dispose();
    this.summaryEmitter.dispose();
    this.readyEmitter.dispose();
    this.stoppedEmitter.dispose();
  }
}
