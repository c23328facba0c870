#!/usr/bin/env bash
# scripts/leakwatch.supp: a program run under valgrind's memcheck with the
# agent preloaded reports no error with the suppressions file, and the agent
# still works there (its exit report names every abandoned result).
# Usage: valgrind_supp_test.sh AGENT PROGRAM SUPPRESSIONS
set -euo pipefail
agent=$1 program=$2 supp=$3
log=$(mktemp)
trap 'rm -f "$log"' EXIT
LD_PRELOAD=$agent valgrind --suppressions="$supp" --error-exitcode=9 \
  "$program" 3 >/dev/null 2>"$log" || {
  echo "memcheck reported errors (or the program failed):" >&2
  cat "$log" >&2
  exit 1
}
grep -q "ERROR SUMMARY: 0 errors" "$log" || { cat "$log" >&2; exit 1; }
grep -q "SUMMARY: 15 handles still held at exit: 15 pg.result" "$log" ||
  { echo "no exit report from the agent under valgrind:" >&2; cat "$log" >&2; exit 1; }
echo "ok: no memcheck errors with $supp; the agent reported 15 results"
