"""psycopg 3, leaky: an order importer keeps one object per imported order,
and each order opens its own connection, closed only when the import
succeeds. Orders that fail validation stay in the module-level list of
rejected orders, with their connection and their last cursor (and its
result), until the interpreter shuts down.

Refunds are imported the same way, with the same bug.

Leaks 2 pg.conn and 2 pg.result (order 12 and refund 13, imported more than
the 1 s threshold apart), from the lines marked LEAK(kind), which the report
names. Prints the same lines with or without the agent.
"""
import time

import psycopg

from leakwatch_wait import wait_for_warnings

REJECTED = []  # orders that failed, kept for the report at the end


class OrderImport:
    def __init__(self, order_id):
        self.order_id = order_id
        self.conn = psycopg.connect("")  # the PG* variables; LEAK(pg.conn)
        self.cur = self.conn.cursor()

    def run(self):
        self.cur.execute("SELECT %s::int %% 10 AS quantity", (self.order_id,))  # LEAK(pg.result)
        (quantity,) = self.cur.fetchone()
        if quantity > 1:
            raise ValueError(f"order {self.order_id}: quantity {quantity}")
        self.conn.commit()
        self.conn.close()
        return quantity


class RefundImport:
    def __init__(self, order_id):
        self.order_id = order_id
        self.conn = psycopg.connect("")  # LEAK(pg.conn)
        self.cur = self.conn.cursor()

    def run(self):
        self.cur.execute("SELECT %s::int %% 10 AS quantity", (self.order_id,))  # LEAK(pg.result)
        (quantity,) = self.cur.fetchone()
        if quantity > 1:
            raise ValueError(f"refund {self.order_id}: quantity {quantity}")
        self.conn.commit()
        self.conn.close()
        return quantity


def main():
    for order_id in (11, 12, 13):
        job = (RefundImport if order_id == 13 else OrderImport)(order_id)
        try:
            print("order", order_id, "quantity", job.run())
        except ValueError as e:
            print("rejected:", e)
            REJECTED.append(job)
        time.sleep(1.2)
    wait_for_warnings("pg.conn", 2)
    wait_for_warnings("pg.result", 2)
    print(len(REJECTED), "orders rejected")


if __name__ == "__main__":
    main()
