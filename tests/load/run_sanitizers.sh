#!/usr/bin/env bash
# The load programs (tests/programs/load_pg.c, load_my.c: 64 threads opening,
# using and closing real connections) under an agent built with
# ThreadSanitizer, and under valgrind memcheck with the normal agent (issue 6,
# "Load"). The programs themselves are not instrumented: TSan sees the
# agent's own memory accesses and every thread's locks (its interceptors), so
# what it reports is a race or a lock-order inversion in the agent.
#
# TSan runs each program twice: as the issue asks (default 30 s threshold:
# the watchdog idles, the agent must stay silent), and with a busy watchdog
# (LEAKWATCH_SCAN_MS=10ms, a 5 ms threshold so live warnings and "released
# after" notes are written while the hooks run, LEAKWATCH_METRICS rewritten
# every scan; the log goes to a file). A positive control follows: a small
# TSan-built library with a deliberate race, preloaded between the agent and
# libtsan, must be reported (so "0 reports" means something).
#
# Usage: tests/load/run_sanitizers.sh [tsan|valgrind|all]     (default all)
# Environment:
#   LW_BUILD       the normal build (default build/): agent and programs
#   TSAN_BUILD     where the TSan agent is built (default /tmp/leakwatch-tsan;
#                  never inside the repository)
#   TSAN_SECONDS   duration of each TSan run (default 20), TSAN_THREADS (64)
#   TSAN_BUSY_SECONDS  duration of each busy-watchdog TSan run (default 10)
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
#     returning from main; so a run that has printed both and is still
#     there 15 s later is killed and counted as done.
#     The script shows the same hang with libtsan alone (pg_clean) each time.
#
# What the first runs found (both fixed): the busy TSan run reported data
# races between ShardedTable's per-kind counters, incremented with plain ++
# under a shard lock, and GetTotals' unlocked reads (now relaxed atomics on
# both sides, table.h Bump); and the watchdog thread's 256 KiB stack
# overflowed inside libdw's dwarf_getsrclines while symbolizing a live
# report (now 1 MiB, tracker.cc StartWatchdog).
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
tsan_busy_seconds=${TSAN_BUSY_SECONDS:-10}
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

# run_bounded SECONDS STDOUT STDERR AGENT_OUT CMD...: runs CMD in the
# background. Once it has printed "peak rss kib" and the agent its stats line
# (in AGENT_OUT: STDERR, or the LEAKWATCH_LOG file), it gets 15 s to exit;
# still there then, it is killed as hung at exit (item 3 above) and 124
# returned. Not done SECONDS + 60 s after the start: killed, 125 returned (a
# real hang).
run_bounded() {
  local seconds=$1 stdout=$2 stderr=$3 agent_out=$4
  shift 4
  "$@" >"$stdout" 2>"$stderr" &
  local pid=$! waited=0 done_at=-1 rc=0
  while kill -0 "$pid" 2>/dev/null; do
    if ((done_at < 0)) && grep -q '^peak rss kib' "$stdout" &&
      grep -q 'stats: ' "$agent_out" 2>/dev/null; then
      done_at=$waited
    fi
    if ((done_at >= 0 && waited - done_at >= 15)); then
      rc=124
    elif ((waited >= seconds + 60)); then
      rc=125
    fi
    if ((rc != 0)); then
      kill -KILL "$pid" 2>/dev/null || true
      wait "$pid" 2>/dev/null || true
      return "$rc"
    fi
    sleep 1
    waited=$((waited + 1))
  done
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
  local prog rc mode seconds tag
  local busy_env=(LEAKWATCH_SCAN_MS=10ms LEAKWATCH_THRESHOLD_MS=5ms)
  for mode in quiet busy; do
    for prog in load_pg load_my; do
      tag=tsan-$mode-$prog
      local extra=()
      seconds=$tsan_seconds
      if [[ $mode == busy ]]; then
        seconds=$tsan_busy_seconds
        extra=("${busy_env[@]}" LEAKWATCH_METRICS="$out/$tag.prom"
          LEAKWATCH_LOG="$out/$tag.log")
      fi
      # The busy runs' agent output (warnings, stats) is in their log file.
      local agent_out=$out/$tag.err
      [[ $mode == busy ]] && agent_out=$out/$tag.log
      rc=0
      run_bounded "$seconds" "$out/$tag.out" "$out/$tag.err" "$agent_out" \
        env LD_PRELOAD="$tsan_agent:$libtsan" LEAKWATCH_STATS=1 "${extra[@]}" \
        TSAN_OPTIONS="$tsan_opts" "$programs/$prog" "$seconds" "$tsan_threads" || rc=$?
      case $rc in
        0) echo "  $mode $prog: exit 0" ;;
        124) echo "  $mode $prog: done (report and output written), hung at exit, killed (item 3)" ;;
        *) echo "  $mode $prog: FAIL exit status $rc"; status=1 ;;
      esac
      if [[ $prog == load_pg ]]; then
        check_totals "$mode $prog" "$out/$tag.out" "$agent_out" "${pg_kinds[@]}"
      else
        check_totals "$mode $prog" "$out/$tag.out" "$agent_out" "${my_kinds[@]}"
      fi
      if [[ $mode == quiet ]] && grep -v 'stats: ' "$out/$tag.err" | grep -q '^leakwatch\['; then
        echo "  $mode $prog: FAIL the agent said more than its stats line ($out/$tag.err)"
        status=1
      fi
      if [[ $mode == busy ]]; then
        echo "  $mode $prog: $(grep -c '^leakwatch\[' "$out/$tag.log") agent lines written while the hooks ran"
      fi
      local n
      n=$(grep -c '^WARNING: ThreadSanitizer' "$out/$tag.err" || true)
      echo "  $mode $prog: $n ThreadSanitizer reports ($(sed -n 's/^connections opened: //p' "$out/$tag.out") connections)"
      if ((n > 0)); then
        status=1
        grep '^SUMMARY: ThreadSanitizer' "$out/$tag.err" | sort | uniq -c | sort -rn | head -20
      fi
      grep -E 'ThreadSanitizer:DEADLYSIGNAL|ERROR: ThreadSanitizer' "$out/$tag.err" | head -3 || true
    done
  done

  # Positive control: a deliberate race in a TSan-built PQfreeCancel wrapper
  # called through the agent's hook, on threads created through its
  # pthread_create hook.
  cat >"$tsan_build/racy.c" <<'RACY'
#define _GNU_SOURCE
#include <dlfcn.h>
typedef struct pg_cancel PGcancel;
long racy_counter;
void PQfreeCancel(PGcancel* c) {
  static void (*real)(PGcancel*);
  if (!real) real = (void (*)(PGcancel*))dlsym(RTLD_NEXT, "PQfreeCancel");
  racy_counter++;
  real(c);
}
RACY
  gcc -shared -fPIC -g -O1 -fsanitize=thread "$tsan_build/racy.c" \
    -o "$tsan_build/racy.so" -ldl
  rc=0
  run_bounded 2 "$out/tsan-control-race.out" "$out/tsan-control-race.err" \
    "$out/tsan-control-race.err" \
    env LD_PRELOAD="$tsan_agent:$tsan_build/racy.so:$libtsan" LEAKWATCH_STATS=1 \
    TSAN_OPTIONS="$tsan_opts" "$programs/load_pg" 2 8 || rc=$?
  if grep -q 'SUMMARY: ThreadSanitizer: data race .*racy.c' "$out/tsan-control-race.err"; then
    echo "  control: the deliberate race in racy.so is reported (TSan sees through the agent)"
  else
    echo "  control: FAIL the deliberate race in racy.so was not reported"
    status=1
  fi

  # The control for item 3: libtsan alone, no agent.
  rc=0
  timeout 20 env LD_PRELOAD="$libtsan" "$programs/pg_clean" \
    >"$out/tsan-control.out" 2>&1 || rc=$?
  if ((rc == 124)); then
    echo "  control: pg_clean under libtsan alone (no agent) hangs at exit too"
  else
    echo "  control: pg_clean under libtsan alone exited with $rc"
  fi
}

# vg_summary XML AGENT_TXT: prints "ERRORS CONTEXTS AGENT_CONTEXTS" for a
# valgrind XML file, and writes every error or leak with a frame in the agent
# to AGENT_TXT: its kind, how often, where the innermost frame outside libc,
# the loader and valgrind's preload lies (agent code, or a library the agent
# called), and the stack.
vg_summary() {
  python3 - "$1" "$2" <<'PY'
import sys
import xml.etree.ElementTree as ET

root = ET.parse(sys.argv[1]).getroot()
counts = {p.findtext("unique"): int(p.findtext("count")) for p in root.iter("pair")}
plumbing = ("libc.so.6", "ld-linux-x86-64.so.2", "vgpreload")
lines, total, contexts, agent = [], 0, 0, 0
for err in root.iter("error"):
    seen = counts.get(err.findtext("unique"), 1)
    contexts += 1
    total += seen
    stack = err.find("stack")
    frames = stack.findall("frame") if stack is not None else []
    objs = [(f.findtext("obj") or "?") for f in frames]
    if not any(o.endswith("libleakwatch.so") for o in objs):
        continue
    agent += 1
    inner = next((o for o in objs if not any(p in o for p in plumbing)), "?")
    where = "in agent code" if inner.endswith("libleakwatch.so") else \
        "in " + inner.rsplit("/", 1)[-1] + ", called from the agent"
    text = err.findtext("what") or err.findtext("xwhat/text") or ""
    lines.append(f"{err.findtext('kind')} ({where}), seen {seen} times: {text}")
    for f in frames[:16]:
        fn = f.findtext("fn") or "???"
        loc = f.findtext("file")
        loc = f"{loc}:{f.findtext('line')}" if loc else \
            (f.findtext("obj") or "?").rsplit("/", 1)[-1]
        lines.append(f"    {fn} ({loc})")
with open(sys.argv[2], "w") as out:
    out.write("".join(line + "\n" for line in lines))
print(total, contexts, agent)
PY
}

run_valgrind() {
  echo "== valgrind memcheck, the normal agent ($vg_threads threads, ${vg_seconds} s; logs in $out)"
  command -v valgrind >/dev/null || { echo "  valgrind is not installed" >&2; exit 2; }
  local prog rc mode tag
  # quiet: the issue's run (30 s threshold). busy: live warnings, notes and
  # metrics written (and symbolized with libdw) while the hooks run.
  for mode in quiet busy; do
    for prog in load_pg load_my; do
      tag=vg-$mode-$prog
      local extra=() agent_out=$out/$tag.err
      if [[ $mode == busy ]]; then
        extra=(LEAKWATCH_SCAN_MS=10ms LEAKWATCH_THRESHOLD_MS=5ms
          LEAKWATCH_METRICS="$out/$tag.prom" LEAKWATCH_LOG="$out/$tag.log")
        agent_out=$out/$tag.log
      fi
      rc=0
      run_bounded "$((vg_seconds + 180))" "$out/$tag.out" "$out/$tag.err" "$agent_out" \
        env LD_PRELOAD="$agent" LEAKWATCH_STATS=1 "${extra[@]}" \
        valgrind --tool=memcheck --trace-children=no --error-limit=no \
        --num-callers=40 --leak-check=full --show-leak-kinds=definite,possible \
        --log-file="$out/$tag.vglog" --xml=yes --xml-file="$out/$tag.xml" \
        "$programs/$prog" "$vg_seconds" "$vg_threads" || rc=$?
      case $rc in
        0) echo "  $mode $prog: exit 0" ;;
        124) echo "  $mode $prog: done (report and output written), hung at exit, killed" ;;
        *) echo "  $mode $prog: FAIL exit status $rc"; status=1 ;;
      esac
      if [[ $prog == load_pg ]]; then
        check_totals "$mode $prog" "$out/$tag.out" "$agent_out" "${pg_kinds[@]}"
      else
        check_totals "$mode $prog" "$out/$tag.out" "$agent_out" "${my_kinds[@]}"
      fi
      if [[ $mode == busy ]]; then
        echo "  $mode $prog: $(grep -c '^leakwatch\[' "$out/$tag.log") agent lines written while the hooks ran"
      fi
      local total contexts n
      read -r total contexts n < <(vg_summary "$out/$tag.xml" "$out/$tag.agent.txt")
      echo "  $mode $prog: valgrind: $total errors and leaks in $contexts contexts," \
        "$n with a frame in the agent ($out/$tag.agent.txt)"
      if ((n > 0)); then
        grep -v '^    ' "$out/$tag.agent.txt" | sed 's/^/    /'
        # Errors in the agent's own code, and memory it definitely lost, fail
        # the run; errors inside a library it calls (libunwind probing memory
        # with a write() syscall while it unwinds) and "possibly lost" blocks
        # (the watchdog thread's TLS: the thread is detached and still
        # running at exit, by design; libdw's caches) are listed for the
        # record.
        if grep -v '^    ' "$out/$tag.agent.txt" | grep -v '^Leak_Possibly' |
          grep -q '(in agent code)'; then
          status=1
        fi
      fi
    done
  done
}

case $what in
  tsan) run_tsan ;;
  valgrind) run_valgrind ;;
  all) run_tsan; run_valgrind ;;
esac
echo "logs: $out"
exit "$status"
