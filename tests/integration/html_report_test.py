"""`leakwatch html`: the agent's JSON logs as one self-contained HTML page,
opened in a real browser (Debian's chromium, headless): the DOM it builds
has the groups and counts of the log, the page makes no request and logs
nothing on the console, and a screenshot of it is kept as a test artifact
(BUILD/test-artifacts/html/TEST.png).

    html_report_test.py SOURCE_DIR BUILD_DIR TEST

Runs the one test named TEST (ctest runs each as a test of its own, with the
sandbox servers' PG* and MYSQL_* variables); exits non-zero on the first
failed check, with what was seen. The leaky programs and their marked lines
are sarif_test.py's (sarif_leaks.c); its helpers are reused from there.
"""
import html.parser
import json
import os
import shutil
import struct
import subprocess
import tempfile

import sarif_test as base
from sarif_test import BUILD, PROGRAMS, SRC, WRAPPER, check

ARTIFACTS = os.path.join(BUILD, "test-artifacts", "html")
CHROMIUM = shutil.which("chromium")


# --- the browser -------------------------------------------------------------


class Dom(html.parser.HTMLParser):
    """The elements of a DOM dump: (tag, attributes, text inside)."""

    def __init__(self, text):
        super().__init__(convert_charrefs=True)
        self.elements = []
        self.open = []  # indices of the elements still open
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        self.elements.append([tag, dict(attrs), ""])
        if tag not in ("meta", "br", "img", "input", "link", "hr"):
            self.open.append(len(self.elements) - 1)

    def handle_endtag(self, tag):
        while self.open:
            i = self.open.pop()
            if self.elements[i][0] == tag:
                break

    def handle_data(self, data):
        for i in self.open:
            self.elements[i][2] += data

    def find(self, tag=None, cls=None, **attrs):
        out = []
        for t, a, text in self.elements:
            if tag and t != tag:
                continue
            if cls and cls not in (a.get("class") or "").split():
                continue
            if any(a.get(k.replace("_", "-")) != v for k, v in attrs.items()):
                continue
            out.append((a, text))
        return out


def browse(page, name, min_png=20000):
    """Opens PAGE in headless chromium twice: the DOM it builds (parsed) and
    a screenshot kept as ARTIFACTS/NAME.png. Fails on any console message:
    the page has no script, so one means a blocked request or a broken
    page."""
    check(CHROMIUM is not None, "chromium is installed (scripts/setup)")
    os.makedirs(ARTIFACTS, exist_ok=True)
    shot = os.path.join(ARTIFACTS, name + ".png")
    if os.path.exists(shot):
        os.unlink(shot)
    url = "file://" + os.path.abspath(page)
    with tempfile.TemporaryDirectory() as profile:
        common = [CHROMIUM, "--headless=new", "--no-sandbox", "--disable-gpu",
                  "--no-first-run", "--disable-extensions",
                  "--disable-background-networking", "--hide-scrollbars",
                  f"--user-data-dir={profile}", "--enable-logging=stderr",
                  "--v=0"]
        dump = subprocess.run(common + ["--dump-dom", url],
                              capture_output=True, text=True, timeout=120)
        check(dump.returncode == 0 and "</html>" in dump.stdout,
              "chromium --dump-dom", dump.stderr[-3000:])
        snap = subprocess.run(common + ["--window-size=1200,2400",
                                        f"--screenshot={shot}", url],
                              capture_output=True, text=True, timeout=120)
    console = [line for line in (dump.stderr + snap.stderr).splitlines()
               if ":CONSOLE" in line]
    check(snap.returncode == 0 and os.path.isfile(shot),
          "chromium --screenshot", snap.stderr[-3000:])
    with open(shot, "rb") as f:
        head = f.read(24)
    check(head[:8] == b"\x89PNG\r\n\x1a\n" and
          struct.unpack(">II", head[16:24]) == (1200, 2400) and
          os.path.getsize(shot) > min_png,
          "a 1200x2400 screenshot with something on it",
          f"{head!r} {shot} {os.path.getsize(shot)} bytes")
    return Dom(dump.stdout), console


def no_console(console):
    check(not console, "nothing on the browser's console", "\n".join(console))


def render(*args, cwd=None, wrapper=WRAPPER):
    r = subprocess.run([wrapper, "html", *args], capture_output=True,
                       text=True, env=base.clean_env(), timeout=120, cwd=cwd)
    return r


def page_of(tmp, *logs, name="report.html", extra=()):
    out = os.path.join(tmp, name)
    r = render(*logs, "-o", out, "--source-root", SRC, *extra)
    check(r.returncode == 0 and os.path.isfile(out),
          f"leakwatch html {' '.join(logs)}: exit 0", r.stdout + r.stderr)
    with open(out, encoding="utf-8") as f:
        text = f.read()
    check("Content-Security-Policy" in text and "<script" not in text and
          "http://" not in text.replace("http://www.w3.org/2000/svg", ""),
          "self-contained: a CSP, no script, no link out", text[:2000])
    return out


def read_log(path):
    events = []
    for name in sorted(os.listdir(os.path.dirname(path))):
        full = os.path.join(os.path.dirname(path), name)
        if full == path or name.startswith(os.path.basename(path) + "."):
            with open(full) as f:
                events += [json.loads(line) for line in f if line.strip()]
    return events


def tile(dom, key):
    found = dom.find("div", cls="tile", data_tile=key)
    check(len(found) == 1, f"one {key} tile", found)
    return int(found[0][0]["data-value"])


def groups_of(dom):
    """{(kind, line): (count, lost, pids)} of the page's leak groups."""
    out = {}
    for a, _ in dom.find("details", cls="group"):
        if "reachable" in a["class"].split():
            continue
        key = (a["data-kind"], int(a["data-line"]) if a["data-line"] else 0)
        check(key not in out, "one group per kind and line", key)
        out[key] = (int(a["data-count"]), int(a["data-lost"]),
                    a["data-pids"])
    return out


def expected_groups(pids_text, times=1):
    m = base.marks()
    lines = m["LEAK pg.result"]
    return {("pg.result", lines[0]): (2 * times, 2 * times, pids_text),
            ("pg.result", lines[1]): (1 * times, 1 * times, pids_text),
            ("pg.conn", m["LEAK pg.conn"][0]): (1 * times, 1 * times,
                                                pids_text)}


def leaky(tmp, log, *options):
    """sarif_leaks leak under the agent, past a 200 ms threshold at exit,
    the text on stderr and the JSON log in LOG.<pid>; returns its pid."""
    r = subprocess.run(
        [WRAPPER, "--library", base.AGENT, "--threshold", "200ms",
         "--json-log", log, *options, "--",
         os.path.join(PROGRAMS, "sarif_leaks"), "leak", "900"],
        capture_output=True, text=True, env=base.clean_env(), timeout=120,
        preexec_fn=base.no_core)
    check(r.returncode == 0 and r.stdout.startswith("users 2 sessions "),
          "sarif_leaks leak: exit 0", r.stdout + r.stderr)
    check("leakwatch[" in r.stderr and "SUMMARY" in r.stderr,
          "the text report still on stderr", r.stderr)
    return r


# --- the tests ---------------------------------------------------------------


def test_leaks():
    with tempfile.TemporaryDirectory() as tmp:
        log = os.path.join(tmp, "leaks.json")
        leaky(tmp, log)
        events = read_log(log)
        exits = [e for e in events if e["type"] == "exit_report"]
        check(len(exits) == 1, "one exit report in the JSON log", events)
        pid = exits[0]["pid"]
        samples = [e for e in events if e["type"] == "sample"]
        check(samples, "the agent wrote samples", [e["type"] for e in events])
        dom, console = browse(page_of(tmp, log), "leaks")
    no_console(console)
    check(groups_of(dom) == expected_groups(str(pid)),
          "the groups, counts and lines of the exit report", groups_of(dom))
    check(tile(dom, "leaked") == 4 and tile(dom, "lost") == 4 and
          tile(dom, "misuse") == 0, "the summary", dom.find(cls="tile"))
    # The guilty line and the lines around it, from the source file.
    m = base.marks()
    with open(base.LEAKS_C) as f:
        source = f.read().splitlines()
    hits = [text for a, text in dom.find("tr", cls="hit")]
    for line in m["LEAK pg.result"] + m["LEAK pg.conn"]:
        check(any(source[line - 1].strip() in h for h in hits),
              f"source line {line} shown", hits)
    # The timeline: the process, a line per kind that reaches what was held
    # at the end, and a dashed line per reported site.
    svg = dom.find("svg", cls="timeline", data_pid=str(pid))
    check(len(svg) == 1 and int(svg[0][0]["data-samples"]) == len(samples),
          "one timeline, every sample", svg)
    peaks = {a["data-kind"]: int(a["data-peak"])
             for a, _ in dom.find("path", cls="kind")}
    check(peaks.get("pg.result", 0) >= 3 and peaks.get("pg.conn", 0) >= 1,
          "pg.result and pg.conn series reach what was held", peaks)
    leak_sites = {str(e["site"]) for e in events if e["type"] == "leak"}
    drawn = {a["data-site"] for a, _ in dom.find("path", cls="site")}
    check(leak_sites and leak_sites == drawn, "a series per reported site",
          (leak_sites, drawn))
    warn = sum(int(a["data-count"]) for a, _ in dom.find("path", cls="warn"))
    check(warn == sum(e.get("count", 1) for e in events
                      if e["type"] in ("leak", "leak_more")),
          "every live warning marked", warn)
    opts = dom.find("details", cls="options", data_pid=str(pid))
    check(opts and "LEAKWATCH_THRESHOLD_MS200" in opts[0][1].replace(" ", ""),
          "the options in force", opts)


def test_processes():
    # Two processes of one run (the %p files): one page, the same groups of
    # both merged with both pids, a timeline each.
    with tempfile.TemporaryDirectory() as tmp:
        log = os.path.join(tmp, "run.json")
        leaky(tmp, log)
        leaky(tmp, log)
        pids = sorted({e["pid"] for e in read_log(log)})
        check(len(pids) == 2, "two processes", pids)
        dom, console = browse(page_of(tmp, log), "processes")
    no_console(console)
    want = expected_groups(",".join(str(p) for p in pids), times=2)
    got = groups_of(dom)
    got = {k: (c, lost, ",".join(sorted(p.split(",")))) for k, (c, lost, p)
           in got.items()}
    check(got == want, "each group once, both processes' handles", got)
    check(len(dom.find("svg", cls="timeline")) == 2 and
          len(dom.find("tr", data_pid=str(pids[0]))) == 1 and
          len(dom.find("tr", data_pid=str(pids[1]))) == 1,
          "a timeline and a row per process", dom.find("svg"))
    check(tile(dom, "leaked") == 8, "8 leaked in all", dom.find(cls="tile"))


def test_misuse():
    with tempfile.TemporaryDirectory() as tmp:
        log = os.path.join(tmp, "misuse.json")
        r = subprocess.run(
            [WRAPPER, "--library", base.AGENT, "--json", "--log", log, "--",
             os.path.join(PROGRAMS, "sarif_leaks"), "double-clear"],
            capture_output=True, text=True, env=base.clean_env(), timeout=120,
            preexec_fn=base.no_core)
        check(r.stdout.startswith("before"), "reached the misuse",
              r.stdout + r.stderr)
        dom, console = browse(page_of(tmp, log), "misuse")
    no_console(console)
    found = dom.find("details", cls="misuse", data_what="double_release")
    check(len(found) == 1 and found[0][0]["data-count"] == "1" and
          "PQclear" in found[0][1], "the double release", found)
    check(tile(dom, "misuse") == 1, "counted", dom.find(cls="tile"))
    line = base.marks()["MISUSE double-release"][0]
    check(f"sarif_leaks.c:{line}" in found[0][1], "at the second PQclear",
          found[0][1][:2000])


def test_console_check():
    # The console check can fail: a page that asks for an image off the
    # machine under the same policy as leakwatch's pages is caught.
    with tempfile.TemporaryDirectory() as tmp:
        page = os.path.join(tmp, "bad.html")
        with open(page, "w") as f:
            f.write('<!DOCTYPE html><html><head><meta http-equiv="Content-'
                    "Security-Policy\" content=\"default-src 'none'; "
                    "style-src 'unsafe-inline'; img-src data:\"></head><body>"
                    '<img src="http://192.0.2.1/x.png"><p>x</p></body></html>')
        _, console = browse(page, "console_check", min_png=1000)
    check(any("192.0.2.1" in line for line in console),
          "the blocked request is on the console", console)


def test_big_log():
    # scripts/bench-html's log of 100,000 events: the page stays under
    # 2 MB and a browser builds it (its time is the benchmark's business).
    with tempfile.TemporaryDirectory() as tmp:
        r = subprocess.run([os.path.join(SRC, "scripts", "bench-html"),
                            "--rounds", "1", "--keep", tmp],
                           capture_output=True, text=True, timeout=300)
        check(r.returncode == 0 and "page:" in r.stdout, "bench-html ran",
              r.stdout + r.stderr)
        page = os.path.join(tmp, "bench.html")
        size = os.path.getsize(page)
        check(size < 2_000_000, "the page of 100,000 events under 2 MB", size)
        with open(os.path.join(tmp, "bench.json")) as f:
            events = [json.loads(line) for line in f]
        check(len(events) == 100_000, "100,000 events", len(events))
        dom, console = browse(page, "big_log")
    no_console(console)
    leaked = sum(g["count"] for e in events if e["type"] == "exit_report"
                 for g in e["groups"])
    check(tile(dom, "leaked") == leaked, "every exit group counted",
          (tile(dom, "leaked"), leaked))
    check(len(dom.find("svg", cls="timeline")) == 4, "4 timelines",
          len(dom.find("svg")))


def test_demo():
    # What scripts/demo.sh shows: its two services under the agent with the
    # text on stderr and the JSON log next to it, as one page.
    with tempfile.TemporaryDirectory() as tmp:
        log = os.path.join(tmp, "demo.%p.json")
        pids = []
        for program in ("demo_service", "demo_service_mysql"):
            r = subprocess.run(
                [os.path.join(PROGRAMS, program)], capture_output=True,
                text=True, timeout=120, preexec_fn=base.no_core,
                env=base.clean_env(LD_PRELOAD=base.AGENT,
                                   LEAKWATCH_THRESHOLD_MS="1000",
                                   LEAKWATCH_JSON_LOG=log))
            check(r.returncode == 0 and "SUMMARY" in r.stderr,
                  f"{program}: exit 0, the text report", r.stderr[-3000:])
        logs = sorted(os.path.join(tmp, f) for f in os.listdir(tmp)
                      if f.endswith(".json"))
        check(len(logs) == 2, "a JSON log per process", logs)
        events = [json.loads(line) for path in logs for line in open(path)]
        pids = [e["pid"] for e in events if e["type"] == "exit_report"]
        check(len(pids) == 2, "two exit reports", pids)
        dom, console = browse(page_of(tmp, *logs), "demo")
    no_console(console)
    want = {}
    for e in events:
        if e["type"] != "exit_report":
            continue
        for g in e["groups"]:
            frame = next(f for f in g["frames"]
                         if "demo_service" in f.get("file", ""))
            key = (g["kind"], frame["line"])
            c, lost, _ = want.get(key, (0, 0, ""))
            want[key] = (c + g["count"],
                         lost + g["lost"] + g["indirectly_lost"], "")
    got = {k: (c, lost, "") for k, (c, lost, _) in groups_of(dom).items()}
    check(got == want and len(got) >= 5, "the demo's groups", (got, want))
    check(len(dom.find("svg", cls="timeline")) == 2 and
          len(dom.find("path", cls="site")) >= 4,
          "two timelines with the reported sites", dom.find("svg"))


def test_no_report():
    # A process without an exit report (killed, or nothing held at exit):
    # its live warnings not followed by a release are its groups; a scan's
    # released_more takes the site's oldest warnings with it.
    def leak(handle, site, t):
        return {"type": "leak", "pid": 7, "time_ms": t, "reason": "lost",
                "kind": "pg.conn", "family": "conn", "handle": handle,
                "site": site, "held_ms": 600, "threshold_ms": 500,
                "frames": [{"function": f"open_{site}", "file": "svc.c",
                            "line": site}]}
    events = [leak(f"0x{i}", 1, 1000 + i) for i in range(5)]
    events += [leak("0xa", 2, 1100), leak("0xb", 2, 1101)]
    events += [{"type": "released", "pid": 7, "time_ms": 2000,
                "kind": "pg.conn", "handle": "0x4", "site": 1},
               {"type": "released_more", "pid": 7, "time_ms": 2000,
                "kind": "pg.conn", "site": 1, "count": 3}]
    with tempfile.TemporaryDirectory() as tmp:
        log = os.path.join(tmp, "killed.json")
        with open(log, "w") as f:
            f.write("".join(json.dumps(e) + "\n" for e in events))
        with open(page_of(tmp, log), encoding="utf-8") as f:
            dom = Dom(f.read())
    check(groups_of(dom) == {("pg.conn", 1): (1, 1, "7"),
                             ("pg.conn", 2): (2, 2, "7")},
          "one of site 1 left, both of site 2", groups_of(dom))
    check(tile(dom, "leaked") == 3, "3 leaked", dom.find(cls="tile"))


def test_installed():
    # cmake --install puts leakwatch-html and the reader it shares with
    # leakwatch-sarif in PREFIX/lib/leakwatch, where the command finds them.
    with tempfile.TemporaryDirectory() as tmp:
        prefix = os.path.join(tmp, "prefix")
        r = subprocess.run(["cmake", "--install", BUILD, "--prefix", prefix],
                           capture_output=True, text=True, timeout=120,
                           env=base.clean_env(DESTDIR=""))
        check(r.returncode == 0, "cmake --install", r.stdout + r.stderr)
        wrapper = os.path.join(prefix, "bin", "leakwatch")
        r = render("--help", wrapper=wrapper)
        check(r.returncode == 0 and "usage: leakwatch html" in r.stdout,
              "the installed command's html --help", r.stdout + r.stderr)
        log = base.misuse_log(tmp)
        out = os.path.join(tmp, "p.html")
        r = render(log, "-o", out, wrapper=wrapper, cwd=tmp)
        check(r.returncode == 0 and os.path.isfile(out),
              "rendered by the installed command", r.stderr)
        lib = os.path.join(prefix, "lib", "leakwatch")
        check(sorted(os.listdir(lib)) == ["leakwatch-attach", "leakwatch-html",
                                          "leakwatch-sarif",
                                          "leakwatch_logs.py"],
              "nothing else written there (no __pycache__)",
              os.listdir(lib))
        # Usage errors and unreadable logs.
        r = render(wrapper=wrapper)
        check(r.returncode == 2 and "usage: leakwatch html" in r.stderr,
              "no LOG: usage, exit 2", r.stderr)
        text = os.path.join(tmp, "text.log")
        with open(text, "w") as f:
            f.write("leakwatch[42]: SUMMARY: 1 handle still held at exit\n")
        r = render(text, "-o", out, wrapper=wrapper)
        check(r.returncode == 1 and "LEAKWATCH_FORMAT=json" in r.stderr,
              "a text log: exit 1, says why", r.stderr)


if __name__ == "__main__":
    base.run(globals())
