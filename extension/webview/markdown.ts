// Markdown for chat answers: markdown-it with raw HTML off, and fenced code blocks wrapped with
// their action buttons (Copy, Insert, Apply). The HTML this returns is sanitized by the caller
// (DOMPurify in the webview) before it reaches the DOM. Pure (no DOM), so node:test covers it.

import MarkdownIt from 'markdown-it';

export function createMarkdown(): InstanceType<typeof MarkdownIt> {
  const md = new MarkdownIt({ html: false, linkify: true, breaks: false, typographer: false });
  const escape = md.utils.escapeHtml;
  md.renderer.rules.fence = (tokens, idx) => {
    const token = tokens[idx];
    const lang = (token.info || '').trim().split(/\s+/)[0].replace(/[^\w#+.-]/g, '').slice(0, 40);
    const cls = lang ? ` class="language-${escape(lang)}"` : '';
    return `<div class="code-block" data-lang="${escape(lang)}">`
      + '<div class="code-actions">'
      + (lang ? `<span class="code-lang">${escape(lang)}</span>` : '<span class="code-lang"></span>')
      + '<button type="button" data-action="copy" title="Copy to the clipboard">Copy</button>'
      + '<button type="button" data-action="insert" title="Insert at the cursor (replaces the selection)">Insert</button>'
      + '<button type="button" data-action="apply" title="Apply to the active file, shown as a diff first">Apply</button>'
      + '</div>'
      + `<pre><code${cls}>${escape(token.content)}</code></pre></div>\n`;
  };
  return md;
}

/**
 * While an answer streams, a code fence may be open: close it so the partial block renders as
 * code rather than as text, without touching what the model wrote.
 */
export function closeOpenFence(text: string): string {
  let open: string | null = null;
  for (const line of text.split('\n')) {
    const m = /^ {0,3}(`{3,}|~{3,})/.exec(line);
    if (!m) continue;
    if (open === null) open = m[1];
    else if (m[1][0] === open[0] && m[1].length >= open.length && line.trim() === m[1]) open = null;
  }
  return open === null ? text : `${text}${text.endsWith('\n') ? '' : '\n'}${open}\n`;
}
