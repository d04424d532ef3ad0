// Command-line parsing for `endless`: each command declares its options; anything else, a missing
// value or a malformed number is a UsageError (exit code 2, message and usage on stderr).

export class UsageError extends Error {
  constructor(message: string, readonly command?: string) {
    super(message);
    this.name = 'UsageError';
  }
}

export type OptionType = 'string' | 'int' | 'number' | 'flag' | 'int-list';

export interface OptionSpec {
  type: OptionType;
  short?: string;              // e.g. 'n' for -n
  required?: boolean;
  choices?: readonly string[];
  min?: number;
  max?: number;
  help: string;
  placeholder?: string;
}

export type ParsedValue = string | number | boolean | number[];
export type Parsed = Record<string, ParsedValue | undefined>;

export interface CommandSpec {
  name: string;
  summary: string;
  options: Record<string, OptionSpec>;
  positionals?: { name: string; help: string; max: number };
}

function parseValue(cmd: string, name: string, spec: OptionSpec, raw: string): ParsedValue {
  const fail = (why: string) => new UsageError(`--${name}: ${why}, got ${JSON.stringify(raw)}`, cmd);
  switch (spec.type) {
    case 'string':
      if (spec.choices && !spec.choices.includes(raw)) throw fail(`must be one of ${spec.choices.join(', ')}`);
      return raw;
    case 'int': {
      if (!/^-?\d+$/.test(raw.trim())) throw fail('must be an integer');
      const v = Number(raw);
      if (!Number.isSafeInteger(v)) throw fail('is too large');
      if (spec.min !== undefined && v < spec.min) throw fail(`must be >= ${spec.min}`);
      if (spec.max !== undefined && v > spec.max) throw fail(`must be <= ${spec.max}`);
      return v;
    }
    case 'number': {
      const v = raw.trim() === '' ? NaN : Number(raw);
      if (!Number.isFinite(v)) throw fail('must be a number');
      if (spec.min !== undefined && v < spec.min) throw fail(`must be >= ${spec.min}`);
      if (spec.max !== undefined && v > spec.max) throw fail(`must be <= ${spec.max}`);
      return v;
    }
    case 'int-list': {
      const parts = raw.split(',').map((s) => s.trim());
      if (parts.length === 0 || parts.some((p) => !/^\d+$/.test(p))) throw fail('must be a comma-separated list of non-negative integers');
      const out = parts.map(Number);
      if (out.some((v) => !Number.isSafeInteger(v))) throw fail('has a value that is too large');
      return out;
    }
    default:
      throw new Error(`unhandled option type ${spec.type}`);
  }
}

/** Parses argv (after the command name) against the spec. */
export function parseArgs(spec: CommandSpec, argv: readonly string[]): { options: Parsed; positionals: string[] } {
  const options: Parsed = {};
  const positionals: string[] = [];
  const byShort = new Map<string, string>();
  for (const [name, o] of Object.entries(spec.options)) if (o.short) byShort.set(o.short, name);
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    let name: string | undefined;
    let inline: string | undefined;
    if (arg === '--') {
      positionals.push(...argv.slice(i + 1));
      break;
    } else if (arg.startsWith('--')) {
      const eq = arg.indexOf('=');
      name = eq >= 0 ? arg.slice(2, eq) : arg.slice(2);
      if (eq >= 0) inline = arg.slice(eq + 1);
      if (!(name in spec.options)) throw new UsageError(`unknown option --${name}`, spec.name);
    } else if (/^-[a-zA-Z]$/.test(arg)) {
      name = byShort.get(arg.slice(1));
      if (!name) throw new UsageError(`unknown option ${arg}`, spec.name);
    } else {
      positionals.push(arg);
      continue;
    }
    const o = spec.options[name];
    if (o.type === 'flag') {
      if (inline !== undefined) throw new UsageError(`--${name} takes no value`, spec.name);
      options[name] = true;
      continue;
    }
    let raw = inline;
    if (raw === undefined) {
      if (i + 1 >= argv.length) throw new UsageError(`--${name} needs a value (${o.placeholder ?? o.type})`, spec.name);
      raw = argv[++i];
    }
    if (options[name] !== undefined) throw new UsageError(`--${name} given more than once`, spec.name);
    options[name] = parseValue(spec.name, name, o, raw);
  }
  const maxPos = spec.positionals?.max ?? 0;
  if (positionals.length > maxPos) {
    throw new UsageError(maxPos === 0 ? `unexpected argument ${JSON.stringify(positionals[0])}`
      : `too many arguments: ${positionals.slice(maxPos).map((p) => JSON.stringify(p)).join(' ')}`, spec.name);
  }
  for (const [name, o] of Object.entries(spec.options)) {
    if (o.required && options[name] === undefined) throw new UsageError(`--${name} is required`, spec.name);
  }
  return { options, positionals };
}

export function formatUsage(spec: CommandSpec): string {
  const lines = [`usage: endless ${spec.name}${spec.positionals ? ` [${spec.positionals.name}]` : ''} [options]`, `  ${spec.summary}`];
  if (spec.positionals) lines.push(`  ${spec.positionals.name}: ${spec.positionals.help}`);
  const entries = Object.entries(spec.options);
  if (entries.length) lines.push('options:');
  for (const [name, o] of entries) {
    const flag = `${o.short ? `-${o.short}, ` : ''}--${name}${o.type === 'flag' ? '' : ` ${o.placeholder ?? (o.choices ? o.choices.join('|') : o.type.toUpperCase())}`}`;
    lines.push(`  ${flag.padEnd(34)} ${o.required ? '(required) ' : ''}${o.help}`);
  }
  return lines.join('\n');
}
