"""Builds and the BuildManager: the one entry point every handler calls.

A Build is the state and the append-only event log of one image's build. The
BuildManager resolves a request, answers at once from the registry when it can,
and otherwise joins the active build of that image or queues a new one.
"""
from __future__ import annotations

import asyncio
import logging
import time
import uuid
from typing import Any, Callable, Iterable

from traitlets import Any as AnyTrait, Float, Instance, Integer, Unicode, default
from traitlets.config import LoggingConfigurable

from . import naming
from .builders.base import Builder, BuildFailed, BuildRequest
from .events import Event, failed
from .metrics import REQUESTS
from .providers.base import ResolveError
from .registry import RegistryError
from .spec import SpecError, redact, redact_url

# Builds end in one of these states; "queued" and "running" come before.
FINISHED_STATES = frozenset({"ready", "failed", "cancelled"})

def ready_fields(request: BuildRequest, ref_url: str = "", persistent_spec: str = "") -> dict[str, Any]:
    """BinderHub's extra fields of a `ready` event (besides imageName)."""
    pinned = f"v2/{request.provider}/{persistent_spec}" if persistent_spec else ""
    return {
        "repo_url": redact_url(request.repo_url),
        "binder_ref_url": ref_url,
        "binder_request": f"v2/{request.provider}/{request.spec}",
        "binder_persistent_request": pinned,
    }


class BuildRejected(Exception):
    """A request that cannot become a build; `status` is the HTTP status to answer."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.message = message
        self.status = status


class Build:
    """One build of one image: its state and its append-only event log.

    Event ids are 1, 2, 3, ... in the order of the log. Subscribers read the log from
    any id and wait for more; nothing is lost, however late they come.
    """

    def __init__(
        self,
        request: BuildRequest,
        ready_extra: dict[str, Any] | None = None,
        build_id: str | None = None,
    ):
        self.id = build_id or uuid.uuid4().hex[:16]
        self.request = request
        self.ready_extra = ready_extra or {}
        self.state = "queued"
        self.events: list[Event] = []
        self.created = time.time()
        self.started: float | None = None
        self.finished: float | None = None
        self.cancelled_by: str | None = None
        self.task: asyncio.Task | None = None
        self._changed = asyncio.get_running_loop().create_future()

    @classmethod
    def already_built(cls, request: BuildRequest, ready_extra: dict) -> "Build":
        """A finished pseudo-build for an image found in the registry: one `ready` event."""
        build = cls(request, ready_extra)
        build.state = "ready"
        build.started = build.finished = build.created
        build.emit(Event("ready", "Done! Found built image\n", build.ready_event_fields()))
        return build

    @property
    def image_name(self) -> str:
        return self.request.image_name

    @property
    def done(self) -> bool:
        return self.state in FINISHED_STATES

    @property
    def last_event_id(self) -> int:
        return len(self.events)

    def ready_event_fields(self) -> dict[str, Any]:
        return {
            "imageName": self.image_name,
            "image": self.image_name,
            **self.ready_extra,
        }

    def emit(self, event: Event) -> int:
        """Append an event to the log and wake every subscriber. Returns its id."""
        self.events.append(event)
        waiters, self._changed = self._changed, asyncio.get_running_loop().create_future()
        waiters.set_result(None)
        return len(self.events)

    async def wait(self, after: int, timeout: float | None = None) -> bool:
        """Wait until the log has events past `after` or the build is done.

        Returns False on timeout. Each waiter shields the shared future, so a
        subscriber that goes away does not disturb the others.
        """
        if len(self.events) > after or self.done:
            return True
        try:
            await asyncio.wait_for(asyncio.shield(self._changed), timeout)
        except asyncio.TimeoutError:
            return False
        return True

    async def follow(self, after: int = 0):
        """Yield (id, event) from `after` on, live, until the build's last event."""
        i = after
        while True:
            while i < len(self.events):
                i += 1
                yield i, self.events[i - 1]
            if self.done:
                return
            await self.wait(i)

    def summary(self) -> dict[str, Any]:
        r = self.request
        last = self.events[-1] if self.events else None
        return {
            "id": self.id,
            "state": self.state,
            "image_name": r.image_name,
            "provider": r.provider,
            "spec": r.spec,
            "repo_url": redact_url(r.repo_url),
            "ref": r.ref,
            "user": r.user,
            "created": self.created,
            "started": self.started,
            "finished": self.finished,
            "last_event_id": self.last_event_id,
            "message": last.message if last else "",
            "cancelled_by": self.cancelled_by,
        }


class BuildManager(LoggingConfigurable):
    """Resolve -> cache check -> join or queue -> run -> finish. One build per image."""

    concurrent_build_limit = Integer(
        4,
        config=True,
        help="""How many builds run at once. Further builds wait in a queue and their
        `waiting` events say their position. 0 means no limit.""",
    )
    max_queue_length = Integer(
        200,
        config=True,
        help="""How many builds may wait for a slot. Past that, new builds are refused
        with 503 (images that already exist are still served). 0 means no limit.""",
    )
    finished_build_retention = Float(
        900,
        config=True,
        help="""Seconds a finished build stays in memory, so that viewers who reconnect
        (Last-Event-ID) or arrive late still read its whole log.""",
    )
    image_prefix = Unicode(
        "r2d-",
        config=True,
        help="""Prefix of every image name, with a registry host and port when images
        are pushed (e.g. "registry.example.org:5000/binder/r2d-").""",
    )

    builder = Instance(Builder)
    # Duck-typed: anything with the Resolver's and ImageChecker's methods.
    resolver = AnyTrait()
    registry = AnyTrait()

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._active: dict[str, Build] = {}  # image name -> running or queued build
        self._builds: dict[str, Build] = {}  # build id -> build (active and recent)
        self._queue: list[Build] = []
        self._running: set[Build] = set()
        self._listeners: list[Callable[[str, Build], Any]] = []
        self._stopping = False
        self._checks: dict[str, asyncio.Future] = {}  # image -> registry check in flight

    @default("log")
    def _log_default(self):
        return logging.getLogger("r2dservice")

    # --- observation -------------------------------------------------------
    def add_listener(self, listener: Callable[[str, Build], Any]) -> None:
        """`listener(what, build)` with what in {"created", "started", "finished"}."""
        self._listeners.append(listener)

    def _notify(self, what: str, build: Build) -> None:
        for listener in self._listeners:
            try:
                listener(what, build)
            except Exception:
                self.log.exception("build listener failed on %s of %s", what, build.id)

    def get(self, build_id: str) -> Build | None:
        return self._builds.get(build_id)

    def builds(self) -> Iterable[Build]:
        return list(self._builds.values())

    def active_build(self, image_name: str) -> Build | None:
        return self._active.get(image_name)

    @property
    def queue_length(self) -> int:
        return len(self._queue)

    @property
    def running_count(self) -> int:
        return len(self._running)

    # --- the entry point ---------------------------------------------------
    def image_for(self, resolved) -> str:
        return naming.image_name(
            self.image_prefix,
            resolved.provider,
            resolved.repo,
            resolved.resolved_ref,
            self.builder.fingerprint(),
        )

    async def _resolve(self, provider: str, spec: str):
        try:
            resolved = await self.resolver.resolve(provider, spec)
        except SpecError as e:
            raise BuildRejected(str(e), 400) from None
        except ResolveError as e:
            raise BuildRejected(str(e), getattr(e, "status", 404)) from None
        return resolved, self.image_for(resolved)

    async def _exists(self, image: str) -> bool:
        """Ask the registry, once for all the requests that ask at the same time."""
        check = self._checks.get(image)
        if check is None:
            check = asyncio.ensure_future(self.registry.exists(image))
            self._checks[image] = check
            check.add_done_callback(lambda _: self._checks.pop(image, None))
        try:
            return await asyncio.shield(check)
        except RegistryError as e:
            raise BuildRejected(f"Could not check whether {image} exists: {e}", 503) from None

    async def lookup(self, provider: str, spec: str) -> dict[str, Any]:
        """What image `<provider>/<spec>` gives, and whether it exists; never builds."""
        resolved, image = await self._resolve(provider, spec)
        active = self._active.get(image)
        return {
            "image_name": image,
            "exists": await self._exists(image),
            "resolved_ref": resolved.resolved_ref,
            "repo_url": redact_url(resolved.repo_url),
            "build_id": active.id if active else None,
        }

    async def request(
        self, provider: str, spec: str, *, user: str = "", may_build: bool = True
    ) -> Build:
        """The build for `<provider>/<spec>`: already built, joined, or new.

        Raises BuildRejected (bad spec, unknown ref, registry down, no permission to
        build, queue full) with a message for a person and an HTTP status.
        """
        try:
            build = await self._request(provider, spec, user, may_build)
        except BuildRejected:
            self._count("rejected")
            raise
        return build

    def _count(self, result: str) -> None:
        REQUESTS.labels(result=result).inc()

    async def _request(self, provider, spec, user, may_build) -> Build:
        resolved, image = await self._resolve(provider, spec)
        active = self._active.get(image)
        if active is not None:
            self._count("joined")
            return active
        request = BuildRequest(
            name=naming.build_name(image),
            image_name=image,
            repo_url=resolved.repo_url,
            ref=resolved.resolved_ref,
            provider=resolved.provider,
            spec=resolved.spec,
            push=self.registry.pushes,
            user=user,
        )
        ready_extra = ready_fields(request, resolved.ref_url, resolved.persistent_spec)
        if await self._exists(image):
            self._count("cached")
            return Build.already_built(request, ready_extra)
        # Another request may have started this build while we asked the registry.
        active = self._active.get(image)
        if active is not None:
            self._count("joined")
            return active
        if not may_build:
            raise BuildRejected(
                f"{image} has not been built yet, and you may not start builds.", 403
            )
        if self.max_queue_length and len(self._queue) >= self.max_queue_length:
            raise BuildRejected(
                f"Too many builds are waiting ({len(self._queue)}); try again in a few minutes.",
                503,
            )
        self._count("new")
        return self._enqueue(Build(request, ready_extra))

    # --- queue and run -----------------------------------------------------
    def _register(self, build: Build) -> None:
        self._active[build.image_name] = build
        self._builds[build.id] = build
        self._notify("created", build)

    def _enqueue(self, build: Build) -> Build:
        self._register(build)
        self._queue.append(build)
        self.log.info("Build %s of %s queued for %s", build.id, build.image_name, build.request.user or "anonymous")
        self._pump()
        if build.state == "queued":
            self._announce_positions()
        return build

    def _has_slot(self) -> bool:
        return not self.concurrent_build_limit or len(self._running) < self.concurrent_build_limit

    def _pump(self) -> bool:
        """Start queued builds while there are slots; True if any started (then the
        queue positions are announced)."""
        started = False
        while self._queue and self._has_slot():
            build = self._queue.pop(0)
            self._start(build, self.builder.build)
            started = True
        if started:
            self._announce_positions()
        return started

    def _announce_positions(self) -> None:
        total = len(self._queue)
        for position, build in enumerate(self._queue, 1):
            build.emit(
                Event(
                    "waiting",
                    f"Waiting for a build slot: position {position} of {total} in the queue, "
                    f"{len(self._running)} builds running.\n",
                    {"position": position, "queue_length": total},
                )
            )

    def _start(self, build: Build, run) -> None:
        build.state = "running"
        build.started = time.time()
        self._running.add(build)
        build.emit(Event("waiting", "Build starting...\n", {"position": 0}))
        build.task = asyncio.create_task(self._run(build, run), name=f"build-{build.id}")
        self._notify("started", build)

    async def _run(self, build: Build, run) -> None:
        def emit(event: Event) -> None:
            if event.terminal:  # builders never end a build; we do
                event = Event("building", event.message, event.extra)
            url = build.request.repo_url
            extra = {k: redact(v, url) if isinstance(v, str) else v for k, v in event.extra.items()}
            build.emit(Event(event.phase, redact(event.message, url), extra))

        try:
            await run(build.request, emit)
        except BuildFailed as e:
            self._finish(build, "failed", failed(redact(e.message, build.request.repo_url)))
        except asyncio.CancelledError:
            if self._stopping and self.builder.survives_restart:
                return  # left running for the next start to adopt
            who = build.cancelled_by
            reason = f"Build cancelled by {who}." if who else "Build cancelled."
            self._finish(build, "cancelled", failed(reason, cancelled=True))
        except Exception as e:
            self.log.exception("Build %s crashed", build.id)
            self._finish(build, "failed", failed(f"Build failed: internal error ({type(e).__name__})."))
        else:
            build.emit(Event("built", "Built image, ready to launch.\n", {"imageName": build.image_name}))
            self._finish(
                build, "ready", Event("ready", "Done! Image built.\n", build.ready_event_fields())
            )

    def _finish(self, build: Build, state: str, event: Event) -> None:
        build.finished = time.time()
        build.state = state
        build.emit(event)
        self._running.discard(build)
        left_queue = build in self._queue
        if left_queue:
            self._queue.remove(build)
        if self._active.get(build.image_name) is build:
            del self._active[build.image_name]
        self.log.info("Build %s of %s %s: %s", build.id, build.image_name, state, event.message.strip())
        self._notify("finished", build)
        asyncio.get_running_loop().call_later(
            self.finished_build_retention, self._forget, build
        )
        if not self._pump() and left_queue:
            self._announce_positions()  # those behind it moved up

    def _forget(self, build: Build) -> None:
        if self._builds.get(build.id) is build:
            del self._builds[build.id]

    def cancel(self, build_id: str, by: str = "") -> Build:
        """Cancel a queued or running build. Returns it; KeyError if unknown."""
        build = self._builds[build_id]
        if build.done:
            return build
        build.cancelled_by = by or None
        if build.state == "queued":
            self._finish(build, "cancelled", failed(f"Build cancelled by {by}." if by else "Build cancelled.", cancelled=True))
        elif build.task is not None:
            build.task.cancel()
        return build

    # --- life cycle --------------------------------------------------------
    async def start(self) -> None:
        """Adopt builds the builder finds already running (after a restart)."""
        for request in await self.builder.start():
            # The commit page and pinned spec are not in the pod; the rest is.
            build = Build(request, ready_fields(request))
            self._register(build)
            self._start(build, self.builder.follow)
            self.log.info("Adopted running build %s of %s", request.name, request.image_name)

    async def stop(self, reason: str = "r2dservice is shutting down") -> None:
        """Stop queued builds, cancel running ones, and stop the builder."""
        self._stopping = True
        for build in list(self._queue):
            self._finish(build, "cancelled", failed(f"Build cancelled: {reason}.", cancelled=True))
        await self.builder.stop()
        tasks = [b.task for b in self._running if b.task is not None]
        for t in tasks:
            t.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
