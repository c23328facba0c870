#!/usr/bin/env bash
# The README's options table must be exactly what the options table in
# tracker/options.inc generates (build/leakwatch-options).
# Usage: check_readme_options.sh LEAKWATCH_OPTIONS_BINARY README
set -euo pipefail
generated=$("$1")
documented=$(sed -n '/<!-- options-table/,/<!-- \/options-table -->/p' "$2" | sed '1d;$d')
if [ "$generated" != "$documented" ]; then
  echo "README.md's options table is out of date; replace it with the output of $1:" >&2
  diff <(echo "$documented") <(echo "$generated") >&2 || true
  exit 1
fi
echo "README options table matches ($(echo "$generated" | wc -l) lines)"
