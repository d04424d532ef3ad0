// Chat Markdown: code blocks get their buttons, raw HTML stays text, open fences render as code.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { closeOpenFence, createMarkdown } from '../../extension/webview/markdown';

const md = createMarkdown();

test('a fenced block is wrapped with Copy / Insert / Apply and its language', () => {
  const html = md.render('Here:\n\n```ts\nconst a = 1 < 2;\n```\n');
  assert.match(html, /<div class="code-block" data-lang="ts">/);
  for (const a of ['copy', 'insert', 'apply']) assert.match(html, new RegExp(`data-action="${a}"`));
  assert.match(html, /<code class="language-ts">const a = 1 &lt; 2;\n<\/code>/);
});

test('raw HTML from the model is escaped, not rendered', () => {
  const html = md.render('<script>alert(1)</script> <img src=x onerror=alert(1)>');
  assert.ok(!html.includes('<script>'));
  assert.ok(!html.includes('<img'));
  assert.match(html, /&lt;script&gt;/);
});

test('a hostile info string cannot break out of the attribute', () => {
  const html = md.render('```"><script>x</script>\ncode\n```\n');
  assert.ok(!html.includes('<script>'));
});

test('javascript: links are not linked', () => {
  const html = md.render('[x](javascript:alert(1))');
  assert.ok(!/href="javascript:/i.test(html));
});

test('an open fence is closed while streaming, a closed one is left alone', () => {
  assert.equal(closeOpenFence('text\n```py\nx = 1'), 'text\n```py\nx = 1\n```\n');
  assert.equal(closeOpenFence('a\n```\nb\n```\n'), 'a\n```\nb\n```\n');
  assert.equal(closeOpenFence('~~~~\nx\n'), '~~~~\nx\n~~~~\n');
  assert.equal(closeOpenFence('````\n```\nstill code\n'), '````\n```\nstill code\n````\n', 'a shorter fence does not close');
  assert.match(md.render(closeOpenFence('```js\nlet x')), /<code class="language-js">let x\n<\/code>/);
});
