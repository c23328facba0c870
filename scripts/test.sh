#!/usr/bin/env bash
# scripts/test.sh — the README's test command, and what CI runs (.ci/run).
#
# Installs missing Debian packages, builds into build/, starts a throwaway
# PostgreSQL and a throwaway MariaDB on 127.0.0.1, runs every test with ctest
# against them, and stops the servers again — also when a test fails or on
# Ctrl-C.
#
# Usage: scripts/test.sh [CTEST_ARGS...]     e.g. scripts/test.sh -R options
# Exit status: ctest's.
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

start_us=${EPOCHREALTIME/./}

# Printed at exit, after the servers are stopped: total wall time of the run.
# shellcheck disable=SC2317  # called by lib.sh at exit
lw_exit_hook() {
  local us=$((${EPOCHREALTIME/./} - start_us))
  printf 'test.sh: exit status %d, wall time %d.%01d s\n' \
    "$1" $((us / 1000000)) $((us % 1000000 / 100000)) >&2
}

lw_setup
# shellcheck disable=SC2119  # build everything; this script's args are ctest's
lw_build
lw_sandbox_start

rc=0
ctest --test-dir "$LW_BUILD" --output-on-failure -j2 "$@" || rc=$?
exit "$rc"
