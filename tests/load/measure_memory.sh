#!/usr/bin/env bash
# The agent's memory per live handle (issue 6, "bounded resources"; issue 7's
# target: <= 4 MiB fixed + <= 128 bytes per live handle beyond its interned
# stack). No server needed.
#
# Runs tests/programs/mem_handles (N results from 100 call sites, kept; then
# cleared; then a churn of acquire/release; then N kept again) with and
# without the agent, for a few N, and prints, from VmRSS:
#   fixed      warm(agent) - warm(plain): the agent loaded, one handle seen
#   per handle ((held - warm)(agent) - (held - warm)(plain)) / N
#   kept       (cleared - warm)(agent) - (cleared - warm)(plain): what is
#              still resident right after every handle is released — the
#              agent's table, until its watchdog's next scan gives it back
#              (ShardedTable::Shrink; scripts/bench-memory's `burst` waits
#              for that); its pool and large indexes are mapped apart from
#              the malloc heap, so they never keep glibc from trimming the
#              program's freed blocks
#   churn      growth over CHURN acquire/release pairs, agent minus plain
#              (the recently-released set is a fixed ring: ~0)
#   again      per handle as above, for N held a second time, from warm
#              (the grown table is reused: ~ the first figure)
# Each figure is the median of REPS runs (default 3).
#
# Usage: tests/load/measure_memory.sh [BUILD_DIR]     (default build)
#   env: COUNTS="10000 100000 1000000" CHURN=1000000 REPS=3
#        AGENT=path/to/libleakwatch.so (default BUILD_DIR/libleakwatch.so)
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
build=${1:-$root/build}
prog=$build/tests/programs/mem_handles
agent=${AGENT:-$build/libleakwatch.so}
counts=${COUNTS:-10000 100000 1000000}
churn=${CHURN:-1000000}
reps=${REPS:-3}
[[ -x $prog ]] || { echo "no $prog (build target mem_handles)" >&2; exit 1; }
[[ -f $agent ]] || { echo "no agent at $agent" >&2; exit 1; }

# rss STEP OUTPUT: the "rss kib STEP: N" value.
rss() { sed -n "s/^rss kib $1: //p" <<<"$2"; }
median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

printf '%-9s %10s %12s %10s %10s %12s\n' handles "fixed KiB" "B/handle" \
  "kept KiB" "churn KiB" "again B/h"
for n in $counts; do
  fixed=() per=() kept=() ch=() re=()
  for ((i = 0; i < reps; ++i)); do
    a=$(env -u LD_PRELOAD LD_PRELOAD="$agent" "$prog" "$n" "$churn")
    p=$(env -u LD_PRELOAD "$prog" "$n" "$churn")
    fixed+=($(($(rss warm "$a") - $(rss warm "$p"))))
    per+=($(( ( ($(rss held "$a") - $(rss warm "$a")) - ($(rss held "$p") - $(rss warm "$p")) ) * 1024 / n )))
    kept+=($(( ($(rss cleared "$a") - $(rss warm "$a")) - ($(rss cleared "$p") - $(rss warm "$p")) )))
    ch+=($(( ($(rss churn "$a") - $(rss cleared "$a")) - ($(rss churn "$p") - $(rss cleared "$p")) )))
    re+=($(( ( ($(rss reheld "$a") - $(rss warm "$a")) - ($(rss reheld "$p") - $(rss warm "$p")) ) * 1024 / n )))
  done
  printf '%-9s %10s %12s %10s %10s %12s\n' "$n" \
    "$(printf '%s\n' "${fixed[@]}" | median)" "$(printf '%s\n' "${per[@]}" | median)" \
    "$(printf '%s\n' "${kept[@]}" | median)" "$(printf '%s\n' "${ch[@]}" | median)" \
    "$(printf '%s\n' "${re[@]}" | median)"
done
