"""Opens 20 MySQLdb connections in a loop and keeps them in a list for 2 s,
then exits.

Python closes them when the list goes away (main returns), before the process
exits, so there is nothing in leakwatch's exit report and malloc-level tools
see nothing; leakwatch's live warnings (idle past the threshold) are what
catches this. The native stack of each warning ends in MySQLdb's extension
module (_mysql): the Python-level line is not visible to a native unwinder.
"""
import sys
import time

from mysqldb_common import connect

HOLD_SECONDS = 2.0
COUNT = int(sys.argv[1]) if len(sys.argv) > 1 else 20
# Seconds between two connections: one per request, not a pool filled at once
# (leakwatch takes connections opened together, within its threshold of each
# other, for a pool).
PAUSE = float(sys.argv[2]) if len(sys.argv) > 2 else 0.0


def open_report_connections(count):
    conns = []
    for i in range(count):
        if i > 0:
            time.sleep(PAUSE)
        conn = connect()
        cur = conn.cursor()
        cur.execute("SELECT 1")
        cur.fetchall()
        cur.close()
        conns.append(conn)
    return conns


def main():
    conns = open_report_connections(COUNT)
    time.sleep(HOLD_SECONDS)
    print(f"held {len(conns)} connections")


if __name__ == "__main__":
    main()
