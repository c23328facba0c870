"""LEAKWATCH_FORMAT=json: every line the agent writes is a JSON object with a
"type"; the exit report carries the same content as the text report.

Run by ctest (tests/integration/CMakeLists.txt) with the sandbox servers'
PG* variables: json_report_test.py AGENT PROGRAMS_DIR. Exits non-zero on the
first failed check.
"""
import json
import os
import subprocess
import sys
import tempfile

AGENT, PROGRAMS = sys.argv[1], sys.argv[2]


def run(program, *args, **env):
    full = {k: v for k, v in os.environ.items() if not k.startswith("LEAKWATCH_")}
    full.update(env)
    full["LD_PRELOAD"] = AGENT
    return subprocess.run([os.path.join(PROGRAMS, program), *args], env=full,
                          capture_output=True, text=True, timeout=120)


def events(text):
    out = []
    for number, line in enumerate(text.splitlines(), 1):
        obj = json.loads(line)  # raises on anything that is not JSON
        assert isinstance(obj, dict) and "type" in obj, f"line {number}: {line}"
        out.append(obj)
    return out


def check(cond, what, context):
    if not cond:
        print(f"FAILED: {what}\n{context}", file=sys.stderr)
        sys.exit(1)


def test_live_and_exit_events_of_the_demo_service():
    with tempfile.TemporaryDirectory() as tmp:
        log = os.path.join(tmp, "agent.ndjson")
        r = run("demo_service", LEAKWATCH_FORMAT="json",
                LEAKWATCH_THRESHOLD_MS="1000", LEAKWATCH_LOG=log)
        check(r.returncode == 0, "demo_service exit 0", r.stderr)
        check(r.stderr == "", "nothing on stderr with LEAKWATCH_LOG", r.stderr)
        with open(log) as f:
            text = f.read()
    evs = events(text)
    leaks = [e for e in evs if e["type"] == "leak"]
    results = [e for e in leaks if e["kind"] == "pg.result"]
    conns = [e for e in leaks if e["kind"] == "pg.conn"]
    check(len(results) == 3, "3 live result leaks", text)
    check(len(conns) == 2, "2 live idle connections", text)
    r0 = results[0]
    # The demo drops its last pointer to what it leaks: lost, not merely held.
    check(r0["reason"] == "lost" and r0["reachable"] is False and
          r0["held_ms"] >= 1000, "lost, past the 1 s threshold", r0)
    check(r0["threshold_ms"] == 1000 and r0["family"] == "result", "fields", r0)
    check(r0["identity"]["dbname"] == "leakwatch" and
          isinstance(r0["identity"]["backend_pid"], int), "identity", r0)
    check(r0["sql"].startswith("SELECT ? ||"), "masked SQL", r0)
    check(r0["connection"].startswith("0x"), "the connection it came from", r0)
    frame = r0["frames"][0]
    check(frame["function"] == "handle_user_lookup_request", "frame 0", frame)
    check(frame["file"].endswith("demo_service.c") and frame["line"] > 0,
          "file:line", frame)
    check(frame["module"].endswith("demo_service") and
          frame["offset"].startswith("0x"), "module+offset", frame)
    c0 = conns[0]
    check(c0["reason"] == "lost" and c0["reachable"] is False and
          c0["idle_ms"] >= 1000 and c0["reused"] is False,
          "idle connection, lost", c0)
    check(c0["sql"].startswith("SELECT count(*) FROM pg_stat_activity"),
          "the connection's last SQL", c0)

    reports = [e for e in evs if e["type"] == "exit_report"]
    check(len(reports) == 1, "one exit report", text)
    rep = reports[0]
    check(rep["held"] == 5 and rep["summary"] == {"pg.result": 3, "pg.conn": 2},
          "summary", rep["summary"])
    check([g["count"] for g in rep["groups"]] == [3, 2], "groups, largest first",
          rep["groups"])
    g0 = rep["groups"][0]
    check(g0["kind"] == "pg.result" and g0["past_threshold"] == 3,
          "group fields", g0)
    check(g0["frames"][0]["function"] == "handle_user_lookup_request",
          "group stack", g0)
    check(g0["example"]["sql"] == r0["sql"], "example's SQL", g0)
    check(rep["options"]["LEAKWATCH_THRESHOLD_MS"] == "1000" and
          rep["options"]["LEAKWATCH_FORMAT"] == "json", "options in force",
          rep["options"])
    check(rep["pid"] > 0 and rep["end_time_ms"] >= rep["start_time_ms"] > 0,
          "run metadata", rep)
    # The pool connection and one per report request (4), 2 of them leaked.
    check(rep["totals"]["pg.conn"] == {"acquired": 5, "released": 3,
                                       "replaced": 0}, "totals", rep["totals"])


def test_release_notes_and_a_clean_program():
    # An idle connection warned about, then finished: a leak, then a
    # released object for the same handle.
    r = run("pg_idle_conn", LEAKWATCH_FORMAT="json",
            LEAKWATCH_THRESHOLD_MS="1000")
    check(r.returncode == 0, "pg_idle_conn exit 0", r.stderr)
    evs = events(r.stderr)
    leaks = [e for e in evs if e["type"] == "leak"]
    released = [e for e in evs if e["type"] == "released"]
    check(len(leaks) == 1 and leaks[0]["reason"] == "idle_too_long",
          "one idle connection", r.stderr)
    check(len(released) == 1 and released[0]["handle"] == leaks[0]["handle"]
          and released[0]["after_ms"] >= 1000, "its release", r.stderr)
    r = run("pg_clean", LEAKWATCH_FORMAT="json")
    check(r.returncode == 7 and r.stderr == "clean program's own stderr line\n",
          "a clean program: no agent output in JSON either", r.stderr)
    r = run("pg_clean", LEAKWATCH_FORMAT="json", LEAKWATCH_STATS="1")
    lines = [l for l in r.stderr.splitlines() if l.startswith("{")]
    check(len(lines) == 1, "with stats, one exit report object", r.stderr)
    rep = json.loads(lines[0])
    check(rep["held"] == 0 and rep["groups"] == [] and
          rep["totals"]["pg.result"]["acquired"] ==
          rep["totals"]["pg.result"]["released"], "balanced totals", rep)


def test_suppressions_and_threads():
    with tempfile.TemporaryDirectory() as tmp:
        supp = os.path.join(tmp, "s.supp")
        with open(supp, "w") as f:
            f.write("result:count_rows_in_batch\n")
        r = run("pg_result_loop_leak", "4", LEAKWATCH_FORMAT="json",
                LEAKWATCH_SUPPRESSIONS=supp)
    rep = events(r.stderr)[-1]
    check(rep["type"] == "exit_report" and rep["held"] == 0 and
          rep["suppressed"] == 4, "suppressed, counted", rep)
    check(rep["suppressions_used"] == [
        {"type": "result", "pattern": "count_rows_in_batch",
         "where": supp + ":1", "count": 4}], "suppressions used", rep)
    r = run("thr_watchers", "6", "100", "600", LEAKWATCH_FORMAT="json",
            LEAKWATCH_THRESHOLD_MS="300ms")
    evs = events(r.stderr)
    growing = [e for e in evs if e["type"] == "growing_thread_site"]
    check(len(growing) >= 1 and growing[0]["start_routine"] == "watch_connection",
          "growing thread site", r.stderr)
    rep = evs[-1]
    check(rep["groups"][0]["kind"] == "thread" and
          rep["groups"][0]["running_growing_site"] == 6, "threads at exit", rep)


def test_failed_connect_is_a_field():
    r = run("my_failed_connect_leak", LEAKWATCH_FORMAT="json")
    rep = events(r.stderr)[-1]
    check(rep["type"] == "exit_report" and rep["held"] == 1, "one handle", rep)
    example = rep["groups"][0]["example"]
    check(example.get("connection_failed") is True and
          "failed" not in json.dumps(example["identity"]),
          "connection_failed is a field, not a word in the identity", example)


def test_growing_statement_sites():
    # One statement leaked per request on an open connection (MariaDB), one
    # named prepared statement per request never deallocated (PostgreSQL):
    # the program waits for the agent's two growth events before it goes on.
    for program, kind in (("my_stmt_per_request", "mysql.stmt"),
                          ("pg_prepared_per_request", "pg.prepared")):
        with tempfile.TemporaryDirectory() as tmp:
            log = os.path.join(tmp, "agent.ndjson")
            r = run(program, "leak", log, LEAKWATCH_FORMAT="json",
                    LEAKWATCH_STMT_THRESHOLD_MS="300",
                    LEAKWATCH_CONN_THRESHOLD_MS="60000",
                    LEAKWATCH_EXIT_REACHABLE="report", LEAKWATCH_LOG=log)
            check(r.returncode == 0, f"{program} exit 0", r.stderr)
            with open(log) as f:
                text = f.read()
        evs = events(text)
        growing = [e for e in evs if e["type"] == "growing_statement_site"]
        check([(e["kind"], e["count"], e["previous"]) for e in growing] ==
              [(kind, 2, 0), (kind, 4, 2)], "2, then doubled to 4", text)
        g0 = growing[0]
        check(g0["prepared_over_ms"] >= 300 and g0["threshold_ms"] == 300 and
              g0["oldest_ms"] >= g0["prepared_over_ms"] and
              "opened_over_ms" not in g0, "statement fields", g0)
        check(len(g0["frames"]) > 0, "the site's stack", g0)
        check(not [e for e in evs if e["type"] == "leak"], "no leak events",
              text)
        rep = [e for e in evs if e["type"] == "exit_report"][0]
        group = rep["groups"][0]
        check(rep["held"] == 4 and group["kind"] == kind and
              group["growing_site"] == 4 and group["past_threshold"] == 4,
              "convicted at exit by their growing site", rep)
        example = group["example"]
        check(example["reused"] is False and example["idle_ms"] >= 300,
              "idle, never reused", example)


if __name__ == "__main__":
    for name, fn in list(globals().items()):
        if name.startswith("test_"):
            fn()
            print(f"ok {name}")
