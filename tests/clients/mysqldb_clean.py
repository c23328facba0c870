"""MySQLdb, clean: two connections opened together at start-up serve four
bursts of queries with pauses longer than the agent's threshold between
them; cursors are closed by contextlib.closing, connections at the end.
"""
import contextlib
import time

import MySQLdb

from leakwatch_wait import mysql_settings

POOL_SIZE = 2
BURSTS = 4
PAUSE_S = 0.3


def main():
    conns = [MySQLdb.connect(**mysql_settings()) for _ in range(POOL_SIZE)]
    try:
        total = 0
        for burst in range(BURSTS):
            for i, conn in enumerate(conns):
                with contextlib.closing(conn.cursor()) as cur:
                    cur.execute("SELECT %s + %s", (burst, i))
                    total += cur.fetchone()[0]
                conn.commit()
            time.sleep(PAUSE_S)
        print("total", total)
    finally:
        for conn in conns:
            conn.close()


if __name__ == "__main__":
    main()
