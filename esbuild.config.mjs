// Bundles the three JavaScript programs separately (the STYLE.md layout of lsp-sample):
//   extension/extension.ts -> dist/extension.js   (VS Code extension host)
//   server/main.ts         -> dist/server.js      (the language server)
//   server/cli.ts          -> dist/cli.js         (the `endless` command)
//   server/demo.ts         -> dist/demo.js        (the demo, when it exists)
// CommonJS for Node 20, `vscode` and the native addon (*.node) external, with source maps.
// An entry whose source does not exist yet is skipped with a note, so the build never fails on
// files other engineers have not written yet. `--watch` rebuilds on change.
import * as esbuild from 'esbuild';
import { existsSync } from 'node:fs';
import path from 'node:path';

const root = path.dirname(new URL(import.meta.url).pathname);
const entries = [
  { in: 'extension/extension.ts', out: 'dist/extension.js' },
  { in: 'server/main.ts', out: 'dist/server.js' },
  { in: 'server/cli.ts', out: 'dist/cli.js' },
  { in: 'server/demo.ts', out: 'dist/demo.js' },
];

const common = {
  bundle: true,
  platform: 'node',
  format: 'cjs',
  target: 'node20',
  sourcemap: true,
  // node-llama-cpp is used only by bench/ and must never be bundled.
  external: ['vscode', '*.node', 'node-llama-cpp'],
  logLevel: 'warning',
  absWorkingDir: root,
};

const watch = process.argv.includes('--watch');
let failed = false;
for (const e of entries) {
  if (!existsSync(path.join(root, e.in))) {
    console.log(`[esbuild] skipping ${e.in}: not written yet`);
    continue;
  }
  const options = { ...common, entryPoints: [e.in], outfile: e.out };
  try {
    if (watch) {
      const ctx = await esbuild.context(options);
      await ctx.watch();
      console.log(`[esbuild] watching ${e.in}`);
    } else {
      await esbuild.build(options);
      console.log(`[esbuild] ${e.in} -> ${e.out}`);
    }
  } catch (err) {
    failed = true;
    console.error(`[esbuild] ${e.in} failed: ${err.message}`);
  }
}
if (failed && !watch) process.exit(1);
