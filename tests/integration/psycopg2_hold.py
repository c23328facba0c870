"""Keeps 20 connections open in a list for 2 s, then exits.

Python closes them at shutdown, so malloc-level tools see nothing; leakwatch's
live warnings (idle past the threshold) are what catches this. Python loads
libpq privately (psycopg2's extension module, RTLD_LOCAL).
"""
import sys
import time

import psycopg2

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
        conn = psycopg2.connect("")  # PG* environment variables
        cur = conn.cursor()
        cur.execute("SELECT 1")
        cur.fetchall()
        conn.commit()
        conns.append(conn)
    return conns


def main():
    conns = open_report_connections(COUNT)
    time.sleep(HOLD_SECONDS)
    print(f"held {len(conns)} connections")


if __name__ == "__main__":
    main()
