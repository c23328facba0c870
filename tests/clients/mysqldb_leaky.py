"""MySQLdb, leaky: a helper opens a connection per query and hands back the
cursor; the caller memoizes the cursor (not its rows) in a module-level
cache. Each cached cursor keeps its connection open until the interpreter
shuts down (MySQLdb frees the stored result itself once it has read the rows
into the cursor).

Stock levels are cached the same way.

Leaks 2 mysql.conn (two cache misses, more than the 1 s threshold apart), from
the lines marked LEAK(kind), which the report names. Prints the same lines
with or without the agent.
"""
import time

import MySQLdb

from leakwatch_wait import mysql_settings, wait_for_warnings

CACHE = {}


def query(sql, args):
    conn = MySQLdb.connect(**mysql_settings())  # LEAK(mysql.conn)
    cur = conn.cursor()
    cur.execute(sql, args)
    return cur


def stock_query(sql, args):
    conn = MySQLdb.connect(**mysql_settings())  # LEAK(mysql.conn)
    cur = conn.cursor()
    cur.execute(sql, args)
    return cur


def price_of(item):
    if item not in CACHE:
        CACHE[item] = query("SELECT %s * 3", (item,))
    CACHE[item].scroll(0, mode="absolute")
    return CACHE[item].fetchone()[0]


def stock_of(item):
    if ("stock", item) not in CACHE:
        CACHE[("stock", item)] = stock_query("SELECT %s + 100", (item,))
    CACHE[("stock", item)].scroll(0, mode="absolute")
    return CACHE[("stock", item)].fetchone()[0]


def main():
    for item in (5, 5):
        print("price of", item, "is", price_of(item))
        time.sleep(0.6)
    for item in (6, 6):
        print("stock of", item, "is", stock_of(item))
        time.sleep(0.6)
    wait_for_warnings("mysql.conn", 2)
    print(len(CACHE), "cursors cached")


if __name__ == "__main__":
    main()
