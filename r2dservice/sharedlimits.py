"""Per-user limits across replicas: the other replicas' active builds, as last read from
the shared build records.

Replicas that share one database (c.R2DService.db_url on PostgreSQL) each run their own
BuildManager; without this, each would count only its own builds and a user would get
the limits once per replica. SharedLimits keeps, per user, the queued and running
builds the store knows and this process does not run, so the manager adds them to its
own counts. It never makes a request wait on the database for long: the snapshot is
refreshed in the background, and for the user asking for a new build on demand with a
short timeout (after which the last snapshot is used).

The consistency window is what a replica has not yet written (its records writer is
behind by about c.BuildStore.batch_delay) plus, when the on-demand read times out or
fails, the age of the snapshot. Two requests of one user on two replicas within that
window can both pass; see docs/policy.md.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable

from traitlets import Float
from traitlets.config import LoggingConfigurable

from .store import MAX_PAGE, UNFINISHED_STATES, BuildRecord, StoreUnavailable
from .tasks import cancel_and_wait

# A finished build of this process is still ours for this long: the snapshot may have
# been read before its finish was written, and must not count it as another replica's.
LOCAL_GRACE = 120.0


def owner(record: BuildRecord) -> str | None:
    """Whom a recorded build counts against: its first requester, unless they withdrew
    (as the BuildManager charges a build: joiners never)."""
    first = next(iter(record.requesters), None)
    if first is None or first in record.withdrawn:
        return None
    return first


def by_owner(records: Iterable[BuildRecord]) -> dict[str, list[BuildRecord]]:
    """Unfinished records grouped by whom they count against (pure)."""
    out: dict[str, list[BuildRecord]] = {}
    for r in records:
        user = owner(r)
        if user is not None and r.state in UNFINISHED_STATES:
            out.setdefault(user, []).append(r)
    return out


class SharedLimits(LoggingConfigurable):
    """The other replicas' queued and running builds, per user, for the limits."""

    refresh_interval = Float(
        3,
        help="""Seconds between two reads of every replica's unfinished builds from the
        build records. A build held back by its user's per-user build limit because
        of builds on other replicas starts at most this long after those end.""",
    ).tag(config=True)
    read_timeout = Float(
        0.5,
        help="""Seconds a new build's request waits for a fresh count of its user's
        builds on other replicas. Past it (or when the database does not answer) the
        last background read is used.""",
    ).tag(config=True)

    def __init__(self, manager, store, **kwargs):
        super().__init__(**kwargs)
        self.manager = manager
        self.store = store
        self._snapshot: dict[str, list[BuildRecord]] = {}
        self._user_read: dict[str, float] = {}  # user -> when their newest on-demand read began
        self._inflight: dict[str, asyncio.Future] = {}  # user -> on-demand read
        self._local: dict[str, float] = {}  # ids of this process's builds -> finished (or inf)
        self._task: asyncio.Task | None = None
        manager.peers = self
        manager.add_listener(self._on_change)

    # --- which builds are this process's -----------------------------------------------
    def _on_change(self, what: str, build) -> None:
        if what == "created" and not build.done:
            self._local[build.id] = float("inf")
        elif what == "finished" and build.id in self._local:
            self._local[build.id] = time.monotonic()

    def _is_remote(self, record: BuildRecord) -> bool:
        return record.id not in self._local and self.manager.get(record.id) is None

    def _forget_old_local(self) -> None:
        cutoff = time.monotonic() - LOCAL_GRACE
        for build_id in [i for i, t in self._local.items() if t < cutoff]:
            del self._local[build_id]

    # --- what the manager asks ---------------------------------------------------------
    def builds_of(self, user: str) -> list[BuildRecord]:
        """`user`'s queued and running builds on other replicas, as last read."""
        return [r for r in self._snapshot.get(user, ()) if self._is_remote(r)]

    def running_by_user(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for user, records in self._snapshot.items():
            n = sum(1 for r in records if r.state == "running" and self._is_remote(r))
            if n:
                counts[user] = n
        return counts

    async def publish(self) -> None:
        """Write what this process has queued for the store now, waiting at most
        read_timeout: a new build is in the records (and counts on the other replicas)
        by the time its user is answered."""
        try:
            await self.store.flush(timeout=self.read_timeout)
        except StoreUnavailable:
            pass  # written when the database answers; until then the window is wider

    # --- reading -----------------------------------------------------------------------
    async def refresh_user(self, user: str) -> None:
        """Read `user`'s builds now, waiting at most read_timeout; on timeout or database
        trouble the last snapshot stands (the read still lands when it completes)."""
        read = self._inflight.get(user)
        if read is None:
            read = asyncio.ensure_future(self._read_user(user))
            self._inflight[user] = read
            read.add_done_callback(lambda _: self._inflight.pop(user, None))
        try:
            await asyncio.wait_for(asyncio.shield(read), self.read_timeout)
        except asyncio.TimeoutError:
            self.log.info(
                "Shared limits: no fresh count of %s's builds within %.1fs; using the last",
                user,
                self.read_timeout,
            )
        except StoreUnavailable:
            pass  # the store logs it; the last snapshot stands

    async def _read_user(self, user: str) -> None:
        began = time.monotonic()
        records, _ = await self.store.list(user=user, states=UNFINISHED_STATES, limit=MAX_PAGE)
        if began >= self._user_read.get(user, 0.0):
            self._user_read[user] = began
            self._apply({user: by_owner(records).get(user, [])})

    async def refresh(self) -> None:
        """Read every replica's unfinished builds (StoreUnavailable if the store fails)."""
        began = time.monotonic()
        grouped = by_owner(await self.store.unfinished())
        # A user read on demand after this read began is newer than it: keep that.
        fresh = {u for u, t in self._user_read.items() if t > began}
        update = {u: grouped.get(u, []) for u in (set(grouped) | set(self._snapshot)) - fresh}
        self._user_read = {u: t for u, t in self._user_read.items() if u in fresh}
        self._apply(update)
        self._forget_old_local()

    def _apply(self, update: dict[str, list[BuildRecord]]) -> None:
        before = self.running_by_user()
        for user, records in update.items():
            if records:
                self._snapshot[user] = records
            else:
                self._snapshot.pop(user, None)
        if self.running_by_user() != before:
            # Another replica's builds of some user ended (or started): a build of theirs
            # held back here may start now.
            self.manager.limits_changed()

    async def _refresher(self) -> None:
        while True:
            try:
                await self.refresh()
            except StoreUnavailable:
                pass  # the store logs it and probes; the last snapshot stands
            except Exception:
                self.log.exception("Shared limits: reading other replicas' builds failed")
            await asyncio.sleep(self.refresh_interval)

    async def start(self) -> None:
        self._task = asyncio.create_task(self._refresher(), name="shared-limits")

    async def stop(self) -> None:
        await cancel_and_wait(self._task, *self._inflight.values())
