// The extension's view of the `endless.*` settings: the client-side ones it uses itself
// (debounce, languages) and the adjustments it makes to what the server pulls (the model path is
// machine-scoped and never taken from an untrusted workspace).

import * as vscode from 'vscode';
import { DEFAULT_SETTINGS, EndlessSettings, SETTINGS_SECTION } from '../server/protocol';
import { effectiveModelPath } from './modelPath';

export interface ClientSettings {
  debounceMs: number;
  enabledLanguages: string[];
}

export function clientSettings(): ClientSettings {
  const c = vscode.workspace.getConfiguration(SETTINGS_SECTION);
  const debounce = c.get<number>('debounceMs', DEFAULT_SETTINGS.debounceMs);
  const langs = c.get<unknown>('enabledLanguages', []);
  return {
    debounceMs: typeof debounce === 'number' && debounce >= 0 && debounce <= 10_000 ? debounce : DEFAULT_SETTINGS.debounceMs,
    enabledLanguages: Array.isArray(langs) ? langs.filter((x): x is string => typeof x === 'string') : [],
  };
}

/** The settings object for the server's workspace/configuration pull, with the model path fixed up. */
export function serverSettings(): Partial<EndlessSettings> {
  const c = vscode.workspace.getConfiguration(SETTINGS_SECTION);
  const out: Record<string, unknown> = {};
  for (const k of Object.keys(DEFAULT_SETTINGS)) out[k] = c.get(k);
  out.modelPath = effectiveModelPath(c.inspect('modelPath'), vscode.workspace.isTrusted, vscode.workspace.workspaceFolders?.[0]?.uri.fsPath);
  return out as Partial<EndlessSettings>;
}
