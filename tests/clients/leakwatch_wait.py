"""What the leaky Python scripts share: waiting until leakwatch has reported
what they leaked, and the MariaDB settings of the test sandbox.

A leaky script keeps its leaked handles until the agent's log (the file named
by LEAKWATCH_LOG) has a warning line for each of them, so the live warnings
happen however loaded the machine is; without LEAKWATCH_LOG (a run without
the agent) it does not wait.
"""
import os
import sys
import time


def wait_for_warnings(kind, count, deadline_s=30.0):
    """Waits until the log has `count` live warnings about `kind` handles
    ("pg.conn 0x... idle 1 s (threshold 1 s ...", or in JSON
    {"type":"leak",...,"kind":"pg.conn",...}); exits 3 after the
    deadline."""
    log = os.environ.get("LEAKWATCH_LOG")
    if not log:
        return
    needle = kind + " 0x"
    json_kind = '"kind":"%s"' % kind  # LEAKWATCH_FORMAT=json
    end = time.monotonic() + deadline_s
    while True:
        try:
            with open(log, encoding="utf-8", errors="replace") as f:
                seen = sum(1 for line in f
                           if (needle in line and "(threshold " in line) or
                           (line.startswith('{"type":"leak"') and
                            json_kind in line))
        except FileNotFoundError:
            seen = 0
        if seen >= count:
            return
        if time.monotonic() > end:
            print(f"the log never had {count} warnings about {kind}",
                  file=sys.stderr)
            sys.exit(3)
        time.sleep(0.02)


def mysql_settings():
    """The MYSQL_TEST_* variables scripts/mysql-sandbox exports, as keyword
    arguments for MySQLdb.connect."""
    env = os.environ
    args = dict(host=env.get("MYSQL_TEST_HOST") or "127.0.0.1",
                port=int(env["MYSQL_TEST_PORT"]),
                user=env.get("MYSQL_TEST_USER") or "leakwatch",
                database=env.get("MYSQL_TEST_DB") or "leakwatch")
    if env.get("MYSQL_TEST_PASSWORD"):
        args["password"] = env["MYSQL_TEST_PASSWORD"]
    return args
