#!/usr/bin/env bash
# The agent's library is laid out to keep what a process makes resident
# small (README, "Memory"):
#   - one .text (tools that read only that section, valgrind among them,
#     see all the code), in which the functions listed in
#     interpose/hot_functions.ld come first, packed: from the start of .text
#     to the end of the last of them is at most their size plus 64 KiB
#     (start-up code and alignment), where unordered they spread over the
#     whole 1.3 MB;
#   - the hooks of every client's common calls among them (in the list);
#   - relative relocations packed (.relr.dyn; at most 64 left in .rela.dyn);
#   - initialized data under 128 KiB (large tables are zeros, in .bss).
# Usage: check_agent_layout.sh LIBLEAKWATCH_SO HOT_FUNCTIONS_LD
set -euo pipefail
so=$1
list=$2

/usr/bin/python3 - "$so" "$list" <<'PY'
import re, subprocess, sys
so, list_path = sys.argv[1], sys.argv[2]
failures = []

sections = {}
text_count = 0
for line in subprocess.run(["readelf", "-SW", so], capture_output=True, text=True,
                           check=True).stdout.splitlines():
    m = re.match(r"\s*\[\s*\d+\]\s+(\S+)\s+\S+\s+([0-9a-f]+)\s+[0-9a-f]+\s+([0-9a-f]+)", line)
    if m:
        sections[m.group(1)] = (int(m.group(2), 16), int(m.group(3), 16))
        text_count += m.group(1) == ".text"
if text_count != 1:
    failures.append(f"{text_count} sections named .text (want 1)")
text_start = sections[".text"][0]

listed = set(re.findall(r"\*\(\.text\.(\S+) \.text\.hot\.", open(list_path).read()))
symbols = {}
for line in subprocess.run(["nm", "-S", so], capture_output=True, text=True,
                           check=True).stdout.splitlines():
    f = line.split()
    if len(f) == 4 and f[2] in "tTwW":
        symbols[f[3]] = (int(f[0], 16), int(f[1], 16))
present = [symbols[n] for n in listed if n in symbols]
size = sum(z for _, z in present)
end = max(a + z for a, z in present) - text_start
print(f"{len(present)} of {len(listed)} listed functions in the library, "
      f"{size} bytes; the last ends {end} bytes into .text")
if len(present) < len(listed) // 2:
    failures.append("fewer than half the listed functions are in the library")
if end > size + 65536:
    failures.append(f"the listed functions are not packed at the start of .text: "
                    f"they end {end} bytes in, for {size} bytes of them")
for hook in ["PQexec", "PQgetResult", "PQclear", "PQsendQuery", "mysql_real_query",
             "mysql_store_result", "mysql_free_result", "pthread_create"]:
    if hook not in listed:
        failures.append(f"{hook} is not in the list")

if ".relr.dyn" not in sections:
    failures.append("no .relr.dyn: relative relocations are not packed")
relocs = subprocess.run(["readelf", "-rW", so], capture_output=True, text=True,
                        check=True).stdout
relative = sum(1 for l in relocs.splitlines() if "R_X86_64_RELATIVE" in l)
print(f"R_X86_64_RELATIVE left in .rela.dyn: {relative}")
if relative > 64:
    failures.append(f"{relative} relative relocations unpacked (want at most 64)")

data = sections.get(".data", (0, 0))[1]
print(f".data: {data} bytes")
if data > 128 * 1024:
    failures.append(f".data is {data} bytes (want under 128 KiB: zeros belong in .bss)")

for f in failures:
    print("FAIL:", f, file=sys.stderr)
sys.exit(1 if failures else 0)
PY
