#!/usr/bin/env bash
# scripts/demo.sh — the README's demo command.
#
# Installs missing Debian packages, builds into build/, starts a throwaway
# PostgreSQL on 127.0.0.1, and runs the demo service (tests/programs/
# demo_service.c) under the agent with a 1 s threshold: the service leaks a
# result on an early return and a connection per report request, next to a
# busy pool connection that is fine. The terminal shows leakwatch's live
# warnings while it runs (about 4 s) and its exit report.
#
# Usage: scripts/demo.sh
# Exit status: the demo service's.
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

lw_setup
lw_build leakwatch demo_service
lw_sandbox_start

echo >&2
echo "=== demo_service under leakwatch (LEAKWATCH_THRESHOLD_MS=1000) ===" >&2
rc=0
# Prepend the agent to any LD_PRELOAD the user already has.
LD_PRELOAD="$LW_BUILD/libleakwatch.so${LD_PRELOAD:+:$LD_PRELOAD}" \
  LEAKWATCH_THRESHOLD_MS=1000 \
  "$LW_BUILD/tests/programs/demo_service" || rc=$?
exit "$rc"
