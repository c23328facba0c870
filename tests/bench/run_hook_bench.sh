#!/usr/bin/env bash
# The cost of a hook over the real function, with the hooked library disabled
# (LEAKWATCH_TRACK=pg: a flag check and the forwarded call) and enabled
# (pg,mysql,thread), including pthread_create+join with threads tracked.
# Prints each benchmark's median over REPS repetitions (default 5), in ns.
# Usage: tests/bench/run_hook_bench.sh [path/to/leakwatch_hook_bench]
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
bin=${1:-$root/build/tests/bench/leakwatch_hook_bench}
reps=${REPS:-5}
[[ -x $bin ]] || { echo "no benchmark binary at $bin (build target leakwatch_hook_bench)" >&2; exit 1; }
for track in pg pg,mysql,thread; do
  "$bin" --leakwatch_track="$track" --benchmark_repetitions="$reps" \
    --benchmark_report_aggregates_only=true --benchmark_min_time=0.2 2>/dev/null |
    awk '/_median/ { printf "%-50s %8s %s\n", $1, $2, $3 }'
done
