#!/usr/bin/env bash
# The load programs (tests/programs/load_pg.c, load_my.c: 64 threads opening,
# using and closing real connections) under an agent built with
# ThreadSanitizer, and under valgrind memcheck with the normal agent (issue 6,
# "Load"). The programs themselves are not instrumented: TSan sees the
# agent's own memory accesses and every thread's locks (its interceptors), so
# what it reports is a race or a lock-order inversion in the agent.
#
# Usage: tests/load/run_sanitizers.sh [tsan|valgrind|all]     (default all)
# Environment:
#   LW_BUILD       the normal build (default build/): agent and programs
#   TSAN_BUILD     where the TSan agent is built (default /tmp/leakwatch-tsan;
#                  never inside the repository)
#   TSAN_SECONDS   duration of each TSan run (default 20), TSAN_THREADS (64)
#   VG_SECONDS     duration of each valgrind run (default 3), VG_THREADS (8)
#   OUT            where the logs go (default a new /tmp/leakwatch-sanitizers.*)
# Servers: uses PG* / MYSQL_TEST_* if set (scripts/pg-sandbox,
# scripts/mysql-sandbox), else starts throwaway ones and stops them at exit.
#
# Exit status: 0 if neither tool found anything in the agent and the agent's
# totals equal the programs' own; 1 otherwise.
#
# Three things this machine (Debian 12: GCC 12's libtsan, glibc 2.36) needs:
#  1. LD_PRELOAD order "agent:libtsan", not "libtsan:agent". With libtsan
#     first, the program's pthread_create reaches TSan's interceptor first,
#     which hands the agent's hook its own start routine; the agent's
#     trampoline then runs first in the new thread, before TSan has set the
#     thread up, and its instrumented code crashes in __tsan_func_entry. With
#     the agent first, its hook calls TSan's pthread_create (RTLD_NEXT), and
#     the new thread is TSan's before it is the agent's. (libtsan must still
#     be preloaded: as a mere DT_NEEDED of the agent it would come after libc
#     and intercept nothing.)
#  2. The TSan agent captures stacks with glibc's backtrace(), not libunwind:
#     libunwind is not instrumented, and its per-thread trace cache is freed
#     by a pthread key destructor that runs after TSan has torn the thread
#     down (a SEGV in __tsan::MutexPreLock from trace_cache_free). The copy
#     used here has the string "libunwind.so.8" in it changed so that the
#     agent's dlopen fails and it falls back to backtrace() (its documented
#     fallback); the build itself is untouched.
#  3. Any libpq program under libtsan — with or without the agent, even one
#     failed PQconnectdb — hangs at exit in libp11-kit's destructor
#     (freelocale waits for __libc_setlocale_lock, whose reader count has
#     gone negative). The agent's report has been written by then (its
#     destructor runs first), and the programs flush their own output before
#     returning from main; so a PostgreSQL run that has printed both and is
#     still there after its duration + 60 s is killed and counted as done.
#     The script shows the same hang with libtsan alone (pg_clean) each time.
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../../scripts/lib.sh"

what=${1:-all}
case $what in tsan | valgrind | all) ;; *)
  echo "usage: $0 [tsan|valgrind|all]" >&2
  exit 2
  ;;
esac
tsan_build=${TSAN_BUILD:-/tmp/leakwatch-tsan}
tsan_seconds=${TSAN_SECONDS:-20}
tsan_threads=${TSAN_THREADS:-64}
vg_seconds=${VG_SECONDS:-3}
vg_threads=${VG_THREADS:-8}
out=${OUT:-$(mktemp -d /tmp/leakwatch-sanitizers.XXXXXX)}
mkdir -p "$out"
programs=$LW_BUILD/tests/programs
agent=$LW_BUILD/libleakwatch.so
status=0

for p in load_pg load_my pg_clean; do
  [[ -x $programs/$p ]] || { echo "no $programs/$p: build the normal tree first" >&2; exit 2; }
done
if [[ -z ${PGHOST:-} || -z ${MYSQL_TEST_PORT:-} ]]; then
  echo "starting throwaway servers"
  lw_sandbox_start
fi

# check_totals LABEL STDOUT STDERR KIND:ACQ_LABEL:REL_LABEL...
# The agent's stats line against the program's own counts.
check_totals() {
  local label=$1 stdout=$2 stderr=$3
  shift 3
  local stats spec kind acq_label rel_label acq rel got
  stats=$(grep -m1 'stats: ' "$stderr" || true)
  if [[ -z $stats ]]; then
    echo "  $label: FAIL no stats line from the agent"
    status=1
    return
  fi
  for spec in "$@"; do
    IFS=: read -r kind acq_label rel_label <<<"$spec"
    acq=$(sed -n "s/^$acq_label: //p" "$stdout")
    rel=$(sed -n "s/^$rel_label: //p" "$stdout")
    got=$(grep -o "$kind acquired [0-9]* released [0-9]*\( replaced [0-9]*\)\?" <<<"$stats" || true)
    if [[ $got == "$kind acquired $acq released $rel" ]]; then
      echo "  $label: $kind acquired $acq released $rel (= the program's own)"
    else
      echo "  $label: FAIL $kind: agent says '$got', program: $acq_label $acq, $rel_label $rel"
      status=1
    fi
  done
}

pg_kinds=(pg.conn:"connections opened":"connections closed"
  pg.result:"results acquired":"results cleared"
  pg.cancel:"cancels acquired":"cancels freed" thread:threads:threads)
my_kinds=(mysql.conn:"connections opened":"connections closed"
  mysql.result:"results acquired":"results freed"
  mysql.stmt:"statements opened":"statements closed" thread:threads:threads)

# run_bounded SECONDS STDOUT STDERR CMD...: runs CMD in the background; after
# SECONDS, if it has printed "peak rss kib" and the agent's stats line, it
# is killed as hung at exit (item 3 above) and 124 returned; if it has not,
# it is given 60 s more, then killed and 125 returned (a real hang).
run_bounded() {
  local seconds=$1 stdout=$2 stderr=$3
  shift 3
  "$@" >"$stdout" 2>"$stderr" &
  local pid=$! waited=0
  while kill -0 "$pid" 2>/dev/null; do
    if ((waited >= seconds)); then
      if grep -q '^peak rss kib' "$stdout" && grep -q 'stats: ' "$stderr"; then
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
        return 124
      fi
      if ((waited >= seconds + 60)); then
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
        return 125
      fi
    fi
    sleep 1
    waited=$((waited + 1))
  done
  local rc=0
  wait "$pid" || rc=$?
  return "$rc"
}

run_tsan() {
  echo "== ThreadSanitizer (agent built in $tsan_build, logs in $out)"
  cmake -S "$LW_ROOT" -B "$tsan_build" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DCMAKE_C_FLAGS=-fsanitize=thread -DCMAKE_CXX_FLAGS=-fsanitize=thread \
    -DCMAKE_SHARED_LINKER_FLAGS=-fsanitize=thread \
    -DCMAKE_EXE_LINKER_FLAGS=-fsanitize=thread >"$out/tsan-configure.log"
  cmake --build "$tsan_build" -j2 --target leakwatch >"$out/tsan-build.log"
  local libtsan tsan_agent
  libtsan=$(gcc -print-file-name=libtsan.so)
  tsan_agent=$tsan_build/libleakwatch-backtrace.so
  cp "$tsan_build/libleakwatch.so" "$tsan_agent"
  if [[ $(grep -c 'libunwind\.so\.8' "$tsan_agent") != 1 ]]; then
    echo "  cannot find the one libunwind.so.8 string in the agent" >&2
    exit 2
  fi
  sed -i 's/libunwind\.so\.8/libunwind.so.X/' "$tsan_agent"

  local tsan_opts="halt_on_error=0 second_deadlock_stack=1 history_size=4"
  local prog rc
  for prog in load_pg load_my; do
    rc=0
    run_bounded "$((tsan_seconds + 60))" "$out/tsan-$prog.out" "$out/tsan-$prog.err" \
      env LD_PRELOAD="$tsan_agent:$libtsan" LEAKWATCH_STATS=1 \
      TSAN_OPTIONS="$tsan_opts" "$programs/$prog" "$tsan_seconds" "$tsan_threads" || rc=$?
    case $rc in
      0) echo "  $prog: exit 0" ;;
      124) echo "  $prog: done (report and output written), hung at exit, killed (item 3)" ;;
      *) echo "  $prog: FAIL exit status $rc"; status=1 ;;
    esac
    if [[ $prog == load_pg ]]; then
      check_totals "$prog" "$out/tsan-$prog.out" "$out/tsan-$prog.err" "${pg_kinds[@]}"
    else
      check_totals "$prog" "$out/tsan-$prog.out" "$out/tsan-$prog.err" "${my_kinds[@]}"
    fi
    local n
    n=$(grep -c '^WARNING: ThreadSanitizer' "$out/tsan-$prog.err" || true)
    echo "  $prog: $n ThreadSanitizer reports ($(sed -n 's/^connections opened: //p' "$out/tsan-$prog.out") connections)"
    if ((n > 0)); then
      status=1
      grep '^SUMMARY: ThreadSanitizer' "$out/tsan-$prog.err" | sort | uniq -c | sort -rn | head -20
    fi
    grep -E 'ThreadSanitizer:DEADLYSIGNAL|ERROR: ThreadSanitizer' "$out/tsan-$prog.err" | head -3 || true
  done
  # The control for item 3: libtsan alone, no agent.
  rc=0
  timeout -s KILL 20 env LD_PRELOAD="$libtsan" "$programs/pg_clean" \
    >"$out/tsan-control.out" 2>&1 || rc=$?
  if ((rc == 137)); then
    echo "  control: pg_clean under libtsan alone (no agent) hangs at exit too"
  else
    echo "  control: pg_clean under libtsan alone exited with $rc"
  fi
}

run_valgrind() {
  echo "== valgrind memcheck, the normal agent ($vg_threads threads, ${vg_seconds} s; logs in $out)"
  command -v valgrind >/dev/null || { echo "  valgrind is not installed" >&2; exit 2; }
  local prog rc
  for prog in load_pg load_my; do
    rc=0
    run_bounded "$((vg_seconds + 240))" "$out/vg-$prog.out" "$out/vg-$prog.err" \
      env LD_PRELOAD="$agent" LEAKWATCH_STATS=1 \
      valgrind --tool=memcheck --trace-children=no --error-limit=no \
      --num-callers=40 --leak-check=full --show-leak-kinds=definite,possible \
      --log-file="$out/vg-$prog.log" \
      "$programs/$prog" "$vg_seconds" "$vg_threads" || rc=$?
    case $rc in
      0) echo "  $prog: exit 0" ;;
      124) echo "  $prog: done (report and output written), hung at exit, killed" ;;
      *) echo "  $prog: FAIL exit status $rc"; status=1 ;;
    esac
    if [[ $prog == load_pg ]]; then
      check_totals "$prog" "$out/vg-$prog.out" "$out/vg-$prog.err" "${pg_kinds[@]}"
    else
      check_totals "$prog" "$out/vg-$prog.out" "$out/vg-$prog.err" "${my_kinds[@]}"
    fi
    sed -n 's/^==[0-9]*== \(ERROR SUMMARY: .*\)/  '"$prog"': all: \1/p' "$out/vg-$prog.log"
    # The error blocks (a blank "==pid== " line ends each) with a frame in
    # the agent.
    awk '
      /^==[0-9]+== $/ { if (block ~ /libleakwatch/) { print block; n++ } block = ""; next }
      { block = block $0 "\n" }
      END { if (block ~ /libleakwatch/) { print block; n++ } print n + 0 > "/dev/stderr" }
    ' "$out/vg-$prog.log" >"$out/vg-$prog.agent.txt" 2>"$out/vg-$prog.agent.count"
    local n
    n=$(cat "$out/vg-$prog.agent.count")
    echo "  $prog: $n error or leak blocks with a libleakwatch frame ($out/vg-$prog.agent.txt)"
    if ((n > 0)); then
      status=1
      head -40 "$out/vg-$prog.agent.txt"
    fi
  done
}

case $what in
  tsan) run_tsan ;;
  valgrind) run_valgrind ;;
  all) run_tsan; run_valgrind ;;
esac
echo "logs: $out"
exit "$status"
