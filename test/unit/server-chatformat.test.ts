// Unit tests for chat-turn rendering (server/session/chatformat.ts) and stream rendering
// (server/session/render.ts) with real vocabularies (test/helpers/tokenizer-vocabs.ts): each turn
// appends only what is new, user text is never parsed for special tokens, and the pieces of a
// conversation add up to the template's own rendering of it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Template } from '@huggingface/jinja';
import { vocabTokenizer } from '../helpers/tokenizer-vocabs';
import { ChatFormat, SYSTEM_PROMPT, Turn } from '../../server/session/chatformat';
import { encodePieces, piecesText, StreamFormat, surroundingsOf } from '../../server/session/render';
import { diffLines, splitLines, toHunks } from '../../server/session/diff';

for (const name of ['qwen3', 'llama3'] as const) {
  test(`${name}: turn deltas concatenate to the template's rendering of the conversation`, () => {
    const tok = vocabTokenizer(name);
    const cf = new ChatFormat(tok);
    assert.equal(cf.kind, 'template');
    const history: Turn[] = [];
    let stream = '';
    const turns = [['What is 2+2?', '4.'], ['And <|im_end|> 3+3?', '6.']];
    for (const [q, a] of turns) {
      stream += piecesText(tok, cf.userTurn(history, q));
      history.push({ role: 'user', content: q });
      stream += a;
      stream += piecesText(tok, cf.assistantEnd(history, a));
      history.push({ role: 'assistant', content: a });
    }
    const full = new Template(tok.chatTemplate!).render({
      messages: [{ role: 'system', content: SYSTEM_PROMPT }, ...history], add_generation_prompt: false,
      bos_token: tok.bos !== undefined ? tok.tokenToPiece(tok.bos) : '', eos_token: '',
    });
    const bos = tok.bos !== undefined ? tok.tokenToPiece(tok.bos) : '';
    const expected = full.startsWith(bos) ? full.slice(bos.length) : full;
    if (name === 'llama3') {
      // This template always ends with an assistant header; the stream stops at the last end-of-turn.
      assert.equal(stream, expected.slice(0, expected.lastIndexOf('<|eot_id|>') + '<|eot_id|>'.length));
    } else {
      // Qwen3 writes empty thinking blocks for the last assistant turn only; compare without them.
      assert.equal(stream.replace(/<think>\n\n<\/think>\n\n/g, ''), expected.replace(/<think>\n\n<\/think>\n\n/g, ''));
    }
  });
}

test('user text that looks like a special token stays text', () => {
  const tok = vocabTokenizer('qwen3');
  const cf = new ChatFormat(tok);
  const imEnd = tok.tokenId('<|im_end|>')!;
  const ids = encodePieces(tok, cf.userTurn([], 'a <|im_end|> b'));
  // The template's own markers: system end, user end -> exactly 2 <|im_end|> tokens.
  assert.equal(ids.filter((t) => t === imEnd).length, 2);
  assert.deepEqual(cf.stopTokens().includes(imEnd), true);
});

test('stream rendering without markers is plain text; edits render as unified hunks', () => {
  const tok = vocabTokenizer('qwen3');
  const f = new StreamFormat(tok);
  assert.equal(f.hasMarkers, false);
  assert.equal(f.hasFim, true);
  assert.equal(f.defaultSinks(), 4);
  const a = splitLines('a\nb\nc\n');
  const b = splitLines('a\nB\nc\n');
  const text = piecesText(tok, toHunks(a, diffLines(a, b), 1).flatMap((h) => f.editHunk('x.ts', h)));
  assert.equal(text, '\n--- a/x.ts\n+++ b/x.ts\n@@ -1,3 +1,3 @@\n a\n-b\n+B\n c\n');
  const fim = f.fim('pre', 'suf', 'psm');
  assert.equal(fim[0], tok.fim.prefix);
  assert.equal(fim[fim.length - 1], tok.fim.middle);
  const spm = f.fim('pre', 'suf', 'spm');
  assert.equal(spm[0], tok.fim.suffix);
});

test('surroundings stay within the token budget and include the cursor line', () => {
  const lines = Array.from({ length: 200 }, (_, i) => `line number ${i}`);
  const count = (s: string) => Math.ceil(s.length / 4);
  const s = surroundingsOf(lines, 100, 120, count);
  assert.ok(s.start <= 100 && s.end > 100);
  assert.ok(count(s.text) <= 130);
  assert.ok(100 - s.start > s.end - 100, 'more above than below');
  const top = surroundingsOf(lines, 0, 120, count);
  assert.equal(top.start, 0);
});
