"""psycopg 3, clean: two connections opened together at start-up serve four
bursts of queries with pauses longer than the agent's threshold; every
connection and cursor is closed by its `with` block.
"""
import time

import psycopg

POOL_SIZE = 2
BURSTS = 4
PAUSE_S = 0.3


def main():
    conns = [psycopg.connect("") for _ in range(POOL_SIZE)]
    total = 0
    for burst in range(BURSTS):
        for i, conn in enumerate(conns):
            with conn.transaction(), conn.cursor() as cur:
                cur.execute("SELECT sum(g) FROM generate_series(1, %s) g",
                            (10 * (burst + 1) + i,))
                total += cur.fetchone()[0]
        time.sleep(PAUSE_S)
    for conn in conns:
        conn.close()
    print("total", total)


if __name__ == "__main__":
    main()
