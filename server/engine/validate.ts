// Argument checks for the engine wrapper: every value is checked here, in TypeScript, before it
// crosses into native code, and a bad one gets an error that names the argument and the problem.

/** An error from the engine or its wrapper; `code` is the C API's status name or a wrapper code. */
export class EngineError extends Error {
  readonly code: string;
  declare readonly status?: number;
  constructor(code: string, message: string, options?: { status?: number; cause?: unknown }) {
    super(message, options?.cause !== undefined ? { cause: options.cause } : undefined);
    this.name = 'EngineError';
    this.code = code;
    if (options?.status !== undefined) this.status = options.status;
  }
}

export const INVALID = 'ENDLESS_ERR_INVALID_ARGUMENT';

export function invalid(message: string): EngineError {
  return new EngineError(INVALID, message);
}

function describe(v: unknown): string {
  if (typeof v === 'string') return JSON.stringify(v.length > 40 ? v.slice(0, 40) + '…' : v);
  if (typeof v === 'bigint') return `${v}n`;
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  if (typeof v === 'object') return 'an object';
  return String(v);
}

/** An integer in [min, max]; `what` names the argument in the error. */
export function checkInt(v: unknown, what: string, min: number, max: number = Number.MAX_SAFE_INTEGER): number {
  if (typeof v !== 'number' || !Number.isInteger(v)) throw invalid(`${what} must be an integer, got ${describe(v)}`);
  if (v < min || v > max) {
    const range = max === Number.MAX_SAFE_INTEGER ? `>= ${min}` : `in [${min}, ${max}]`;
    throw invalid(`${what} must be ${range}, got ${v}`);
  }
  return v;
}

export function optInt(v: unknown, what: string, min: number, max?: number): number | undefined {
  return v === undefined ? undefined : checkInt(v, what, min, max);
}

/** A finite number in [min, max]. */
export function checkNumber(v: unknown, what: string, min: number, max: number): number {
  if (typeof v !== 'number' || !Number.isFinite(v)) throw invalid(`${what} must be a finite number, got ${describe(v)}`);
  if (v < min || v > max) throw invalid(`${what} must be in [${min}, ${max}], got ${v}`);
  return v;
}

export function optNumber(v: unknown, what: string, min: number, max: number): number | undefined {
  return v === undefined ? undefined : checkNumber(v, what, min, max);
}

export function checkString(v: unknown, what: string): string {
  if (typeof v !== 'string' || v.length === 0) throw invalid(`${what} must be a non-empty string, got ${describe(v)}`);
  if (v.includes('\0')) throw invalid(`${what} must not contain a NUL character`);
  return v;
}

export function checkObject(v: unknown, what: string): Record<string, unknown> {
  if (v === undefined) return {};
  if (v === null || typeof v !== 'object' || Array.isArray(v)) throw invalid(`${what} must be an object, got ${describe(v)}`);
  return v as Record<string, unknown>;
}

export function checkFunction<T extends (...a: never[]) => unknown>(v: unknown, what: string): T | undefined {
  if (v === undefined) return undefined;
  if (typeof v !== 'function') throw invalid(`${what} must be a function, got ${describe(v)}`);
  return v as T;
}

export function checkSignal(v: unknown, what = 'signal'): AbortSignal | undefined {
  if (v === undefined) return undefined;
  if (!(v instanceof AbortSignal)) throw invalid(`${what} must be an AbortSignal, got ${describe(v)}`);
  return v;
}

/**
 * Token ids as an Int32Array, each an integer in [0, nVocab). `what` names the argument; the
 * error names the first bad position.
 */
export function checkTokens(v: unknown, what: string, nVocab: number, opts: { allowEmpty?: boolean } = {}): Int32Array {
  if (v === null || typeof v !== 'object' || typeof (v as ArrayLike<number>).length !== 'number') {
    throw invalid(`${what} must be an array of token ids, got ${describe(v)}`);
  }
  const a = v as ArrayLike<number>;
  const n = a.length;
  if (n === 0 && !opts.allowEmpty) throw invalid(`${what} must not be empty`);
  if (n > 0x7fffffff) throw invalid(`${what} has too many tokens (${n})`);
  const out = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const t = a[i];
    if (typeof t !== 'number' || !Number.isInteger(t)) {
      throw invalid(`${what}[${i}] must be an integer token id, got ${describe(t)}`);
    }
    if (t < 0 || t >= nVocab) throw invalid(`${what}[${i}] = ${t} is out of range: token ids are in [0, ${nVocab})`);
    out[i] = t;
  }
  return out;
}

/** The error a call rejects with when its AbortSignal fired. */
export function abortError(signal?: AbortSignal): Error {
  const err = new Error('The operation was aborted', signal?.reason !== undefined ? { cause: signal.reason } : undefined);
  err.name = 'AbortError';
  (err as Error & { code: string }).code = 'ABORT_ERR';
  return err;
}
