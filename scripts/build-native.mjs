// Builds the native engine (native/) with CMake into build/native and copies the addon to
// build/endless.node. The CUDA backend joins the build only where nvcc is found.
// Node's headers: $NODE_INCLUDE, else npm's nodedir, else next to the running node binary.
import { spawnSync } from 'node:child_process';
import { existsSync, copyFileSync, mkdirSync, renameSync } from 'node:fs';
import path from 'node:path';
import os from 'node:os';

const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..');
const buildDir = path.join(root, 'build', 'native');

function nodeInclude() {
  const candidates = [
    process.env.NODE_INCLUDE,
    process.env.npm_config_nodedir && path.join(process.env.npm_config_nodedir, 'include', 'node'),
    path.resolve(path.dirname(process.execPath), '..', 'include', 'node'),
    '/usr/include/node',
  ].filter(Boolean);
  for (const c of candidates) if (existsSync(path.join(c, 'node_api.h'))) return c;
  throw new Error(`Node headers (node_api.h) not found; looked in: ${candidates.join(', ')}. Set NODE_INCLUDE.`);
}

function run(cmd, args) {
  console.log(`[build-native] ${cmd} ${args.join(' ')}`);
  const r = spawnSync(cmd, args, { stdio: 'inherit', cwd: root });
  if (r.error) throw new Error(`${cmd} could not start: ${r.error.message}`);
  if (r.status !== 0) throw new Error(`${cmd} failed with exit code ${r.status}`);
}

const buildType = process.env.ENDLESS_BUILD_TYPE || 'Release';
const cudaFlag = process.env.ENDLESS_CUDA; // ON / OFF / unset = auto
const args = ['-S', path.join(root, 'native'), '-B', buildDir,
  `-DCMAKE_BUILD_TYPE=${buildType}`,
  `-DNODE_INCLUDE_DIR=${nodeInclude()}`,
  `-DNAPI_INCLUDE_DIR=${path.join(root, 'node_modules', 'node-addon-api')}`];
if (cudaFlag) args.push(`-DENDLESS_CUDA=${cudaFlag}`);
try {
  run('cmake', args);
  run('cmake', ['--build', buildDir, '--parallel', String(Math.max(1, os.availableParallelism?.() ?? os.cpus().length))]);
  mkdirSync(path.join(root, 'build'), { recursive: true });
  // copy then rename: a running process that has the old addon mapped keeps its file intact
  const tmp = path.join(root, 'build', `.endless.node.${process.pid}`);
  copyFileSync(path.join(buildDir, 'endless.node'), tmp);
  renameSync(tmp, path.join(root, 'build', 'endless.node'));
  console.log('[build-native] build/endless.node ready');
} catch (e) {
  console.error(`[build-native] ${e.message}`);
  process.exit(1);
}
