// Watches the model file the server loaded. The engine does not read the file after loading
// (every weight is copied into memory the engine owns and the file is unmapped, see
// native/src/model.cpp), so a file that is removed, replaced (renamed over) or rewritten in place
// changes nothing while the server runs; the user only needs to know that a restart would load
// something else, or fail. fs.watch reports most changes at once; a stat poll catches what it
// misses (a watch on a removed inode, network file systems, editors that swap files).
// The user is told at each change, never twice in a row for the same kind of change.

import { FSWatcher, Stats, statSync, unwatchFile, watch, watchFile } from 'node:fs';

export type ModelFileChange = 'removed' | 'replaced' | 'modified';

interface FileId { dev: number; ino: number; size: number; mtimeMs: number }

function fileId(s: Stats): FileId {
  return { dev: s.dev, ino: s.ino, size: s.size, mtimeMs: s.mtimeMs };
}

/** What happened to the file since `was` (null: it was missing), or null when nothing did. */
export function modelFileChange(was: FileId | null, path: string): ModelFileChange | null {
  let now: Stats;
  try {
    now = statSync(path);
  } catch {
    return was ? 'removed' : null;
  }
  if (!was || now.dev !== was.dev || now.ino !== was.ino) return 'replaced';
  if (now.size !== was.size || now.mtimeMs !== was.mtimeMs) return 'modified';
  return null;
}

/** The sentence the user sees. */
export function modelFileMessage(path: string, change: ModelFileChange): string {
  const what = change === 'removed' ? 'was removed from disk'
    : change === 'replaced' ? 'was replaced on disk'
      : 'was rewritten on disk';
  return `The model file ${path} ${what}; Endless keeps using the loaded copy. Restart the server to load the ` +
    (change === 'removed' ? 'model again (the file must be back by then).' : 'new file.');
}

/**
 * Calls onChange when the file changes: once per kind of change in a row (a copy that takes
 * minutes rewrites the file at every poll, and that is one change for the user), so removed,
 * then put back, then rewritten are three calls, but a long write is one. `pollMs` is the stat
 * poll's interval. Returns a function that stops the watch.
 */
export function watchModelFile(path: string, onChange: (change: ModelFileChange) => void, pollMs = 2000): () => void {
  let was: FileId | null;
  try {
    was = fileId(statSync(path));
  } catch {
    return () => undefined; // nothing to watch: the load would have failed first
  }
  let done = false;
  let last: ModelFileChange | null = null;
  let watcher: FSWatcher | null = null;
  let debounce: ReturnType<typeof setTimeout> | null = null;
  const unwatch = () => {
    try { watcher?.close(); } catch { /* already closed */ }
    watcher = null;
  };
  // fs.watch follows an inode: after a replace it has to watch the new one.
  const rewatch = () => {
    unwatch();
    if (!was) return;
    try {
      watcher = watch(path, { persistent: false }, soon);
      watcher.on('error', unwatch);
    } catch {
      watcher = null; // the poll still works
    }
  };
  const check = () => {
    if (done) return;
    const c = modelFileChange(was, path);
    if (!c) return;
    try { was = fileId(statSync(path)); } catch { was = null; }
    rewatch();
    if (c === last) return;
    last = c;
    onChange(c);
  };
  // A writer in progress sends many events: look once things have been quiet for a moment.
  function soon(): void {
    if (done) return;
    if (debounce) clearTimeout(debounce);
    debounce = setTimeout(check, 100);
  }
  function poll(): void { check(); }
  rewatch();
  watchFile(path, { persistent: false, interval: pollMs }, poll);
  return () => {
    done = true;
    if (debounce) clearTimeout(debounce);
    unwatch();
    unwatchFile(path, poll);
  };
}
