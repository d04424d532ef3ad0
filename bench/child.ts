// Runs one engine's measurement in its own process, for bench/run.ts: each engine starts from a
// fresh process (no thread pools, heaps or page-cache state of the other engine's run in it), and
// a crash of one is reported instead of ending the whole benchmark.
//   node --import tsx bench/child.ts '{"engine":"endless"|"llama.cpp","path":...,"options":{...}}'
// prints the BenchResult as one JSON line on stdout.
import { benchEndless, type BenchOptions } from '../server/cli/bench';
import { benchLlamaCpp } from './llama';

interface Job { engine: 'endless' | 'llama.cpp'; path: string; options: BenchOptions }

async function main(): Promise<void> {
  const job = JSON.parse(process.argv[2] ?? '{}') as Job;
  const r = job.engine === 'endless' ? await benchEndless(job.path, job.options) : await benchLlamaCpp(job.path, job.options);
  process.stdout.write(JSON.stringify(r) + '\n');
}

main().catch((e) => {
  process.stderr.write(`bench child: ${(e as Error)?.stack ?? e}\n`);
  process.exit(1);
});
