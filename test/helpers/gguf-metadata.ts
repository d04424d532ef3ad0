// A small, pure TypeScript reader of GGUF metadata (header and key/value pairs; tensor infos and
// data are not read), for tests that need a vocabulary's metadata without the native addon.
// Values come out as the engine's readGgufMetadata gives them (server/engine/api.ts MetaValue):
// 64-bit integers as numbers when they fit a double exactly, else bigint.

import { readFileSync } from 'node:fs';
import type { MetaScalar, MetaValue } from '../../server/engine/api';

const TYPE_NAMES = ['u8', 'i8', 'u16', 'i16', 'u32', 'i32', 'f32', 'bool', 'string', 'array', 'u64', 'i64', 'f64'];

class Reader {
  private off = 0;
  private readonly view: DataView;
  private readonly utf8 = new TextDecoder('utf-8', { fatal: false, ignoreBOM: true });

  constructor(private readonly buf: Uint8Array, private readonly path: string) {
    this.view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  }

  private need(n: number, what: string): number {
    if (n < 0 || this.off + n > this.buf.length) {
      throw new Error(`${this.path}: truncated GGUF reading ${what} at byte ${this.off} (file is ${this.buf.length} bytes)`);
    }
    const at = this.off;
    this.off += n;
    return at;
  }

  u32(what: string): number {
    return this.view.getUint32(this.need(4, what), true);
  }

  u64(what: string): number | bigint {
    const v = this.view.getBigUint64(this.need(8, what), true);
    return v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
  }

  count(what: string): number {
    const n = this.u64(what);
    if (typeof n === 'bigint' || n > this.buf.length) throw new Error(`${this.path}: absurd ${what} ${n}`);
    return n;
  }

  string(what: string): string {
    const n = this.count(`${what} length`);
    const at = this.need(n, what);
    return this.utf8.decode(this.buf.subarray(at, at + n));
  }

  scalar(type: number, what: string): MetaScalar {
    const v = this.view;
    switch (type) {
      case 0: return v.getUint8(this.need(1, what));
      case 1: return v.getInt8(this.need(1, what));
      case 2: return v.getUint16(this.need(2, what), true);
      case 3: return v.getInt16(this.need(2, what), true);
      case 4: return v.getUint32(this.need(4, what), true);
      case 5: return v.getInt32(this.need(4, what), true);
      case 6: return v.getFloat32(this.need(4, what), true);
      case 7: {
        const b = v.getUint8(this.need(1, what));
        if (b > 1) throw new Error(`${this.path}: ${what}: bool value ${b} is not 0 or 1`);
        return b === 1;
      }
      case 8: return this.string(what);
      case 10: return this.u64(what);
      case 11: {
        const x = v.getBigInt64(this.need(8, what), true);
        return x >= BigInt(Number.MIN_SAFE_INTEGER) && x <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(x) : x;
      }
      case 12: return v.getFloat64(this.need(8, what), true);
      default: throw new Error(`${this.path}: ${what}: unknown GGUF value type ${type}`);
    }
  }

  value(type: number, what: string): MetaValue {
    if (type !== 9) return this.scalar(type, what);
    const elemType = this.u32(`${what} element type`);
    if (elemType === 9) throw new Error(`${this.path}: ${what}: nested arrays are not supported`);
    if (elemType > 12) throw new Error(`${this.path}: ${what}: unknown GGUF element type ${elemType}`);
    const n = this.count(`${what} element count`);
    const out: MetaScalar[] = new Array(n);
    for (let i = 0; i < n; i++) out[i] = this.scalar(elemType, what);
    return out;
  }
}

/** Reads the metadata key/value pairs of a GGUF v2/v3 file. */
export function readGgufMetadataTs(path: string): Map<string, MetaValue> {
  const buf = readFileSync(path);
  const r = new Reader(buf, path);
  if (buf.length < 4 || buf.toString('latin1', 0, 4) !== 'GGUF') throw new Error(`${path}: not a GGUF file (bad magic)`);
  r.u32('magic');
  const version = r.u32('version');
  if (version !== 2 && version !== 3) throw new Error(`${path}: unsupported GGUF version ${version}`);
  r.count('tensor count');
  const nKv = r.count('metadata count');
  const meta = new Map<string, MetaValue>();
  for (let i = 0; i < nKv; i++) {
    const key = r.string(`key #${i}`);
    const type = r.u32(`type of ${key}`);
    if (type > 12) throw new Error(`${path}: ${key}: unknown GGUF value type ${type} (known: ${TYPE_NAMES.join(', ')})`);
    if (meta.has(key)) throw new Error(`${path}: duplicate metadata key ${key}`);
    meta.set(key, r.value(type, key));
  }
  return meta;
}
