"""psycopg2, clean: a small pool of two connections, opened together at
start-up, serving four bursts of queries with pauses longer than the agent's
threshold between them; every connection is closed, every cursor too (the
context managers do it).
"""
import time

import psycopg2

POOL_SIZE = 2
BURSTS = 4
PAUSE_S = 0.3


def main():
    pool = [psycopg2.connect("") for _ in range(POOL_SIZE)]
    try:
        total = 0
        for burst in range(BURSTS):
            for i, conn in enumerate(pool):
                with conn:  # a transaction: commit, or rollback on error
                    with conn.cursor() as cur:
                        cur.execute("SELECT sum(g) FROM generate_series(1, %s) g",
                                    (10 * (burst + 1) + i,))
                        total += cur.fetchone()[0]
            time.sleep(PAUSE_S)
        print("total", total)
    finally:
        for conn in pool:
            conn.close()


if __name__ == "__main__":
    main()
