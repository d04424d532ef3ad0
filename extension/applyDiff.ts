// "Apply" for chat code blocks: the proposed document is served from a virtual document
// (endless-proposal:) and shown with vscode.diff against the real file; Accept (in the diff
// editor's title) writes it into the file, Discard closes it.

import * as vscode from 'vscode';
import { planApply } from './applyPlan';

export const PROPOSAL_SCHEME = 'endless-proposal';

interface Proposal { target: vscode.Uri; original: string; proposed: string }

export class ApplyDiff implements vscode.TextDocumentContentProvider, vscode.Disposable {
  private proposals = new Map<string, Proposal>();
  private counter = 0;
  private readonly changed = new vscode.EventEmitter<vscode.Uri>();
  readonly onDidChange = this.changed.event;
  private readonly subs: vscode.Disposable[];

  constructor() {
    this.subs = [
      vscode.workspace.registerTextDocumentContentProvider(PROPOSAL_SCHEME, this),
      vscode.commands.registerCommand('endless.proposal.accept', (uri?: vscode.Uri) => this.accept(uri)),
      vscode.commands.registerCommand('endless.proposal.discard', (uri?: vscode.Uri) => this.discard(uri)),
    ];
  }

  provideTextDocumentContent(uri: vscode.Uri): string {
    return this.proposals.get(uri.toString())?.proposed ?? '';
  }

  /** Shows the code applied to `editor` as a diff; returns the proposal's uri. */
  async propose(editor: vscode.TextEditor, code: string): Promise<vscode.Uri> {
    const doc = editor.document;
    const sel = editor.selection;
    const plan = planApply(doc.getText(), code, { start: doc.offsetAt(sel.start), end: doc.offsetAt(sel.end) },
      doc.eol === vscode.EndOfLine.CRLF ? '\r\n' : '\n');
    const name = doc.uri.path.split('/').pop() || 'untitled';
    const uri = vscode.Uri.from({ scheme: PROPOSAL_SCHEME, path: `/${++this.counter}/${name}` });
    this.proposals.set(uri.toString(), { target: doc.uri, original: doc.getText(), proposed: plan.proposed });
    const what = plan.mode === 'selection' ? 'selection replaced' : plan.mode === 'document' ? 'file replaced' : 'inserted at cursor';
    await vscode.commands.executeCommand('vscode.diff', doc.uri, uri, `${name} ↔ Endless proposal (${what})`, { preview: true });
    return uri;
  }

  private current(uri?: vscode.Uri): [string, Proposal] | undefined {
    const key = (uri ?? vscode.window.activeTextEditor?.document.uri)?.toString();
    if (key && this.proposals.has(key)) return [key, this.proposals.get(key)!];
    // Invoked from the diff editor's title with the original side focused.
    const tab = vscode.window.tabGroups.activeTabGroup.activeTab;
    if (tab?.input instanceof vscode.TabInputTextDiff) {
      const k = tab.input.modified.toString();
      if (this.proposals.has(k)) return [k, this.proposals.get(k)!];
    }
    return undefined;
  }

  async accept(uri?: vscode.Uri): Promise<boolean> {
    const found = this.current(uri);
    if (!found) { void vscode.window.showWarningMessage('Endless: no proposal is open.'); return false; }
    const [key, p] = found;
    const doc = await vscode.workspace.openTextDocument(p.target);
    if (doc.getText() !== p.original) {
      const go = await vscode.window.showWarningMessage(`Endless: ${doc.uri.path.split('/').pop()} changed since the proposal was made. Apply it anyway?`, { modal: true }, 'Apply');
      if (go !== 'Apply') return false;
    }
    const edit = new vscode.WorkspaceEdit();
    edit.replace(doc.uri, new vscode.Range(doc.positionAt(0), doc.positionAt(doc.getText().length)), p.proposed);
    const ok = await vscode.workspace.applyEdit(edit);
    if (ok) { this.proposals.delete(key); await this.closeDiff(key); }
    else void vscode.window.showErrorMessage('Endless: the proposal could not be applied.');
    return ok;
  }

  async discard(uri?: vscode.Uri): Promise<void> {
    const found = this.current(uri);
    if (!found) return;
    this.proposals.delete(found[0]);
    await this.closeDiff(found[0]);
  }

  private async closeDiff(key: string): Promise<void> {
    for (const group of vscode.window.tabGroups.all) {
      for (const tab of group.tabs) {
        if (tab.input instanceof vscode.TabInputTextDiff && tab.input.modified.toString() === key) await vscode.window.tabGroups.close(tab);
      }
    }
  }

  dispose(): void {
    for (const s of this.subs) s.dispose();
    this.changed.dispose();
  }
}
