// Helpers shared by the `endless` commands: the model options every command takes, loading a
// model and its tokenizer, and writing to stdout without building huge strings or losing data
// when stdout is a slow pipe.
import { readFileSync, statSync } from 'node:fs';
import { loadModel, readGgufMetadata, type Device, type EngineModel, type MetaValue } from '../engine/index';
import { Tokenizer } from '../tokenizer/index';
import { UsageError, type OptionSpec, type Parsed } from './args';

export const MODEL_OPTIONS: Record<string, OptionSpec> = {
  model: { type: 'string', required: true, help: 'GGUF model file', placeholder: 'M' },
  device: { type: 'string', choices: ['auto', 'cpu', 'cuda'], help: 'where the model runs (default auto)' },
  threads: { type: 'int', min: 0, max: 4096, help: 'CPU threads (default: all cores)', placeholder: 'N' },
};

export function requireFile(path: string, what: string, command: string): string {
  let st;
  try {
    st = statSync(path);
  } catch {
    throw new UsageError(`${what} not found: ${path}`, command);
  }
  if (!st.isFile()) throw new UsageError(`${what} is not a regular file: ${path}`, command);
  return path;
}

export function readTextFile(path: string, command: string): string {
  requireFile(path, 'text file', command);
  return readFileSync(path, 'utf8');
}

/** Loads the model named by --model/--device/--threads; progress goes to stderr when it is a TTY. */
export async function loadModelFromArgs(opts: Parsed, command: string): Promise<EngineModel> {
  const path = requireFile(String(opts.model), 'model file', command);
  const showProgress = process.stderr.isTTY === true;
  const model = await loadModel(path, {
    device: (opts.device as Device | undefined) ?? 'auto',
    threads: (opts.threads as number | undefined) ?? 0,
    onProgress: showProgress ? (f) => process.stderr.write(`\rloading ${(f * 100).toFixed(0)}%`) : undefined,
  });
  if (showProgress) process.stderr.write('\r\x1b[K');
  return model;
}

export function tokenizerFromMetadata(meta: ReadonlyMap<string, MetaValue>): Tokenizer {
  return Tokenizer.fromMetadata(meta);
}

/** The tokenizer of a GGUF file without loading its weights. */
export function tokenizerForFile(path: string, command: string): Tokenizer {
  return tokenizerFromMetadata(readGgufMetadata(requireFile(path, 'model file', command)));
}

/** Writes to stdout, waiting for the pipe to drain when it is full. */
export function writeOut(text: string): Promise<void> {
  if (process.stdout.write(text)) return Promise.resolve();
  return new Promise((resolve) => process.stdout.once('drain', () => resolve()));
}

/**
 * A float32 as the shortest JSON number that reads back to the same float32 (9 significant
 * digits always suffice); NaN and infinities have no JSON form and become null.
 */
export function formatFloat32(v: number): string {
  if (!Number.isFinite(v)) return 'null';
  return String(parseFloat(v.toPrecision(9)));
}

export function formatRow(row: Float32Array): string {
  const parts = new Array<string>(row.length);
  for (let i = 0; i < row.length; i++) parts[i] = formatFloat32(row[i]);
  return `[${parts.join(',')}]`;
}

/** log-softmax of row at index t: the log-probability of token t. */
export function logProb(row: Float32Array, t: number): number {
  let max = -Infinity;
  for (let i = 0; i < row.length; i++) if (row[i] > max) max = row[i];
  let sum = 0;
  for (let i = 0; i < row.length; i++) sum += Math.exp(row[i] - max);
  return row[t] - max - Math.log(sum);
}

export function argmax(row: Float32Array): number {
  let best = 0;
  for (let i = 1; i < row.length; i++) if (row[i] > row[best]) best = i;
  return best;
}
