"""The health probe: would a read, and a write, go through now? (in the write thread)"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from .queries import probe_query
from .schema import builds


def probe_write(conn: Connection) -> None:
    # An UPDATE that matches no row still needs what a real write needs: write permission
    # and the write lock. A read-only or locked sqlite file fails it ("attempt to write a
    # readonly database", "database is locked"), as does a PostgreSQL that only reads (a
    # standby, default_transaction_read_only). Rolled back: nothing is written.
    conn.execute(sa.update(builds).where(sa.false()).values(handle=builds.c.handle))


def probe(engine: Engine) -> tuple[str, BaseException] | None:
    """None if the database reads and writes now; else ("read" or "write", the error)."""
    for stage, statement in (("read", probe_query), ("write", probe_write)):
        try:
            with engine.connect() as conn:
                statement(conn)
                conn.rollback()
        except Exception as e:
            return stage, e
    return None
