"""A Python service on psycopg2 or MySQLdb (both load their client library
privately, RTLD_LOCAL) that leakwatch attaches to while it runs.

    attach_client.py pg|mysql|none

Imports its driver and opens one connection (before any attach; `none`:
no driver, no client library loaded), then reads commands from stdin, one
per line, and answers "ok COMMAND" when done:
  plugin PATH  loads the C module PATH (ctypes, RTLD_LOCAL) and runs its
               hostile_pgplugin_run(1): a connection, two queries, one
               result kept (tests/programs/hostile_pgplugin.c)
  work N     N requests, each: connect, one query, fetch, close
  leak N S   N requests, S seconds apart, that keep their connection (in a
             list) and return: a growing site, not a pool filled at once
  use        one query on the connection opened at start
  quit       exit 0
"""
import ctypes
import os
import sys
import time

DRIVER = sys.argv[1]
if DRIVER == "none":
    def connect():
        return None
elif DRIVER == "pg":
    import psycopg2

    def connect():
        return psycopg2.connect("")  # PG* environment variables
else:
    sys.path.insert(0, __file__.rsplit("/", 1)[0])
    import mysqldb_common

    def connect():
        return mysqldb_common.connect()

kept = []


def one_request():
    conn = connect()
    cur = conn.cursor()
    cur.execute("SELECT 1")
    cur.fetchall()
    cur.close()
    conn.close()


def leaky_request():
    conn = connect()  # LEAK(conn)
    cur = conn.cursor()
    cur.execute("SELECT 2")
    cur.fetchall()
    cur.close()
    kept.append(conn)


def main():
    first = connect()
    print("ready", flush=True)
    for line in sys.stdin:
        words = line.split()
        if not words:
            continue
        if words[0] == "work":
            for _ in range(int(words[1])):
                one_request()
        elif words[0] == "leak":
            for i in range(int(words[1])):
                if i > 0:
                    time.sleep(float(words[2]))
                leaky_request()
        elif words[0] == "plugin":
            module = ctypes.CDLL(words[1], mode=os.RTLD_NOW | os.RTLD_LOCAL)
            if module.hostile_pgplugin_run(1) != 0:  # LEAK(result)
                sys.exit("the plugin failed")
        elif words[0] == "use":
            cur = first.cursor()
            cur.execute("SELECT 3")
            cur.fetchall()
            cur.close()
        elif words[0] == "quit":
            break
        print("ok " + words[0], flush=True)
    if first is not None:
        first.close()
    for conn in kept:
        conn.close()


main()
