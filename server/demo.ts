// The live demo behind `npm start`: the real language server over stdio with the shipped model,
// driven by a scripted editing session on test/fixtures/sample-project: files opened, code typed
// keystroke by keystroke with inline completions appearing (and some accepted), a save, a chat
// turn streamed token by token, and a summary pinned as memory. It prints what a user would see
// and, as it goes, the cache (tokens seen, evicted, window fill) and the timings.
//
// Flags: --model FILE  --device auto|cpu|cuda  --window N  --fast (no typing delay)  --storage DIR

import { readFileSync } from 'node:fs';
import path from 'node:path';
import type { InlineCompletionList } from 'vscode-languageserver-protocol';
import { ChatSendRequest, StatusParams, SummarizeNowRequest, SessionInspectResult } from './protocol';
import { defaultModel, FIXTURE_MODEL, SAMPLE, ServerClient, SHIPPED_MODEL } from './session/client';

const tty = process.stdout.isTTY;
const c = (code: string) => (s: string) => (tty ? `\x1b[${code}m${s}\x1b[0m` : s);
const dim = c('2'), bold = c('1'), ghost = c('2;3'), green = c('32'), cyan = c('36'), yellow = c('33');

function out(line = ''): void {
  process.stdout.write(line + '\n');
}

interface DemoFlags { model?: string; device?: string; window: number; fast: boolean; storage?: string }

function parse(argv: string[]): DemoFlags {
  const f: DemoFlags = { window: -1, fast: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const v = () => { const x = argv[++i]; if (x === undefined) throw new Error(`${a} needs a value`); return x; };
    if (a === '--model') f.model = v();
    else if (a === '--device') f.device = v();
    else if (a === '--window') { f.window = Number(v()); if (!Number.isInteger(f.window) || (f.window !== 0 && f.window < 64)) throw new Error('--window must be 0 (automatic) or an integer >= 64'); }
    else if (a === '--fast') f.fast = true;
    else if (a === '--storage') f.storage = v();
    else if (a === 'demo') continue;
    else throw new Error(`unknown argument ${a} (usage: npm start -- [--model FILE] [--device auto|cpu|cuda] [--window N] [--fast] [--storage DIR])`);
  }
  return f;
}

function cacheLine(i: SessionInspectResult): string {
  const k = i.stats.cache;
  const bar = (n: number, max: number, w = 20) => {
    const f = max > 0 ? Math.round((n / max) * w) : 0;
    return '█'.repeat(f) + '░'.repeat(w - f);
  };
  return dim(`  cache: sinks ${k.sinks}/${k.sinksMax}  memory ${k.memory}/${k.memoryMax}  window ${bar(k.window, k.windowMax)} ${k.window}/${k.windowMax}` +
    `  | seen ${i.stats.seen}  evicted ${i.stats.evicted}  processed ${i.stats.processed}  reused ${i.stats.reused}`);
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function settle(s: ServerClient): Promise<SessionInspectResult> {
  for (;;) {
    const i = await s.inspect(64);
    const q = i.queue;
    if (!q.running && q.completion + q.chat + q.ingest + q.summary === 0 && i.documents.every((d) => !d.pending)) return i;
    await sleep(30);
  }
}

function pct(xs: number[], p: number): number {
  if (!xs.length) return 0;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
}

export async function main(argv: string[] = []): Promise<void> {
  const flags = parse(argv);
  const model = flags.model ? path.resolve(flags.model) : defaultModel();
  out(bold('Endless — live demo'));
  out(dim(`The real language server over stdio, the real engine, model ${path.relative(process.cwd(), model) || model}.`));
  if (model === FIXTURE_MODEL && !flags.model) {
    out(yellow(`(the shipped model ${path.relative(process.cwd(), SHIPPED_MODEL)} is not there yet: using a tiny fixture model, so the text it writes is noise)`));
  }
  // The fixture model's context is 4096: a smaller window makes eviction show in a short demo.
  // The shipped model's trained context is short enough that the automatic layout shows it.
  if (flags.window < 0) flags.window = model === FIXTURE_MODEL ? 1024 : 0;
  out();
  const extra: string[] = [];
  if (flags.device) extra.push('--device', flags.device);
  const s = new ServerClient({
    model, storage: flags.storage ?? null, extraArgs: extra,
    settings: { window: flags.window, memorySize: 192, editIdleMs: 400, summaryIdleMs: 0, maxCompletionTokens: 48, maxChatTokens: 160 },
    stderr: (l) => { if (process.env.ENDLESS_DEBUG) process.stderr.write(dim(`[server] ${l}\n`)); },
  });
  const lat: number[] = [];
  try {
    const t0 = Date.now();
    await s.initialize(SAMPLE);
    const st: StatusParams = await s.ready();
    out(`${green('●')} model ${bold(st.model?.name ?? '?')} (${st.model?.architecture}, ${st.model?.fileType}, ${((st.model?.nParams ?? 0) / 1e6).toFixed(1)}M parameters) on ${bold(st.device ?? '?')}, ready in ${Date.now() - t0} ms`);
    out(dim(`  ${st.message}`));
    const c0 = st.cache;
    if (c0) out(dim(`  cache: S=${c0.sinksMax} sink${c0.sinksMax === 1 ? '' : 's'}, pinned memory M=${c0.memoryMax}, window W=${c0.windowMax}, branch B=${c0.branchMax} tokens${flags.window ? ' (an explicit window)' : ' (automatic: within the trained context)'}`));
    out();

    // 1. Files opened.
    const files = ['src/math.ts', 'src/todo.ts'];
    for (const f of files) {
      const uri = 'file://' + path.join(SAMPLE, f);
      const t = Date.now();
      await s.open(uri, readFileSync(path.join(SAMPLE, f), 'utf8'));
      const i = await settle(s);
      out(`${cyan('open')}  ${f}  ${dim(`(its surroundings appended to the stream in ${Date.now() - t} ms)`)}`);
      out(cacheLine(i));
    }
    out();

    // 2. Typing with completions.
    const uri = 'file://' + path.join(SAMPLE, 'src/todo.ts');
    const anchor = s.text(uri).indexOf('  averageEstimate(): number {');
    let cursor = anchor;
    const script: { text: string; complete?: boolean; accept?: boolean }[] = [
      { text: '  /** The titles of the items still to do. */\n' },
      { text: '  pendingTitles(): string[] {\n    return ', complete: true, accept: true },
      { text: '\n  }\n\n' },
      { text: '  totalEstimate(): number {\n    let total = 0;\n    for (const t of this.items) {\n      ', complete: true },
      { text: 'total += t.estimate;\n    }\n    return total;\n  }\n\n' },
      { text: '  remove(id: number): boolean {\n    const index = this.items.findIndex(', complete: true, accept: true },
      { text: ');\n    if (index < 0) {\n      return false;\n    }\n    this.items.splice(index, 1);\n    return true;\n  }\n\n' },
    ];
    out(bold('Typing in src/todo.ts') + dim(' (keystroke by keystroke; ghost text is what the inline completion shows)'));
    for (const step of script) {
      let line = '';
      for (const ch of step.text) {
        await s.edit(uri, cursor, cursor, ch);
        cursor += ch.length;
        if (ch === '\n') { out('  ' + line); line = ''; } else line += ch;
        if (!flags.fast) await sleep(25);
      }
      if (step.complete) {
        const t = performance.now();
        const r = await s.complete(uri, cursor) as InlineCompletionList;
        const ms = performance.now() - t;
        lat.push(ms);
        const text = typeof r.items[0]?.insertText === 'string' ? r.items[0].insertText : '';
        const shown = text.split('\n');
        out('  ' + line + ghost(shown[0]) + dim(`   ⟵ completion in ${ms.toFixed(0)} ms`));
        for (const l of shown.slice(1)) out('  ' + ghost(l));
        if (step.accept && text) {
          await s.edit(uri, cursor, cursor, text);
          cursor += text.length;
          out(dim(`  [Tab] accepted`));
        }
        const i = await s.inspect(8);
        out(cacheLine(i));
      } else if (line) {
        out('  ' + line);
      }
    }
    await s.save(uri);
    const afterTyping = await settle(s);
    out(`${cyan('save')}  src/todo.ts  ${dim('(edits went in as compact diffs while the typing paused; nothing was prefilled twice)')}`);
    out(cacheLine(afterTyping));
    out(dim(`  appended by the server: ${afterTyping.appended} tokens; processed by the engine: ${afterTyping.stats.processed} (the difference is completion branches: ${afterTyping.stats.processed - afterTyping.appended}, with ${afterTyping.stats.reused} branch tokens reused)`));
    out();

    // 3. A chat turn, streamed.
    const question = 'What does the TodoList class do, and what did I just add to it?';
    out(bold('Chat') + dim(' (the answer streams token by token; the history lives in the cache)'));
    out(`${cyan('you')}   ${question}`);
    process.stdout.write(`${cyan('model')} `);
    let printed = 0;
    const onChunk = setInterval(() => {
      const text = s.chunks.filter((k) => k.turnId === 'demo-1').map((k) => k.delta).join('');
      if (text.length > printed) { process.stdout.write(text.slice(printed).replace(/\n/g, '\n      ')); printed = text.length; }
    }, 20);
    const r = await s.conn.sendRequest(ChatSendRequest, { turnId: 'demo-1', text: question });
    clearInterval(onChunk);
    if (r.text.length > printed) process.stdout.write(r.text.slice(printed).replace(/\n/g, '\n      '));
    out();
    out(dim(`  ${r.tokens} tokens, first after ${r.firstTokenMs} ms, ${r.totalMs} ms in all (${r.reason})`));
    out(cacheLine(await settle(s)));
    out();

    // 4. A summary, pinned as memory.
    out(bold('Summary') + dim(' (made when the user is idle; here asked for at once)'));
    const t4 = Date.now();
    const sum = await s.conn.sendRequest(SummarizeNowRequest);
    for (const l of sum.text.split('\n')) out('  ' + l);
    out(dim(`  made in ${Date.now() - t4} ms; ${sum.modelText ? 'the model wrote the first line' : 'the model produced nothing usable, so the digest alone'}; pinned: ${sum.pinnedTokens} tokens of memory`));
    const fin = await settle(s);
    out(cacheLine(fin));
    out();
    out(bold('Totals'));
    out(`  tokens seen ${fin.stats.seen}, evicted ${fin.stats.evicted}, window ${fin.stats.cache.window}/${fin.stats.cache.windowMax}, memory ${fin.stats.cache.memory}/${fin.stats.cache.memoryMax}`);
    out(`  completions: ${lat.length}, p50 ${pct(lat, 50).toFixed(0)} ms, max ${Math.max(...lat, 0).toFixed(0)} ms`);
    const status = s.statuses[s.statuses.length - 1];
    if (status) out(`  throughput: prefill ${status.tokensPerSecond.prefill} tokens/s, generation ${status.tokensPerSecond.generate} tokens/s`);
  } finally {
    await s.shutdown();
  }
}

if (require.main === module) {
  main(process.argv.slice(2)).catch((e) => {
    process.stderr.write(`endless demo: ${(e as Error).message}\n`);
    process.exitCode = 1;
  });
}
