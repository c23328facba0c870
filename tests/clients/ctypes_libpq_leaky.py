"""libpq through ctypes, leaky: the same script on any CPython 3 (no driver
to install), for the interpreter versions the machine has besides Debian's
(pyenv's 3.10, 3.12, 3.13). An audit helper opens a connection per check
and keeps the connection and its result when the check finds a problem,
"to look at later"; a second helper, for the nightly checks, copied it.

Leaks 2 pg.conn and 2 pg.result, from the lines marked LEAK(kind), which
the report names. Prints the same lines with or without the agent.
"""
import ctypes
import ctypes.util
import sys

pq = ctypes.CDLL(ctypes.util.find_library("pq") or "libpq.so.5")
pq.PQconnectdb.restype = ctypes.c_void_p
pq.PQconnectdb.argtypes = [ctypes.c_char_p]
pq.PQexec.restype = ctypes.c_void_p
pq.PQexec.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
pq.PQgetvalue.restype = ctypes.c_char_p
pq.PQgetvalue.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_int]
pq.PQclear.argtypes = [ctypes.c_void_p]
pq.PQfinish.argtypes = [ctypes.c_void_p]

KEPT = []  # problems found, with their connection and result


def audit(n):
    conn = pq.PQconnectdb(b"")  # LEAK(pg.conn)
    res = pq.PQexec(conn, b"SELECT %d %% 3" % n)  # LEAK(pg.result)
    value = int(pq.PQgetvalue(res, 0, 0))
    if value != 0:
        KEPT.append((conn, res))
        return "problem"
    pq.PQclear(res)
    pq.PQfinish(conn)
    return "ok"


def nightly_audit(n):
    conn = pq.PQconnectdb(b"")  # LEAK(pg.conn)
    res = pq.PQexec(conn, b"SELECT %d %% 3" % n)  # LEAK(pg.result)
    value = int(pq.PQgetvalue(res, 0, 0))
    if value != 0:
        KEPT.append((conn, res))
        return "problem"
    pq.PQclear(res)
    pq.PQfinish(conn)
    return "ok"


def main():
    print("audit 3:", audit(3))
    print("audit 4:", audit(4))
    print("nightly 5:", nightly_audit(5))
    print("nightly 6:", nightly_audit(6))
    print(len(KEPT), "problems kept")
    sys.stdout.flush()
    # Held to the end on purpose: the exit report lists them.


if __name__ == "__main__":
    main()
