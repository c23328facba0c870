"""`leakwatch sarif`: the agent's JSON logs as SARIF 2.1.0, validated against
the official schema (tests/data/sarif/sarif-schema-2.1.0.json) with Debian's
python3-jsonschema, and located at the lines of the programs that leaked.

    sarif_test.py SOURCE_DIR BUILD_DIR TEST

Runs the one test named TEST (ctest runs each as a test of its own, with the
sandbox servers' PG* variables); exits non-zero on the first failed check,
with what was seen.
"""
import json
import os
import re
import resource
import subprocess
import sys
import tempfile

import jsonschema  # python3-jsonschema (scripts/setup)

SRC, BUILD, TEST = sys.argv[1], sys.argv[2], sys.argv[3]
AGENT = os.path.join(BUILD, "libleakwatch.so")
WRAPPER = os.path.join(SRC, "scripts", "leakwatch")
PROGRAMS = os.path.join(BUILD, "tests", "programs")
LEAKS_C = os.path.join(SRC, "tests", "programs", "sarif_leaks.c")
SCHEMA = os.path.join(SRC, "tests", "data", "sarif", "sarif-schema-2.1.0.json")


def fail(what, context=""):
    if not isinstance(context, str):
        context = json.dumps(context, indent=1)[:6000]
    print(f"FAILED: {what}\n{context}", file=sys.stderr)
    sys.exit(1)


def check(cond, what, context=""):
    if not cond:
        fail(what, context)


def clean_env(**extra):
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("LEAKWATCH_") and k != "LD_PRELOAD"}
    env.update(extra)
    return env


def no_core():
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def under_agent(log, program, *args, options=()):
    """Runs a test program with `leakwatch --json --log LOG`; returns the
    finished process."""
    return subprocess.run(
        [WRAPPER, "--library", AGENT, "--json", "--log", log, *options, "--",
         os.path.join(PROGRAMS, program), *args],
        capture_output=True, text=True, env=clean_env(), timeout=120,
        preexec_fn=no_core)


def sarif(*args, cwd=None, wrapper=WRAPPER):
    return subprocess.run([wrapper, "sarif", *args], capture_output=True,
                          text=True, env=clean_env(), timeout=60, cwd=cwd)


def convert(*args, cwd=None, wrapper=WRAPPER):
    """`leakwatch sarif ARGS` to stdout: the SARIF log, checked against the
    schema and the invariants every log must keep."""
    r = sarif(*args, cwd=cwd, wrapper=wrapper)
    check(r.returncode == 0, f"leakwatch sarif {' '.join(args)}: exit 0",
          r.stdout + r.stderr)
    log = json.loads(r.stdout)
    validate(log)
    return log


def validate(log):
    with open(SCHEMA) as f:
        schema = json.load(f)
    cls = jsonschema.validators.validator_for(schema)
    check(cls is jsonschema.Draft4Validator, "the schema is draft 4", cls)
    errors = sorted(cls(schema, format_checker=cls.FORMAT_CHECKER)
                    .iter_errors(log), key=lambda e: list(e.path))
    check(not errors, "valid against sarif-schema-2.1.0.json",
          "\n".join(f"{list(e.path)}: {e.message}" for e in errors[:10]))
    check(log["version"] == "2.1.0" and len(log["runs"]) == 1, "one run", log)
    run = log["runs"][0]
    rules = run["tool"]["driver"]["rules"]
    for rule in rules:
        check(rule["shortDescription"]["text"] and
              rule["fullDescription"]["text"] and
              "README.md, section" in rule["help"]["text"],
              "a rule with descriptions and help", rule)
        check("helpUri" not in rule or rule["helpUri"].split("#")[1] in (
            "what-it-reports", "threads", "misuse"), "helpUri", rule)
    for res in run["results"]:
        check(rules[res["ruleIndex"]]["id"] == res["ruleId"],
              "ruleIndex names the result's rule", res)
        check(res["message"]["text"] and res["properties"]["pid"] > 0,
              "a message, and the pid", res)


def marks():
    """{mark: [line, ...]} of sarif_leaks.c's `// MARK` comments."""
    out = {}
    with open(LEAKS_C) as f:
        for number, line in enumerate(f, 1):
            m = re.search(r"// ([A-Z]+(?: \S+)?)\s*$", line)
            if m:
                out.setdefault(m.group(1), []).append(number)
    return out


def where(loc):
    """(uri, uriBaseId, startLine) of a location."""
    phys = loc["physicalLocation"]
    return (phys["artifactLocation"]["uri"],
            phys["artifactLocation"].get("uriBaseId"),
            phys["region"]["startLine"])


LEAKS_URI = "tests/programs/sarif_leaks.c"


def leaky_run(tmp, log="leaks.log"):
    """sarif_leaks leak, past a 200 ms threshold at exit; returns its pid."""
    r = under_agent(os.path.join(tmp, log), "sarif_leaks", "leak", "600",
                    options=("--threshold", "200ms"))
    check(r.returncode == 0 and r.stdout.startswith("users 2 sessions "),
          "sarif_leaks leak: exit 0", r.stdout + r.stderr)
    files = [f for f in os.listdir(tmp) if f.startswith(log + ".")]
    return files


def expected_leaks():
    m = marks()
    results_lines = m["LEAK pg.result"]
    check(len(results_lines) == 2 and len(m["LEAK pg.conn"]) == 1,
          "the program's marks", m)
    return {
        ("leakwatch/leak/pg.result", results_lines[0]): 2,
        ("leakwatch/leak/pg.result", results_lines[1]): 1,
        ("leakwatch/leak/pg.conn", m["LEAK pg.conn"][0]): 1,
    }


def located(results):
    """{(ruleId, line): count} of results in sarif_leaks.c."""
    out = {}
    for res in results:
        uri, base, line = where(res["locations"][0])
        check(uri == LEAKS_URI and base == "%SRCROOT%",
              "located in sarif_leaks.c, relative to the source root", res)
        key = (res["ruleId"], line)
        check(key not in out, "one result per group", results)
        out[key] = res["properties"]["count"]
    return out


# --- the tests ---------------------------------------------------------------


def test_leaks():
    with tempfile.TemporaryDirectory() as tmp:
        files = leaky_run(tmp)
        check(len(files) == 1, "one log", files)
        pid = int(files[0].rsplit(".", 1)[1])
        # LOG stands for its LOG.<pid> files; locations relative to the
        # source root, given or the current directory.
        log = convert(os.path.join(tmp, "leaks.log"), "--source-root", SRC)
        again = convert(os.path.join(tmp, files[0]), cwd=SRC)
        out = os.path.join(tmp, "out.sarif")
        r = sarif(os.path.join(tmp, "leaks.log"), "-o", out, "--source-root",
                  SRC)
        check(r.returncode == 0 and r.stdout == "", "-o FILE", r.stderr)
        with open(out) as f:
            written = json.load(f)
    run = log["runs"][0]
    results = run["results"]
    check(located(results) == expected_leaks(),
          "one result per leak group, at the marked lines, with the counts",
          results)
    check(located(again["runs"][0]["results"]) == expected_leaks(),
          "the same with the current directory as the source root", again)
    check(written["runs"][0]["results"] == results, "the same in -o FILE",
          written)
    check(run["originalUriBaseIds"]["%SRCROOT%"]["uri"] ==
          "file://" + os.path.realpath(SRC) + "/", "%SRCROOT%", run)
    for res in results:
        check(res["level"] == "error" and res["properties"]["pid"] == pid and
              res["properties"]["source"] == "exit_report",
              "an error of the process, from its exit report", res)
        # The whole stack, outermost call first: main, then the function
        # that leaked, the located frame the essential step.
        steps = res["codeFlows"][0]["threadFlows"][0]["locations"]
        names = [s["location"].get("logicalLocations", [{}])[0].get("name")
                 for s in steps]
        check("main" in names, "the stack reaches main", steps)
        essential = [s for s in steps if s["importance"] == "essential"]
        check(len(essential) == 1 and
              where(essential[0]["location"]) ==
              where(res["locations"][0]), "the located frame in the flow",
              steps)
        check(names.index("main") < steps.index(essential[0]),
              "outermost first", names)
    by_line = {where(r["locations"][0])[2]: r for r in results}
    users = by_line[marks()["LEAK pg.result"][0]]
    check(users["message"]["text"].startswith(
        "2 PostgreSQL results (pg.result) still held at exit") and
        "SQL: SELECT current_user" in users["message"]["text"] and
        users["properties"]["sql"] == "SELECT current_user",
        "what leaked, how many, the SQL", users)
    check(re.search(r"the oldest for \d", users["message"]["text"]) and
          users["properties"]["oldest_held_ms"] >= 600, "how long", users)
    conn = by_line[marks()["LEAK pg.conn"][0]]
    check("dbname=" in conn["message"]["text"] and
          conn["properties"]["identity"]["dbname"], "the connection", conn)
    readme = "file://" + os.path.realpath(os.path.join(SRC, "README.md"))
    check(all(r["helpUri"].startswith(readme + "#")
              for r in run["tool"]["driver"]["rules"]),
          "help: the README's sections, by default", run["tool"])
    inv = run["invocations"]
    check(len(inv) == 1 and inv[0]["processId"] == pid and
          inv[0]["properties"]["program"].endswith("sarif_leaks"),
          "the process", inv)


def test_misuse():
    with tempfile.TemporaryDirectory() as tmp:
        r = under_agent(os.path.join(tmp, "misuse.log"), "sarif_leaks",
                        "double-clear")
        check(r.stdout.startswith("before"), "reached the misuse",
              r.stdout + r.stderr)
        log = convert(os.path.join(tmp, "misuse.log"), "--source-root", SRC)
    results = log["runs"][0]["results"]
    m = marks()
    check(len(results) == 1, "one result: the double release (the process "
          "may abort before any exit report)", results)
    res = results[0]
    check(res["ruleId"] == "leakwatch/misuse/double-release" and
          res["level"] == "error", "rule and level", res)
    check(where(res["locations"][0]) ==
          (LEAKS_URI, "%SRCROOT%", m["MISUSE double-release"][0]),
          "at the second PQclear", res)
    related = {r["id"]: where(r) for r in res["relatedLocations"]}
    check(related == {1: (LEAKS_URI, "%SRCROOT%", m["RELEASE"][0]),
                      2: (LEAKS_URI, "%SRCROOT%", m["ACQUIRE"][0])},
          "the first release and the acquisition", res)
    check("[first release](1)" in res["message"]["text"] and
          "[acquisition](2)" in res["message"]["text"] and
          res["message"]["text"].startswith("Double release: PQclear on a "
                                            "pg.result"),
          "the message links them", res)
    check([f["message"]["text"] for f in res["codeFlows"]] ==
          ["this call", "first released at", "acquired at"],
          "three stacks", res)


def test_clean():
    with tempfile.TemporaryDirectory() as tmp:
        # Nothing to report: no log at all, and the LOG stands for none.
        r = under_agent(os.path.join(tmp, "clean.log"), "sarif_leaks", "clean")
        check(r.returncode == 0 and os.listdir(tmp) == [],
              "a clean program writes no log", os.listdir(tmp))
        r = sarif(os.path.join(tmp, "clean.log"))
        check(r.returncode == 0 and "nothing reported" in r.stderr,
              "no log: nothing reported", r.stderr)
        log = json.loads(r.stdout)
        validate(log)
        check(log["runs"][0]["results"] == [], "no results", log)
        # With --stats: an exit report with no groups.
        r = under_agent(os.path.join(tmp, "stats.log"), "sarif_leaks",
                        "clean", options=("--stats",))
        check(r.returncode == 0, "exit 0", r.stderr)
        log = convert(os.path.join(tmp, "stats.log"))
        check(log["runs"][0]["results"] == [] and
              len(log["runs"][0]["invocations"]) == 1, "no results", log)
        # Not a JSON log, a log directory that does not exist, no LOG.
        text = os.path.join(tmp, "text.log")
        with open(text, "w") as f:
            f.write("leakwatch[42]: SUMMARY: 1 handle still held at exit\n")
        r = sarif(text)
        check(r.returncode == 1 and "LEAKWATCH_FORMAT=json" in r.stderr and
              r.stdout == "", "a text log: exit 1, says why", r.stderr)
        r = sarif(os.path.join(tmp, "nowhere", "leaks.log"))
        check(r.returncode == 1 and "no directory" in r.stderr,
              "no such directory: exit 1", r.stderr)
        r = sarif()
        check(r.returncode == 2 and "usage: leakwatch sarif" in r.stderr,
              "no LOG: usage, exit 2", r.stderr)
        r = sarif("--help")
        check(r.returncode == 0 and "--source-root" in r.stdout, "--help",
              r.stdout)


def test_processes():
    # Two processes of one run (the %p files): one SARIF run, each group
    # once per process, with its pid.
    with tempfile.TemporaryDirectory() as tmp:
        leaky_run(tmp)
        files = leaky_run(tmp)
        check(len(files) == 2, "two logs", files)
        pids = sorted(int(f.rsplit(".", 1)[1]) for f in files)
        log = convert(*(os.path.join(tmp, f) for f in files),
                      "--source-root", SRC)
    run = log["runs"][0]
    for pid in pids:
        mine = [r for r in run["results"] if r["properties"]["pid"] == pid]
        check(located(mine) == expected_leaks(), f"pid {pid}'s groups", run)
        check(any(f"Process {pid} (sarif_leaks)" in r["message"]["text"]
                  for r in mine), "the pid in the message", mine)
    check(len(run["results"]) == 6, "3 groups twice", run["results"])
    check(sorted(i["processId"] for i in run["invocations"]) == pids,
          "an invocation per process", run["invocations"])


def frame(function, file=None, line=None, module=None, **more):
    f = {"function": function}
    if module:
        f["pc"] = "0x1000"
    if file:
        f["file"] = file
    if line:
        f["line"] = line
    if module:
        f.update(module=module, offset="0x10")
    f.update(more)
    return f


def test_synthetic_log():
    """Frame choice and the events of a process that never reached its exit
    report, from a log written here (no program, no server)."""
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "src")
        os.makedirs(os.path.join(src, "app"))
        for name in ("service.c", "jobs.py", "moved.c"):
            with open(os.path.join(src, "app", name), "w") as f:
                f.write("\n" * 50)
        logs = os.path.join(tmp, "logs")
        os.makedirs(logs)
        # A file named relative to the log's directory.
        with open(os.path.join(logs, "local.c"), "w") as f:
            f.write("\n" * 50)
        service = os.path.join(src, "app", "service.c")
        native = [
            frame("PQexec", "/build/libpq/fe-exec.c", 2200,
                  "/usr/lib/x86_64-linux-gnu/libpq.so.5"),
            frame("strlen", "/usr/include/x86_64-linux-gnu/bits/string.h", 9,
                  "/srv/bin/service", inlined=True),
            frame("helper", "/elsewhere/not/here.c", 3, "/srv/bin/service"),
            frame("lookup", service, 21, "/srv/bin/service"),
            frame("main", service, 40, "/srv/bin/service"),
            frame("__libc_start_main", None, None,
                  "/usr/lib/x86_64-linux-gnu/libc.so.6"),
        ]
        script = [
            frame("_pq_execute_sync", None, None, "/usr/lib/python3/"
                  "dist-packages/psycopg2/_psycopg.cpython-311.so"),
            {"script": "python", "function": "execute", "file":
             "/usr/lib/python3/dist-packages/sqlalchemy/engine/base.py",
             "line": 1800},
            {"script": "python", "function": "run_job", "file": "app/jobs.py",
             "line": 12},
            {"script": "python", "function": "<module>", "file": "app/jobs.py",
             "line": 30},
        ]
        local = [frame("PQconnectdb", None, None,
                       "/usr/lib/x86_64-linux-gnu/libpq.so.5"),
                 frame("connect_local", "local.c", 7, "/srv/bin/service"),
                 frame("main", "/nowhere/main.c", 5, "/srv/bin/service")]
        nothing = [frame("PQexec", None, None,
                         "/usr/lib/x86_64-linux-gnu/libpq.so.5"),
                   frame("run", None, None, "/srv/bin/service")]
        leak = {"type": "leak", "pid": 77, "time_ms": 1, "reason":
                "held_too_long", "kind": "pg.result", "family": "result",
                "site": 3, "held_ms": 1500, "threshold_ms": 1000,
                "sql": "SELECT ?", "frames": native}
        events = [
            dict(leak, handle="0x1"),
            dict(leak, handle="0x2"),
            dict(leak, handle="0x3"),
            {"type": "released", "pid": 77, "time_ms": 2, "kind": "pg.result",
             "handle": "0x2", "site": 3, "after_ms": 1600},
            {"type": "leak_more", "pid": 77, "time_ms": 2, "kind": "pg.result",
             "site": 3, "count": 4},
            dict(leak, handle="0x9", kind="pg.conn", family="conn", site=5,
                 frames=local, identity={"dbname": "shop", "user": "u"}),
            dict(leak, handle="0xa", site=6, frames=script),
            dict(leak, handle="0xb", site=8, frames=nothing),
            {"type": "growing_connection_site", "pid": 77, "time_ms": 3,
             "kind": "pg.conn", "site": 9, "count": 2, "previous": 0,
             "opened_over_ms": 1200, "oldest_ms": 2000, "threshold_ms": 1000,
             "frames": native},
            {"type": "growing_connection_site", "pid": 77, "time_ms": 4,
             "kind": "pg.conn", "site": 9, "count": 4, "previous": 2,
             "opened_over_ms": 2400, "oldest_ms": 3000, "threshold_ms": 1000,
             "frames": native},
            # Covered by the live leaks of site 5: not a result of its own.
            {"type": "growing_connection_site", "pid": 77, "time_ms": 4,
             "kind": "pg.conn", "site": 5, "count": 2, "previous": 0,
             "opened_over_ms": 2400, "oldest_ms": 3000, "threshold_ms": 1000,
             "frames": local},
        ]
        log = os.path.join(logs, "agent.log")
        with open(log, "w") as f:
            f.write("the program's own line\n")
            for ev in events:
                f.write(json.dumps(ev) + "\n")
            f.write('{"type":"leak","pid":77,"ti')  # cut by a SIGKILL
        r = sarif(log, "--source-root", src, "--help-uri",
                  "https://example.org/leakwatch/README.md")
        check(r.returncode == 0 and "skipped 2 lines" in r.stderr,
              "lines that are not events: skipped, said", r.stderr)
        out = json.loads(r.stdout)
        validate(out)
    results = out["runs"][0]["results"]
    got = {(r["ruleId"], r["properties"]["site"]): r for r in results}
    check(sorted(got) == [("leakwatch/growing-site/pg.conn", 9),
                          ("leakwatch/leak/pg.conn", 5),
                          ("leakwatch/leak/pg.result", 3),
                          ("leakwatch/leak/pg.result", 6),
                          ("leakwatch/leak/pg.result", 8)],
          "live leaks by site, a growing site no leak covers", results)
    site3 = got[("leakwatch/leak/pg.result", 3)]
    check(site3["properties"]["count"] == 2 + 4, "not the released one; "
          "the leak_more ones", site3)
    # libpq, an inlined system header, a file that is nowhere: skipped for
    # the user's existing file.
    check(where(site3["locations"][0]) == ("app/service.c", "%SRCROOT%", 21),
          "the innermost frame of the user's code that exists", site3)
    check("no exit report" in site3["message"]["text"], "says so", site3)
    steps = site3["codeFlows"][0]["threadFlows"][0]["locations"]
    check([s["importance"] for s in steps] ==
          ["unimportant", "important", "essential", "important",
           "unimportant", "unimportant"], "importance per frame", steps)
    site6 = got[("leakwatch/leak/pg.result", 6)]
    check(where(site6["locations"][0]) == ("app/jobs.py", "%SRCROOT%", 12),
          "a script's own line, not the package's", site6)
    conn = got[("leakwatch/leak/pg.conn", 5)]
    check(where(conn["locations"][0]) ==
          ("file://" + os.path.realpath(logs) + "/local.c", None, 7),
          "relative to the log's directory, outside the source root", conn)
    check("Connection: dbname=shop user=u" in conn["message"]["text"],
          "the identity", conn)
    site8 = got[("leakwatch/leak/pg.result", 8)]
    check(site8["locations"] == [{"logicalLocations": [
        {"name": "run", "kind": "function",
         "fullyQualifiedName": "service!run"}]}],
          "no file:line: the function by name", site8)
    growing = got[("leakwatch/growing-site/pg.conn", 9)]
    check(growing["level"] == "warning" and
          growing["properties"]["count"] == 4 and
          growing["message"]["text"].startswith(
              "Growing pg.conn site: 4 connections idle"),
          "the latest growth warning", growing)
    rules = out["runs"][0]["tool"]["driver"]["rules"]
    check(rules[growing["ruleIndex"]]["helpUri"] ==
          "https://example.org/leakwatch/README.md#what-it-reports",
          "--help-uri", rules)


def test_demo_service():
    # scripts/demo.sh's libpq service (about 4 s): a result leaked on an
    # early return, a connection per report request.
    with tempfile.TemporaryDirectory() as tmp:
        r = under_agent(os.path.join(tmp, "demo.log"), "demo_service",
                        options=("--threshold", "1s"))
        check(r.returncode == 0, "demo_service exit 0", r.stderr)
        log = convert(os.path.join(tmp, "demo.log"), "--source-root", SRC)
    results = log["runs"][0]["results"]
    with open(os.path.join(SRC, "tests", "programs", "demo_service.c")) as f:
        source = f.read().splitlines()
    seen = {}
    for res in results:
        uri, base, line = where(res["locations"][0])
        check(uri == "tests/programs/demo_service.c" and base == "%SRCROOT%",
              "in demo_service.c", res)
        # The statement that acquired it starts at or just above the line.
        statement = " ".join(source[max(0, line - 3):line])
        seen[res["ruleId"]] = (res["properties"]["count"], statement)
    check(set(seen) == {"leakwatch/leak/pg.result", "leakwatch/leak/pg.conn"},
          "a result group and a connection group", results)
    count, statement = seen["leakwatch/leak/pg.result"]
    check(count == 3 and "PQexecParams(" in statement, "3 results", seen)
    count, statement = seen["leakwatch/leak/pg.conn"]
    check(count == 2 and "PQconnectdb(" in statement, "2 connections", seen)


def misuse_log(tmp):
    """A log of one event (a use after close), in tmp; returns its path."""
    log = os.path.join(tmp, "l.log")
    with open(log, "w") as f:
        f.write(json.dumps({"type": "misuse", "pid": 5, "time_ms": 1,
                            "what": "use_after_close", "function": "PQexec",
                            "kind": "pg.conn", "handle": "0x1", "frames": [],
                            "site": 1}) + "\n")
    return log


def test_installed():
    # cmake --install puts the converter in PREFIX/lib/leakwatch, where the
    # installed command finds it.
    with tempfile.TemporaryDirectory() as tmp:
        prefix = os.path.join(tmp, "prefix")
        r = subprocess.run(["cmake", "--install", BUILD, "--prefix", prefix],
                           capture_output=True, text=True, timeout=120,
                           env=clean_env(DESTDIR=""))
        check(r.returncode == 0, "cmake --install", r.stdout + r.stderr)
        installed = os.path.join(prefix, "lib", "leakwatch", "leakwatch-sarif")
        check(os.access(installed, os.X_OK), "installed, executable",
              installed)
        wrapper = os.path.join(prefix, "bin", "leakwatch")
        r = sarif("--help", wrapper=wrapper)
        check(r.returncode == 0 and "usage: leakwatch sarif" in r.stdout,
              "the installed command's sarif --help", r.stdout + r.stderr)
        r = subprocess.run([wrapper, "--help"], capture_output=True,
                           text=True, timeout=60)
        check(r.returncode == 0 and "leakwatch sarif LOG..." in r.stdout,
              "leakwatch --help names it", r.stdout)
        log = misuse_log(tmp)
        out = convert(log, wrapper=wrapper)
        res = out["runs"][0]["results"]
        check(len(res) == 1 and
              res[0]["ruleId"] == "leakwatch/misuse/use-after-close" and
              out["runs"][0]["tool"]["driver"]["version"],
              "converted by the installed command", out)


def run(namespace):
    """Runs the test_TEST function of a module's namespace (this one's, or
    html_report_test.py's)."""
    tests = {name[len("test_"):]: fn for name, fn in list(namespace.items())
             if name.startswith("test_")}
    if TEST not in tests:
        fail(f"no test {TEST!r}; tests: {', '.join(tests)}")
    tests[TEST]()
    print(f"ok {TEST}")


if __name__ == "__main__":
    run(globals())
