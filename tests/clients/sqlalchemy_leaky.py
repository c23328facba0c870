"""SQLAlchemy, leaky: each report job checks a connection out of the engine's
pool in its constructor and gives it back only when the report succeeds. The
jobs stay in a module-level history list, so the connections of the failed
ones are never returned: the pool opens a new one for each next job, and
engine.dispose() at the end closes only the connections checked in.

Usage: sqlalchemy_leaky.py postgresql|mysql
Leaks 2 connections (pg.conn or mysql.conn: the jobs for 3 and 4 rows,
started more than the 1 s threshold apart); their results were fetched and
freed. The job for 2 rows, run last, returns its connection. The job for
4 rows is an export job, which checks its connection out the same way.
The lines marked LEAK(kind) are the ones the report names. Prints the same
lines with or without the agent.
"""
import sys
import time

import sqlalchemy
from sqlalchemy import text

from leakwatch_wait import mysql_settings, wait_for_warnings

HISTORY = []  # every job run, for the status page


def engine_url(dialect):
    if dialect == "postgresql":
        return "postgresql+psycopg2://"  # libpq reads the PG* variables
    s = mysql_settings()
    url = sqlalchemy.engine.URL.create(
        "mysql+mysqldb", username=s["user"], password=s.get("password"),
        host=s["host"], port=s["port"], database=s["database"])
    return url


class ReportJob:
    def __init__(self, engine, rows):
        self.rows = rows
        self.conn = engine.connect()  # LEAK(conn)

    def run(self):
        count = self.conn.execute(
            text("SELECT count(*) FROM (SELECT 1 UNION ALL SELECT 2) AS t"
                 " WHERE :rows < 3"), {"rows": self.rows}).scalar()
        if count == 0:
            raise RuntimeError(f"report for {self.rows} rows is empty")
        self.conn.close()
        return count


class ExportJob(ReportJob):
    def __init__(self, engine, rows):
        self.rows = rows
        self.conn = engine.connect()  # LEAK(conn)


def main():
    dialect = sys.argv[1]
    kind = "pg.conn" if dialect == "postgresql" else "mysql.conn"
    engine = sqlalchemy.create_engine(engine_url(dialect), pool_size=5)
    for rows in (3, 4, 2):
        if rows == 2:
            wait_for_warnings(kind, 2)
        job = (ExportJob if rows == 4 else ReportJob)(engine, rows)
        HISTORY.append(job)
        try:
            print("report", rows, "->", job.run())
        except RuntimeError as e:
            print("failed:", e)
            time.sleep(1.2)
    print("checked out at the end:", engine.pool.checkedout())
    engine.dispose()


if __name__ == "__main__":
    main()
