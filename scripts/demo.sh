#!/usr/bin/env bash
# scripts/demo.sh — the README's demo command.
#
# Installs missing Debian packages, builds into build/, starts a throwaway
# PostgreSQL and a throwaway MariaDB on 127.0.0.1, and runs two demo services
# under the agent with a 1 s threshold, one after the other; the terminal
# shows leakwatch's live warnings while each runs and its exit report:
#
#   - demo_service (tests/programs/demo_service.c, libpq, about 4 s): leaks a
#     result on an early return and a connection per report request, next to
#     a busy pool connection that is fine.
#   - demo_service_mysql (tests/programs/demo_service_mysql.c, libmariadb,
#     about 3 s): leaks stored results on an early return, a prepared
#     statement on an error path, and per-request connections each pinned by
#     a half-read mysql_use_result result, next to a busy pool connection.
#
# The agent also writes each process's events as NDJSON (LEAKWATCH_JSON_LOG)
# into build/demo/, and `leakwatch html` turns them into one page,
# build/demo/report.html (timeline, leak groups, stacks, source lines); a
# screenshot of it taken by headless chromium is build/demo/report.png.
#
# Usage: scripts/demo.sh
# Exit status: 0 if both demo services exited 0; otherwise the first nonzero
# status (both always run).
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

lw_setup
lw_build leakwatch demo_service demo_service_mysql
lw_sandbox_start

DEMO_DIR=$LW_BUILD/demo
rm -rf "$DEMO_DIR"
mkdir -p "$DEMO_DIR"

# run_demo PROGRAM: run build/tests/programs/PROGRAM under the agent, after a
# header line. Returns the program's exit status.
run_demo() {
  echo >&2
  echo "=== $1 under leakwatch (LEAKWATCH_THRESHOLD_MS=1000) ===" >&2
  # Prepend the agent to any LD_PRELOAD the user already has.
  LD_PRELOAD="$LW_BUILD/libleakwatch.so${LD_PRELOAD:+:$LD_PRELOAD}" \
    LEAKWATCH_THRESHOLD_MS=1000 \
    LEAKWATCH_JSON_LOG="$DEMO_DIR/$1.%p.json" \
    "$LW_BUILD/tests/programs/$1"
}

# The page of both runs, and its screenshot.
write_report() {
  local page=$DEMO_DIR/report.html profile
  echo >&2
  "$LW_ROOT/scripts/leakwatch-html" --source-root "$LW_ROOT" \
    --title "leakwatch demo" -o "$page" "$DEMO_DIR"/*.json
  profile=$(mktemp -d)
  chromium --headless=new --no-sandbox --disable-gpu --hide-scrollbars \
    --no-first-run --user-data-dir="$profile" --window-size=1200,2000 \
    --screenshot="$DEMO_DIR/report.png" "file://$page" >/dev/null 2>&1 ||
    echo "demo: chromium could not take the screenshot" >&2
  rm -rf "$profile"
  echo "=== leakwatch html: $page (screenshot: $DEMO_DIR/report.png) ===" >&2
}

rc=0
run_demo demo_service || rc=$?
mysql_rc=0
run_demo demo_service_mysql || mysql_rc=$?
if ((rc == 0)); then rc=$mysql_rc; fi
write_report
exit "$rc"
