"""Python threads and asyncio tasks, leaky, for as long as asked: 32 worker
threads (psycopg2, which releases the GIL around every libpq call) and 8
asyncio tasks (psycopg 3's AsyncConnection) run queries; now and then one
of them keeps a cursor, and with it the cursor's result, in a list "for
the audit" (never read). Four code paths do that, two in the threads and two
in the tasks, on the lines marked LEAK(kind). Each thread and each task
keeps its connection open after its work, in a list of connections "to
reuse" that nothing reuses.

Usage: python_threads_leaky.py SECONDS
Prints, at the end, how many handles each marked line kept:
"kept <line> <count>", one line per marked line, then "done"; the exit
report has the same counts per line (as leaks or as reachable).
"""
import asyncio
import collections
import sys
import threading
import time

import psycopg
import psycopg2

THREADS = 32
TASKS = 8
KEPT = []  # the audit list
CONNS = []  # connections "to reuse"
COUNTS = collections.Counter()
LOCK = threading.Lock()


def keep(cur, line):
    with LOCK:
        KEPT.append(cur)
        COUNTS[line] += 1


def keep_conn(conn, line):
    with LOCK:
        CONNS.append(conn)
        COUNTS[line] += 1


def line_of(fn):
    """The line of the marked statement in `fn` (its last line but one)."""
    return fn.__code__.co_firstlineno + 2


def price_check(conn, n):
    cur = conn.cursor()
    cur.execute("SELECT %s * 2", (n,))  # LEAK(pg.result)
    keep(cur, line_of(price_check))


def stock_check(conn, n):
    cur = conn.cursor()
    cur.execute("SELECT %s + 1", (n,))  # LEAK(pg.result)
    keep(cur, line_of(stock_check))


def worker(index, deadline):
    conn = psycopg2.connect("")  # LEAK(pg.conn)
    keep_conn(conn, worker.__code__.co_firstlineno + 1)
    n = 0
    while time.monotonic() < deadline:
        n += 1
        with conn.cursor() as cur:  # the clean path
            cur.execute("SELECT %s", (n,))
            cur.fetchone()
        if n % 10 == 0:
            (price_check if index % 2 else stock_check)(conn, n)
        time.sleep(0.005)


async def order_task(conn, n):
    cur = conn.cursor()
    await cur.execute("SELECT %s::int * 3", (n,))  # LEAK(pg.result)
    keep(cur, line_of(order_task))


async def refund_task(conn, n):
    cur = conn.cursor()
    await cur.execute("SELECT %s::int - 3", (n,))  # LEAK(pg.result)
    keep(cur, line_of(refund_task))


async def task(index, deadline):
    conn = await psycopg.AsyncConnection.connect("")  # LEAK(pg.conn)
    keep_conn(conn, task.__code__.co_firstlineno + 1)
    n = 0
    while time.monotonic() < deadline:
        n += 1
        async with conn.cursor() as cur:  # the clean path
            await cur.execute("SELECT %s::int", (n,))
            await cur.fetchone()
        if n % 10 == 0:
            await (order_task if index % 2 else refund_task)(conn, n)
        await asyncio.sleep(0.005)


async def tasks(deadline):
    await asyncio.gather(*(task(i, deadline) for i in range(TASKS)))


def main():
    seconds = float(sys.argv[1])
    deadline = time.monotonic() + seconds
    threads = [threading.Thread(target=worker, args=(i, deadline))
               for i in range(THREADS)]
    for t in threads:
        t.start()
    asyncio.run(tasks(deadline))
    for t in threads:
        t.join()
    for line, count in sorted(COUNTS.items()):
        print("kept", line, count)
    print("done")


if __name__ == "__main__":
    main()
