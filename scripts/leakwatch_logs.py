"""leakwatch_logs — reading the agent's JSON (NDJSON) logs, for the
commands that turn them into other formats: leakwatch-sarif (`leakwatch
sarif`) and leakwatch-html (`leakwatch html`).

A log holds the events of one or more processes (the `%p` files of one run,
or several processes appending to one file); `read_logs` gathers them per
pid into `Process` objects. Frames are the agent's JSON frames
(README.md, "JSON"): `is_foreign` tells the user's code from the agent,
client libraries, runtimes and interpreters.

Standard library only (Debian's /usr/bin/python3). Installed next to the two
commands, in PREFIX/lib/leakwatch/.
"""
import glob
import json
import os
import re
import sys

# --- kinds ---------------------------------------------------------------------
# kind -> (what one is, plural, the README section that explains it)
KINDS = {
    "pg.conn": ("PostgreSQL connection", "PostgreSQL connections",
                "what-it-reports"),
    "pg.result": ("PostgreSQL result", "PostgreSQL results",
                  "what-it-reports"),
    "pg.cancel": ("PostgreSQL cancel handle", "PostgreSQL cancel handles",
                  "what-it-reports"),
    "pg.prepared": ("PostgreSQL prepared statement",
                    "PostgreSQL prepared statements", "what-it-reports"),
    "mysql.conn": ("MySQL connection", "MySQL connections", "what-it-reports"),
    "mysql.result": ("MySQL result", "MySQL results", "what-it-reports"),
    "mysql.stmt": ("MySQL statement", "MySQL statements", "what-it-reports"),
    "thread": ("thread", "threads", "threads"),
}

# How each kind is released: the leak rules' full descriptions say it.
RELEASED_BY = {
    "pg.conn": "PQfinish",
    "pg.result": "PQclear",
    "pg.cancel": "PQfreeCancel",
    "pg.prepared": "DEALLOCATE (or PQclosePrepared, or the end of its "
                   "connection)",
    "mysql.conn": "mysql_close",
    "mysql.result": "mysql_free_result",
    "mysql.stmt": "mysql_stmt_close",
    "thread": "pthread_join (a detached thread: its exit)",
}

# Kinds whose sites can be reported as growing, and the event that says so.
GROWING_EVENTS = {
    "growing_thread_site": "thread",
    "growing_connection_site": None,  # the event's "kind"
    "growing_statement_site": None,
}
GROWING_KINDS = ("thread", "pg.conn", "mysql.conn", "pg.prepared",
                 "mysql.stmt")


def cap(text):
    """text with its first letter upper case (str.capitalize lowers the
    rest: PostgreSQL)."""
    return text[:1].upper() + text[1:]



# --- reading the logs --------------------------------------------------------


class Process:
    """What one pid's events say, in the order the log has them."""

    def __init__(self, pid, log_dir):
        self.pid = pid
        self.log_dir = log_dir
        self.program = None
        self.start_ms = None
        self.end_ms = None
        self.first_ms = None  # the earliest and latest time_ms of any event
        self.last_ms = None
        self.options = None  # from a report, or the first sample
        self.exit_report = None
        self.last_report = None  # periodic_report or report (on demand)
        self.live = {}  # (kind, handle) -> leak event not released since
        self.live_more = {}  # (kind, site) -> count of leak_more
        self.growing = {}  # (kind, site) -> latest growing_* event
        self.misuses = []
        # For the timeline (leakwatch html): (time_ms, open per kind,
        # {(kind, site): open}) of each sample; (time_ms, kind, site, count) of each live warning;
        # time_ms of each release or reuse of a reported handle.
        self.samples = []
        self.warnings = []
        self.notes = []
        self.site_frames = {}  # (kind, site) -> the frames of its first event
        self.sites_cache = {}  # a sample's "sites" text -> its parsed list
        self._site_maps = {}  # id(sites list) -> (the list, its site map)

    def _when(self, ms):
        if isinstance(ms, int):
            if self.first_ms is None or ms < self.first_ms:
                self.first_ms = ms
            if self.last_ms is None or ms > self.last_ms:
                self.last_ms = ms

    def _site(self, kind, ev):
        key = (kind, ev.get("site"))
        if key not in self.site_frames and isinstance(ev.get("frames"), list):
            self.site_frames[key] = ev["frames"]

    def _site_map(self, sites):
        """{(kind, site): open} of a sample's sites, one dict shared by the
        samples whose sites are the same list (see parse_event)."""
        if not isinstance(sites, list):
            sites = []
        known = self._site_maps.get(id(sites))
        if known is None or known[0] is not sites:
            known = (sites, {(e.get("kind"), e.get("site")): e.get("open", 0)
                             for e in sites if isinstance(e, dict)})
            self._site_maps[id(sites)] = known
        return known[1]

    def add(self, ev):
        t = ev["type"]
        self._when(ev.get("time_ms"))
        if t == "sample":
            self.samples.append((ev.get("time_ms"), ev.get("open") or {},
                                 self._site_map(ev.get("sites"))))
            if self.options is None and isinstance(ev.get("options"), dict):
                self.options = ev["options"]
            self.program = self.program or ev.get("program")
            self.start_ms = self.start_ms or ev.get("start_time_ms")
        elif t in ("exit_report", "periodic_report", "report"):
            self.program = ev.get("program", self.program)
            self.start_ms = ev.get("start_time_ms", self.start_ms)
            self.end_ms = ev.get("end_time_ms", self.end_ms)
            self._when(self.end_ms)
            if isinstance(ev.get("options"), dict):
                self.options = ev["options"]
            for group in (ev.get("groups") or []):
                if isinstance(group, dict):
                    self._site(group.get("kind"), group)
            if t == "exit_report":
                self.exit_report = ev
            else:
                self.last_report = ev
        elif t == "leak":
            self.live[(ev.get("kind"), ev.get("handle"))] = ev
            self.warnings.append((ev.get("time_ms"), ev.get("kind"),
                                  ev.get("site"), 1))
            self._site(ev.get("kind"), ev)
        elif t == "leak_more":
            key = (ev.get("kind"), ev.get("site"))
            self.live_more[key] = (self.live_more.get(key, 0) +
                                   ev.get("count", 0))
            self.warnings.append((ev.get("time_ms"), ev.get("kind"),
                                  ev.get("site"), ev.get("count", 0)))
        elif t in ("released", "active_again"):  # slow, or a pool's
            self.live.pop((ev.get("kind"), ev.get("handle")), None)
            self.notes.append(ev.get("time_ms"))
        elif t in ("released_more", "active_again_more"):
            # The rest of a site's notes in one scan, unnamed: the site's
            # oldest warnings are the ones that went.
            kind, site, count = ev.get("kind"), ev.get("site"), ev.get("count")
            gone = [key for key, leak in self.live.items()
                    if key[0] == kind and leak.get("site") == site]
            for key in gone[:count if isinstance(count, int) else 0]:
                del self.live[key]
            self.notes.append(ev.get("time_ms"))
        elif t in GROWING_EVENTS:
            kind = GROWING_EVENTS[t] or ev.get("kind", "?")
            self.growing[(kind, ev.get("site"))] = ev
            self._site(kind, ev)
        elif t == "misuse":
            self.misuses.append(ev)

    def report(self):
        """The report that says what the process held last: its exit report,
        or else (killed, or still running) its last periodic or on-demand
        report, or None."""
        return self.exit_report or self.last_report

    def live_sites(self):
        """(kind, site) -> the live leak warnings of that site not followed
        by a release: what a process without a report is known to hold."""
        sites = {}
        for (kind, _), ev in self.live.items():
            sites.setdefault((kind, ev.get("site")), []).append(ev)
        return sites


class LogError(Exception):
    pass


def log_files(arg):
    """The files one LOG argument names: LOG itself, or, when it does not
    exist, the LOG.<pid> files the leakwatch command's --log LOG writes.
    None when there are none (a run that reported nothing writes no file)."""
    if arg == "-" or os.path.exists(arg):
        if os.path.isdir(arg):
            raise LogError(f"{arg}: is a directory")
        return [arg]
    files = sorted(p for p in glob.glob(glob.escape(arg) + ".*")
                   if re.fullmatch(r"\d+", p[len(arg) + 1:]))
    if files:
        return files
    parent = os.path.dirname(arg) or "."
    if not os.path.isdir(parent):
        raise LogError(f"{arg}: no such file, and no directory {parent}")
    return None


def read_logs(args, me):
    """pid -> Process, in the order pids first appear."""
    processes = {}
    seen = set()
    for arg in args:
        files = log_files(arg)
        if files is None:
            print(f"{me}: {arg}: no such file, nor {arg}.<pid> files: "
                  "nothing reported", file=sys.stderr)
            continue
        for path in files:
            key = path if path == "-" else os.path.realpath(path)
            if key in seen:
                continue
            seen.add(key)
            read_log(path, processes, me)
    return processes


_decode = json.JSONDecoder().raw_decode


def loads(text):
    """json.loads of a stripped line, without its per-call checks."""
    value, end = _decode(text)
    if end != len(text):
        raise ValueError("extra data")
    return value


def known_frames(proc, ev, raw):
    """A live warning's stack: the same in every warning of its site (a
    site is an interned acquire stack), parsed once per process and site."""
    frames = proc.site_frames.get((ev.get("kind"), ev.get("site")))
    return frames if frames is not None else loads(raw)


def known_sites(proc, ev, raw):
    """A sample's sites, which change far less often than its open counts:
    an array seen before is the list it was parsed into then."""
    sites = proc.sites_cache.get(raw)
    if sites is None:
        sites = proc.sites_cache[raw] = loads(raw)
    return sites


# Lines whose big last field is often one seen before: (how the line
# starts, the field, what gives its value).
TAILS = (('{"type":"leak",', "frames", known_frames),
         ('{"type":"sample",', "sites", known_sites))


def parse_event(line, processes):
    """One line as an event (a dict), or None if it is not JSON."""
    for head, field, known in TAILS:
        if not line.startswith(head):
            continue
        key = f',"{field}":['
        i = line.find(key)
        if i > 0 and line.endswith("]}"):
            try:
                ev = loads(line[:i] + "}")
                proc = processes.get(ev.get("pid"))
                value = (known(proc, ev, line[i + len(key) - 1:-1])
                         if proc is not None else None)
            except (ValueError, AttributeError):
                value = None
            if isinstance(value, list):
                ev[field] = value
                return ev
        break
    try:
        return loads(line)
    except ValueError:
        return None


def read_log(path, processes, me):
    log_dir = os.getcwd() if path == "-" else os.path.dirname(
        os.path.abspath(path))
    events = skipped = 0
    try:
        stream = sys.stdin if path == "-" else open(path, encoding="utf-8",
                                                     errors="replace")
        with stream:
            for line in stream:
                line = line.strip()
                if not line:
                    continue
                ev = parse_event(line, processes)
                if (not isinstance(ev, dict) or not isinstance(
                        ev.get("type"), str) or not isinstance(
                            ev.get("pid"), int)):
                    skipped += 1  # the program's own lines, a cut last line
                    continue
                events += 1
                pid = ev["pid"]
                if pid not in processes:
                    processes[pid] = Process(pid, log_dir)
                processes[pid].add(ev)
    except OSError as e:
        raise LogError(f"{path}: {e.strerror}")
    if skipped and not events:
        raise LogError(f"{path}: no leakwatch JSON events in {skipped} lines "
                       "(was it written with LEAKWATCH_FORMAT=json, --json?)")
    if skipped:
        print(f"{me}: {path}: skipped {skipped} lines that are not leakwatch "
              "JSON events", file=sys.stderr)


# --- frames and locations ----------------------------------------------------

# Native modules that are not the user's code: the agent, the client
# libraries, the C and C++ runtimes, interpreters and their extensions.
FOREIGN_MODULE = re.compile(
    r"^(libleakwatch|libpq\.|libmariadb|libmysqlclient|libc\.|libc-|ld-linux|"
    r"ld-\d|libpthread|libdl\.|libm\.|libstdc\+\+|libgcc_s|libpython|"
    r"libperl|libruby|libphp|libpqxx|libnode|"
    r"(python|perl|ruby|php|node)[\d.]*$)")
SYSTEM_MODULE_DIRS = ("/lib/", "/lib64/", "/usr/lib/", "/usr/lib64/",
                      "/usr/libexec/")
# Source files of the toolchain's headers (inlined into the user's binary).
SYSTEM_SOURCE_DIRS = ("/usr/include/", "/usr/lib/gcc/", "/usr/src/")
# The C runtime's start-up code, linked into every program.
STARTUP_FUNCTIONS = {"_start", "__libc_start_main", "__libc_start_call_main"}
# A script frame in the interpreter's or a package's own files.
FOREIGN_SCRIPT = re.compile(
    r"(^<)|(/site-packages/)|(/dist-packages/)|(^/usr/lib/python\d)|"
    r"(^/usr/lib/pypy)|(^/usr/share/perl)|(^/usr/lib/[^/]+/perl)|"
    r"(^/usr/local/share/perl)|(^/usr/lib/ruby/)|(^/usr/share/ruby)|"
    r"(^/usr/lib/[^/]+/ruby/)|(/gems/)|(^/usr/share/php/)|(/vendor/)")


def is_foreign(frame):
    """Whether a frame is outside the user's code."""
    file = frame.get("file", "")
    if "script" in frame:
        return bool(FOREIGN_SCRIPT.search(file))
    if frame.get("function") in STARTUP_FUNCTIONS:
        return True
    module = frame.get("module", "")
    if module:
        if FOREIGN_MODULE.match(os.path.basename(module)):
            return True
        if module.startswith(SYSTEM_MODULE_DIRS):
            return True
    return file.startswith(SYSTEM_SOURCE_DIRS)



def frame_text(frame):
    """`function file:line (module+offset)`, as the text report writes it."""
    parts = [frame.get("function") or "??"]
    if frame.get("file"):
        parts.append(f"{frame['file']}:{frame['line']}" if frame.get("line")
                     else frame["file"])
    if frame.get("module"):
        parts.append(f"({os.path.basename(frame['module'])}+"
                     f"{frame.get('offset', '?')})")
    if frame.get("script"):
        parts.append(f"[{frame['script']}]")
    if frame.get("inlined"):
        parts.append("[inlined]")
    return " ".join(parts)



def duration(ms):
    """As the text report writes it: `850 ms`, `1.9 s`, `2 s`."""
    if not isinstance(ms, (int, float)):
        return "?"
    ms = int(ms)
    if ms < 1000:
        return f"{ms} ms"
    tenths = ms // 100
    if tenths % 10 == 0:
        return f"{tenths // 10} s"
    return f"{tenths // 10}.{tenths % 10} s"


def plural(n, one, many):
    return f"{n} {one if n == 1 else many}"


def identity_text(identity):
    if not isinstance(identity, dict) or not identity:
        return ""
    return " ".join(f"{k}={v}" for k, v in identity.items())


def describe_record(example):
    """The SQL and connection of a group's example record, as sentences."""
    out = []
    if not isinstance(example, dict):
        return out
    family = example.get("family")
    sql = example.get("sql")
    if sql:
        out.append(f"{'Last SQL' if family == 'conn' else 'SQL'}: {sql}")
    ident = identity_text(example.get("identity"))
    if ident:
        out.append(f"{'Connection' if family == 'conn' else 'From connection'}"
                   f": {ident}")
    if example.get("connection_failed"):
        out.append("The connection failed, and its handle was still never "
                   "released")
    if example.get("start_routine"):
        out.append(f"Start routine: {example['start_routine']}")
    return out


def process_text(proc):
    program = os.path.basename(proc.program) if proc.program else None
    return f"Process {proc.pid}" + (f" ({program})" if program else "")
