"""psycopg2, leaky: a lookup opens a connection per request and closes it
only on the success path. A request that finds nothing raises before the
close; the script keeps the exception in a module-level list for its error
summary, and the exception's traceback keeps the function's frame, its
connection and its cursor (with the cursor's result) alive until the
interpreter shuts down.

The order lookup, written after the user lookup, copied its bug.

Leaks 2 pg.conn and 2 pg.result (one per failed request, opened more than the
1 s threshold apart), from two places: the lines marked LEAK(kind), which the
report names. Prints the same lines with or without the agent.
"""
import time

import psycopg2

from leakwatch_wait import wait_for_warnings


def lookup_user(user_id):
    conn = psycopg2.connect("")  # the PG* variables; LEAK(pg.conn)
    cur = conn.cursor()
    cur.execute("SELECT name FROM (VALUES (1, 'ann')) AS u(id, name)"  # LEAK(pg.result)
                " WHERE id = %s", (user_id,))
    row = cur.fetchone()
    if row is None:
        raise LookupError(f"no user {user_id}")
    conn.close()
    return row[0]


def lookup_order(order_id):
    conn = psycopg2.connect("")  # LEAK(pg.conn)
    cur = conn.cursor()
    cur.execute("SELECT total FROM (VALUES (1, 20)) AS o(id, total)"  # LEAK(pg.result)
                " WHERE id = %s", (order_id,))
    row = cur.fetchone()
    if row is None:
        raise LookupError(f"no order {order_id}")
    conn.close()
    return row[0]


ERRORS = []  # every failed request's exception, for the summary


def main():
    for what, key in (("user", 1), ("user", 7), ("order", 8)):
        lookup = lookup_user if what == "user" else lookup_order
        try:
            print(what, key, "is", lookup(key))
        except LookupError as e:
            ERRORS.append(e)  # keeps e.__traceback__, and with it the frame
        time.sleep(1.2)
    wait_for_warnings("pg.conn", 2)
    wait_for_warnings("pg.result", 2)
    print("errors:", ", ".join(str(e) for e in ERRORS))


if __name__ == "__main__":
    main()
