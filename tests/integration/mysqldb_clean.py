"""A clean MySQLdb program: two connections, buffered (mysql_store_result)
and unbuffered (SSCursor: mysql_use_result) cursors, executemany, a
transaction; everything closed. Under leakwatch it must print nothing more.

Result sets, for LEAKWATCH_STATS: the 4 SELECTs below, nothing else (the
CREATE, INSERTs and COMMIT return none).
"""
import contextlib

import MySQLdb.cursors

from mysqldb_common import connect


def main():
    with contextlib.closing(connect()) as conn:
        with contextlib.closing(conn.cursor()) as cur:
            cur.execute("CREATE TEMPORARY TABLE items (id INT, name VARCHAR(16))")
            cur.executemany("INSERT INTO items VALUES (%s, %s)",
                            [(1, "one"), (2, "two"), (3, "three")])
            conn.commit()
            cur.execute("SELECT id, name FROM items ORDER BY id")
            print("buffered", cur.fetchall())
            cur.execute("SELECT COUNT(*) FROM items WHERE id > %s", (1,))
            print("count", cur.fetchone()[0])
        with contextlib.closing(conn.cursor(MySQLdb.cursors.SSCursor)) as cur:
            cur.execute("SELECT seq FROM seq_1_to_100")
            print("unbuffered sum", sum(row[0] for row in cur))
    with contextlib.closing(connect()) as conn:
        with contextlib.closing(conn.cursor()) as cur:
            cur.execute("SELECT 1 + 1")
            print("second connection", cur.fetchone()[0])


if __name__ == "__main__":
    main()
