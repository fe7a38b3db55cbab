"""Build records: every build and its (redacted, bounded, compressed) event log, in a database.

SQLAlchemy Core in worker threads, never on the event loop: writes are queued by the callers
(`save`, `append_events`, `replace_events` return at once) and written in order, in batches, by
one background task through a one-thread executor; reads run in a second small executor. When the
database fails (unreachable, locked, read-only), reads raise StoreUnavailable, queued writes wait
(bounded) and are retried, and `healthy` comes back by itself once the database answers.

sqlite by default (WAL, a busy timeout, foreign keys on); PostgreSQL by URL for several replicas:
nothing is cached in the process, so replicas see each other's records. The schema is made and
changed only by the Alembic revisions in r2dservice/migrations/, applied by `start()`.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import os
import shutil
import sqlite3
import time
import zlib
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any

import sqlalchemy as sa
from prometheus_client import Counter
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.pool import NullPool, StaticPool
from traitlets import Float, Integer, Unicode
from traitlets.config import LoggingConfigurable

from .eventlog import EVENT_OVERHEAD
from .metrics import REGISTRY

MIGRATIONS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "migrations")
UNFINISHED_STATES = ("queued", "running")
HEAD_FRACTION = 0.25  # of max_log_bytes kept from a log's start, as in eventlog.py
MAX_PAGE = 1000
MIGRATION_LOCK = 7238523118  # a pg_advisory_lock key: "r2dservice migrates"
PRUNE_BATCH = 500
BATCH_OPS = 1000  # writes in one transaction

PRUNED = Counter(
    "r2dservice_records_pruned_total",
    "Build records deleted with their logs because they finished more than retention_days ago.",
    registry=REGISTRY,
)

# The tables as revision 0001 made them; keep in step with r2dservice/migrations/versions/.
metadata = sa.MetaData()
builds = sa.Table(
    "builds",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("image_name", sa.Text, nullable=False),
    sa.Column("provider", sa.Text, nullable=False),
    sa.Column("spec", sa.Text, nullable=False),
    sa.Column("repo_url", sa.Text, nullable=False),
    sa.Column("ref", sa.Text, nullable=False),
    sa.Column("builder", sa.Text, nullable=False),
    sa.Column("handle", sa.Text, nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("failure", sa.Text, nullable=False),
    sa.Column("requested", sa.Float, nullable=False),
    sa.Column("started", sa.Float),
    sa.Column("finished", sa.Float),
    sa.Column("last_event_id", sa.Integer, nullable=False),
    sa.Column("cancelled_by", sa.Text),
)
requesters = sa.Table(
    "build_requesters",
    metadata,
    sa.Column(
        "build_id", sa.String(32), sa.ForeignKey("builds.id", ondelete="CASCADE"), primary_key=True
    ),
    sa.Column("name", sa.Text, primary_key=True),
    sa.Column("position", sa.Integer, nullable=False),
    sa.Column("requested", sa.Float, nullable=False),
    sa.Column("withdrawn", sa.Boolean, nullable=False),
)
chunks = sa.Table(
    "build_log_chunks",
    metadata,
    sa.Column(
        "build_id", sa.String(32), sa.ForeignKey("builds.id", ondelete="CASCADE"), primary_key=True
    ),
    sa.Column("first_id", sa.Integer, primary_key=True),
    sa.Column("last_id", sa.Integer, nullable=False),
    sa.Column("size", sa.Integer, nullable=False),  # what the events count for the bound
    sa.Column("marker", sa.Boolean, nullable=False),  # one event standing for a dropped middle
    sa.Column("data", sa.LargeBinary, nullable=False),  # zlib of JSON lines [id, event]
)
RECORD_COLUMNS = [c.name for c in builds.columns]


@dataclass
class BuildRecord:
    id: str  # 16 hex chars, the Build's id
    image_name: str
    provider: str
    spec: str  # already redacted by the caller
    repo_url: str  # already redacted
    ref: str  # resolved commit
    builder: str  # "local", "kubernetes", or a class path
    handle: str  # the builder's handle: the pod name / build name ("" if none)
    state: str  # queued | running | ready | failed | cancelled
    failure: str = ""  # the reason, for failed/cancelled
    requested: float = 0.0  # epoch seconds
    started: float | None = None
    finished: float | None = None
    last_event_id: int = 0
    requesters: dict[str, float] = field(default_factory=dict)  # user -> first asked; ordered
    withdrawn: set[str] = field(default_factory=set)
    cancelled_by: str | None = None

    def copy(self) -> BuildRecord:
        return replace(self, requesters=dict(self.requesters), withdrawn=set(self.withdrawn))


class StoreUnavailable(Exception):
    """The database does not answer now; `message` is for a person (503s say it)."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class StoreError(Exception):
    """The store cannot start: a bad URL, a database newer than this code, a failed migration."""


# --- URLs, engines, migrations ---------------------------------------------------------------


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


# --- the event log: bounding and chunks --------------------------------------------------------


def event_bytes(event: dict) -> int:
    """What an event counts for max_log_bytes, as eventlog.event_size counts an Event."""
    message = event.get("message", "")
    return len(message if isinstance(message, str) else str(message)) + EVENT_OVERHEAD


def is_marker(event: dict) -> bool:
    return isinstance(event.get("truncated"), dict)


class Dropped:
    """What a bounded log left out; its marker merges earlier markers it swallows."""

    def __init__(self):
        self.events = 0
        self.bytes = 0
        self.phase = "unknown"

    def add(self, event: dict) -> None:
        if is_marker(event):
            self.events += int(event["truncated"].get("events", 0))
            self.bytes += int(event["truncated"].get("bytes", 0))
        else:
            self.events += 1
            self.bytes += event_bytes(event) - EVENT_OVERHEAD
        self.phase = event.get("phase", "unknown")

    def marker(self, max_bytes: int) -> dict:
        # the same words as EventLog.marker(), so a stored log reads like a live one
        return {
            "phase": self.phase,
            "message": f"[r2dservice: {self.events} log lines ({self.bytes} bytes) were dropped "
            f"here to keep this build's log within {max_bytes} bytes]\n",
            "truncated": {"events": self.events, "bytes": self.bytes},
        }


def bound_events(events: list[tuple[int, dict]], max_bytes: int) -> list[tuple[int, dict]]:
    """Keep a log's head and tail within max_bytes; the middle becomes one marker (its last id)."""
    sizes = [event_bytes(e) for _, e in events]
    if not max_bytes or sum(sizes) <= max_bytes:
        return events
    head, head_bytes = 0, 0
    while head < len(events) and head_bytes + sizes[head] <= int(max_bytes * HEAD_FRACTION):
        head_bytes += sizes[head]
        head += 1
    tail, tail_bytes = len(events), 0
    # keep at least the newest event, however large
    while tail > head and (
        tail == len(events) or tail_bytes + sizes[tail - 1] <= max_bytes - head_bytes
    ):
        tail_bytes += sizes[tail - 1]
        tail -= 1
    if tail == head:
        return events
    dropped = Dropped()
    for _, event in events[head:tail]:
        dropped.add(event)
    return [*events[:head], (events[tail - 1][0], dropped.marker(max_bytes)), *events[tail:]]


def encode_chunk(events: list[tuple[int, dict]]) -> bytes:
    # one dumps per event: the worker thread lets go of the GIL between them
    lines = [json.dumps([i, e], separators=(",", ":"), default=str) for i, e in events]
    return zlib.compress("\n".join(lines).encode(), 6)


def decode_chunk(data: bytes) -> list[tuple[int, dict]]:
    out = []
    for line in zlib.decompress(data).decode().split("\n"):
        i, event = json.loads(line)
        out.append((i, event))
    return out


def split_chunks(events: list[tuple[int, dict]], chunk_bytes: int) -> Iterable[tuple[list, bool]]:
    """(events, is_marker) pieces of at most ~chunk_bytes; a marker event gets a chunk of its own."""
    piece, size = [], 0
    for i, event in events:
        if is_marker(event):
            if piece:
                yield piece, False
            yield [(i, event)], True
            piece, size = [], 0
            continue
        piece.append((i, event))
        size += event_bytes(event)
        if size >= chunk_bytes:
            yield piece, False
            piece, size = [], 0
    if piece:
        yield piece, False


# --- the write queue ---------------------------------------------------------------------------


class _Op:
    __slots__ = ("kind", "build_id", "payload", "seq")

    def __init__(self, kind: str, build_id: str, payload: Any, seq: int):
        self.kind = kind  # "save" | "append" | "replace"
        self.build_id = build_id
        self.payload = payload  # a BuildRecord copy, or a list of (id, event)
        self.seq = seq

    @property
    def n_events(self) -> int:
        return len(self.payload) if self.kind != "save" else 0


class PermanentWriteError(Exception):
    """A write that will never succeed (bad data, a build row missing): dropped, not retried."""


def is_transient(error: BaseException) -> bool:
    if isinstance(error, (sa_exc.IntegrityError, sa_exc.DataError, PermanentWriteError)):
        return False
    return isinstance(error, (sa_exc.SQLAlchemyError, OSError, sqlite3.Error))


def describe(error: BaseException) -> str:
    """A short reason for people; the details (with SQL and hosts) go to the log only."""
    text = str(error).lower()
    if "locked" in text or "busy" in text:
        return "the database is locked"
    if "read-only" in text or "readonly" in text:
        return "the database is read-only"
    if isinstance(error, asyncio.TimeoutError):
        return "the database does not answer in time"
    return "the database does not answer"


# --- the store ---------------------------------------------------------------------------------


class BuildStore(LoggingConfigurable):
    """Build records and their logs in a SQL database (sqlite file by default, or PostgreSQL)."""

    db_url = Unicode(
        "sqlite:///r2dservice.sqlite",
        help="""SQLAlchemy URL of the build records database.

        The default is a sqlite file in the working directory. Several replicas of r2dservice
        must share one PostgreSQL database instead: postgresql://user:password@host/dbname
        (a plain postgresql:// URL uses the psycopg 3 driver).
        """,
    ).tag(config=True)
    retention_days = Float(
        90,
        help="Delete records (and their logs) of builds finished more than this many days ago. 0: keep forever.",
    ).tag(config=True)
    max_log_bytes = Integer(
        2 * 1024 * 1024,
        help="""Most bytes of one build's stored log (its messages, plus ~200 bytes an event).

        A longer log keeps its start and its end and says what was dropped in between.
        0: no limit. Stored compressed, so a full log takes much less room on disk.
        """,
    ).tag(config=True)
    prune_interval = Float(3600, help="Seconds between two prunings of old records.").tag(
        config=True
    )
    timeout = Float(
        5,
        help="""Seconds a database operation may wait: sqlite's busy timeout, PostgreSQL's connect
        timeout. A read that gets no answer in twice this answers StoreUnavailable.""",
    ).tag(config=True)
    retry_interval = Float(
        1, help="Seconds between retries of failed writes and health probes (grows to 10x)."
    ).tag(config=True)
    batch_delay = Float(
        0.2, help="Seconds the writer waits to gather writes into one transaction."
    ).tag(config=True)
    max_pending_events = Integer(
        200_000,
        help="Log events that may wait in memory while the database fails; past it the oldest batches are dropped.",
    ).tag(config=True)
    close_timeout = Float(
        10, help="Seconds close() waits for pending writes when the database fails."
    ).tag(config=True)

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.engine: Engine | None = None
        self._queue: deque[_Op] = deque()
        self._inflight = 0  # ops at the queue's left being written now
        self._pending_saves: dict[str, _Op] = {}  # build id -> its queued (not in flight) save
        self._pending_events = 0
        self._seq = 0  # of the newest queued op
        self._done_seq = 0  # every op up to this one is written (or dropped)
        self._write_error: str | None = None
        self._read_error: str | None = None
        self._tasks: list[asyncio.Task] = []
        self._probe: asyncio.Task | None = None
        self._write_lock = asyncio.Lock()  # the writer and the pruner take turns

    # --- life ---
    async def start(self) -> None:
        """Migrate (after backing up a sqlite file), connect, start the writer and the pruner."""
        url = normalize_url(self.db_url)
        try:
            self.engine = make_engine(url, self.timeout)
        except (sa_exc.ArgumentError, sa_exc.NoSuchModuleError, ImportError) as e:
            raise StoreError(f"cannot use database URL {url!r}: {e}") from None
        self._write_pool = ThreadPoolExecutor(1, thread_name_prefix="r2dservice-store-write")
        self._read_pool = ThreadPoolExecutor(2, thread_name_prefix="r2dservice-store-read")
        if url.get_backend_name() == "sqlite" and sqlite_path(url) is None:
            # in-memory sqlite (tests): one shared connection, so one thread for everything
            self._read_pool = self._write_pool
        self._wake = asyncio.Event()  # something was queued
        self._urgent = asyncio.Event()  # flush() waits: write without gathering more
        self._done = asyncio.Condition()
        try:
            await self._in_thread(self._write_pool, self._prepare)
        except StoreError:
            self._shutdown_pools()
            raise
        except Exception as e:
            self._shutdown_pools()
            raise StoreError(f"cannot prepare the build records database {url!r}: {e}") from e
        self._tasks = [
            asyncio.create_task(self._writer(), name="r2dservice-store-writer"),
            asyncio.create_task(self._pruner(), name="r2dservice-store-pruner"),
        ]
        self.log.info("Build records in %r", url)

    def _prepare(self) -> None:
        path = sqlite_path(self.engine.url)
        if path:
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        migrate(self.engine, self.log)
        if path:
            with self.engine.connect() as conn:
                # WAL: readers and the writer do not block each other; it stays set in the file
                conn.exec_driver_sql("PRAGMA journal_mode=WAL")

    async def close(self) -> None:
        """Write what is pending (up to close_timeout), stop the tasks, dispose the engine."""
        if self.engine is None:
            return
        try:
            await self.flush(self.close_timeout)
        except StoreUnavailable:
            self.log.error(
                "Closing the build store with %d writes (%d log events) not written: %s",
                len(self._queue),
                self._pending_events,
                self._write_error or "timeout",
            )
        for task in [*self._tasks, self._probe]:
            if task is not None:
                task.cancel()
        await asyncio.gather(*[t for t in [*self._tasks, self._probe] if t], return_exceptions=True)
        self._tasks, self._probe = [], None
        self._shutdown_pools()
        self.engine.dispose()
        self.engine = None

    def _shutdown_pools(self) -> None:
        # a thread stuck on a dead server must not hold the shutdown
        self._write_pool.shutdown(wait=False, cancel_futures=True)
        self._read_pool.shutdown(wait=False, cancel_futures=True)

    @property
    def healthy(self) -> bool:
        return self._write_error is None and self._read_error is None

    @property
    def problem(self) -> str:
        """Why the database fails, for people ("the database is read-only"); "" if it works."""
        return self._write_error or self._read_error or ""

    @property
    def pending(self) -> int:
        """Writes queued and not yet written."""
        return len(self._queue)

    # --- writes: queued, never waiting for the database ---
    def save(self, record: BuildRecord) -> None:
        """Upsert the build's row and its requesters (a copy of `record` is queued)."""
        op = self._pending_saves.get(record.id)
        if op is not None:
            op.payload = record.copy()  # the newest state replaces a save not yet written
            return
        op = self._enqueue("save", record.id, record.copy())
        self._pending_saves[record.id] = op

    def append_events(self, build_id: str, events: list[tuple[int, dict]]) -> None:
        """Add events to the build's stored log (after its save). The dicts must not change later."""
        if events:
            self._enqueue("append", build_id, list(events))
            self._shed()

    def replace_events(self, build_id: str, events: list[tuple[int, dict]]) -> None:
        """Store the build's whole log instead of what was appended (at its end)."""
        for op in self._waiting_ops():
            if op.build_id == build_id and op.kind in ("append", "replace"):
                self._drop(op)  # superseded
        self._enqueue("replace", build_id, list(events))
        self._shed()

    async def flush(self, timeout: float | None = None) -> None:
        """Wait until everything queued so far is written (or dropped).

        While the database fails this waits until it answers again: with a `timeout`,
        StoreUnavailable when it is over (what is queued stays queued).
        """
        target = self._seq
        self._urgent.set()
        try:
            await asyncio.wait_for(self._wait_done(target), timeout)
        except asyncio.TimeoutError:
            reason = self._write_error or "the database does not answer in time"
            raise StoreUnavailable(f"build records are unavailable: {reason}") from None

    async def _wait_done(self, seq: int) -> None:
        async with self._done:
            await self._done.wait_for(lambda: self._done_seq >= seq)

    def _enqueue(self, kind: str, build_id: str, payload: Any) -> _Op:
        self._seq += 1
        op = _Op(kind, build_id, payload, self._seq)
        self._queue.append(op)
        self._pending_events += op.n_events
        self._wake.set()
        return op

    def _waiting_ops(self) -> list[_Op]:
        """Queued ops not in flight (which may still be changed or dropped)."""
        return [op for n, op in enumerate(self._queue) if n >= self._inflight]

    def _drop(self, op: _Op) -> None:
        self._queue.remove(op)
        self._pending_events -= op.n_events

    def _shed(self) -> None:
        """Past max_pending_events (the database failing for long), drop the oldest log batches."""
        if self._pending_events <= self.max_pending_events:
            return
        dropped = 0
        for kind in ("append", "replace"):  # appends first: a replace holds a whole log
            for op in self._waiting_ops()[:-1]:  # never the op just queued
                if self._pending_events <= self.max_pending_events:
                    break
                if op.kind == kind:
                    self._drop(op)
                    dropped += op.n_events
        if dropped:
            self.log.warning(
                "Build store: dropped %d queued log events (over max_pending_events=%d) while "
                "the database is failing: %s",
                dropped,
                self.max_pending_events,
                self._write_error,
            )

    async def _writer(self) -> None:
        backoff = self.retry_interval
        while True:
            if not self._queue:
                self._wake.clear()
                await self._wake.wait()
            if self.batch_delay and not self._urgent.is_set():
                # gather a burst into one transaction (flush() cuts the wait short)
                try:
                    await asyncio.wait_for(self._urgent.wait(), self.batch_delay)
                except asyncio.TimeoutError:
                    pass
            self._urgent.clear()
            batch = self._take_batch()
            try:
                async with self._write_lock:
                    done = await self._in_thread(self._write_pool, self._write_batch, batch)
            except Exception:  # _write_batch returns on database trouble: this is a bug
                self.log.exception("Build store writer: dropping %d writes", len(batch))
                done = set(batch)
            await self._finish_batch(batch, done)
            if len(done) < len(batch):
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self.retry_interval * 10)
            else:
                backoff = self.retry_interval

    def _take_batch(self) -> list[_Op]:
        """The ops at the queue's left (in flight until _finish_batch)."""
        batch = list(self._queue)[:BATCH_OPS]
        # a log in this batch whose build's save waits behind the cut: bring the save along
        for build_id in {op.build_id for op in batch if op.kind != "save"}:
            save = self._pending_saves.get(build_id)
            if save is not None and save.seq > batch[-1].seq:
                self._queue.remove(save)
                self._queue.insert(len(batch), save)
                batch.append(save)
        self._inflight = len(batch)
        for op in batch:
            if self._pending_saves.get(op.build_id) is op:
                del self._pending_saves[op.build_id]
        return batch

    async def _finish_batch(self, batch: list[_Op], done: set[_Op]) -> None:
        for _ in batch:
            self._queue.popleft()
        left = [op for op in batch if op not in done]
        self._queue.extendleft(reversed(left))
        self._pending_events -= sum(op.n_events for op in done)
        self._inflight = 0
        # ops not written go back to waiting; a newer save of the same build may follow them
        for op in left:
            if op.kind == "save" and op.build_id not in self._pending_saves:
                self._pending_saves[op.build_id] = op
        # everything older than the oldest op still queued is written or was dropped
        oldest = min((op.seq for op in self._queue), default=self._seq + 1)
        async with self._done:
            self._done_seq = max(self._done_seq, oldest - 1)
            self._done.notify_all()

    # in the write thread
    def _write_batch(self, batch: list[_Op]) -> set[_Op]:
        """Write ops in one transaction; returns the ops done (written, or dropped as hopeless)."""
        try:
            with self.engine.begin() as conn:
                self._write_ops(conn, batch)
            self._writes_work()
            return set(batch)
        except Exception as e:
            if is_transient(e):
                self._writes_fail(e, len(batch))
                return set()
        # something in the batch will never go in: one op at a time (rows first) finds it
        done = set()
        for op in sorted(batch, key=lambda op: op.kind != "save"):
            try:
                with self.engine.begin() as conn:
                    self._write_ops(conn, [op])
            except Exception as e:
                if is_transient(e):
                    self._writes_fail(e, len(batch) - len(done))
                    return done
                self.log.error(
                    "Build store: dropping a %s of build %s: %s", op.kind, op.build_id, e
                )
            done.add(op)
        self._writes_work()
        return done

    def _writes_fail(self, error: BaseException, n: int) -> None:
        if self._write_error is None:
            self.log.warning(
                "Build store: writing to the database fails (%s); %d writes wait and are retried",
                error,
                n,
            )
        self._write_error = describe(error)

    def _writes_work(self) -> None:
        if self._write_error is not None:
            self.log.info("Build store: writing to the database works again")
        self._write_error = None

    def _write_ops(self, conn: Connection, ops: list[_Op]) -> None:
        # the rows first: a log needs its build's row, and a caller may log before saving
        for op in ops:
            if op.kind == "save":
                self._upsert(conn, op.payload)
        appends: dict[str, list[tuple[int, dict]]] = {}
        for op in ops:
            if op.kind == "save":
                continue
            if op.kind == "append":
                appends.setdefault(op.build_id, []).extend(op.payload)
            else:
                appends.pop(op.build_id, None)
                self._replace(conn, op.build_id, op.payload)
        for build_id, events in appends.items():
            self._append(conn, build_id, events)

    def _upsert(self, conn: Connection, record: BuildRecord) -> None:
        row = {name: getattr(record, name) for name in RECORD_COLUMNS}
        insert = self._insert(conn, builds).values(**row)
        conn.execute(
            insert.on_conflict_do_update(
                index_elements=[builds.c.id],
                set_={k: insert.excluded[k] for k in RECORD_COLUMNS if k != "id"},
            )
        )
        conn.execute(requesters.delete().where(requesters.c.build_id == record.id))
        if record.requesters:
            conn.execute(
                requesters.insert(),
                [
                    {
                        "build_id": record.id,
                        "name": name,
                        "position": n,
                        "requested": when,
                        "withdrawn": name in record.withdrawn,
                    }
                    for n, (name, when) in enumerate(record.requesters.items())
                ],
            )

    @staticmethod
    def _insert(conn: Connection, table: sa.Table):
        if conn.dialect.name == "postgresql":
            from sqlalchemy.dialects.postgresql import insert
        elif conn.dialect.name == "sqlite":
            from sqlalchemy.dialects.sqlite import insert
        else:
            raise PermanentWriteError(f"upsert not supported on {conn.dialect.name}")
        return insert(table)

    def _require_build(self, conn: Connection, build_id: str) -> None:
        if conn.execute(sa.select(builds.c.id).where(builds.c.id == build_id)).first() is None:
            raise PermanentWriteError(f"no build {build_id} saved before its log")

    def _append(self, conn: Connection, build_id: str, events: list[tuple[int, dict]]) -> None:
        self._require_build(conn, build_id)
        last = conn.execute(
            sa.select(sa.func.max(chunks.c.last_id)).where(chunks.c.build_id == build_id)
        ).scalar()
        # a retry after a lost commit acknowledgement must not store events twice
        events = sorted((e for e in events if last is None or e[0] > last), key=lambda e: e[0])
        if not events:
            return
        self._insert_chunks(conn, build_id, events)
        self._trim(conn, build_id)

    def _replace(self, conn: Connection, build_id: str, events: list[tuple[int, dict]]) -> None:
        self._require_build(conn, build_id)
        conn.execute(chunks.delete().where(chunks.c.build_id == build_id))
        events = sorted(events, key=lambda e: e[0])
        self._insert_chunks(conn, build_id, bound_events(events, self.max_log_bytes))

    def _chunk_bytes(self) -> int:
        # small enough that dropping whole chunks keeps a log near its bound
        return max(4096, min(256 * 1024, self.max_log_bytes // 8 or 256 * 1024))

    def _insert_chunks(
        self, conn: Connection, build_id: str, events: list[tuple[int, dict]]
    ) -> None:
        rows = [
            {
                "build_id": build_id,
                "first_id": piece[0][0],
                "last_id": piece[-1][0],
                "size": sum(event_bytes(e) for _, e in piece),
                "marker": marker,
                "data": encode_chunk(piece),
            }
            for piece, marker in split_chunks(events, self._chunk_bytes())
        ]
        if rows:
            conn.execute(chunks.insert(), rows)

    def _trim(self, conn: Connection, build_id: str) -> None:
        """Past max_log_bytes, drop whole chunks after the head, keep the tail, merge one marker."""
        max_bytes = self.max_log_bytes
        where = chunks.c.build_id == build_id
        if (
            not max_bytes
            or conn.execute(sa.select(sa.func.sum(chunks.c.size)).where(where)).scalar()
            <= max_bytes
        ):
            return
        rows = conn.execute(
            sa.select(chunks.c.first_id, chunks.c.size, chunks.c.marker)
            .where(where)
            .order_by(chunks.c.first_id)
        ).all()
        head, head_bytes = 0, 0
        while (
            head < len(rows)
            and not rows[head].marker
            and head_bytes + rows[head].size <= int(max_bytes * HEAD_FRACTION)
        ):
            head_bytes += rows[head].size
            head += 1
        tail, tail_bytes = len(rows), 0
        while tail > head and (
            tail == len(rows) or tail_bytes + rows[tail - 1].size <= max_bytes - head_bytes
        ):
            tail_bytes += rows[tail - 1].size
            tail -= 1
        gone = [r.first_id for r in rows[head:tail]]
        if not gone or (len(gone) == 1 and rows[head].marker):
            return
        dropped = Dropped()
        last_gone = 0
        for data in conn.execute(
            sa.select(chunks.c.data)
            .where(where, chunks.c.first_id.in_(gone))
            .order_by(chunks.c.first_id)
        ).scalars():
            for i, event in decode_chunk(data):
                dropped.add(event)
                last_gone = i
        conn.execute(chunks.delete().where(where, chunks.c.first_id.in_(gone)))
        self._insert_chunks(conn, build_id, [(last_gone, dropped.marker(max_bytes))])

    # --- reads ---
    async def _in_thread(self, pool: ThreadPoolExecutor, fn: Callable, *args):
        return await asyncio.get_running_loop().run_in_executor(pool, fn, *args)

    async def _read(self, fn: Callable, *args):
        """Run a read in the read thread; database trouble is StoreUnavailable (and unhealthy)."""
        if self.engine is None:
            raise StoreUnavailable("the build records database is not open")
        if self._read_error is not None:
            # fail fast while the probe waits for the database to come back
            raise StoreUnavailable(f"build records are unavailable: {self._read_error}")
        try:
            return await asyncio.wait_for(
                self._in_thread(self._read_pool, self._run_read, fn, *args), 2 * self.timeout
            )
        except (asyncio.TimeoutError, sa_exc.SQLAlchemyError, OSError, sqlite3.Error) as e:
            self._reads_fail(e)
            raise StoreUnavailable(f"build records are unavailable: {describe(e)}") from e

    def _run_read(self, fn: Callable, *args):
        with self.engine.connect() as conn:
            return fn(conn, *args)

    def _reads_fail(self, error: BaseException) -> None:
        if self._read_error is None:
            self.log.warning(
                "Build store: reading the database fails: %s", error or type(error).__name__
            )
        self._read_error = describe(error)
        if self._probe is None or self._probe.done():
            self._probe = asyncio.create_task(
                self._probe_until_healthy(), name="r2dservice-store-probe"
            )

    async def _probe_until_healthy(self) -> None:
        delay = self.retry_interval
        while True:
            await asyncio.sleep(delay)
            try:
                await asyncio.wait_for(
                    self._in_thread(self._read_pool, self._run_read, _probe_query), 2 * self.timeout
                )
            except Exception as e:
                self._read_error = describe(e)
                delay = min(delay * 2, self.retry_interval * 10)
                continue
            self.log.info("Build store: the database answers again")
            self._read_error = None
            return

    async def get(self, build_id: str) -> BuildRecord | None:
        records = await self._read(
            _select_records, sa.select(builds).where(builds.c.id == build_id)
        )
        return records[0] if records else None

    async def list(
        self,
        *,
        user: str | None = None,
        states: Iterable[str] = (),
        spec: str = "",
        image: str = "",
        since: float | None = None,
        until: float | None = None,
        cursor: str | None = None,
        limit: int = 50,
        image_repository: str = "",
    ) -> tuple[list[BuildRecord], str | None]:
        """Newest first (by requested, then id); a page and the cursor of the next (None: no more).

        `user`: only builds that user requested (None: everyone's); `states`: any of them;
        `spec`: a case-insensitive substring of "<provider>/<spec>"; `image`: the exact image
        name; `image_repository`: any tag of that image repository; `since`/`until`: requested at or after / before. Pages follow from the position
        in the cursor, so records added meanwhile do not shift them.
        """
        limit = max(1, min(int(limit), MAX_PAGE))
        query = sa.select(builds)
        if user is not None:
            query = query.where(
                sa.exists().where(requesters.c.build_id == builds.c.id, requesters.c.name == user)
            )
        if states:
            query = query.where(builds.c.state.in_(sorted(states)))
        if spec:
            whole = sa.func.lower(builds.c.provider + "/" + builds.c.spec)
            query = query.where(whole.contains(spec.lower(), autoescape=True))
        if image:
            query = query.where(builds.c.image_name == image)
        if image_repository:
            query = query.where(
                builds.c.image_name.startswith(image_repository + ":", autoescape=True)
            )
        if since is not None:
            query = query.where(builds.c.requested >= since)
        if until is not None:
            query = query.where(builds.c.requested < until)
        if cursor:
            requested, build_id = decode_cursor(cursor)
            query = query.where(
                sa.or_(
                    builds.c.requested < requested,
                    sa.and_(builds.c.requested == requested, builds.c.id < build_id),
                )
            )
        query = query.order_by(builds.c.requested.desc(), builds.c.id.desc()).limit(limit + 1)
        records = await self._read(_select_records, query)
        if len(records) <= limit:
            return records, None
        records = records[:limit]
        return records, encode_cursor(records[-1].requested, records[-1].id)

    async def events(self, build_id: str, after: int = 0) -> list[tuple[int, dict]]:
        """(id, event dict) of the stored log past `after` (a dropped middle is one marker)."""
        return await self._read(_select_events, build_id, after)

    async def unfinished(self) -> list[BuildRecord]:
        """Records still queued or running (oldest first): what a restart finds unfinished."""
        query = (
            sa.select(builds)
            .where(builds.c.state.in_(UNFINISHED_STATES))
            .order_by(builds.c.requested, builds.c.id)
        )
        return await self._read(_select_records, query)

    # --- retention ---
    async def prune(self) -> dict:
        """Delete records finished more than retention_days ago, with their logs."""
        if self.retention_days <= 0:
            return {"records": 0, "log_bytes": 0}
        cutoff = time.time() - self.retention_days * 86400
        total = {"records": 0, "log_bytes": 0}
        while True:
            # small transactions: the writer gets its turn between them
            async with self._write_lock:
                n, log_bytes = await self._in_thread(self._write_pool, self._prune_some, cutoff)
            total["records"] += n
            total["log_bytes"] += log_bytes
            if n < PRUNE_BATCH:
                break
        if total["records"]:
            PRUNED.inc(total["records"])
            self.log.info(
                "Pruned %d build records (%d bytes of logs) finished more than %g days ago",
                total["records"],
                total["log_bytes"],
                self.retention_days,
            )
        return total

    def _prune_some(self, cutoff: float) -> tuple[int, int]:
        with self.engine.begin() as conn:
            ids = (
                conn.execute(
                    sa.select(builds.c.id).where(builds.c.finished < cutoff).limit(PRUNE_BATCH)
                )
                .scalars()
                .all()
            )
            if not ids:
                return 0, 0
            log_bytes = conn.execute(
                sa.select(sa.func.coalesce(sa.func.sum(sa.func.length(chunks.c.data)), 0)).where(
                    chunks.c.build_id.in_(ids)
                )
            ).scalar()
            for table in (chunks, requesters):
                conn.execute(table.delete().where(table.c.build_id.in_(ids)))
            conn.execute(builds.delete().where(builds.c.id.in_(ids)))
            return len(ids), int(log_bytes)

    async def _pruner(self) -> None:
        # first soon after start (a service restarted often still prunes), then every interval
        await asyncio.sleep(min(self.prune_interval, 30))
        while True:
            try:
                await self.prune()
            except Exception as e:
                self.log.warning(
                    "Build store: pruning old records failed (%s); trying again later", e
                )
            await asyncio.sleep(self.prune_interval)


def encode_cursor(requested: float, build_id: str) -> str:
    raw = json.dumps([requested, build_id], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[float, str]:
    """The position a cursor names; ValueError for one this store did not make."""
    try:
        requested, build_id = json.loads(
            base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        )
        return float(requested), str(build_id)
    except (ValueError, TypeError, binascii.Error):
        raise ValueError(f"invalid cursor {cursor!r}") from None


# --- read queries (in the read thread) ---------------------------------------------------------


def _probe_query(conn: Connection) -> None:
    # a read that touches the file: a locked sqlite database fails it, SELECT 1 would not
    conn.execute(sa.select(builds.c.id).limit(1)).all()


def _select_records(conn: Connection, query) -> list[BuildRecord]:
    rows = conn.execute(query).mappings().all()
    if not rows:
        return []
    ids = [row["id"] for row in rows]
    who: dict[str, list] = {i: [] for i in ids}
    for r in conn.execute(
        sa.select(requesters).where(requesters.c.build_id.in_(ids)).order_by(requesters.c.position)
    ).mappings():
        who[r["build_id"]].append(r)
    return [
        BuildRecord(
            **{name: row[name] for name in RECORD_COLUMNS},
            requesters={r["name"]: r["requested"] for r in who[row["id"]]},
            withdrawn={r["name"] for r in who[row["id"]] if r["withdrawn"]},
        )
        for row in rows
    ]


def _select_events(conn: Connection, build_id: str, after: int) -> list[tuple[int, dict]]:
    out = []
    for data in conn.execute(
        sa.select(chunks.c.data)
        .where(chunks.c.build_id == build_id, chunks.c.last_id > after)
        .order_by(chunks.c.first_id)
    ).scalars():
        out.extend((i, e) for i, e in decode_chunk(data) if i > after)
    return out
