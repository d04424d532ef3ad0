// The Summaries view: session summaries newest first (time, text, files touched). A summary opens
// as a Markdown document (endless-summary:), can be copied, and "Summarize now" asks the server
// for one immediately. Summaries arrive as notifications and are listed again after a restart.

import * as vscode from 'vscode';
import { SummariesListRequest, SummarizeNowRequest, Summary } from '../server/protocol';
import { ServerManager } from './client';
import { mergeSummaries, summaryHeadline, summaryMarkdown, summaryTime } from './summaryFormat';

export const SUMMARY_SCHEME = 'endless-summary';

type Node =
  | { kind: 'summary'; summary: Summary }
  | { kind: 'file'; summary: Summary; index: number }
  | { kind: 'text'; summary: Summary };

export class SummariesView implements vscode.TreeDataProvider<Node>, vscode.TextDocumentContentProvider, vscode.Disposable {
  static readonly viewId = 'endless.summaries';
  private summaries: Summary[] = [];
  private readonly changedTree = new vscode.EventEmitter<Node | undefined>();
  readonly onDidChangeTreeData = this.changedTree.event;
  private readonly changedDoc = new vscode.EventEmitter<vscode.Uri>();
  readonly onDidChange = this.changedDoc.event;
  private readonly subs: vscode.Disposable[] = [];
  private readonly tree: vscode.TreeView<Node>;
  private readonly arrivedEmitter = new vscode.EventEmitter<Summary>();
  /** A summary was added to the view (tests wait on it). */
  readonly onDidAdd = this.arrivedEmitter.event;

  constructor(private readonly server: ServerManager) {
    this.tree = vscode.window.createTreeView(SummariesView.viewId, { treeDataProvider: this, showCollapseAll: true });
    this.subs.push(
      this.tree,
      vscode.workspace.registerTextDocumentContentProvider(SUMMARY_SCHEME, this),
      server.onSummary((s) => this.add([s])),
      server.onReady(() => { void this.refresh(); }),
      vscode.commands.registerCommand('endless.summaries.refresh', () => this.refresh()),
      vscode.commands.registerCommand('endless.summarizeNow', () => this.summarizeNow()),
      vscode.commands.registerCommand('endless.summaries.open', (n?: Node | Summary) => this.open(n)),
      vscode.commands.registerCommand('endless.summaries.copy', (n?: Node | Summary) => this.copy(n)),
    );
    this.updateMessage();
  }

  get all(): readonly Summary[] { return this.summaries; }

  private add(list: Summary[]): void {
    const before = new Set(this.summaries.map((s) => s.id));
    this.summaries = mergeSummaries(this.summaries, list);
    this.changedTree.fire(undefined);
    this.updateMessage();
    for (const s of list) if (!before.has(s.id)) this.arrivedEmitter.fire(s);
  }

  private updateMessage(): void {
    this.tree.message = this.summaries.length ? undefined
      : 'No summary yet. One is made when you pause after some activity; or use "Summarize now".';
    this.tree.description = this.summaries.length ? `${this.summaries.length}` : undefined;
  }

  async refresh(): Promise<void> {
    try {
      const { summaries } = await this.server.request(SummariesListRequest);
      this.add(summaries);
    } catch (e) {
      this.server.output.warn(`summaries: ${(e as Error).message}`);
    }
  }

  async summarizeNow(): Promise<Summary | undefined> {
    try {
      const s = await vscode.window.withProgress({ location: { viewId: SummariesView.viewId }, title: 'Summarizing' },
        () => this.server.request(SummarizeNowRequest));
      this.add([s]);
      return s;
    } catch (e) {
      void vscode.window.showErrorMessage(`Endless: could not summarize: ${(e as Error).message}`);
      return undefined;
    }
  }

  private summaryOf(n?: Node | Summary): Summary | undefined {
    if (!n) return this.tree.selection[0]?.summary ?? this.summaries[0];
    return 'kind' in n ? n.summary : n;
  }

  uriOf(s: Summary): vscode.Uri {
    return vscode.Uri.from({ scheme: SUMMARY_SCHEME, path: `/${s.id}.md` });
  }

  async open(n?: Node | Summary): Promise<void> {
    const s = this.summaryOf(n);
    if (!s) return;
    const doc = await vscode.workspace.openTextDocument(this.uriOf(s));
    await vscode.languages.setTextDocumentLanguage(doc, 'markdown');
    await vscode.window.showTextDocument(doc, { preview: true });
  }

  async copy(n?: Node | Summary): Promise<void> {
    const s = this.summaryOf(n);
    if (!s) return;
    await vscode.env.clipboard.writeText(summaryMarkdown(s));
    void vscode.window.setStatusBarMessage('$(check) Endless: summary copied', 2000);
  }

  provideTextDocumentContent(uri: vscode.Uri): string {
    const id = uri.path.replace(/^\//, '').replace(/\.md$/, '');
    const s = this.summaries.find((x) => x.id === id);
    return s ? summaryMarkdown(s) : `This summary (${id}) is no longer in the list.`;
  }

  getTreeItem(n: Node): vscode.TreeItem {
    const s = n.summary;
    if (n.kind === 'summary') {
      const item = new vscode.TreeItem(summaryTime(s.time, Date.now()), vscode.TreeItemCollapsibleState.Collapsed);
      item.id = s.id;
      item.description = summaryHeadline(s);
      item.tooltip = new vscode.MarkdownString(summaryMarkdown(s));
      item.contextValue = 'summary';
      item.iconPath = new vscode.ThemeIcon(s.trigger === 'request' ? 'notebook' : 'history');
      item.command = { command: 'endless.summaries.open', title: 'Open Summary', arguments: [s] };
      return item;
    }
    if (n.kind === 'text') {
      const item = new vscode.TreeItem(summaryHeadline(s), vscode.TreeItemCollapsibleState.None);
      item.id = `${s.id}/text`;
      item.iconPath = new vscode.ThemeIcon('note');
      item.tooltip = s.modelText ?? s.text;
      item.contextValue = 'summaryText';
      return item;
    }
    const f = s.digest.files[n.index];
    const item = new vscode.TreeItem(f.path, vscode.TreeItemCollapsibleState.None);
    item.id = `${s.id}/file/${n.index}`;
    item.description = `${f.edits} edit${f.edits === 1 ? '' : 's'}, +${f.linesAdded} −${f.linesRemoved}${f.saved ? ', saved' : ''}`;
    item.iconPath = vscode.ThemeIcon.File;
    try {
      const uri = vscode.Uri.parse(f.uri, true);
      item.resourceUri = uri;
      item.command = { command: 'vscode.open', title: 'Open File', arguments: [uri] };
    } catch { /* a uri the editor cannot open: shown without a link */ }
    item.contextValue = 'summaryFile';
    return item;
  }

  getChildren(n?: Node): Node[] {
    if (!n) return this.summaries.map((summary) => ({ kind: 'summary', summary }));
    if (n.kind !== 'summary') return [];
    return [{ kind: 'text', summary: n.summary }, ...n.summary.digest.files.map((_, index) => ({ kind: 'file' as const, summary: n.summary, index }))];
  }

  dispose(): void {
    for (const s of this.subs) s.dispose();
    this.changedTree.dispose();
    this.changedDoc.dispose();
    this.arrivedEmitter.dispose();
  }
}
