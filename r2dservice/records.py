"""Build records: every build the BuildManager runs is written to the BuildStore, and
the history the API reads joins live builds (in memory) with recorded ones.

One class, `Records`, has the three jobs that need both the manager and the store:
writing (a listener on the manager plus a short periodic pass for new log events),
reading (get/list/events for the handlers, as Build objects whether live or not), and
restart (builds a stopped or crashed service left unfinished). `MemoryHistory` is the
same reading interface without a store (`c.R2DService.db_url = ""`).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time

from .builders.base import BuildRequest
from .builds import STOPPED_DURING, Build, BuildManager, ready_fields
from .eventlog import EventLog
from .events import Event, failed
from .store import BuildRecord, BuildStore
from .tasks import cancel_and_wait

log = logging.getLogger("r2dservice")


STOPPED_BEFORE = "The service stopped before this build started. Request it again."
POD_GONE = (
    "The service was not running when this build's pod ended, so its outcome is unknown. "
    "Request it again: an image that was pushed is found at once."
)


def this_process() -> str:
    """The handle of builds that live and die with this process (the local builder)."""
    return f"{socket.gethostname()}:{os.getpid()}"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def record_of(build: Build, builder: str, handle: str) -> BuildRecord:
    r = build.request
    last = build.log.last
    return BuildRecord(
        id=build.id,
        image_name=r.image_name,
        provider=r.provider,
        spec=build.summary()["spec"],
        repo_url=build.summary()["repo_url"],
        ref=r.ref,
        builder=builder,
        handle=handle,
        state=build.state,
        failure=last.message.strip() if build.state in ("failed", "cancelled") and last else "",
        requested=build.created,
        started=build.started,
        finished=build.finished,
        last_event_id=build.last_event_id,
        requesters=dict(build.requesters),
        withdrawn=set(build.withdrawn),
        cancelled_by=build.cancelled_by,
    )


def build_of(record: BuildRecord, pairs=(), max_log_bytes: int = 0) -> Build:
    """A Build object for a recorded build (to show, stream or adopt it)."""
    request = BuildRequest(
        name=record.handle if record.handle and ":" not in record.handle else "",
        image_name=record.image_name,
        repo_url=record.repo_url,
        ref=record.ref,
        provider=record.provider,
        spec=record.spec,
        user=next(iter(record.requesters), ""),
    )
    build = Build(request, ready_fields(request), build_id=record.id, max_log_bytes=max_log_bytes)
    build.requesters = dict(record.requesters)
    build.withdrawn = set(record.withdrawn)
    build.state = record.state
    build.created = record.requested
    build.started = record.started
    build.finished = record.finished
    build.cancelled_by = record.cancelled_by
    build.log = EventLog.restore([(i, Event.from_dict(d)) for i, d in pairs], max_log_bytes)
    build.recorded_last_id = record.last_event_id
    if record.failure:
        build.recorded_message = record.failure + "\n"
    elif record.state == "ready":
        build.recorded_message = "Done! Image built.\n"
    return build


class MemoryHistory:
    """The history without a store: what the BuildManager holds in memory."""

    def __init__(self, manager: BuildManager):
        self.manager = manager

    def accepting(self) -> bool:
        return True

    def problem(self) -> str:
        """Why new builds are not accepted ("" when they are)."""
        return ""

    async def get(self, build_id: str) -> Build | None:
        return self.manager.get(build_id)

    async def list(
        self, *, user, states=(), spec="", image="", since=None, until=None, cursor=None, limit=50
    ) -> tuple[list[Build], str | None]:
        builds = [
            b for b in self.manager.builds() if _matches(b, user, states, spec, image, since, until)
        ]
        builds.sort(key=lambda b: (b.created, b.id), reverse=True)
        start = int(cursor) if cursor and cursor.isdigit() else 0
        page = builds[start : start + limit]
        more = start + limit < len(builds)
        return page, (str(start + limit) if more else None)

    async def load_log(self, build: Build) -> Build:
        return build

    async def latest(self, image_name: str) -> Build | None:
        return None

    async def restore(self, request: BuildRequest) -> Build | None:
        return None

    async def ready_images(self, repository: str, limit: int = 5) -> list[str]:
        """Images of `repository` ("<prefix><slug>", an image name without its tag)
        from ready builds, newest first (warm rebuilds take their cache from them)."""
        builds = [
            b
            for b in self.manager.builds()
            if b.state == "ready" and b.image_name.rpartition(":")[0] == repository
        ]
        builds.sort(key=lambda b: b.finished or b.created, reverse=True)
        return list(dict.fromkeys(b.image_name for b in builds))[:limit]

    async def follow_remote(self, build: Build, after: int, keepalive: float):
        return
        yield  # an async generator that yields nothing


def _matches(build: Build, user, states, spec, image, since, until) -> bool:
    return (
        (user is None or user in build.requesters)
        and (not states or build.state in states)
        and (not spec or spec in f"{build.request.provider}/{build.request.spec}")
        and (not image or build.image_name == image)
        and (since is None or build.created >= since)
        and (until is None or build.created < until)
    )


class Records(MemoryHistory):
    """Writes builds to the store and reads them back, live or recorded."""

    def __init__(
        self,
        manager: BuildManager,
        store: BuildStore,
        *,
        builder: str,
        flush_interval: float = 0.5,
        remote_poll: float = 1.0,
    ):
        super().__init__(manager)
        self.store = store
        self.builder = builder
        self.flush_interval = flush_interval
        self.remote_poll = remote_poll
        self._written: dict[str, int] = {}  # build id -> last event id handed to the store
        self._handles: dict[str, str] = {}  # build id -> handle
        self._task: asyncio.Task | None = None
        self._unfinished: dict[str, BuildRecord] = {}
        manager.history = self
        manager.add_listener(self._on_change)

    # --- writing ----------------------------------------------------------------------
    def accepting(self) -> bool:
        return self.store.healthy

    def problem(self) -> str:
        return self.store.problem

    def _handle(self, build: Build) -> str:
        handle = self._handles.get(build.id)
        if handle is None:
            survives = self.manager.builder.survives_restart
            handle = build.request.name if survives else this_process()
            self._handles[build.id] = handle
        return handle

    def _on_change(self, what: str, build: Build) -> None:
        """Listener: a build was created, started, (re)requested, withdrawn or finished."""
        self._write_events(build)
        if what == "finished":
            # The whole bounded log, exactly as viewers saw it, replaces the chunks.
            self.store.replace_events(build.id, [(i, e.to_dict()) for i, e in build.log.after(0)])
            self._written.pop(build.id, None)
        self.store.save(record_of(build, self.builder, self._handle(build)))
        if what == "finished":
            self._handles.pop(build.id, None)

    def _write_events(self, build: Build) -> bool:
        """Queue the build's events the store has not had yet; True if there were any."""
        after = self._written.get(build.id, 0)
        if build.last_event_id <= after:
            return False
        pairs = [(i, e.to_dict()) for i, e in build.log.after(after)]
        if pairs:
            self.store.append_events(build.id, pairs)
        self._written[build.id] = build.last_event_id
        return bool(pairs)

    async def _writer(self) -> None:
        """New log events of running builds reach the store within flush_interval, with
        the record's last_event_id (what listings and other replicas' viewers read)."""
        while True:
            await asyncio.sleep(self.flush_interval)
            for build in self.manager.builds():
                if not build.done and self._write_events(build):
                    self.store.save(record_of(build, self.builder, self._handle(build)))

    async def start(self) -> None:
        """Before the manager starts: remember what a previous run left unfinished."""
        self._unfinished = {r.id: r for r in await self.store.unfinished()}
        self._task = asyncio.create_task(self._writer(), name="records-writer")

    async def settle(self) -> None:
        """After the manager adopted what still runs: close what nothing runs any more."""
        adopted = {b.id for b in self.manager.builds()}
        me_host = socket.gethostname()
        for record in self._unfinished.values():
            if record.id in adopted:
                continue
            if record.builder != self.builder:
                continue  # another kind of service shares this database
            if self.manager.builder.survives_restart:
                message = POD_GONE
            else:
                host, _, pid = record.handle.rpartition(":")
                if host != me_host:
                    continue  # another replica's: it closes its own
                if pid.isdigit() and int(pid) != os.getpid() and _pid_alive(int(pid)):
                    continue  # another live service process on this host
                message = STOPPED_BEFORE if record.state == "queued" else STOPPED_DURING
            await self._close_record(record, message)
        self._unfinished.clear()
        await self.store.flush(timeout=self.store.timeout)

    async def _close_record(self, record: BuildRecord, message: str) -> None:
        event = failed(message)
        # Events may have been written after the record's last save: count them too.
        stored = await self.store.events(record.id, record.last_event_id)
        record.last_event_id = max([record.last_event_id, *(i for i, _ in stored)]) + 1
        self.store.append_events(record.id, [(record.last_event_id, event.to_dict())])
        record.state = "failed"
        record.failure = message
        record.finished = time.time()
        self.store.save(record)
        log.info("Build %s of %s recorded failed: %s", record.id, record.image_name, message)

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        for build in self.manager.builds():
            self._write_events(build)
            if not build.done:
                self.store.save(record_of(build, self.builder, self._handle(build)))

    # --- restart ----------------------------------------------------------------------
    async def restore(self, request: BuildRequest) -> Build | None:
        """The recorded build an adopted pod belongs to, with its id and log."""
        for record in self._unfinished.values():
            if record.handle == request.name and record.image_name == request.image_name:
                pairs = await self.store.events(record.id)
                build = build_of(record, pairs, self.manager.max_log_bytes)
                build.request = request
                build.ready_extra = ready_fields(request)
                build.state = "queued"  # the manager starts it
                self._written[build.id] = build.last_event_id
                self._handles[build.id] = request.name
                return build
        return None

    # --- reading ----------------------------------------------------------------------
    async def get(self, build_id: str) -> Build | None:
        live = self.manager.get(build_id)
        if live is not None:
            return live
        await self.store.flush(timeout=self.store.timeout)  # read what this process wrote
        record = await self.store.get(build_id)
        return self._view(record) if record is not None else None

    def _view(self, record: BuildRecord) -> Build:
        build = build_of(record, (), self.manager.max_log_bytes)
        # Running, but not here: another replica (or a restart in progress) has it.
        build.remote = not build.done
        build.record = record  # its log is still in the store: load_log() reads it
        return build

    async def list(
        self, *, user, states=(), spec="", image="", since=None, until=None, cursor=None, limit=50
    ) -> tuple[list[Build], str | None]:
        # What this process queued (a build created a moment ago) lands first.
        await self.store.flush(timeout=self.store.timeout)
        records, next_cursor = await self.store.list(
            user=user,
            states=set(states),
            spec=spec,
            image=image,
            since=since,
            until=until,
            cursor=cursor,
            limit=limit,
        )
        return [self.manager.get(r.id) or self._view(r) for r in records], next_cursor

    async def load_log(self, build: Build) -> Build:
        """The build with its whole log (a recorded build's comes from the store)."""
        record = getattr(build, "record", None)
        if record is None:  # live: its log is in memory
            return build
        pairs = await self.store.events(build.id)
        loaded = build_of(record, pairs, self.manager.max_log_bytes)
        loaded.remote = build.remote
        return loaded

    async def latest(self, image_name: str) -> Build | None:
        """The newest recorded build of an image (a reconnect after a restart)."""
        await self.store.flush(timeout=self.store.timeout)
        records, _ = await self.store.list(image=image_name, limit=1)
        if not records:
            return None
        return await self.load_log(self._view(records[0]))

    async def ready_images(self, repository: str, limit: int = 5) -> list[str]:
        await self.store.flush(timeout=self.store.timeout)
        records, _ = await self.store.list(
            states={"ready"}, image_repository=repository, limit=limit
        )
        return list(dict.fromkeys(r.image_name for r in records))

    async def follow_remote(self, build: Build, after: int, keepalive: float):
        """(id, event) of a build another replica runs, polled from the store, until its
        last event; None now and then (a keepalive is due)."""
        i = after
        quiet = 0.0
        while True:
            pairs = await self.store.events(build.id, i)
            for event_id, data in pairs:
                i = event_id
                yield event_id, Event.from_dict(data)
            record = await self.store.get(build.id)
            if record is None or (
                record.state in ("ready", "failed", "cancelled") and i >= record.last_event_id
            ):
                return
            if pairs:
                quiet = 0.0
            else:
                quiet += self.remote_poll
                if quiet >= keepalive:
                    quiet = 0.0
                    yield None
            await asyncio.sleep(self.remote_poll)
