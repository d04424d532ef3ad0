#!/usr/bin/env bash
# Short fuzz runs of both native fuzz targets, for `npm test`: the GGUF reader
# (native/fuzz/run.sh) and the snapshot reader (native/fuzz/run_snapshot.sh), N executions each
# (default 20,000: about 20 s each on a 2-core machine once built; the first run also builds the
# sanitized engine objects, which are cached in the work dir). Both always run; the exit status is
# non-zero when either reports a finding or fails to build.
# Usage: scripts/fuzz-smoke.sh [N]
#   env: ENDLESS_FUZZ_SEED   RNG seed for both (default: random; printed for reproduction)
#        ENDLESS_FUZZ_SMOKE_WORK   work dir (default /tmp/endless-fuzz-smoke): gguf/ and snapshot/
#        inside it hold the binaries, crash-* inputs and results.txt.
# The long runs (1,000,000 executions each) are `native/fuzz/run.sh` and `native/fuzz/run_snapshot.sh`;
# see native/fuzz/README.md and docs/reliability.md.
set -uo pipefail

N=${1:-20000}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BASE=${ENDLESS_FUZZ_SMOKE_WORK:-/tmp/endless-fuzz-smoke}
SEED=${ENDLESS_FUZZ_SEED:-$(od -An -N4 -tu4 /dev/urandom | tr -d ' ')}
if ! [[ "$N" =~ ^[0-9]+$ ]] || [ "$N" -lt 1 ]; then
    echo "fuzz-smoke: N must be a positive integer, got '$N'" >&2
    exit 2
fi

mkdir -p "$BASE"
failed=()
for target in gguf snapshot; do
    script="$ROOT/native/fuzz/run.sh"
    [ "$target" = snapshot ] && script="$ROOT/native/fuzz/run_snapshot.sh"
    echo "fuzz-smoke: $target, $N executions, rng seed $SEED"
    t0=$(date +%s)
    # only the summary and findings are interesting here; the full log stays in the work dir
    ENDLESS_FUZZ_WORK="$BASE/$target" "$script" "$N" "$SEED" > "$BASE/$target.log" 2>&1
    status=$?
    t1=$(date +%s)
    grep -E "FINDING|ERROR|runtime error|fuzz: .*executions|^#[0-9]+ cov" "$BASE/$target.log" | tail -4
    if [ "$status" -ne 0 ]; then
        echo "fuzz-smoke: $target FAILED (exit $status) after $((t1 - t0)) s; last lines of $BASE/$target.log:"
        tail -40 "$BASE/$target.log"
        failed+=("$target")
    else
        echo "fuzz-smoke: $target ok in $((t1 - t0)) s"
    fi
done

if [ "${#failed[@]}" -ne 0 ]; then
    echo "fuzz-smoke: FINDING or failure in: ${failed[*]} (reproduce with ENDLESS_FUZZ_SEED=$SEED scripts/fuzz-smoke.sh $N)"
    exit 1
fi
echo "fuzz-smoke: both targets, $N executions each, no finding"
