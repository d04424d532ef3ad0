#!/usr/bin/env bash
# Fills the git-ignored folder .carry-gpu/ with what scripts/gpu-check.sh needs on the GPU machine
# (which has no Node and no network), small enough to travel with the working tree (64 MiB in all):
#   node.xz            this machine's node binary, stripped and xz-compressed (~21 MB)
#   node-include.tgz   only the Node-API headers the addon needs
#   node-addon-api/    the C++ wrapper headers
#   engine-cuda.test.cjs  test/engine-cuda.test.ts bundled with esbuild (no node_modules there)
#   env.sh             sourced there: unpacks node, sets PATH and NODE_INCLUDE
# Run here from the repository root, then call the device tool with carry [".carry-gpu"] and
#   source .carry-gpu/env.sh; GPU_CHECK_ALL=1 bash scripts/gpu-check.sh
set -euo pipefail
root=$(git rev-parse --show-toplevel); cd "$root"
grep -qx '/.carry-gpu/' .git/info/exclude 2>/dev/null || echo '/.carry-gpu/' >> .git/info/exclude
mkdir -p .carry-gpu
node_bin=$(readlink -f "$(command -v node)")
if [ ! -f .carry-gpu/node.xz ] || [ "$node_bin" -nt .carry-gpu/node.xz ]; then
  tmp=$(mktemp); cp "$node_bin" "$tmp"; strip --strip-all "$tmp" 2>/dev/null || true
  xz -T2 -9e -c "$tmp" > .carry-gpu/node.xz; rm -f "$tmp"
fi
inc=$(dirname "$node_bin")/../include/node
tmpd=$(mktemp -d); mkdir "$tmpd/node"
cp "$inc"/node_api*.h "$inc"/js_native_api*.h "$inc"/node_version.h "$tmpd/node/"
tar czf .carry-gpu/node-include.tgz -C "$tmpd" node; rm -rf "$tmpd"
rm -rf .carry-gpu/node-addon-api; cp -r node_modules/node-addon-api .carry-gpu/
rm -rf .carry-gpu/node-addon-api/doc .carry-gpu/node-addon-api/tools
node_modules/.bin/esbuild test/engine-cuda.test.ts --bundle --platform=node --format=cjs --target=node20 \
  --outfile=.carry-gpu/engine-cuda.test.cjs --log-level=warning
cat > .carry-gpu/env.sh <<'EON'
# sourced on the GPU machine: node on PATH, its API headers in NODE_INCLUDE
if [ ! -x /tmp/nodebin/node ]; then
  mkdir -p /tmp/nodebin /tmp/nodeinc
  xz -dc .carry-gpu/node.xz > /tmp/nodebin/node && chmod +x /tmp/nodebin/node
  tar xzf .carry-gpu/node-include.tgz -C /tmp/nodeinc
fi
export PATH=/tmp/nodebin:$PATH NODE_INCLUDE=/tmp/nodeinc/node
EON
du -sh .carry-gpu
