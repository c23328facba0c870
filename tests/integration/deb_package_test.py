"""The Debian package: `cpack -G DEB` on the build tree, `dpkg -i`, the
installed command against the sandbox PostgreSQL that scripts/test.sh starts
(PG* variables), `dpkg --purge`.

    deb_package_test.py SOURCE_DIR BUILD_DIR CPACK

Needs root (dpkg) and the build tree built (scripts/test.sh builds it first).
The package is purged again whatever happens after `dpkg -i` (also on
SIGTERM, SIGINT, SIGHUP). A leakwatch package that is already installed, or a
file of the package already on disk, makes the test fail and is left alone.
Runs of this test on one machine (several ctest runs, several build trees) take
turns through a lock file. Exits non-zero on a failed check, with what was seen.
"""
import fcntl
import glob
import gzip
import os
import re
import signal
import subprocess
import sys
import tempfile
import time

SRC, BUILD, CPACK = sys.argv[1], sys.argv[2], sys.argv[3]
CMAKE = os.path.join(os.path.dirname(CPACK), "cmake")
PACKAGE = "leakwatch"
PREFIX = "/usr"
PROGRAMS = os.path.join(BUILD, "tests", "programs")
LOCK_FILE = "/run/lock/leakwatch-deb-package-test.lock"
LOCK_WAIT_S = 240
LOCK = None  # the open lock file


class Failed(Exception):
    pass


def check(cond, what, context=""):
    if not cond:
        raise Failed(f"{what}\n{context}".rstrip())


def run(argv, timeout=120, env=None):
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                          env=env)


def clean_env():
    return {k: v for k, v in os.environ.items()
            if not k.startswith("LEAKWATCH_") and k not in ("LD_PRELOAD",
                                                            "DESTDIR")}


def dpkg(*args, timeout=120):
    """dpkg ARGS, retried while another dpkg or apt holds dpkg's lock."""
    deadline = time.monotonic() + timeout
    while True:
        r = run(["dpkg", *args], timeout=timeout)
        if r.returncode == 0 or "lock" not in r.stderr or \
                time.monotonic() > deadline:
            return r
        time.sleep(0.5)


def status():
    """dpkg's status of the package ("" if dpkg has no record of it)."""
    r = run(["dpkg-query", "-W", "-f=${db:Status-Abbrev}|${Version}",
             PACKAGE])
    return r.stdout.strip() if r.returncode == 0 else ""


def not_installed(st):
    # "un": known (a purge can leave the record), not installed.
    return st == "" or st.startswith("un")


def take_lock():
    """Holds an exclusive lock on LOCK_FILE for the life of this process."""
    os.makedirs(os.path.dirname(LOCK_FILE), exist_ok=True)
    f = open(LOCK_FILE, "w")
    deadline = time.monotonic() + LOCK_WAIT_S
    while True:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return f
        except BlockingIOError:
            check(time.monotonic() < deadline,
                  f"another run of this test held {LOCK_FILE} for "
                  f"{LOCK_WAIT_S} s")
            time.sleep(0.2)


def script_version():
    with open(os.path.join(SRC, "scripts", "leakwatch")) as f:
        m = re.search(r"^readonly VERSION=(\S+)$", f.read(), re.M)
    check(m, "a VERSION line in scripts/leakwatch")
    return m.group(1)


def staged_files(tmp):
    """What `cmake --install` puts under a prefix, as paths under PREFIX."""
    stage = os.path.join(tmp, "stage")
    r = run([CMAKE, "--install", BUILD, "--prefix", stage], env=clean_env())
    check(r.returncode == 0, "cmake --install into a staging prefix",
          r.stdout + r.stderr)
    files = set()
    for root, _, names in os.walk(stage):
        for name in names:
            rel = os.path.relpath(os.path.join(root, name), stage)
            files.add(os.path.join(PREFIX, rel))
    return files


def build_package(tmp):
    out = os.path.join(tmp, "out")
    r = run([CPACK, "--config", os.path.join(BUILD, "CPackConfig.cmake"),
             "-G", "DEB", "-B", out], timeout=300, env=clean_env())
    check(r.returncode == 0, "cpack -G DEB", r.stdout + r.stderr)
    debs = glob.glob(os.path.join(out, "*.deb"))
    check(len(debs) == 1, "cpack makes one .deb", "\n".join(debs) + r.stdout)
    return debs[0]


def check_control(deb, version, arch):
    r = run(["dpkg-deb", "-I", deb])
    check(r.returncode == 0, "dpkg-deb -I", r.stderr)
    info = r.stdout
    fields = {}
    for name in ("Package", "Version", "Architecture", "Maintainer",
                 "Depends", "Section", "Priority", "Installed-Size",
                 "Description"):
        f = run(["dpkg-deb", "-f", deb, name])
        fields[name] = f.stdout.strip()
        check(fields[name], f"control field {name}", info)
    check(os.path.basename(deb) == f"{PACKAGE}_{version}_{arch}.deb",
          "the file name", deb)
    check(fields["Package"] == PACKAGE, "Package", info)
    check(fields["Version"] == version, f"Version {version}", info)
    check(fields["Architecture"] == arch, f"Architecture {arch}", info)
    check(re.fullmatch(r".+ <[^@ ]+@[^> ]+>", fields["Maintainer"]),
          "Maintainer: a name and an address", info)
    lines = fields["Description"].splitlines()
    check(len(lines) >= 2 and all(l.startswith(" ") for l in lines[1:]),
          "Description: a summary and an indented long description", info)
    # dpkg-shlibdeps' part (the ELF files' libraries, with versions) and the
    # libraries the agent loads with dlopen.
    depends = {}
    for item in fields["Depends"].split(","):
        m = re.fullmatch(r"\s*([a-z0-9.+-]+)(?:\s*\((.*)\))?\s*", item)
        check(m, f"a Depends item: {item!r}", info)
        depends[m.group(1)] = m.group(2) or ""
    check(re.fullmatch(r">= [0-9.]+", depends.get("libc6", "")),
          "Depends: libc6 (>= VERSION), from dpkg-shlibdeps", info)
    for name in ("libunwind8", "libdw1"):
        check(name in depends, f"Depends: {name} (loaded with dlopen)", info)
    return depends


def check_contents(deb, expected):
    r = run(["dpkg-deb", "-c", deb])
    check(r.returncode == 0, "dpkg-deb -c", r.stderr)
    files = {}
    for line in r.stdout.splitlines():
        perms, owner, _size, _date, _time, path = line.split(None, 5)
        path = path.split(" -> ")[0]
        check(owner == "root/root", f"owned by root: {path}", line)
        if not perms.startswith("d"):
            files[path[1:]] = perms  # ./usr/bin/x -> /usr/bin/x
    check(set(files) == expected,
          "the package holds exactly what cmake --install installs",
          f"only in the package: {sorted(set(files) - expected)}\n"
          f"only installed: {sorted(expected - set(files))}")
    for path in ("/usr/bin/leakwatch", "/usr/lib/libleakwatch.so",
                 "/usr/lib/leakwatch/leakwatch-attach",
                 "/usr/include/leakwatch.h",
                 "/usr/share/man/man1/leakwatch.1.gz"):
        check(path in files, f"{path} in the package", r.stdout)
    for path in ("/usr/bin/leakwatch", "/usr/lib/leakwatch/leakwatch-attach"):
        check(files[path] == "-rwxr-xr-x", f"{path} executable", r.stdout)
    for path in ("/usr/include/leakwatch.h",
                 "/usr/share/man/man1/leakwatch.1.gz"):
        check(files[path] == "-rw-r--r--", f"{path} mode 644", r.stdout)
    return set(files)


def check_man_page(version):
    path = "/usr/share/man/man1/leakwatch.1.gz"
    with open(path, "rb") as f:
        raw = f.read()
    # gzip -n: no file name (FLG.FNAME, 0x08) and no time stamp.
    check(raw[:2] == b"\x1f\x8b" and not raw[3] & 0x08 and raw[4:8] == b"\0" * 4,
          f"{path}: gzip without a name or a time stamp", raw[:10].hex())
    with open(os.path.join(SRC, "docs", "leakwatch.1"), "rb") as f:
        check(gzip.decompress(raw) == f.read(), f"{path} is docs/leakwatch.1")
    check(re.search(rf'^\.TH LEAKWATCH 1 \S+ "leakwatch {re.escape(version)}"',
                    gzip.decompress(raw).decode(), re.M),
          f"the man page's .TH names version {version}")
    r = run(["man", "-w", "leakwatch"])
    check(r.returncode == 0 and r.stdout.strip() == path,
          "man -w leakwatch finds the installed page", r.stdout + r.stderr)
    r = run(["man", "--warnings", "-P", "cat", "leakwatch"],
            env={**clean_env(), "MANWIDTH": "80"})
    check(r.returncode == 0 and r.stderr == "" and
          re.search(r"leakwatch\s+\S\s+find\s+database\s+client", r.stdout)
          and "attach PID" in r.stdout,
          "man leakwatch renders without warnings", r.stdout + r.stderr)


def check_installed(version, packaged):
    st = status()
    check(st.startswith("ii"), "dpkg: installed", st)
    r = run(["dpkg", "-L", PACKAGE])
    check(r.returncode == 0, "dpkg -L", r.stderr)
    listed = {p for p in r.stdout.splitlines() if p and not os.path.isdir(p)}
    check(listed == packaged, "dpkg -L lists the package's files",
          f"listed: {sorted(listed)}\npackaged: {sorted(packaged)}")
    for path in packaged:
        check(os.path.isfile(path), f"{path} installed")

    r = run(["/usr/bin/leakwatch", "--help"])
    check(r.returncode == 0 and r.stdout.startswith("usage: leakwatch"),
          "leakwatch --help", r.stdout + r.stderr)
    r = run(["/usr/bin/leakwatch", "--version"])
    check(r.returncode == 0 and r.stdout ==
          f"leakwatch {version} (library: /usr/lib/libleakwatch.so)\n",
          "leakwatch --version: the package's version, the installed library",
          r.stdout + r.stderr)
    check_man_page(version)

    env = clean_env()
    # The program runs with the installed agent, not the build tree's.
    r = run(["/usr/bin/leakwatch", "--", "/bin/cat", "/proc/self/maps"],
            env=env)
    check(r.returncode == 0 and " /usr/lib/libleakwatch.so\n" in r.stdout and
          BUILD not in r.stdout, "the installed agent is what is preloaded",
          r.stdout + r.stderr)

    check(env.get("PGHOST") and env.get("PGPORT"),
          "no PostgreSQL server configured (PGHOST/PGPORT unset): run the "
          "tests with scripts/test.sh, which starts one")
    # pg_conn_leak 5: requests 1 and 3 return early and never finish their
    # connection.
    r = run(["/usr/bin/leakwatch", "--exitcode", "23", "--",
             os.path.join(PROGRAMS, "pg_conn_leak"), "5"], env=env)
    report = r.stdout + r.stderr
    check(r.returncode == 23, "exit status 23 (--exitcode) for the leak",
          report)
    check(r.stdout == "found 3 of 5\n", "the program's own output", report)
    check(re.search(r"leakwatch\[\d+\]: exit report for .*: 2 handles still "
                    r"held", r.stderr), "the exit report: 2 handles", report)
    check(re.search(r"leakwatch\[\d+\]: 2 pg\.conn still held at exit from "
                    r"site \d+", r.stderr), "2 pg.conn from one site", report)
    check("handle_lookup_request" in r.stderr,
          "the acquire stack names handle_lookup_request", report)
    check(re.search(r"SUMMARY: 2 handles still held at exit: 2 pg\.conn",
                    r.stderr), "the summary", report)

    # The attach commands find leakwatch-attach in /usr/lib/leakwatch.
    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        r = run(["/usr/bin/leakwatch", "report", str(sleeper.pid)], env=env)
    finally:
        sleeper.kill()
        sleeper.wait()
    check(r.returncode == 1 and "was never attached" in r.stderr,
          "leakwatch report runs the installed leakwatch-attach",
          r.stdout + r.stderr)


def purge(packaged):
    """Removes the package; returns what is wrong afterwards ([] if nothing)."""
    problems = []
    r = dpkg("--purge", PACKAGE)
    if r.returncode != 0:
        problems.append(f"dpkg --purge failed:\n{r.stdout}{r.stderr}")
    st = status()
    if not not_installed(st):
        problems.append(f"dpkg still has {PACKAGE}: {st}")
    r = run(["dpkg", "-s", PACKAGE])
    if r.returncode == 0:
        problems.append(f"dpkg -s still shows the package:\n{r.stdout}")
    left = sorted(p for p in packaged | {"/usr/lib/leakwatch"}
                  if os.path.lexists(p))
    if left:
        problems.append(f"left on disk after the purge: {left}")
    if os.path.exists(f"/var/lib/dpkg/info/{PACKAGE}.list"):
        problems.append(f"/var/lib/dpkg/info/{PACKAGE}.list left")
    return problems


STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


def stopped(number, _frame):
    raise Failed(f"stopped by signal {number}")


def main():
    for sig in STOP_SIGNALS:
        signal.signal(sig, stopped)
    check(os.geteuid() == 0, "dpkg -i needs root")
    global LOCK
    LOCK = take_lock()  # held until the process exits
    st = status()
    check(not_installed(st),
          f"a {PACKAGE} package is already on this machine (dpkg: {st}); this "
          f"test installs and purges its own and leaves someone else's alone: "
          f"remove it (dpkg --purge {PACKAGE}) and run the test again")
    version = script_version()
    arch = run(["dpkg", "--print-architecture"]).stdout.strip()  # amd64

    with tempfile.TemporaryDirectory() as tmp:
        expected = staged_files(tmp)
        deb = build_package(tmp)
        check_control(deb, version, arch)
        packaged = check_contents(deb, expected)
        on_disk = sorted(p for p in packaged if os.path.lexists(p))
        check(not on_disk,
              "files of the package are already on this machine (another "
              "install, e.g. cmake --install --prefix /usr); dpkg would "
              "overwrite them and the purge delete them: remove them first",
              "\n".join(on_disk))
        problems = []
        try:
            r = dpkg("-i", deb)
            check(r.returncode == 0, "dpkg -i", r.stdout + r.stderr)
            check_installed(version, packaged)
        except Exception as e:  # a failed check, a timeout, a signal
            problems.append(str(e) if isinstance(e, Failed) else repr(e))
        finally:
            for sig in STOP_SIGNALS:  # the purge runs to its end
                signal.signal(sig, signal.SIG_IGN)
            problems += purge(packaged)
        if problems:
            raise Failed("\n".join(problems))


if __name__ == "__main__":
    try:
        main()
    except Failed as e:
        print(f"FAILED: {e}", file=sys.stderr)
        sys.exit(1)
    print("deb package: built, installed, used, purged")
