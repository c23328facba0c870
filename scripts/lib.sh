# shellcheck shell=bash
# scripts/lib.sh — shared by scripts/test.sh and scripts/demo.sh (sourced, not
# run). Each step is a function so the two scripts read as a list of steps:
#
#   . "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
#   lw_setup            install missing Debian packages (scripts/setup)
#   lw_build [TARGET..] configure and build into build/ (or $LW_BUILD): the
#                       given targets, or everything
#   lw_sandbox_start    throwaway PostgreSQL and MariaDB servers; exports
#                       PGHOST, PGPORT, PGUSER, PGDATABASE (scripts/pg-sandbox)
#                       and MYSQL_TEST_HOST, MYSQL_TEST_PORT, MYSQL_TEST_USER,
#                       MYSQL_TEST_PASSWORD, MYSQL_TEST_DB, MYSQL_TEST_SOCKET,
#                       MYSQL_HOST, MYSQL_TCP_PORT, MYSQL_UNIX_PORT, MYSQL_PWD,
#                       MYSQL_HOME (scripts/mysql-sandbox); both are stopped
#                       and removed when the script exits
#
# The caller may define lw_exit_hook RC: it runs at exit, after the sandboxes
# are stopped, with the script's exit status.

LW_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
LW_BUILD=${LW_BUILD:-$LW_ROOT/build}
LW_PG_SANDBOX=""      # the PostgreSQL sandbox directory, once created
LW_MYSQL_SANDBOX=""   # the MariaDB sandbox directory, once created

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

# Stop one sandbox: NAME (pg or mysql) and its directory, if any, and remove
# the directory. Safe after a start that failed half-way: a directory that the
# sandbox script has not marked yet is empty and just removed.
lw_sandbox_stop_one() {
  local name=$1 dir=$2
  [[ -n $dir ]] || return 0
  if [[ -e $dir/.$name-sandbox ]]; then
    "$LW_ROOT/scripts/$name-sandbox" stop "$dir"
  else
    rmdir -- "$dir" 2>/dev/null || true   # start failed before using it
  fi
}

# Stop both sandboxes (those that were started). Safe to call twice. Returns
# nonzero if one could not be stopped, after trying both.
lw_sandbox_stop() {
  local rc=0
  if lw_sandbox_stop_one mysql "$LW_MYSQL_SANDBOX"; then
    LW_MYSQL_SANDBOX=""
  else
    echo "warning: could not stop the MariaDB sandbox in $LW_MYSQL_SANDBOX" >&2
    rc=1
  fi
  if lw_sandbox_stop_one pg "$LW_PG_SANDBOX"; then
    LW_PG_SANDBOX=""
  else
    echo "warning: could not stop the PostgreSQL sandbox in $LW_PG_SANDBOX" >&2
    rc=1
  fi
  return "$rc"
}

# EXIT trap: runs on normal exit, on a failed command (set -e) and, through the
# signal traps below, on Ctrl-C, TERM and HUP. Keeps the script's exit status.
lw_on_exit() {
  local rc=$?
  set +e
  lw_sandbox_stop
  if declare -F lw_exit_hook >/dev/null; then
    lw_exit_hook "$rc"
  fi
  exit "$rc"
}
trap lw_on_exit EXIT
trap 'exit 129' HUP
trap 'exit 130' INT
trap 'exit 143' TERM

# Start a throwaway PostgreSQL and a throwaway MariaDB on 127.0.0.1 and export
# their variables into this shell, so everything started from here on talks to
# them. The directories are under /tmp (not $TMPDIR) because the servers' users
# (postgres, mysql) must be able to enter them and the socket paths must stay
# short.
lw_sandbox_start() {
  LW_PG_SANDBOX=$(mktemp -d /tmp/leakwatch-pg.XXXXXX)
  "$LW_ROOT/scripts/pg-sandbox" start "$LW_PG_SANDBOX" >/dev/null
  LW_MYSQL_SANDBOX=$(mktemp -d /tmp/leakwatch-my.XXXXXX)
  "$LW_ROOT/scripts/mysql-sandbox" start "$LW_MYSQL_SANDBOX" >/dev/null
  # shellcheck source=/dev/null
  . "$LW_PG_SANDBOX/env"
  # shellcheck source=/dev/null
  . "$LW_MYSQL_SANDBOX/env"
}
