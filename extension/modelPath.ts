// Which model file the server may load, from the endless.modelPath setting's values by scope.
// Pure (node:path only), unit-tested.

import * as os from 'node:os';
import * as path from 'node:path';

/**
 * The model path the server may use. Untrusted workspaces get only the user's (machine) value:
 * a workspace must not point the engine at a file of its choosing. `~` and ${workspaceFolder}
 * are expanded; other relative paths are taken from the first workspace folder.
 */
export function effectiveModelPath(
  inspect: { globalValue?: unknown; workspaceValue?: unknown; workspaceFolderValue?: unknown } | undefined,
  trusted: boolean,
  workspaceFolder: string | undefined,
  home = os.homedir(),
): string {
  const pick = trusted ? (inspect?.workspaceFolderValue ?? inspect?.workspaceValue ?? inspect?.globalValue) : inspect?.globalValue;
  if (typeof pick !== 'string' || !pick.trim()) return '';
  let p = pick.trim();
  if (p === '~' || p.startsWith('~/')) p = path.join(home, p.slice(1));
  if (workspaceFolder) p = p.replace(/\$\{workspaceFolder\}/g, workspaceFolder);
  if (!path.isAbsolute(p) && workspaceFolder) p = path.join(workspaceFolder, p);
  return p;
}
