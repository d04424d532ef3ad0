// The same in-host mocha suite through @vscode/test-electron, for machines that can download
// VS Code (not run in CI here, which cannot: see ../../../shared/E2E.md and scripts/e2e.sh).
// Usage: npm install --no-save @vscode/test-electron && npx esbuild test/e2e/host/index.ts --bundle
//   --platform=node --format=cjs --external:vscode --external:mocha --outfile=node_modules/.cache/endless-e2e/host/index.js
//   && node --import tsx test/e2e/electron.ts
// The workspace is a temporary folder with one file; the model comes from $ENDLESS_MODEL or the
// shipped default.

import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

async function main(): Promise<void> {
  const root = path.resolve(__dirname, '..', '..');
  let runTests: (o: Record<string, unknown>) => Promise<number>;
  try {
    // Optional: not a dependency of the project (it downloads VS Code when it runs).
    const mod = '@vscode/test-electron';
    ({ runTests } = await import(mod));
  } catch {
    console.error('@vscode/test-electron is not installed: npm install --no-save @vscode/test-electron');
    process.exit(2);
  }
  const workspace = mkdtempSync(path.join(os.tmpdir(), 'endless-ws-'));
  writeFileSync(path.join(workspace, 'demo.py'), 'def add(a, b):\n    return a + b\n');
  const model = process.env.ENDLESS_MODEL ?? path.join(root, 'models', 'endless-code-q8_0.gguf');
  const code = await runTests({
    extensionDevelopmentPath: root,
    extensionTestsPath: path.join(root, 'node_modules', '.cache', 'endless-e2e', 'host', 'index.js'),
    launchArgs: [workspace, '--disable-extensions', '--disable-workspace-trust'],
    extensionTestsEnv: { ENDLESS_MODEL: model },
  });
  process.exit(code);
}

void main();
