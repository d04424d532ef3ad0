// The `endless` command line (package.json "bin" -> bin/endless.js -> dist/cli.js).
// JSON on stdout, messages on stderr. Exit codes: 0 success, 1 a failure while running (bad model
// file, engine error), 2 bad arguments (with the command's usage).
import { existsSync } from 'node:fs';
import path from 'node:path';
import { formatUsage, parseArgs, UsageError, type CommandSpec, type Parsed } from './cli/args';
import { benchSpec, runBench } from './cli/bench';
import { evalStreamSpec, runEvalStream } from './cli/eval-stream';
import { generateSpec, runGenerate } from './cli/generate';
import { logitsSpec, runLogits } from './cli/logits';
import { runTokenize, tokenizeSpec } from './cli/tokenize';
import { MODEL_OPTIONS, loadModelFromArgs, writeOut } from './cli/common';
import { systemInfo } from './engine/index';

const infoSpec: CommandSpec = {
  name: 'info',
  summary: "print the engine's features and, with --model, the model's description (JSON)",
  options: { ...MODEL_OPTIONS, model: { ...MODEL_OPTIONS.model, required: false } },
};

// serve and demo hand their arguments to their own modules, which parse them.
const serveSpec: CommandSpec = {
  name: 'serve',
  summary: 'run the language server: endless serve --stdio [--storage DIR] [--model FILE] [--device D] [--threads N]',
  options: { stdio: { type: 'flag', help: 'talk LSP over stdin/stdout (the only transport)' } },
};

const demoSpec: CommandSpec = {
  name: 'demo',
  summary: 'run the demo (its options are its own)',
  options: {},
};

async function runInfo(opts: Parsed): Promise<void> {
  const out: Record<string, unknown> = { system: systemInfo() };
  if (opts.model !== undefined) {
    const model = await loadModelFromArgs(opts, 'info');
    out.model = model.info;
    model.dispose();
  }
  await writeOut(JSON.stringify(out, null, 2) + '\n');
}

/**
 * The server and the demo are other modules (server/main.ts, server/demo.ts); they are loaded
 * only when asked for, from the source tree under tsx or from dist/ when bundled.
 */
async function dispatchTo(names: { source: string; bundle: string; command: string }, what: string, argv: string[]): Promise<void> {
  const fromSource = __filename.endsWith('.ts');
  const file = fromSource ? path.join(__dirname, names.source) : path.join(__dirname, names.bundle);
  if (!existsSync(file)) throw new Error(`${what} is not available in this build (${file} does not exist)`);
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const mod = require(file) as Record<string, unknown>;
  // A module that exports its flag parser gets its arguments checked first: a bad one is a
  // usage error (exit code 2) like any other command's.
  if (typeof mod.parseFlags === 'function') {
    try {
      (mod.parseFlags as (a: string[]) => unknown)(argv);
    } catch (e) {
      throw new UsageError((e as Error).message, names.command);
    }
  }
  const entry = ['main', 'run', 'default'].map((k) => mod[k]).find((f) => typeof f === 'function') as
    ((argv: string[]) => unknown) | undefined;
  // A module without an entry function starts itself when loaded.
  if (entry) await entry(argv);
}

interface Command {
  spec: CommandSpec;
  run: (opts: Parsed, positionals: string[], argv: string[]) => Promise<void>;
  raw?: boolean;       // arguments go unparsed to run()
}

const COMMANDS: Record<string, Command> = {
  tokenize: { spec: tokenizeSpec, run: (o) => runTokenize(o) },
  logits: { spec: logitsSpec, run: (o) => runLogits(o) },
  generate: { spec: generateSpec, run: (o) => runGenerate(o) },
  'eval-stream': { spec: evalStreamSpec, run: (o) => runEvalStream(o) },
  bench: { spec: benchSpec, run: (o) => runBench(o) },
  info: { spec: infoSpec, run: (o) => runInfo(o) },
  serve: {
    spec: serveSpec,
    raw: true,
    run: (_o, _p, argv) => {
      if (!argv.includes('--stdio')) throw new UsageError('serve needs --stdio (the only transport)', 'serve');
      return dispatchTo({ source: 'main.ts', bundle: 'server.js', command: 'serve' }, 'the language server', argv);
    },
  },
  demo: { spec: demoSpec, raw: true, run: (_o, _p, argv) => dispatchTo({ source: 'demo.ts', bundle: 'demo.js', command: 'demo' }, 'the demo', argv) },
};

function mainUsage(): string {
  const lines = ['usage: endless <command> [options]', '', 'commands:'];
  for (const [name, c] of Object.entries(COMMANDS)) lines.push(`  ${name.padEnd(12)} ${c.spec.summary}`);
  lines.push('', 'endless <command> --help shows the options of a command.');
  return lines.join('\n');
}

// A closed pipe (`endless logits ... | head`) ends the output, not with a crash.
function quietOnEpipe(stream: NodeJS.WriteStream): void {
  if (stream.listenerCount('error') > 0) return;
  stream.on('error', (e: NodeJS.ErrnoException) => {
    if (e.code === 'EPIPE') process.exit(process.exitCode ?? 0);
    throw e;
  });
}

export async function main(argv: string[]): Promise<number> {
  quietOnEpipe(process.stdout);
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    const text = mainUsage() + '\n';
    if (name === undefined) { process.stderr.write(text); return 2; }
    process.stdout.write(text);
    return 0;
  }
  const cmd = COMMANDS[name];
  try {
    if (!cmd) throw new UsageError(`unknown command ${JSON.stringify(name)}`);
    if (rest.includes('--help') || rest.includes('-h')) {
      process.stdout.write(formatUsage(cmd.spec) + '\n');
      return 0;
    }
    if (cmd.raw) {
      await cmd.run({}, [], rest);
      return 0;
    }
    const { options, positionals } = parseArgs(cmd.spec, rest);
    await cmd.run(options, positionals, rest);
    return typeof process.exitCode === 'number' ? process.exitCode : 0;
  } catch (e) {
    if (e instanceof UsageError) {
      const spec = e.command ? COMMANDS[e.command]?.spec : undefined;
      process.stderr.write(`endless: ${e.message}\n\n${spec ? formatUsage(spec) : mainUsage()}\n`);
      return 2;
    }
    const err = e as Error & { code?: string };
    if (err?.name === 'AbortError') {
      process.stderr.write(`endless ${name}: interrupted\n`);
      return 130;
    }
    const code = typeof err.code === 'string' ? ` [${err.code}]` : '';
    process.stderr.write(`endless ${name}: error${code}: ${err?.message ?? String(e)}\n`);
    if (process.env.ENDLESS_DEBUG) process.stderr.write(`${err?.stack ?? ''}\n`);
    return 1;
  }
}

if (require.main === module) {
  main(process.argv.slice(2)).then(
    (code) => { process.exitCode = code; },
    (e) => { process.stderr.write(`endless: internal error: ${(e as Error)?.stack ?? e}\n`); process.exitCode = 1; },
  );
}
