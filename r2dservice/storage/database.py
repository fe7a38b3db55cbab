"""URLs, engines and migrations: everything the store does once, at start."""

from __future__ import annotations

import os
import shutil
import sqlite3
import time

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.pool import NullPool, StaticPool

from .errors import StoreError

MIGRATIONS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "migrations")
MIGRATION_LOCK = 7238523118  # a pg_advisory_lock key: "r2dservice migrates"


def normalize_url(url: str) -> sa.URL:
    """A plain postgresql:// URL means psycopg 3, the driver r2dservice installs."""
    try:
        parsed = make_url(url)
    except sa_exc.ArgumentError as e:
        raise StoreError(f"invalid database URL: {e}") from None
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


def sqlite_path(url: sa.URL) -> str | None:
    """The file of a sqlite URL; None for other databases and in-memory sqlite."""
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        return None
    return url.database


def make_engine(url: sa.URL, timeout: float) -> Engine:
    if url.get_backend_name() == "sqlite":
        if sqlite_path(url) is None:
            # one shared in-memory database for every thread
            return sa.create_engine(
                url, poolclass=StaticPool, connect_args={"check_same_thread": False}
            )
        # NullPool: no idle connection holds the file open between operations, so another
        # process (an operator's sqlite3 shell, a backup) can take a lock while the store idles
        engine = sa.create_engine(url, poolclass=NullPool, connect_args={"timeout": timeout})
        sa.event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    connect_args = (
        {"connect_timeout": max(1, int(timeout))} if url.get_backend_name() == "postgresql" else {}
    )
    # pre_ping: a server restart leaves dead connections in the pool; find them before use
    return sa.create_engine(url, pool_pre_ping=True, connect_args=connect_args)


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def alembic_config(url: str | sa.URL, connection: Connection | None = None):
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", MIGRATIONS)
    cfg.set_main_option("sqlalchemy.url", str(url).replace("%", "%%"))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def backup_sqlite(path: str) -> str:
    """Copy a sqlite file aside before a migration (as JupyterHub does); returns the copy's path.

    sqlite's backup API rather than a file copy: it includes what is still in the WAL file.
    """
    stamp = time.strftime("%Y-%m-%d-%H%M%S")
    backup = f"{path}.{stamp}"
    n = 1
    while os.path.exists(backup):
        backup, n = f"{path}.{stamp}.{n}", n + 1
    src, dst = sqlite3.connect(path), sqlite3.connect(backup)
    try:
        src.backup(dst)
    finally:
        src.close()
        dst.close()
    shutil.copymode(path, backup)
    return backup


def migrate(engine: Engine, log) -> None:
    """Bring the database to this code's head revision (or refuse a newer one)."""
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(alembic_config(engine.url))
    with engine.connect() as conn:
        postgres = conn.dialect.name == "postgresql"
        if postgres:
            # replicas starting together: one migrates, the others wait and then find it done
            conn.execute(sa.text(f"SELECT pg_advisory_lock({MIGRATION_LOCK})"))
            conn.commit()
        try:
            _migrate(conn, script, log)
        finally:
            if postgres:
                conn.rollback()
                conn.execute(sa.text(f"SELECT pg_advisory_unlock({MIGRATION_LOCK})"))
                conn.commit()


def _migrate(conn: Connection, script, log) -> None:
    from alembic import command
    from alembic.runtime.migration import MigrationContext

    head = script.get_current_head()
    current = MigrationContext.configure(conn).get_current_revision()
    if current == head:
        return
    if current is not None and current not in {s.revision for s in script.walk_revisions()}:
        raise StoreError(
            f"the build records database is at revision {current!r}, which this version of "
            f"r2dservice does not know (it knows up to {head!r}): it was migrated by a newer "
            "r2dservice. Run that version, or restore the backup made before the migration."
        )
    path = sqlite_path(conn.engine.url)
    existing = path and _has_tables(conn)
    conn.commit()  # no transaction may hold the file while it is copied
    if existing:
        log.info("Backing up %s to %s before migrating it", path, backup_sqlite(path))
    log.info("Migrating the build records database from %s to %s", current or "empty", head)
    command.upgrade(alembic_config(conn.engine.url, conn), "head")
    conn.commit()


def _has_tables(conn: Connection) -> bool:
    return bool(sa.inspect(conn).get_table_names())


def prepare(engine: Engine, log) -> None:
    """Make the sqlite file's folder, migrate, and set WAL mode on a sqlite file."""
    path = sqlite_path(engine.url)
    if path:
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    migrate(engine, log)
    if path:
        with engine.connect() as conn:
            # WAL: readers and the writer do not block each other; it stays set in the file
            conn.exec_driver_sql("PRAGMA journal_mode=WAL")
