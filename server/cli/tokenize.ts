// `endless tokenize`: a text's token ids under a model's own tokenizer (read from the GGUF
// metadata; the weights are not loaded).
import { UsageError, type CommandSpec, type Parsed } from './args';
import { readTextFile, tokenizerForFile, writeOut } from './common';

export const tokenizeSpec: CommandSpec = {
  name: 'tokenize',
  summary: 'print the token ids of a text as a JSON array',
  options: {
    model: { type: 'string', required: true, help: 'GGUF model file (only its metadata is read)', placeholder: 'M' },
    'text-file': { type: 'string', help: 'the text to tokenize (UTF-8)', placeholder: 'F' },
    text: { type: 'string', help: 'the text itself, instead of --text-file', placeholder: 'TEXT' },
    bos: { type: 'string', choices: ['auto', 'yes', 'no'], help: "prepend BOS (default auto: the model's add_bos_token)" },
    'no-special': { type: 'flag', help: 'treat special-token texts as plain text' },
  },
};

export async function runTokenize(opts: Parsed): Promise<void> {
  if ((opts['text-file'] === undefined) === (opts.text === undefined)) {
    throw new UsageError('give exactly one of --text-file and --text', 'tokenize');
  }
  const text = opts.text !== undefined ? String(opts.text) : readTextFile(String(opts['text-file']), 'tokenize');
  const tok = tokenizerForFile(String(opts.model), 'tokenize');
  const bos = opts.bos ?? 'auto';
  const ids = tok.encode(text, {
    ...(bos === 'auto' ? {} : { addBos: bos === 'yes' }),
    parseSpecial: !opts['no-special'],
  });
  await writeOut(JSON.stringify(ids) + '\n');
}
