"""Closes its connections correctly but keeps the closed connection objects
in a list for a while (a service that keeps its closed sessions around, or
just a reference that outlives close()), then drops them.

psycopg2 frees a connection's cancel handle only when the Python object is
deallocated, not at close(): the cancel handle outlives its libpq connection
while the object lives. Nothing here leaks.
"""
import sys
import time

import psycopg2

COUNT = int(sys.argv[1]) if len(sys.argv) > 1 else 3
HOLD_SECONDS = float(sys.argv[2]) if len(sys.argv) > 2 else 1.5


def run_sessions(count):
    closed = []
    for _ in range(count):
        conn = psycopg2.connect("")  # PG* environment variables
        with conn.cursor() as cur:
            cur.execute("SELECT 1")
            cur.fetchall()
        conn.close()
        closed.append(conn)
    return closed


def main():
    closed = run_sessions(COUNT)
    time.sleep(HOLD_SECONDS)
    print(f"kept {sum(1 for c in closed if c.closed)} closed connections")
    del closed


if __name__ == "__main__":
    main()
