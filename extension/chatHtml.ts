// The chat webview's HTML and its Content Security Policy, apart from the vscode API so that a
// unit test can check exactly what the view gets (test/extension-unit/csp.test.ts): nothing is
// allowed by default; the one script runs by nonce (no inline script, no eval); the stylesheet,
// images and fonts come from the extension's own files (the webview's cspSource); nothing remote.

import * as crypto from 'node:crypto';

export interface ChatHtmlParts {
  /** A fresh random nonce per page load (chatNonce()). */
  nonce: string;
  /** webview.cspSource: the origin the webview serves the extension's files from. */
  cspSource: string;
  /** webview.asWebviewUri of dist/webview.js and dist/webview.css. */
  scriptUri: string;
  styleUri: string;
}

/** 144 random bits, base64: unguessable by page content. */
export function chatNonce(): string {
  return crypto.randomBytes(18).toString('base64');
}

export function chatCsp(nonce: string, cspSource: string): string {
  return [
    "default-src 'none'",
    `script-src 'nonce-${nonce}'`,
    `style-src ${cspSource}`,
    `img-src ${cspSource} data:`,
    `font-src ${cspSource}`,
  ].join('; ');
}

export function chatHtml(p: ChatHtmlParts): string {
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="UTF-8">
<meta http-equiv="Content-Security-Policy" content="${chatCsp(p.nonce, p.cspSource)}">
<meta name="viewport" content="width=device-width, initial-scale=1.0">
<link rel="stylesheet" href="${p.styleUri}">
<title>Endless chat</title>
</head>
<body>
<div id="app"></div>
<script nonce="${p.nonce}" src="${p.scriptUri}"></script>
</body>
</html>`;
}
