"""A SQLAlchemy service: one engine's QueuePool (4 connections, no overflow)
shared by a thread pool of 4 workers, serving bursts of 20 requests with
quiet gaps between them. With LEAK=1 an export handler also checks a raw
DBAPI connection out of a second engine (the reporting database's, as apps
that have one do) once per burst and keeps it in a module-level list, never
returned: each checkout opens a new connection.

Usage: sqlalchemy_pool.py DRIVER BURSTS GAP_MS LEAK
  DRIVER  psycopg2 (libpq; the PG* environment, scripts/pg-sandbox) or
          mysqldb (libmariadb; the MYSQL_TEST_* environment,
          scripts/mysql-sandbox, through mysqldb_common)
  BURSTS  bursts of 20 requests (at most 14 with LEAK=1: the export
          engine's pool_size + max_overflow)
  GAP_MS  sleep between two bursts
  LEAK    0: the engine is disposed at the end (every connection closed);
          1: the export handler leaks a connection per burst, and nothing is
          disposed (the leaked list and both engines live until the
          interpreter shuts down)

A request is `with engine.connect() as c: c.execute(text("SELECT 1"))`: the
pool's connection goes back to the pool when the block ends. Prints
"burst N" after each burst and "done" at the end. Run under the agent by
tests/integration/pool_reach_test.cc.
"""
import concurrent.futures
import sys
import time

from sqlalchemy import create_engine, text
from sqlalchemy.pool import QueuePool

WORKERS = 4
REQUESTS_PER_BURST = 20
EXPORT_POOL_SIZE = 4
EXPORT_MAX_OVERFLOW = 10

# The export handler's connections: checked out, never returned.
leaked = []


def make_engine(driver, pool_size, max_overflow):
    """An engine for DRIVER with a QueuePool of that size."""
    if driver == "psycopg2":
        # An empty URL: libpq takes everything from the PG* environment.
        return create_engine("postgresql+psycopg2://", poolclass=QueuePool,
                             pool_size=pool_size, max_overflow=max_overflow)
    from mysqldb_common import connect
    return create_engine("mysql+mysqldb://", creator=connect,
                         poolclass=QueuePool, pool_size=pool_size,
                         max_overflow=max_overflow)


def handle_request(engine):
    with engine.connect() as conn:
        conn.execute(text("SELECT 1")).scalar_one()


def export_handler(export_engine):
    """Takes a raw DBAPI connection for an "export" and forgets it."""
    raw = export_engine.raw_connection()
    cursor = raw.cursor()
    cursor.execute("SELECT 2")
    cursor.fetchall()
    cursor.close()
    leaked.append(raw)


def main():
    if len(sys.argv) != 5 or sys.argv[1] not in ("psycopg2", "mysqldb"):
        print(__doc__, file=sys.stderr)
        return 64
    driver = sys.argv[1]
    bursts, gap_ms, leak = int(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
    if leak not in ("0", "1") or (
            leak == "1" and bursts > EXPORT_POOL_SIZE + EXPORT_MAX_OVERFLOW):
        print(__doc__, file=sys.stderr)
        return 64
    engine = make_engine(driver, pool_size=WORKERS, max_overflow=0)
    export_engine = None
    if leak == "1":
        export_engine = make_engine(driver, EXPORT_POOL_SIZE,
                                    EXPORT_MAX_OVERFLOW)
    with concurrent.futures.ThreadPoolExecutor(WORKERS) as workers:
        for burst in range(1, bursts + 1):
            if burst > 1:
                time.sleep(gap_ms / 1000)
            requests = [workers.submit(handle_request, engine)
                        for _ in range(REQUESTS_PER_BURST)]
            for request in requests:
                request.result()
            if export_engine is not None:
                export_handler(export_engine)
            print(f"burst {burst}", flush=True)
    if export_engine is None:
        engine.dispose()
    print("done", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
