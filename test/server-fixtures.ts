// A fixture model with the session-stream vocabulary of docs/stream-format.md, for the server
// tests of the marker path (<|file|>, <|edit|>, <|save|>, <|summary|>, ChatML tokens, SPM FIM)
// while the shipped model is not there: a copy of a random-weight fixture model whose unused
// [PADnnn] tokens are renamed to the stream markers (control tokens). The weights and every other
// byte stay as they are; only the metadata section is rewritten (and the data re-aligned).

import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';

export const STREAM_MARKERS = ['<|fim_pad|>', '<|file_sep|>', '<|file|>', '<|edit|>', '<|save|>', '<|im_start|>', '<|im_end|>', '<|summary|>'];

class Cursor {
  off = 0;
  constructor(readonly buf: Buffer) {}
  u32(): number { const v = this.buf.readUInt32LE(this.off); this.off += 4; return v; }
  u64(): number { const v = Number(this.buf.readBigUInt64LE(this.off)); this.off += 8; return v; }
  str(): string { const n = this.u64(); const s = this.buf.toString('utf8', this.off, this.off + n); this.off += n; return s; }
}

const SCALAR_SIZE: Record<number, number> = { 0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8 };

function skipValue(c: Cursor, type: number): void {
  if (type === 8) { c.str(); return; }
  if (type === 9) {
    const et = c.u32();
    const n = c.u64();
    for (let i = 0; i < n; i++) skipValue(c, et);
    return;
  }
  const size = SCALAR_SIZE[type];
  if (size === undefined) throw new Error(`GGUF value type ${type} unknown`);
  c.off += size;
}

function u32(v: number): Buffer { const b = Buffer.alloc(4); b.writeUInt32LE(v); return b; }
function u64(v: number): Buffer { const b = Buffer.alloc(8); b.writeBigUInt64LE(BigInt(v)); return b; }
function gstr(s: string): Buffer { const body = Buffer.from(s, 'utf8'); return Buffer.concat([u64(body.length), body]); }

/** Writes `out`: `src` with its [PAD] tokens renamed to the stream markers. Returns out. */
export function makeStreamVocabModel(src: string, out: string): string {
  const buf = readFileSync(src);
  const c = new Cursor(buf);
  if (buf.toString('latin1', 0, 4) !== 'GGUF') throw new Error(`${src} is not a GGUF file`);
  c.off = 4;
  const version = c.u32();
  const nTensors = c.u64();
  const nKv = c.u64();
  const kvs: Buffer[] = [];
  let alignment = 32;
  for (let i = 0; i < nKv; i++) {
    const start = c.off;
    const key = c.str();
    const type = c.u32();
    const valueStart = c.off;
    if (key === 'tokenizer.ggml.tokens') {
      c.u32();
      const n = c.u64();
      const tokens: string[] = [];
      for (let j = 0; j < n; j++) tokens.push(c.str());
      let k = 0;
      for (let j = 0; j < n && k < STREAM_MARKERS.length; j++) if (/^\[PAD\d+\]$/.test(tokens[j])) tokens[j] = STREAM_MARKERS[k++];
      if (k < STREAM_MARKERS.length) throw new Error(`${src} has too few [PAD] tokens to rename`);
      kvs.push(Buffer.concat([gstr(key), u32(9), u32(8), u64(n), ...tokens.map(gstr)]));
      continue;
    }
    if (key === 'tokenizer.ggml.token_type') {
      // Types follow the renamed tokens: the PAD rows (type 5, unused) that became markers are control (3).
      c.u32();
      const n = c.u64();
      const types: number[] = [];
      for (let j = 0; j < n; j++) types.push(c.buf.readInt32LE(c.off + 4 * j));
      c.off += 4 * n;
      let k = 0;
      for (let j = 0; j < n && k < STREAM_MARKERS.length; j++) if (types[j] === 5) { types[j] = 3; k++; }
      kvs.push(Buffer.concat([gstr(key), u32(9), u32(5), u64(n), ...types.map((t) => { const b = Buffer.alloc(4); b.writeInt32LE(t); return b; })]));
      continue;
    }
    skipValue(c, type);
    if (key === 'general.alignment') alignment = buf.readUInt32LE(valueStart);
    kvs.push(buf.subarray(start, c.off));
  }
  const infoStart = c.off;
  for (let i = 0; i < nTensors; i++) {
    c.str();
    const nd = c.u32();
    c.off += 8 * nd + 4 + 8; // dims, type, offset
  }
  const infos = buf.subarray(infoStart, c.off);
  const dataStart = Math.ceil(c.off / alignment) * alignment;
  const head = Buffer.concat([Buffer.from('GGUF', 'latin1'), u32(version), u64(nTensors), u64(nKv), ...kvs, infos]);
  const pad = Buffer.alloc((alignment - (head.length % alignment)) % alignment);
  writeFileSync(out, Buffer.concat([head, pad, buf.subarray(dataStart)]));
  return out;
}

export function streamVocabModel(dir: string): string {
  const root = path.resolve(__dirname, '..');
  return makeStreamVocabModel(path.join(root, 'test', 'fixtures', 'models', 'qwen2_tied-q8_0.gguf'), path.join(dir, 'stream-vocab-q8_0.gguf'));
}
