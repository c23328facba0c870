"""Connection settings for the MySQLdb test scripts: the MYSQL_TEST_*
variables that scripts/mysql-sandbox exports (as tests/programs/my_common.h
reads them)."""
import os

import MySQLdb


def connect(**kwargs):
    """A MySQLdb connection to the sandbox over TCP."""
    env = os.environ
    args = dict(
        host=env.get("MYSQL_TEST_HOST") or "127.0.0.1",
        port=int(env["MYSQL_TEST_PORT"]),
        user=env.get("MYSQL_TEST_USER") or "leakwatch",
        database=env.get("MYSQL_TEST_DB") or "leakwatch",
    )
    if env.get("MYSQL_TEST_PASSWORD"):
        args["password"] = env["MYSQL_TEST_PASSWORD"]
    args.update(kwargs)
    return MySQLdb.connect(**args)
