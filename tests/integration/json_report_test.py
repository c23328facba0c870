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
    # A sample before the report says what is held at exit: nothing.
    check(len(lines) == 2, "with stats, a sample and an exit report",
          r.stderr)
    sample = json.loads(lines[0])
    check(sample["type"] == "sample" and sample["sites"] == [] and
          not any(sample["open"].values()), "nothing held at exit", sample)
    rep = json.loads(lines[1])
    check(rep["type"] == "exit_report", "the exit report last", rep)
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


def test_json_log_beside_a_text_log():
    # LEAKWATCH_JSON_LOG: the text on stderr as ever, and every event in
    # JSON in a second file, samples of what is held among them.
    with tempfile.TemporaryDirectory() as tmp:
        pattern = os.path.join(tmp, "%p.json")
        r = run("demo_service", LEAKWATCH_FORMAT="text",
                LEAKWATCH_THRESHOLD_MS="500", LEAKWATCH_JSON_LOG=pattern)
        check(r.returncode == 0, "demo_service exit 0", r.stderr)
        files = os.listdir(tmp)
        check(len(files) == 1 and files[0].endswith(".json"),
              "one JSON log, %p expanded", files)
        with open(os.path.join(tmp, files[0])) as f:
            text = f.read()
    # stderr: text only, the live warnings and the exit report.
    check(not [l for l in r.stderr.splitlines() if l.startswith("{")],
          "no JSON on stderr", r.stderr)
    check(" pg.result 0x" in r.stderr and "held" in r.stderr and
          "SUMMARY: 5 handles still held at exit" in r.stderr,
          "text warnings and summary on stderr", r.stderr)
    evs = events(text)  # every line one JSON object
    pid = int(files[0][:-len(".json")])
    check(all(e["pid"] == pid for e in evs), "the file is the pid's", text)
    types = [e["type"] for e in evs]
    leaks = [e for e in evs if e["type"] == "leak"]
    samples = [e for e in evs if e["type"] == "sample"]
    check(len([e for e in leaks if e["kind"] == "pg.result"]) == 3 and
          len([e for e in leaks if e["kind"] == "pg.conn"]) == 2,
          "the live leaks, as with LEAKWATCH_FORMAT=json", text)
    check(types.count("exit_report") == 1 and types[-1] == "exit_report",
          "one exit report, last", types)
    check(len(samples) >= 2, "a sample at the first scan and one at exit",
          types)
    # The first sample says the run; later ones do not.
    first = samples[0]
    check(first["program"].endswith("demo_service") and
          first["start_time_ms"] > 0 and
          first["options"]["LEAKWATCH_JSON_LOG"] == pattern and
          first["options"]["LEAKWATCH_FORMAT"] == "text",
          "the first sample carries program and options", first)
    check(all("options" not in s for s in samples[1:]),
          "only the first sample carries the options", samples)
    times = [s["time_ms"] for s in samples]
    check(times == sorted(times) and times[0] >= first["start_time_ms"],
          "samples in time order", times)
    # At most one a second (less the half scan period the watchdog may
    # jitter: a 125 ms period here), the exit's excepted.
    gaps = [b - a for a, b in zip(times[:-2], times[1:-1])]
    check(all(g >= 1000 - 63 for g in gaps), "at most one a second", times)
    # The last sample comes just before the exit report, with its numbers.
    last = samples[-1]
    rep = evs[-1]
    check(types[-2] == "sample" and evs[-2] is last,
          "the final sample right before the exit report", types[-3:])
    check({k: v for k, v in last["open"].items() if v} == rep["summary"],
          "open per kind at exit", (last["open"], rep["summary"]))
    # Its sites: those warned about, each as many as the report's group.
    groups = {(g["kind"], g["site"]): g["count"] for g in rep["groups"]}
    sites = {(s["kind"], s["site"]): s["open"] for s in last["sites"]}
    warned = {(e["kind"], e["site"]) for e in leaks}
    check(set(sites) == warned and len(warned) == 2,
          "the sites of the live leaks", (sites, warned))
    check(all(sites[k] == groups[k] for k in warned),
          "each site's count is its exit group's", (sites, groups))
    # Samples during the run count the sites warned about before them.
    for i, s in enumerate(samples[:-1]):
        before = {(e["kind"], e["site"]) for e in evs[:evs.index(s)]
                  if e["type"] == "leak"}
        named = {(x["kind"], x["site"]) for x in s["sites"]}
        check(named <= before, "a sample names only sites warned about",
              (s, before))


def test_json_log_of_a_forked_child():
    # The child's own JSON log; its first sample says the options again.
    with tempfile.TemporaryDirectory() as tmp:
        pattern = os.path.join(tmp, "%p.json")
        r = run("hostile_fork", "child-leaks", LEAKWATCH_JSON_LOG=pattern,
                LEAKWATCH_THRESHOLD_MS="0")
        check(r.returncode == 0, "hostile_fork exit 0", r.stderr)
        logs = {}
        for name in os.listdir(tmp):
            with open(os.path.join(tmp, name)) as f:
                logs[int(name[:-len(".json")])] = events(f.read())
    check(len(logs) == 2, "a JSON log per process", logs)
    for pid, evs in logs.items():
        types = [e["type"] for e in evs]
        check(types == ["sample", "exit_report"],
              f"{pid}: the exit sample, then the report", types)
        check(evs[0]["options"]["LEAKWATCH_JSON_LOG"] == pattern and
              evs[0]["pid"] == pid, f"{pid}: its own first sample", evs[0])
    held = sorted(e[-1]["held"] for e in logs.values())
    check(held == [1, 3], "child 1 result, parent 2 results and 1 connection",
          held)


if __name__ == "__main__":
    for name, fn in list(globals().items()):
        if name.startswith("test_"):
            fn()
            print(f"ok {name}")
