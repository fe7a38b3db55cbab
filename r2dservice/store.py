"""Build records: every build and its (redacted, bounded, compressed) event log, in a database.

SQLAlchemy Core in worker threads, never on the event loop: writes are queued by the callers
(`save`, `append_events`, `replace_events` return at once) and written in order, in batches, by
one background task through a one-thread executor; reads run in a second small executor. When the
database fails (unreachable, locked, read-only), reads raise StoreUnavailable, queued writes wait
(bounded) and are retried, and `healthy` comes back by itself once the database answers.

sqlite by default (WAL, a busy timeout, foreign keys on); PostgreSQL by URL for several replicas:
nothing is cached in the process, so replicas see each other's records. The schema is made and
changed only by the Alembic revisions in r2dservice/migrations/, applied by `start()`.

The parts, one job a module, are in r2dservice/storage/; this module runs them: the writer and
the pruner tasks, the two thread pools, the health of the database, and the public surface
(`from r2dservice.store import BuildStore, BuildRecord, StoreUnavailable, ...`).
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor

from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Engine
from traitlets import Float, Integer, Unicode
from traitlets.config import LoggingConfigurable

from .storage.database import (
    MIGRATIONS,
    alembic_config,
    backup_sqlite,
    make_engine,
    migrate,
    normalize_url,
    prepare,
    sqlite_path,
)
from .storage.errors import (
    PermanentWriteError,
    StoreError,
    StoreUnavailable,
    describe,
    is_transient,
)
from .storage.eventchunks import bound_events, decode_chunk, encode_chunk, event_bytes
from .storage.health import probe
from .storage.pruning import PRUNE_BATCH, PRUNED, prune_some
from .storage.queries import (
    MAX_PAGE,
    decode_cursor,
    encode_cursor,
    list_query,
    one_query,
    probe_query,
    select_events,
    select_records,
    unfinished_query,
)
from .storage.schema import (
    RECORD_COLUMNS,
    UNFINISHED_STATES,
    BuildRecord,
    builds,
    chunks,
    metadata,
    requesters,
)
from .storage.writequeue import WriteQueue
from .storage.writes import write_batch
from .tasks import cancel_and_wait, within

__all__ = [
    "BATCH_OPS",
    "MAX_PAGE",
    "MIGRATIONS",
    "PRUNE_BATCH",
    "PRUNED",
    "RECORD_COLUMNS",
    "UNFINISHED_STATES",
    "BuildRecord",
    "BuildStore",
    "PermanentWriteError",
    "StoreError",
    "StoreUnavailable",
    "alembic_config",
    "backup_sqlite",
    "bound_events",
    "builds",
    "chunks",
    "decode_chunk",
    "decode_cursor",
    "describe",
    "encode_chunk",
    "encode_cursor",
    "event_bytes",
    "is_transient",
    "make_engine",
    "metadata",
    "migrate",
    "normalize_url",
    "requesters",
    "sqlite_path",
]

BATCH_OPS = 1000  # writes in one transaction


async def wait_event(event: asyncio.Event, timeout: float) -> None:
    """Until `event` is set or `timeout` is over; a cancel always goes through (tasks.within:
    asyncio.wait_for can lose it on Python < 3.12, and close() would wait forever)."""
    with contextlib.suppress(asyncio.TimeoutError):
        await within(event.wait(), timeout)


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
    health_interval = Float(
        2,
        help="""Seconds between two probes of the database while nothing else tells how it
        is: a read, and a write that changes nothing (rolled back). An outage (a stopped
        server, a read-only or locked sqlite file) pauses new builds within about this long,
        even with no traffic; so does the end of one resume them. 0: no probe (trouble is
        then noticed at the first read or write that fails).""",
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
        self._writes = WriteQueue()
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
        self._retry = asyncio.Event()  # the database answers again: the writer retries now
        try:
            await self._in_thread(self._write_pool, prepare, self.engine, self.log)
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
        if self.health_interval > 0:
            self._tasks.append(
                asyncio.create_task(self._health_prober(), name="r2dservice-store-health")
            )
        self.log.info("Build records in %r", url)

    async def close(self) -> None:
        """Write what is pending (up to close_timeout), stop the tasks, dispose the engine."""
        if self.engine is None:
            return
        try:
            await self.flush(self.close_timeout, wait_while_failing=True)
        except StoreUnavailable:
            self.log.error(
                "Closing the build store with %d writes (%d log events) not written: %s",
                len(self._writes),
                self._writes.pending_events,
                self._write_error or "timeout",
            )
        await cancel_and_wait(*self._tasks, self._probe)
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
        return len(self._writes)

    # --- writes: queued, never waiting for the database ---
    def save(self, record: BuildRecord) -> None:
        """Upsert the build's row and its requesters (a copy of `record` is queued)."""
        self._writes.save(record.id, record.copy())
        self._wake.set()

    def append_events(self, build_id: str, events: list[tuple[int, dict]]) -> None:
        """Add events to the build's stored log (after its save). The dicts must not change later."""
        if events:
            self._writes.append(build_id, list(events))
            self._wake.set()
            self._shed()

    def replace_events(self, build_id: str, events: list[tuple[int, dict]]) -> None:
        """Store the build's whole log instead of what was appended (at its end)."""
        self._writes.replace(build_id, list(events))
        self._wake.set()
        self._shed()

    async def flush(
        self, timeout: float | None = None, *, wait_while_failing: bool = False
    ) -> None:
        """Wait until everything queued so far is written (or dropped).

        While writes fail (the reason known), StoreUnavailable at once: a caller answering a
        request says so now rather than after `timeout`. With `wait_while_failing` (close()),
        wait for the database to answer again instead. With a `timeout`, StoreUnavailable when
        it is over (what is queued stays queued).
        """
        target = self._writes.seq
        if not wait_while_failing:
            self._fail_fast(target)
        self._urgent.set()
        try:
            await asyncio.wait_for(self._wait_done(target, wait_while_failing), timeout)
        except asyncio.TimeoutError:
            reason = self._write_error or "the database does not answer in time"
            raise StoreUnavailable(f"build records are unavailable: {reason}") from None

    def _fail_fast(self, target: int) -> None:
        if self._write_error is not None and self._writes.done_seq < target:
            raise StoreUnavailable(f"build records are unavailable: {self._write_error}")

    async def _wait_done(self, seq: int, wait_while_failing: bool) -> None:
        # woken after each batch: a write that fails meanwhile ends a fail-fast wait too
        async with self._done:
            await self._done.wait_for(
                lambda: (
                    self._writes.done_seq >= seq
                    or (not wait_while_failing and self._write_error is not None)
                )
            )
        if not wait_while_failing:
            self._fail_fast(seq)

    def _shed(self) -> None:
        """Past max_pending_events (the database failing for long), drop the oldest log batches."""
        dropped = self._writes.shed(self.max_pending_events)
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
            if not self._writes.ops:
                self._wake.clear()
                await self._wake.wait()
            if self.batch_delay and not self._urgent.is_set():
                # gather a burst into one transaction (flush() cuts the wait short)
                try:
                    await asyncio.wait_for(self._urgent.wait(), self.batch_delay)
                except asyncio.TimeoutError:
                    pass
            self._urgent.clear()
            self._retry.clear()
            batch = self._writes.take_batch(BATCH_OPS)
            try:
                async with self._write_lock:
                    done, error = await self._in_thread(
                        self._write_pool,
                        write_batch,
                        self.engine,
                        batch,
                        self.max_log_bytes,
                        self.log,
                    )
            except Exception:  # write_batch returns on database trouble: this is a bug
                self.log.exception("Build store writer: dropping %d writes", len(batch))
                done = set(batch)
            else:
                if error is None:
                    self._writes_work()
                else:
                    self._writes_fail(error, len(batch) - len(done))
            self._writes.finish_batch(batch, done)
            async with self._done:
                self._done.notify_all()
            if len(done) < len(batch):
                await wait_event(self._retry, backoff)
                backoff = min(backoff * 2, self.retry_interval * 10)
            else:
                backoff = self.retry_interval

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

    # --- health ---
    async def _health_prober(self) -> None:
        while True:
            await asyncio.sleep(self.health_interval)
            if self._write_lock.locked():
                continue  # the writer or the pruner is at the database: its outcome tells
            try:
                async with self._write_lock:
                    failed = await self._in_thread_within(
                        2 * self.timeout, self._write_pool, probe, self.engine
                    )
            except asyncio.TimeoutError as e:
                failed = ("read", e)
            except Exception:  # probe() returns database trouble: this is a bug
                self.log.exception("Build store: the health probe failed")
                continue
            self._probed(failed)

    def _probed(self, failed: tuple[str, BaseException] | None) -> None:
        if failed is not None:
            stage, error = failed
            if stage == "read":
                self._reads_fail(error)
            else:
                self._writes_fail(error, len(self._writes))
            return
        if self._read_error is not None:
            self.log.info("Build store: the database answers again")
            self._read_error = None
        if self._write_error is not None:
            if self._writes.ops:
                self._retry.set()  # the queued writes clear it when they land, not the probe
            else:
                self._writes_work()

    # --- reads ---
    async def _in_thread(self, pool: ThreadPoolExecutor, fn: Callable, *args):
        return await asyncio.get_running_loop().run_in_executor(pool, fn, *args)

    async def _in_thread_within(
        self, timeout: float, pool: ThreadPoolExecutor, fn: Callable, *args
    ):
        """_in_thread, asyncio.TimeoutError past `timeout`; a cancel always goes through
        (tasks.within: asyncio.wait_for loses it on Python < 3.12)."""
        return await within(asyncio.get_running_loop().run_in_executor(pool, fn, *args), timeout)

    async def _read(self, fn: Callable, *args):
        """Run a read in the read thread; database trouble is StoreUnavailable (and unhealthy)."""
        if self.engine is None:
            raise StoreUnavailable("the build records database is not open")
        if self._read_error is not None:
            # fail fast while the probe waits for the database to come back
            raise StoreUnavailable(f"build records are unavailable: {self._read_error}")
        try:
            return await self._in_thread_within(
                2 * self.timeout, self._read_pool, self._run_read, fn, *args
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
                await self._in_thread_within(
                    2 * self.timeout, self._read_pool, self._run_read, probe_query
                )
            except Exception as e:
                self._read_error = describe(e)
                delay = min(delay * 2, self.retry_interval * 10)
                continue
            self.log.info("Build store: the database answers again")
            self._read_error = None
            return

    async def get(self, build_id: str) -> BuildRecord | None:
        records = await self._read(select_records, one_query(build_id))
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
        query = list_query(
            user=user,
            states=states,
            spec=spec,
            image=image,
            since=since,
            until=until,
            cursor=cursor,
            limit=limit,
            image_repository=image_repository,
        )
        records = await self._read(select_records, query)
        if len(records) <= limit:
            return records, None
        records = records[:limit]
        return records, encode_cursor(records[-1].requested, records[-1].id)

    async def events(self, build_id: str, after: int = 0) -> list[tuple[int, dict]]:
        """(id, event dict) of the stored log past `after` (a dropped middle is one marker)."""
        return await self._read(select_events, build_id, after)

    async def unfinished(self) -> list[BuildRecord]:
        """Records still queued or running (oldest first): what a restart finds unfinished."""
        return await self._read(select_records, unfinished_query())

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
                n, log_bytes = await self._in_thread(
                    self._write_pool, prune_some, self.engine, cutoff
                )
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
