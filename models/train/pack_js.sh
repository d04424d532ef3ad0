#!/usr/bin/env bash
# Packs JavaScript/TypeScript training data for the default model (issue 4).
# Installs a fixed list of widely used npm packages into a temporary folder (scripts off),
# then models/train/pack_js.py keeps only permissively licensed packages' sources
# (.js .mjs .cjs .jsx .ts .mts .cts .tsx .d.ts), drops minified/generated/huge files and
# exact duplicates, and writes .carry-data/js.tar.xz (with js/MANIFEST.json: package,
# version, license, files, bytes). The GPU machine has no network, so this travels there
# with the working tree as a carried, git-ignored folder.
# Usage: bash models/train/pack_js.sh [workdir]   (run from the repository root)
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
work="${1:-/tmp/endless-js}"
mkdir -p "$work" "$root/.carry-data"
# Not pinned: js/MANIFEST.json inside the tarball records the versions actually installed
pkgs=(
  typescript lodash express react react-dom vue rxjs zod axios prettier @types/node
  date-fns three d3 fp-ts graphql webpack eslint svelte @angular/core jquery immer mobx
  ajv @tanstack/query-core moment preact redux @reduxjs/toolkit yargs commander
  vscode-languageserver vscode-languageclient @babel/core @babel/parser @babel/traverse
  rollup esbuild-wasm koa fastify ws undici socket.io chart.js luxon dayjs uuid
  ramda underscore async bluebird handlebars marked highlight.js acorn terser
  io-ts effect @sinclair/typebox class-validator inversify tslib @types/react
  @types/express @types/lodash mongoose sequelize typeorm knex pg mysql2 ioredis
  jest mocha chai sinon vitest @vue/compiler-core @vue/runtime-core
  zustand jotai react-router @remix-run/router formik yup superstruct valibot
)
if [ ! -f "$work/.installed" ]; then
  cd "$work"
  [ -f package.json ] || echo '{"name":"endless-js-corpus","private":true}' > package.json
  npm install --ignore-scripts --no-audit --no-fund --legacy-peer-deps --omit=optional \
    "${pkgs[@]}" > npm-install.log 2>&1 || { tail -30 npm-install.log; exit 1; }
  touch .installed
fi
python3 "$root/models/train/pack_js.py" "$work/node_modules" "$root/.carry-data/js.tar.xz"
ls -l "$root/.carry-data/js.tar.xz"
