# shellcheck shell=bash
# scripts/lib.sh — shared by scripts/test.sh and scripts/demo.sh (sourced, not
# run). Each step is a function so the two scripts read as a list of steps:
#
#   . "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
#   lw_setup            install missing Debian packages (scripts/setup)
#   lw_build [TARGET..] configure and build into build/ (or $LW_BUILD): the
#                       given targets, or everything
#   lw_sandbox_start    throwaway PostgreSQL; exports PGHOST, PGPORT, PGUSER,
#                       PGDATABASE; stopped and removed when the script exits
#
# The caller may define lw_exit_hook RC: it runs at exit, after the sandbox is
# stopped, with the script's exit status.

LW_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
LW_BUILD=${LW_BUILD:-$LW_ROOT/build}
LW_SANDBOX=""   # the sandbox directory, once created

lw_setup() {
  "$LW_ROOT/scripts/setup"
}

# Configure (the build type defaults to the one CMakeLists.txt chooses) and
# build the given targets, or everything.
lw_build() {
  local targets=()
  local t
  for t in "$@"; do targets+=(--target "$t"); done
  cmake -S "$LW_ROOT" -B "$LW_BUILD"
  cmake --build "$LW_BUILD" -j2 "${targets[@]}"
}

# Stop the sandbox (if any) and remove its directory. Safe to call twice, and
# after a start that failed half-way.
lw_sandbox_stop() {
  [[ -n $LW_SANDBOX ]] || return 0
  if [[ -e $LW_SANDBOX/.pg-sandbox ]]; then
    "$LW_ROOT/scripts/pg-sandbox" stop "$LW_SANDBOX" || return 1
  else
    rmdir -- "$LW_SANDBOX" 2>/dev/null || true   # start failed before using it
  fi
  LW_SANDBOX=""
}

# EXIT trap: runs on normal exit, on a failed command (set -e) and, through the
# signal traps below, on Ctrl-C, TERM and HUP. Keeps the script's exit status.
lw_on_exit() {
  local rc=$?
  set +e
  lw_sandbox_stop || echo "warning: could not stop the PostgreSQL sandbox" >&2
  if declare -F lw_exit_hook >/dev/null; then
    lw_exit_hook "$rc"
  fi
  exit "$rc"
}
trap lw_on_exit EXIT
trap 'exit 129' HUP
trap 'exit 130' INT
trap 'exit 143' TERM

# Start a throwaway PostgreSQL on 127.0.0.1 and export its PG* variables into
# this shell, so everything started from here on talks to it. The directory is
# under /tmp (not $TMPDIR) because the postgres user must be able to enter it
# and its socket path must stay short.
lw_sandbox_start() {
  LW_SANDBOX=$(mktemp -d /tmp/leakwatch-pg.XXXXXX)
  "$LW_ROOT/scripts/pg-sandbox" start "$LW_SANDBOX" >/dev/null
  # shellcheck source=/dev/null
  . "$LW_SANDBOX/env"
}
