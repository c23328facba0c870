#!/usr/bin/env bash
# Runs the tracker micro-benchmark in both configurations and prints one table:
# acquire+release with stacks (LEAKWATCH_STACK_DEPTH=24) and without (0), their
# ratio, 1 vs 2 threads, and the pieces the stack path is made of; then issue
# 7's targets, each marked met or NOT MET: with stacks <= 500 ns, without
# <= 60 ns (the benchmark's figure includes its 24-frame call chain, so the
# tracker's own cost, the figure minus the chain alone, is shown and judged
# too), and 2 threads / 1 thread throughput >= 1.8 (depth 0, depth 24, and
# ShardedTable Insert+Erase alone). A 2-thread figure means something only if
# both threads had a core: "threads running" near 2.00, and the chain alone
# (work that shares nothing) scaling near 2; a warning says when not.
#
# The tracker reads its configuration once per process, so each configuration
# is its own process; with ROUNDS > 1 the two alternate (24, 0, 24, 0, ...) and
# every figure is the median over rounds of each run's median.
#
# Usage: tests/bench/run_tracker_bench.sh [path/to/leakwatch_tracker_bench]
#   (default: build/tests/bench/leakwatch_tracker_bench under the repo root)
# Environment: REPS (repetitions per run, default 5), ROUNDS (default 1),
#   KEEP=dir (keep the JSON output there), and any extra arguments for the
#   benchmark binary in BENCH_ARGS (e.g. BENCH_ARGS=--benchmark_min_time=1).
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
bin=${1:-$root/build/tests/bench/leakwatch_tracker_bench}
reps=${REPS:-5}
rounds=${ROUNDS:-1}
[[ -x $bin ]] || { echo "no benchmark binary at $bin (build target leakwatch_tracker_bench)" >&2; exit 1; }
command -v python3 >/dev/null || { echo "python3 is needed for the summary" >&2; exit 1; }

if [[ -n ${KEEP:-} ]]; then
  out=$KEEP
  mkdir -p "$out"
else
  out=$(mktemp -d)
  trap 'rm -rf "$out"' EXIT
fi

echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)  (2-core machine: other load skews the figures, 2-thread ones most)"
for ((r = 1; r <= rounds; r++)); do
  for depth in 24 0; do
    if [[ $depth == 0 ]]; then
      filter='BM_AcquireRelease|BM_Part_Chain'   # the pieces need stacks
    else
      filter='.'
    fi
    echo "== round $r/$rounds: LEAKWATCH_STACK_DEPTH=$depth" >&2
    # shellcheck disable=SC2086
    "$bin" --leakwatch_stack_depth=$depth --benchmark_filter="$filter" \
      --benchmark_repetitions="$reps" --benchmark_report_aggregates_only=true \
      --benchmark_out="$out/depth$depth.round$r.json" --benchmark_out_format=json \
      ${BENCH_ARGS:-} >&2
  done
done
echo "load average after:  $(cut -d' ' -f1-3 /proc/loadavg)"

python3 - "$out" "$reps" "$rounds" <<'PYEOF'
import glob, json, statistics, sys

out, reps, rounds = sys.argv[1], sys.argv[2], int(sys.argv[3])
runs = {24: {}, 0: {}}   # depth -> run_name -> [median aggregate per round]
for path in sorted(glob.glob(f"{out}/depth*.round*.json")):
    depth = int(path.split("depth")[1].split(".")[0])
    with open(path) as f:
        data = json.load(f)
    for b in data["benchmarks"]:
        if b.get("aggregate_name") == "median" and not b.get("error_occurred"):
            runs[depth].setdefault(b["run_name"], []).append(b)

def vals(depth, name, field):
    return [b[field] for b in runs[depth].get(name, []) if field in b]

def get(depth, name, field="real_time"):
    v = vals(depth, name, field)
    return statistics.median(v) if v else None

def fmt(v, unit="", digits=1):
    return "n/a" if v is None else f"{v:.{digits}f}{unit}"

def spread(depth, name, field="real_time", scale=1.0, unit=" ns"):
    v = vals(depth, name, field)
    if not v:
        return "n/a"
    text = fmt(statistics.median(v) * scale, unit)
    if len(v) > 1:
        text += f" ({min(v) * scale:.1f}-{max(v) * scale:.1f})"
    return text

def ratio(a, b):
    return None if a is None or b in (None, 0) else a / b

def minus(a, b):
    return None if a is None or b is None else a - b

P100 = "BM_AcquireRelease/sites:100/real_time/threads:{}"
P1 = "BM_AcquireRelease/sites:1/real_time/threads:{}"
CHAIN = "BM_Part_Chain/real_time/threads:{}"
TABLE = "BM_Part_TableInsertErase/real_time/threads:{}"

rows = []
def add(label, a, b, r=""):
    rows.append((label, a, b, r))

def both(label, name, field="real_time", scale=1.0, unit=" ns", with_ratio=True):
    r = ratio(get(24, name, field), get(0, name, field)) if with_ratio else None
    add(label, spread(24, name, field, scale, unit), spread(0, name, field, scale, unit),
        "" if r is None else fmt(r, "x", 2))

def scaling(depth, name):
    return ratio(get(depth, name.format(2), "items_per_second"),
                 get(depth, name.format(1), "items_per_second"))

def concurrency(depth, name):
    # CPU time summed over threads / wall time: 2.0 = both threads had a core
    # all along; near 1.0 = they took turns on one core (other load), and the
    # 2-thread figures say nothing about scaling.
    return ratio(get(depth, name, "cpu_time"), get(depth, name))

both("acquire+release, 1 thread", P100.format(1))
both("  same, CPU time", P100.format(1), "cpu_time")
s_net = minus(get(24, P100.format(1)), get(24, CHAIN.format(1)))
n_net = minus(get(0, P100.format(1)), get(0, CHAIN.format(1)))
add("  minus the call chain alone", fmt(s_net, " ns"), fmt(n_net, " ns"),
    fmt(ratio(s_net, n_net), "x", 2))
both("throughput, 1 thread", P100.format(1), "items_per_second", 1e-6, " M/s", False)
both("throughput, 2 threads (total)", P100.format(2), "items_per_second", 1e-6, " M/s", False)
add("  scaling 2 threads / 1 thread", fmt(scaling(24, P100), "x", 2),
    fmt(scaling(0, P100), "x", 2))
add("  threads running (CPU/real, 2.00 = both)", fmt(concurrency(24, P100.format(2)), "", 2),
    fmt(concurrency(0, P100.format(2)), "", 2))
both("  CPU per pair, 2 threads", P100.format(2), "cpu_time")
both("one site only, 1 thread (cache-friendly)", P1.format(1))

print()
print(f"leakwatch tracker: acquire+release through Tracker::Get(), 100 call sites, "
      f"24-frame chains; median of {reps} repetitions"
      + (f", then median (min-max) over {rounds} alternating rounds" if rounds > 1 else ""))
w = max(len(r[0]) for r in rows)
print(f"{'':{w}}  {'depth 24':>26}  {'depth 0':>26}  {'ratio':>6}")
for label, a, b, c in rows:
    print(f"{label:{w}}  {a:>26}  {b:>26}  {c:>6}")

# Issue 7's targets, each judged on the medians above.
def target(label, value, unit, limit, at_most, digits=1):
    if value is None:
        verdict = "n/a"
    else:
        verdict = "met" if (value <= limit if at_most else value >= limit) else "NOT MET"
    bound = ("<= " if at_most else ">= ") + f"{limit:g}{unit}"
    print(f"  {label:52} {fmt(value, unit, digits):>10}  {bound:>10}  {verdict}")

print()
print("targets (issue 7):")
target("acquire+release, stacks (100 sites, depth 24)", get(24, P100.format(1)),
       " ns", 500, True)
target("acquire+release, no stacks (depth 0)", get(0, P100.format(1)), " ns", 60, True)
print(f"  {'  of which the 24-frame call chain alone':52} "
      f"{fmt(get(0, CHAIN.format(1)), ' ns'):>10}")
target("  the tracker's own: minus the chain", n_net, " ns", 60, True)
target("2 threads / 1 thread throughput, depth 0", scaling(0, P100), "x", 1.8, False, 2)
target("2 threads / 1 thread throughput, depth 24", scaling(24, P100), "x", 1.8, False, 2)
target("2 threads / 1 thread, ShardedTable Insert+Erase", scaling(24, TABLE), "x", 1.8,
       False, 2)
busy = [c for c in (concurrency(0, P100.format(2)), concurrency(24, P100.format(2)),
                    concurrency(24, TABLE.format(2))) if c is not None and c < 1.9]
print(f"  {'  the machine: 2-thread scaling of the chain alone':52} "
      f"{fmt(scaling(24, CHAIN), 'x', 2):>10}")
if busy:
    print("  warning: the two threads did not always run at once (CPU/real "
          f"{min(busy):.2f} < 1.90): other load; the 2-thread figures understate")

print()
print("pieces (depth-24 process; 'net' = minus the call chain alone):")
def piece(label, value, unit=" ns", digits=1):
    print(f"  {label:48} {fmt(value, unit, digits)}")
chain = get(24, CHAIN.format(1))
def net(name):
    return minus(get(24, name), chain)
piece("24-frame call chain alone, 100 sites", chain)
piece("  machine's 2-thread scaling on it", scaling(24, CHAIN), "x", 2)
piece("  threads running (CPU/real)", concurrency(24, CHAIN.format(2)), "", 2)
CAPTURE = "BM_Part_CaptureStack/real_time/threads:{}"
DEPOT = "BM_Part_DepotPut/real_time/threads:{}"
piece("CaptureStack(24) (walks 24+4 frames), net", net(CAPTURE.format(1)))
piece("  scaling 2 threads / 1 thread (with chain)", scaling(24, CAPTURE), "x", 2)
piece("  threads running (CPU/real)", concurrency(24, CAPTURE.format(2)), "", 2)
piece("unw_backtrace 24 frames, net", net("BM_Part_Unwind/frames:24"))
piece("unw_backtrace 32 frames, net", net("BM_Part_Unwind/frames:32"))
piece("Depot::Put of a known stack", get(24, DEPOT.format(1)))
piece("  scaling 2 threads / 1 thread", scaling(24, DEPOT), "x", 2)
piece("  threads running (CPU/real)", concurrency(24, DEPOT.format(2)), "", 2)
piece("ShardedTable Insert+Erase, 1 thread", get(24, TABLE.format(1)))
piece("  scaling 2 threads / 1 thread", scaling(24, TABLE), "x", 2)
piece("  threads running (CPU/real)", concurrency(24, TABLE.format(2)), "", 2)
piece("  CPU per Insert+Erase, 2 threads", get(24, TABLE.format(2), "cpu_time"))
piece("NowNs() + CurrentTid()", get(24, "BM_Part_ClockAndTid"))
PYEOF
