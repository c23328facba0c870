"""SQLAlchemy, clean: an engine whose pool is filled with two connections at
start-up, then four bursts of two concurrent units of work with pauses
longer than the agent's threshold between them; each unit of work uses
`with engine.begin()`, and the engine is disposed of at the end.

Usage: sqlalchemy_clean.py postgresql|mysql
"""
import sys
import time

import sqlalchemy
from sqlalchemy import text

from sqlalchemy_leaky import engine_url

BURSTS = 4
PAUSE_S = 0.3


def main():
    engine = sqlalchemy.create_engine(engine_url(sys.argv[1]), pool_size=2)
    total = 0
    for burst in range(BURSTS):
        # Two units of work at once: both pooled connections are used.
        with engine.begin() as a, engine.begin() as b:
            for i, conn in enumerate((a, b)):
                total += conn.execute(
                    text("SELECT :x + :y"),
                    {"x": burst, "y": i}).scalar()
        time.sleep(PAUSE_S)
    engine.dispose()
    print("total", total)


if __name__ == "__main__":
    main()
