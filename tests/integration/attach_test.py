"""`leakwatch attach|report|detach PID` on running programs, against the real
servers scripts/test.sh starts (PG* and MYSQL_TEST_* variables).

    attach_test.py SOURCE_DIR BUILD_DIR TEST

Runs the one test named TEST (ctest runs each as a test of its own); exits
non-zero on the first failed check, with what was seen.
"""
import os
import queue
import re
import subprocess
import sys
import tempfile
import threading
import time

SRC, BUILD, TEST = sys.argv[1], sys.argv[2], sys.argv[3]
AGENT = os.path.join(BUILD, "libleakwatch.so")
LEAKWATCH = [os.path.join(SRC, "scripts", "leakwatch"), "--library", AGENT]
PROGRAMS = os.path.join(BUILD, "tests", "programs")
CLIENT = os.path.join(SRC, "tests", "integration", "attach_client.py")
PYTHON = "/usr/bin/python3"


def fail(what, context=""):
    print(f"FAILED: {what}\n{context}", file=sys.stderr)
    sys.exit(1)


def check(cond, what, context=""):
    if not cond:
        fail(what, context)


def poll(fn, timeout, what, context=lambda: ""):
    """Calls fn until it returns something true, for up to `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if value:
            return value
        if time.monotonic() > deadline:
            fail(f"{what} (waited {timeout} s)", context())
        time.sleep(0.05)


def clean_env(**extra):
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("LEAKWATCH_") and k != "LD_PRELOAD"}
    env.update(extra)
    return env


class Proc:
    """A running program driven through its stdin, answering "ok COMMAND"."""

    def __init__(self, argv, env=None, preexec=None):
        self.p = subprocess.Popen(argv, stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True,
                                  env=env or clean_env(), preexec_fn=preexec)
        self.pid = self.p.pid
        self.lines = queue.Queue()
        self.out = []
        self.err = []
        threading.Thread(target=self._read, args=(self.p.stdout, self.out,
                                                  True), daemon=True).start()
        threading.Thread(target=self._read, args=(self.p.stderr, self.err,
                                                  False), daemon=True).start()

    def _read(self, stream, sink, queued):
        for line in stream:
            sink.append(line)
            if queued:
                self.lines.put(line.rstrip("\n"))

    def expect(self, prefix, timeout=60):
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                fail(f"pid {self.pid}: no line starting {prefix!r}",
                     "".join(self.out) + "".join(self.err))
            try:
                line = self.lines.get(timeout=left)
            except queue.Empty:
                continue
            if line.startswith(prefix):
                return line

    def send(self, command, timeout=60):
        self.p.stdin.write(command + "\n")
        self.p.stdin.flush()
        return self.expect("ok " + command.split()[0], timeout)

    def finish(self, timeout=60):
        self.p.stdin.write("quit\n")
        self.p.stdin.flush()
        self.p.stdin.close()
        rc = self.p.wait(timeout)
        time.sleep(0.1)  # the readers reach the end of the pipes
        return rc, "".join(self.out), "".join(self.err)

    def kill(self):
        if self.p.poll() is None:
            self.p.kill()
            self.p.wait()


def lw(*args, env=None, prefix=()):
    return subprocess.run([*prefix, *LEAKWATCH, *args], capture_output=True,
                          text=True, env=env or clean_env(), timeout=120)


def attached(pid):
    with open(f"/proc/{pid}/maps") as f:
        return "libleakwatch" in f.read()


def read(path):
    try:
        with open(path) as f:
            return f.read()
    except FileNotFoundError:
        return ""


FRAME = re.compile(r"#\d+ 0x[0-9a-f]+ in (\S+) (\S+:\d+)")


def stacks(text):
    """(line, frames) for every line of `text` that a stack follows; frames
    as "function file:line"."""
    out = []
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if not line.endswith(":") or FRAME.search(line):
            continue
        frames = []
        for follow in lines[i + 1:]:
            m = FRAME.search(follow)
            if not m:
                break
            frames.append(f"{m.group(1)} {m.group(2)}")
        if frames:
            out.append((line, frames))
    return out


def stack_with(text, function, marker="acquired at (site"):
    """The frames of the first stack, after a line with `marker`, that
    names `function`."""
    for line, frames in stacks(text):
        if marker in line and any(f.startswith(function + " ")
                                  for f in frames):
            return frames
    return None


def stopped_ms(output):
    m = re.search(r"stopped for ([0-9.]+) ms", output)
    check(m, "the command says how long the thread was stopped", output)
    return float(m.group(1))


# --- tests ---------------------------------------------------------------------


def test_c_service():
    """Leaks that begin after the attach are reported live and by `leakwatch
    report` with the same stacks as under the preload; a connection opened
    before the attach and then left idle is reported as acquired before
    attach; the exit report comes while attached; the program sees nothing."""
    service = os.path.join(PROGRAMS, "attach_service")
    commands = ["use-early", "leak-result", "leak-conn", "clean"]
    with tempfile.TemporaryDirectory() as tmp:
        # Without the agent: what the program itself prints.
        plain = Proc([service])
        plain.send("open-early")
        plain.p.stdin.write("errno\n")
        plain.p.stdin.flush()
        check(plain.expect("errno ") == "errno 4242", "errno without agent")
        for c in commands:
            plain.send(c)
        plain_rc, plain_out, plain_err = plain.finish()
        check(plain_rc == 0, "the service runs", plain_out + plain_err)

        # Under the preload: the stacks to compare with.
        preload_log = os.path.join(tmp, "preload.log")
        pre = Proc([service], env=clean_env(LD_PRELOAD=AGENT,
                                            LEAKWATCH_THRESHOLD_MS="1000",
                                            LEAKWATCH_LOG=preload_log))
        pre.send("open-early")
        for c in commands:
            pre.send(c)
        poll(lambda: "handle_lookup_request" in read(preload_log), 30,
             "the preload's live warnings")
        pre.finish()
        preload_text = read(preload_log)

        log = os.path.join(tmp, "attach.log")
        svc = Proc([service])
        try:
            svc.send("open-early")  # acquired before the attach
            r = lw("attach", str(svc.pid), "--threshold", "1s", "--log", log)
            check(r.returncode == 0 and r.stderr == "", "attach succeeds",
                  r.stdout + r.stderr)
            check(re.search(r"attached to \d+ \(attach_service\): \d+ calls "
                            r"redirected", r.stdout), "attach says so",
                  r.stdout)
            stopped_ms(r.stdout)
            # The thread stopped was the main one, waiting in its read of
            # stdin (the injector takes the first thread, in tid order, that
            # waits in a system call): its errno is as it was.
            check(f"thread {svc.pid} was stopped" in r.stdout,
                  "the main thread, waiting for input, was the one stopped",
                  r.stdout)
            svc.p.stdin.write("errno\n")
            svc.p.stdin.flush()
            check(svc.expect("errno ") == "errno 4242",
                  "the stopped thread's errno is unchanged")
            for c in commands:
                svc.send(c)
            text = poll(lambda: (lambda t: t if "handle_lookup_request" in t
                                 and "acquired before attach" in t else "")(
                read(log)), 30, "live warnings after the attach",
                lambda: read(log))
            for function in ("handle_report_request", "handle_lookup_request"):
                ours = stack_with(text, function)
                theirs = stack_with(preload_text, function)
                check(ours and ours == theirs,
                      f"the stack of {function} is the preload's",
                      f"attach: {ours}\npreload: {theirs}")
            # The connection opened before the attach, used once after it,
            # then idle: reported, marked, with the stack of that use.
            adopted = [l for l in text.splitlines()
                       if "acquired before attach, stack unknown" in l and
                       l.startswith(f"leakwatch[{svc.pid}]: pg.conn")]
            check(adopted, "an idle connection from before the attach", text)
            stack = stack_with(text, "exec_or_die",
                               "first used after the attach at")
            check(stack and stack[0].startswith("exec_or_die"),
                  "its stack is the first use after the attach", text)

            r = lw("report", str(svc.pid))
            check(r.returncode == 0, "report succeeds", r.stdout + r.stderr)
            stopped_ms(r.stdout)
            report = poll(lambda: (lambda t: t if "since the attach:" in t
                                   else "")(read(log)), 30,
                          "the report on demand", lambda: read(log))
            check("report on demand" in report, "the report's header", report)
            check(re.search(r"since the attach: pg\.conn acquired 2 released 1 "
                            r"\(and 3 acquired before the attach", report),
                  "exact connection totals since the attach (2 acquired, 1 "
                  "released; early, main and the worker's adopted)", report)
            rc, out, err = svc.finish()
        finally:
            svc.kill()
        text = read(log)
        check("exit report for" in text, "the exit report while attached",
              text)
        check(rc == plain_rc and out == plain_out and err == plain_err,
              "the program's output and status are unchanged",
              f"{rc} {out!r} {err!r}\nwithout: {plain_rc} {plain_out!r}")


def test_detach_and_reattach():
    """After detach nothing is tracked and the calls go straight to libpq;
    a second attach works with its own options and log; attach, report and
    detach refuse what they cannot do with one line, changing nothing."""
    service = os.path.join(PROGRAMS, "attach_service")
    with tempfile.TemporaryDirectory() as tmp:
        log1, log2 = os.path.join(tmp, "one.log"), os.path.join(tmp, "two.log")
        svc = Proc([service])
        try:
            r = lw("detach", str(svc.pid))
            check(r.returncode == 1 and "was never attached" in r.stderr and
                  len(r.stderr.splitlines()) == 1,
                  "detach of a process never attached", r.stderr)
            r = lw("report", str(svc.pid))
            check(r.returncode == 1 and "was never attached" in r.stderr,
                  "report of a process never attached", r.stderr)
            check(not attached(svc.pid), "still without the agent")
            r = lw("attach", str(svc.pid), "--threshold", "1s", "--log", log1)
            check(r.returncode == 0, "attach", r.stdout + r.stderr)
            r = lw("attach", str(svc.pid))
            check(r.returncode == 1 and "attached already" in r.stderr and
                  len(r.stderr.splitlines()) == 1, "attaching twice",
                  r.stderr)
            r = lw("detach", str(svc.pid))
            check(r.returncode == 0 and "detached from" in r.stdout,
                  "detach", r.stdout + r.stderr)
            r = lw("detach", str(svc.pid))
            check(r.returncode == 1 and "not attached now" in r.stderr,
                  "detaching twice", r.stderr)
            # Detached: a leak now is not seen.
            svc.send("leak-conn")
            r = lw("attach", str(svc.pid), "--threshold", "1s", "--log", log2,
                   "--json")
            check(r.returncode == 0, "attach again", r.stdout + r.stderr)
            svc.send("leak-result")
            text = poll(lambda: read(log2) if '"type":"leak"' in read(log2)
                        else "", 30, "a live warning in the second log",
                        lambda: read(log2))
            check("handle_lookup_request" not in text,
                  "the conn leaked while detached is not reported", text)
            check("handle_report_request" in text,
                  "the second session reports its own leak, in JSON", text)
            r = lw("detach", str(svc.pid))
            check(r.returncode == 0, "detach again", r.stdout + r.stderr)
            size = len(read(log2))
            svc.send("leak-result")
            time.sleep(2.5)  # past the threshold: a warning would be due
            check(len(read(log2)) == size, "nothing written after detach",
                  read(log2))
            rc, out, err = svc.finish()
            check(rc == 0 and err == "", "the program ends normally",
                  out + err)
        finally:
            svc.kill()
        check("handle_lookup_request" not in read(log1) and
              "exit report" not in read(log1) + read(log2),
              "no exit report from a detached agent", read(log1) + read(log2))
        # --for: attached for a while, then a report and a detach.
        svc = Proc([service])
        try:
            log3 = os.path.join(tmp, "three.log")
            metrics = os.path.join(tmp, "metrics.prom")
            cmd = subprocess.Popen(
                [*LEAKWATCH, "attach", str(svc.pid), "--threshold", "1s",
                 "--log", log3, "--metrics", metrics, "--for", "3s"],
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                env=clean_env())
            poll(lambda: os.path.exists(metrics), 30,
                 "the metrics file while attached")
            out, err = cmd.communicate(timeout=60)
            check(cmd.returncode == 0 and "report written" in out and
                  "detached from" in out, "attach --for", out + err)
            check("since the attach:" in read(log3), "its report", read(log3))
            check(not os.path.exists(metrics),
                  "the metrics file goes with the detach")
            r = lw("detach", str(svc.pid))
            check(r.returncode == 1 and "not attached now" in r.stderr,
                  "detached after --for", r.stderr)
            svc.finish()
        finally:
            svc.kill()
        r = lw("attach", "999999999")
        check(r.returncode != 0 and "no process" in r.stderr,
              "attach to no process", r.stderr)


def test_preloaded_refused():
    """A process started with the preload is watched already."""
    service = os.path.join(PROGRAMS, "attach_service")
    svc = Proc([service], env=clean_env(LD_PRELOAD=AGENT))
    try:
        svc.send("clean")
        for command in ("attach", "report", "detach"):
            r = lw(command, str(svc.pid))
            check(r.returncode == 1 and "preloaded" in r.stderr and
                  len(r.stderr.splitlines()) == 1,
                  f"{command} of a preloaded process", r.stderr)
        svc.send("clean")
        rc, out, err = svc.finish()
        check(rc == 0 and err == "", "the program runs on", out + err)
    finally:
        svc.kill()


def test_permissions():
    """Without ptrace permission: one line that says what to change, and the
    process untouched."""
    service = os.path.join(PROGRAMS, "attach_service")
    # The service as another user (postgres; a copy it can run), the command
    # as root without CAP_SYS_PTRACE (a container without it), then as a
    # third user.
    tmp = tempfile.mkdtemp()
    os.chmod(tmp, 0o755)
    copy = os.path.join(tmp, "attach_service")
    subprocess.run(["cp", service, copy], check=True)
    svc = Proc(["setpriv", "--reuid=postgres", "--regid=postgres",
                "--clear-groups", "--", copy])
    try:
        svc.send("clean")
        pid = svc.pid
        drop = ["setpriv", "--inh-caps=-sys_ptrace",
                "--bounding-set=-sys_ptrace", "--"]
        r = lw("attach", str(pid), prefix=drop)
        check(r.returncode == 1 and "CAP_SYS_PTRACE" in r.stderr and
              "nothing was changed" in r.stderr and
              len(r.stderr.splitlines()) == 1,
              "root without CAP_SYS_PTRACE is refused", r.stderr)
        nobody = ["setpriv", "--reuid=nobody", "--regid=nogroup",
                  "--clear-groups", "--"]
        r = lw("attach", str(pid), prefix=nobody)
        check(r.returncode == 1 and "another user" in r.stderr and
              len(r.stderr.splitlines()) == 1,
              "another user is refused", r.stderr)
        check(not attached(pid), "the process is untouched")
        svc.send("clean")
        rc, out, err = svc.finish()
        check(rc == 0, "the program runs on", out + err)
    finally:
        svc.kill()


def client_totals(driver):
    """A Python program on psycopg2 or MySQLdb: the totals of what it
    acquires after the attach are exact (the same as under the preload for
    the same work), and its script lines are named."""
    work, leaks = 40, 3
    kind = "pg" if driver == "pg" else "mysql"

    def preload_totals(commands):
        """Per-kind (acquired, released) of a run under the preload."""
        with tempfile.TemporaryDirectory() as tmp:
            log = os.path.join(tmp, "preload.log")
            pre = Proc([PYTHON, CLIENT, driver],
                       env=clean_env(LD_PRELOAD=AGENT, LEAKWATCH_STATS="1",
                                     LEAKWATCH_LOG=log))
            pre.expect("ready")
            for c in commands:
                pre.send(c)
            pre.finish()
            text = read(log)
        out = {}
        for k in ("conn", "result"):
            check("stats:" in text, "the preload's stats", text)
            m = re.search(rf"{kind}\.{k} acquired (\d+) released (\d+)", text)
            out[k] = (int(m.group(1)), int(m.group(2))) if m else (0, 0)
        return out

    # What `work` acquires, as the preload counts it.
    before, after = preload_totals([]), preload_totals([f"work {work}"])
    expected = {k: (after[k][0] - before[k][0], after[k][1] - before[k][1])
                for k in after}
    check(expected["conn"] == (work, work), "the preload counts the work",
          str(expected))

    with tempfile.TemporaryDirectory() as tmp:
        log = os.path.join(tmp, "attach.log")
        svc = Proc([PYTHON, CLIENT, driver])
        try:
            svc.expect("ready")
            r = lw("attach", str(svc.pid), "--threshold", "1s", "--log", log)
            check(r.returncode == 0, f"attach to the {driver} program",
                  r.stdout + r.stderr)
            svc.send(f"work {work}")
            r = lw("report", str(svc.pid))
            check(r.returncode == 0, "report", r.stdout + r.stderr)
            report = poll(lambda: (lambda t: t if "since the attach:" in t
                                   else "")(read(log)), 30, "the report",
                          lambda: read(log))
            for k in ("conn", "result"):
                m = re.search(rf"since the attach: .*{kind}\.{k} acquired "
                              rf"(\d+) released (\d+)", report)
                check(m and (int(m.group(1)), int(m.group(2))) ==
                      expected[k],
                      f"{kind}.{k} totals after the attach are the "
                      f"preload's for the same work: {expected[k]}", report)
            svc.send("use")  # the connection from before: adopted
            # Spaced wider than the threshold: a growing site.
            svc.send(f"leak {leaks} 1.2")
            live = poll(lambda: (lambda t: t if "attach_client.py" in t
                                 else "")(read(log)), 30,
                        "the leaked connections' live warnings name the "
                        "script", lambda: read(log))
            line = next(i for i, l in enumerate(read(CLIENT).splitlines(), 1)
                        if "# LEAK(conn)" in l)
            check(f"attach_client.py:{line}" in live,
                  "the script line that leaked", live)
            r = lw("detach", str(svc.pid))
            check(r.returncode == 0, "detach", r.stdout + r.stderr)
            rc, out, err = svc.finish()
            check(rc == 0 and err == "", "the program ends normally",
                  out + err)
        finally:
            svc.kill()


def test_psycopg2():
    client_totals("pg")


def test_mysqldb():
    client_totals("mysql")


def test_module_loaded_after_the_attach():
    """A module loaded after the attach (ctypes, RTLD_LOCAL) that brings the
    only libpq of the process, a renamed copy (as wheels bundle it): its
    calls are redirected as the load returns and reach the copy."""
    with tempfile.TemporaryDirectory() as tmp:
        libpq = "/usr/lib/x86_64-linux-gnu/libpq.so.5"
        copy = os.path.join(tmp, "libpq-0123abcd.so.5")
        module = os.path.join(tmp, "_pgplugin.cpython-311-x86_64-linux-gnu.so")
        subprocess.run(["cp", libpq, copy], check=True)
        subprocess.run(["cp", os.path.join(PROGRAMS, "libhostile_pgplugin.so"),
                        module], check=True)
        # One change per patchelf call: 0.14 mixes up several in one.
        for args in (["--set-soname", "libpq-0123abcd.so.5", copy],
                     ["--replace-needed", "libpq.so.5", "libpq-0123abcd.so.5",
                      module],
                     ["--set-rpath", "$ORIGIN", module]):
            subprocess.run(["patchelf", *args], check=True)
        log = os.path.join(tmp, "attach.log")
        svc = Proc([PYTHON, CLIENT, "none"])
        try:
            svc.expect("ready")
            r = lw("attach", str(svc.pid), "--threshold", "1s", "--log", log)
            check(r.returncode == 0, "attach", r.stdout + r.stderr)
            svc.send(f"plugin {module}")
            with open(f"/proc/{svc.pid}/maps") as f:
                maps = f.read()
            check("libpq-0123abcd.so.5" in maps and
                  "/libpq.so.5" not in maps,
                  "the renamed copy is the process's only libpq")
            r = lw("report", str(svc.pid))
            check(r.returncode == 0, "report", r.stdout + r.stderr)
            report = poll(lambda: (lambda t: t if "since the attach:" in t
                                   else "")(read(log)), 30, "the report",
                          lambda: read(log))
            check("since the attach: pg.conn acquired 1 released 1, pg.result "
                  "acquired 2 released 1" in report,
                  "the module's connection and two results, one kept", report)
            rc, out, err = svc.finish()
            check(rc == 0 and err == "", "the program ends normally",
                  out + err)
            # Still attached at exit: the kept result is in the exit report,
            # acquired in the module, called from the script's line.
            text = read(log)
            line = next(i for i, l in enumerate(read(CLIENT).splitlines(), 1)
                        if "# LEAK(result)" in l)
            exit_report = text[text.find("exit report for"):]
            check("pg.result" in exit_report and
                  (f"attach_client.py:{line}" in exit_report or
                   "pgplugin_leaky_query" in exit_report),
                  "the kept result at exit, from the module", text)
        finally:
            svc.kill()


def test_load_attach_detach_50():
    """16 threads in libpq and libmariadb calls, attached and detached 50
    times: no crash, no hang, no failed query, the program's own counts
    checked against the database, exit status 0. The longest stop is
    printed."""
    load = os.path.join(PROGRAMS, "attach_load")
    with tempfile.TemporaryDirectory() as tmp:
        svc = Proc([load, "8", "8"])
        longest = 0.0
        try:
            svc.expect("running")
            time.sleep(0.5)  # every thread at work
            for i in range(50):
                log = os.path.join(tmp, f"{i}.log")
                r = lw("attach", str(svc.pid), "--threshold", "1s", "--log",
                       log)
                check(r.returncode == 0, f"attach #{i + 1}",
                      r.stdout + r.stderr)
                longest = max(longest, stopped_ms(r.stdout))
                check(not re.search(r"\d+ could not be", r.stdout),
                      "every call redirected", r.stdout)
                r = lw("detach", str(svc.pid))
                check(r.returncode == 0, f"detach #{i + 1}",
                      r.stdout + r.stderr)
                longest = max(longest, stopped_ms(r.stdout))
                check(svc.p.poll() is None, "the service runs on",
                      "".join(svc.out) + "".join(svc.err))
            rc, out, err = svc.finish(timeout=120)
        finally:
            svc.kill()
        check(rc == 0 and out.rstrip().endswith("ok") and err == "",
              "no failed query, counts match the database, status 0",
              out + err)
        m = re.search(r"pg threads 8 rows (\d+)\nmysql threads 8 rows (\d+)",
                      out)
        check(m and int(m.group(1)) > 0 and int(m.group(2)) > 0,
              "both libraries did work", out)
        print(f"longest stop of a thread over 50 attaches and 50 detaches: "
              f"{longest:.2f} ms")


TESTS = {name[5:]: fn for name, fn in globals().items()
         if name.startswith("test_")}
if TEST not in TESTS:
    fail(f"no test {TEST}; tests: {', '.join(TESTS)}")
TESTS[TEST]()
print(f"{TEST}: passed")
