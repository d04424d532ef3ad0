// Bundles the chat view's UI (extension/webview/main.ts, with markdown-it and DOMPurify) into
// dist/webview.js for the browser, and copies its stylesheet to dist/webview.css. Separate from
// esbuild.config.mjs, which bundles the Node programs (extension, server, cli).
import * as esbuild from 'esbuild';
import { copyFileSync, mkdirSync } from 'node:fs';
import path from 'node:path';

const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..');
mkdirSync(path.join(root, 'dist'), { recursive: true });
await esbuild.build({
  absWorkingDir: root,
  entryPoints: ['extension/webview/main.ts'],
  outfile: 'dist/webview.js',
  bundle: true,
  platform: 'browser',
  format: 'iife',
  target: 'es2022',
  minify: !process.argv.includes('--dev'),
  sourcemap: process.argv.includes('--dev') ? 'inline' : false,
  legalComments: 'external',
  logLevel: 'warning',
});
copyFileSync(path.join(root, 'extension/webview/style.css'), path.join(root, 'dist/webview.css'));
console.log('[build-webview] extension/webview/main.ts -> dist/webview.js, style.css -> dist/webview.css');
