"""Builds and the BuildManager: the one entry point every handler calls.

A Build is the state and the append-only event log of one image's build. The
BuildManager resolves a request, answers at once from the registry when it can,
and otherwise joins the active build of that image or queues a new one.
"""

from __future__ import annotations

import asyncio
import bisect
import functools
import logging
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import replace
from typing import Any
from urllib.parse import quote

from traitlets import Any as AnyTrait
from traitlets import Bool, Float, Instance, Integer, Unicode, default
from traitlets.config import LoggingConfigurable

from . import naming, policy
from .builders.base import Builder, BuildFailed, BuildRequest, make_build_request
from .builders.replay import LogReplay
from .eventlog import EventLog
from .events import Event, failed
from .metrics import REQUESTS
from .providers.base import ResolveError
from .registry import RegistryError
from .spec import SpecError, redact, redact_url

# Builds end in one of these states; "queued" and "running" come before.
FINISHED_STATES = frozenset({"ready", "failed", "cancelled"})

STOPPED_DURING = "The service stopped during this build. Request it again to build anew."


@functools.lru_cache(maxsize=1024)
def _request_for(image: str, resolved, push: bool) -> BuildRequest:
    """The request for a resolved repository (without its user), made once: splitting
    credentials and redacting are on the path of every cached answer and every joiner."""
    return make_build_request(
        image_name=image,
        repo_url=resolved.repo_url,
        ref=resolved.resolved_ref,
        provider=resolved.provider,
        spec=resolved.spec,
        push=push,
    )


def _described(build: Build) -> tuple[str, str, str]:
    """(spec, state, id) as the limits' refusal names a build."""
    r = build.request
    return f"{r.provider}/{redact(r.spec, r.repo_url)}", build.state, build.id


def _recorded(record) -> tuple[str, str, str]:
    """The same for a build record of another replica (its spec is redacted already)."""
    return f"{record.provider}/{record.spec}", record.state, record.id


def ready_fields(
    request: BuildRequest, ref_url: str = "", persistent_spec: str = ""
) -> dict[str, Any]:
    """BinderHub's extra fields of a `ready` event (besides imageName)."""
    pinned = f"v2/{request.provider}/{persistent_spec}" if persistent_spec else ""
    return {
        "repo_url": redact_url(request.repo_url),
        "binder_ref_url": ref_url,
        "binder_request": f"v2/{request.provider}/{request.spec}",
        "binder_persistent_request": pinned,
    }


def _scrubber(request: BuildRequest) -> Callable[[str], str]:
    """redact() for a build's messages: the clone URL's credentials, wherever a tool
    printed them, whatever URL they came with."""
    secrets = dict(line.split("=", 1) for line in request.credentials.splitlines() if "=" in line)
    user, password = secrets.get("username", ""), secrets.get("password", "")
    if not (user or password):
        return redact
    scheme, _, rest = request.repo_url.partition("://")
    with_secrets = f"{scheme}://{quote(user, safe='')}:{quote(password, safe='')}@{rest}"
    return lambda text: redact(text, with_secrets)


def _as_logged(event: Event, scrub: Callable[[str], str]) -> Event:
    """A builder's event as the build's log holds it: scrubbed, and never terminal
    (builders never end a build; the manager does)."""
    phase = "building" if event.terminal else event.phase
    extra = {k: scrub(v) if isinstance(v, str) else v for k, v in event.extra.items()}
    return Event(phase, scrub(event.message), extra)


class BuildRejected(Exception):
    """A request that cannot become a build; `status` is the HTTP status to answer."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.message = message
        self.status = status


class Build:
    """One build of one image: its state, who wants it, and its append-only event log.

    Event ids are 1, 2, 3, ... in the order of the log. Subscribers read the log from
    any id and wait for more; nothing is lost, however late they come (a log past its
    byte limit keeps its head and tail and says what it dropped; see eventlog.py).

    A build belongs to every user who requested it: each sees it and its log. A user's
    cancel withdraws only their own request; the build stops when nobody wants it.
    """

    def __init__(
        self,
        request: BuildRequest,
        ready_extra: dict[str, Any] | None = None,
        build_id: str | None = None,
        max_log_bytes: int = 0,
    ):
        self.id = build_id or uuid.uuid4().hex[:16]
        self.request = request
        self.ready_extra = ready_extra or {}
        self.state = "queued"
        self.log = EventLog(max_log_bytes)
        self.created = time.time()
        self.started: float | None = None
        self.finished: float | None = None
        self.cancelled_by: str | None = None
        self.cancel_reason = ""  # set when a cancel stops it; the running task ends soon
        self.requesters: dict[str, float] = {}  # user -> when they first asked
        self.withdrawn: set[str] = set()  # requesters who cancelled their request
        self.task: asyncio.Task | None = None
        self.remote = False  # recorded as running, but by another replica
        # A recorded build shown without its log (a listing) knows these from the record.
        self.recorded_last_id = 0
        self.recorded_message = ""
        # Per-user limits: does this build count against its first requester (the one
        # who made it; joiners are never charged), and where it sits in the fair queue.
        self.capped = False
        self.queue_key: tuple[int, int] = (0, 0)
        self._changed = asyncio.get_running_loop().create_future()
        self.add_requester(request.user)

    @classmethod
    def already_built(cls, request: BuildRequest, ready_extra: dict) -> Build:
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
        return self.log.last_id or self.recorded_last_id

    @property
    def events(self) -> list[Event]:
        """The log's events in order (the dropped middle of a long log as one marker)."""
        return list(self.log)

    # --- who wants it ---
    def add_requester(self, user: str) -> None:
        self.requesters.setdefault(user, time.time())
        self.withdrawn.discard(user)

    def requested_by(self, user: str) -> bool:
        return user in self.requesters

    @property
    def wanted_by(self) -> list[str]:
        """Requesters who have not withdrawn, in the order they asked."""
        return [u for u in self.requesters if u not in self.withdrawn]

    def visible_to(self, caller) -> bool:
        return caller.is_admin or caller.name in self.requesters

    # --- the log ---
    def ready_event_fields(self) -> dict[str, Any]:
        return {
            "imageName": self.image_name,
            "image": self.image_name,
            **self.ready_extra,
        }

    def emit(self, event: Event) -> int:
        """Append an event to the log and wake every subscriber. Returns its id."""
        event_id = self.log.append(event)
        waiters, self._changed = self._changed, asyncio.get_running_loop().create_future()
        waiters.set_result(None)
        return event_id

    async def wait(self, after: int, timeout: float | None = None) -> bool:
        """Wait until the log has events past `after` or the build is done.

        Returns False on timeout. asyncio.wait never cancels the shared future, so a
        subscriber that goes away does not disturb the others (and it costs less than
        wait_for + shield, on every viewer's every wake-up).
        """
        if self.log.last_id > after or self.done:
            return True
        done, _ = await asyncio.wait((self._changed,), timeout=timeout)
        return bool(done)

    async def follow(self, after: int = 0):
        """Yield (id, event) from `after` on, live, until the build's last event."""
        i = after
        while True:
            for event_id, event in self.log.after(i):
                i = event_id
                yield event_id, event
            if self.done and i >= self.log.last_id:
                return
            await self.wait(i)

    def summary(self) -> dict[str, Any]:
        """The build as the API shows it to an admin (handlers narrow `requested_by`)."""
        r = self.request
        last = self.log.last
        return {
            "id": self.id,
            "state": self.state,
            "image_name": r.image_name,
            "provider": r.provider,
            "spec": redact(r.spec, r.repo_url),
            "repo_url": redact_url(r.repo_url),
            "ref": r.ref,
            "user": r.user,
            "requested_by": list(self.requesters),
            "wanted_by": len(self.wanted_by),
            "created": self.created,
            "started": self.started,
            "finished": self.finished,
            "last_event_id": self.last_event_id,
            "message": last.message if last else self.recorded_message,
            "cancelled_by": self.cancelled_by,
        }


class BuildManager(LoggingConfigurable):
    """Resolve -> cache check -> join or queue -> run -> finish. One build per image."""

    concurrent_build_limit = Integer(
        4,
        help="""How many builds run at once. Further builds wait in a queue and their
        `waiting` events say their position. Builds adopted at start (Kubernetes pods
        still running from before a restart) count too. 0 means no limit.""",
    ).tag(config=True)
    max_queue_length = Integer(
        200,
        help="""How many builds may wait for a slot. Past that, new builds are refused
        with 503 (images that already exist are still served). 0 means no limit.""",
    ).tag(config=True)
    finished_build_retention = Float(
        900,
        help="""Seconds a finished build stays in memory, so that viewers who reconnect
        (Last-Event-ID) or arrive late still read its whole log.""",
    ).tag(config=True)
    max_log_bytes = Integer(
        4 * 1024 * 1024,
        help="""Bytes of messages one build's event log keeps in memory. Past it, the
        log keeps its first quarter and its newest lines and drops the middle, with one
        event that says what was dropped; event ids do not change, so resuming works.
        0 means no limit.""",
    ).tag(config=True)
    per_user_build_limit = Integer(
        2,
        help="""How many builds of one user run at once. Their further builds wait in the
        queue while other users' builds take the free slots. Joining a build that is
        already queued or running never counts against anyone. 0 means no limit.""",
    ).tag(config=True)
    per_user_queue_limit = Integer(
        10,
        help="""How many builds of one user may wait for a slot. Past it, a new build is
        refused with 429 and a message that lists the user's waiting builds (images
        that exist are still served, and joining a build is always allowed). 0 means
        no limit.""",
    ).tag(config=True)
    user_limits_for_admins = Bool(
        False,
        help="""Apply per_user_build_limit and per_user_queue_limit to administrators too
        (by default they are exempt). With auth off every caller is one anonymous
        administrator, and only concurrent_build_limit and max_queue_length apply.""",
    ).tag(config=True)
    # Set by the app from c.R2DService.image_prefix (not configurable here: one place).
    image_prefix = Unicode("r2d-")

    builder = Instance(Builder)
    # Duck-typed: anything with the Resolver's and ImageChecker's methods.
    resolver = AnyTrait()
    registry = AnyTrait()

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._active: dict[str, Build] = {}  # image name -> running or queued build
        self._builds: dict[str, Build] = {}  # build id -> build (active and recent)
        self._queue: list[Build] = []  # in fair-share order (policy.queue_key)
        self._arrivals = 0  # queue_key's tie-breaker: first come, first served
        self._running: set[Build] = set()
        self._listeners: list[Callable[[str, Build], Any]] = []
        self._stopping = False
        self._checks: dict[str, asyncio.Future] = {}  # image -> registry check in flight
        self._latest: dict[str, Build] = {}  # image name -> its newest build still in memory
        # The build records (records.Records) when a store keeps them: resume and
        # adoption read from it, and new builds wait while it cannot write.
        self.history = None
        # The other replicas' builds (sharedlimits.SharedLimits) when replicas share a
        # store: the per-user limits count them too.
        self.peers = None

    @default("log")
    def _log_default(self):
        return logging.getLogger("r2dservice")

    # --- observation -------------------------------------------------------
    def add_listener(self, listener: Callable[[str, Build], Any]) -> None:
        """`listener(what, build)`, what in {"created", "started", "requested",
        "withdrawn", "finished"}."""
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
            credentialed=resolved.credentialed,
        )

    async def _resolve(self, provider: str, spec: str):
        try:
            resolved = await self.resolver.resolve(provider, spec)
        except SpecError as e:
            raise BuildRejected(str(e), 400) from None
        except ResolveError as e:
            raise BuildRejected(str(e), getattr(e, "status", 404)) from None
        except Exception as e:  # a provider's bug must not become a bare 500 or a hang
            self.log.exception("Resolving %s/%s failed", provider, redact(spec))
            raise BuildRejected(
                f"Could not resolve {provider}/{redact(spec)} (internal error: {type(e).__name__}); "
                "try again, and tell the operator if it persists.",
                502,
            ) from None
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
            # The whole story for the operator; the caller's message names no server path.
            self.log.warning("Could not check whether %s exists: %s", image, e)
            raise BuildRejected(
                f"Could not check whether {image} exists: {e.public}", 503
            ) from None
        except Exception as e:  # a checker's bug must not become a bare 500 or a hang
            self.log.exception("Checking whether %s exists failed", image)
            raise BuildRejected(
                f"Could not check whether {image} exists (internal error: {type(e).__name__}); "
                "try again, and tell the operator if it persists.",
                503,
            ) from None

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

    async def request(self, provider: str, spec: str, **options) -> Build:
        """The build for `<provider>/<spec>`: already built, joined, or new. See submit()."""
        build, _ = await self.submit(provider, spec, **options)
        return build

    async def submit(
        self,
        provider: str,
        spec: str,
        *,
        user: str = "",
        may_build: bool = True,
        resume_after: int = 0,
        is_admin: bool = False,
    ) -> tuple[Build, str]:
        """(build, outcome) for `<provider>/<spec>`; outcome is "cached" (the image
        exists), "joined" (a build of it was running), "new", or "resumed".

        A new build counts against `user` under the per-user limits, unless they are
        anonymous (auth off) or an administrator (`is_admin`, unless
        user_limits_for_admins); a joined or resumed one counts against nobody.

        `resume_after` > 0 is a viewer reconnecting with Last-Event-ID: they get the
        rest of the newest build of that image they were watching, even one that
        failed, rather than a new build from event 1.

        Raises BuildRejected (bad spec, unknown ref, registry down, no permission to
        build, queue full, per-user limit) with a message for a person and an HTTP status.
        """
        try:
            capped = bool(user) and (not is_admin or self.user_limits_for_admins)
            build, outcome = await self._submit(
                provider, spec, user, may_build, resume_after, capped
            )
        except BuildRejected:
            self._count("rejected")
            raise
        self._count("joined" if outcome == "resumed" else outcome)
        return build, outcome

    def _count(self, result: str) -> None:
        REQUESTS.labels(result=result).inc()

    async def _submit(
        self, provider, spec, user, may_build, resume_after, capped
    ) -> tuple[Build, str]:
        resolved, image = await self._resolve(provider, spec)
        if resume_after:
            latest = self._latest.get(image)
            if latest is None and self.history is not None:
                try:
                    latest = await self.history.latest(image)  # from before a restart
                except Exception as e:  # records unavailable: go on as a fresh request
                    self.log.warning("No resume from the build records of %s: %s", image, e)
            if latest is not None and resume_after <= latest.last_event_id:
                if not latest.done:
                    latest.add_requester(user)  # they asked for this spec, as a joiner does
                    self._notify("requested", latest)
                return latest, "resumed"
        joined = self._join(image, user)
        if joined is not None:
            return joined, "joined"
        request = replace(_request_for(image, resolved, self.registry.pushes), user=user)
        ready_extra = ready_fields(request, resolved.ref_url, resolved.persistent_spec)
        if await self._exists(image):
            return Build.already_built(request, ready_extra), "cached"
        if capped and self.peers is not None:
            await self.peers.refresh_user(user)  # the user's builds on other replicas
        # Another request may have started this build while we asked the registry.
        joined = self._join(image, user)
        if joined is not None:
            return joined, "joined"
        if not may_build:
            raise BuildRejected(
                f"{image} has not been built yet, and you may not start builds.", 403
            )
        if self.history is not None and not self.history.accepting():
            reason = self.history.problem() or "the database does not answer"
            raise BuildRejected(
                f"New builds are paused: their records cannot be kept ({reason}). "
                "Images that exist are still served; try again in a few minutes.",
                503,
            )
        if self.max_queue_length and len(self._queue) >= self.max_queue_length:
            raise BuildRejected(
                f"Too many builds are waiting ({len(self._queue)}); try again in a few minutes.",
                503,
            )
        # No await from the checks above to _enqueue: two requests of one user at
        # their limit cannot both pass.
        if capped:
            self._check_user_limit(user)
        build = Build(request, ready_extra, max_log_bytes=self.max_log_bytes)
        build.capped = capped
        self._enqueue(build)
        if capped and self.peers is not None:
            # Recorded before the user hears of it: their next request counts it on
            # every replica (a request here while it is written is counted in memory).
            await self.peers.publish()
        return build, "new"

    def _owned_by(self, user: str, builds: Iterable[Build]) -> list[Build]:
        """The builds that count against `user`: made by them, not withdrawn by them."""
        return [b for b in builds if b.request.user == user and user not in b.withdrawn]

    def _check_user_limit(self, user: str) -> None:
        limit = self.per_user_queue_limit
        if not limit:
            return
        remote = self.peers.builds_of(user) if self.peers is not None else []
        waiting = [_described(b) for b in self._owned_by(user, self._queue)]
        waiting += [_recorded(r) for r in remote if r.state == "queued"]
        if len(waiting) < limit:
            return
        running = [_described(b) for b in self._owned_by(user, self._running)]
        running += [_recorded(r) for r in remote if r.state == "running"]
        raise BuildRejected(policy.queue_limit_refusal(limit, running, waiting), 429)

    def _join(self, image: str, user: str) -> Build | None:
        active = self._active.get(image)
        if active is not None and (not active.requested_by(user) or user in active.withdrawn):
            active.add_requester(user)
            self._notify("requested", active)  # only news is recorded
        return active

    # --- queue and run -----------------------------------------------------
    def _register(self, build: Build) -> None:
        self._active[build.image_name] = build
        self._latest[build.image_name] = build
        self._builds[build.id] = build
        self._notify("created", build)

    def _enqueue(self, build: Build) -> Build:
        self._register(build)
        user = build.request.user
        self._arrivals += 1
        elsewhere = len(self.peers.builds_of(user)) if self.peers is not None else 0
        build.queue_key = policy.queue_key(
            len(self._owned_by(user, self._running)),
            len(self._owned_by(user, self._queue)) + elsewhere,
            self._arrivals,
        )
        bisect.insort(self._queue, build, key=lambda b: b.queue_key)
        self.log.info(
            "Build %s of %s queued for %s",
            build.id,
            build.image_name,
            build.request.user or "anonymous",
        )
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
            i = policy.next_startable(
                ((b.request.user, b.capped) for b in self._queue),
                self._running_by_user(),
                self.per_user_build_limit,
            )
            if i < 0:  # every waiting build's user has their share running
                break
            build = self._queue.pop(i)
            self._start(build, self.builder.build)
            started = True
        if started:
            self._announce_positions()
        return started

    def _announce_positions(self) -> None:
        total = len(self._queue)
        running = self._running_by_user()
        cap = self.per_user_build_limit
        for position, build in enumerate(self._queue, 1):
            user = build.request.user
            held = (
                f" Whoever started it has {cap} builds running, the most one user may"
                " have at once: it waits for one of those to end."
                if build.capped and cap and running.get(user, 0) >= cap
                else ""
            )
            build.emit(
                Event(
                    "waiting",
                    f"Waiting for a build slot: position {position} of {total} in the queue, "
                    f"{len(self._running)} builds running.{held}\n",
                    {"position": position, "queue_length": total},
                )
            )

    def _running_by_user(self) -> dict[str, int]:
        running: dict[str, int] = {}
        for b in self._running:
            user = b.request.user
            if user not in b.withdrawn:  # as _owned_by: a withdrawn request is not charged
                running[user] = running.get(user, 0) + 1
        if self.peers is not None:  # and on the other replicas, as last read
            for user, n in self.peers.running_by_user().items():
                running[user] = running.get(user, 0) + n
        return running

    def limits_changed(self) -> None:
        """The other replicas' running builds changed: a build held back by its user's
        limit may start now."""
        if self._queue and not self._stopping:
            self._pump()

    def _start(self, build: Build, run, message: str = "Build starting...\n") -> None:
        build.state = "running"
        build.started = build.started or time.time()
        self._running.add(build)
        build.emit(Event("waiting", message, {"position": 0}))
        build.task = asyncio.create_task(self._run(build, run), name=f"build-{build.id}")
        # A task cancelled before its first step never runs _run's handlers: the
        # callback finishes the build whatever happened to the coroutine.
        build.task.add_done_callback(lambda task: self._task_done(build, task))
        self._notify("started", build)

    async def _run(self, build: Build, run) -> None:
        scrub = _scrubber(build.request)

        def emit(event: Event) -> None:
            build.emit(_as_logged(event, scrub))

        try:
            await run(build.request, emit)
        except BuildFailed as e:
            self._finish(build, "failed", failed(scrub(e.message)))
        except asyncio.CancelledError:
            if self._stopping and not self._detaching():
                self._finish(build, "failed", failed(STOPPED_DURING))
            elif not self._detaching():
                self._finish(build, "cancelled", self._cancelled_event(build))
            raise
        except Exception as e:
            self.log.exception("Build %s crashed", build.id)
            self._finish(
                build, "failed", failed(f"Build failed: internal error ({type(e).__name__}).")
            )
        else:
            build.emit(
                Event("built", "Built image, ready to launch.\n", {"imageName": build.image_name})
            )
            self._finish(
                build, "ready", Event("ready", "Done! Image built.\n", build.ready_event_fields())
            )

    def _detaching(self) -> bool:
        """Shutting down with a builder whose builds outlive us: leave them running
        for the next start to adopt."""
        return self._stopping and self.builder.survives_restart

    def _task_done(self, build: Build, task: asyncio.Task) -> None:
        if build.done or (task.cancelled() and self._detaching()):
            return
        if task.cancelled():
            self._finish(build, "cancelled", self._cancelled_event(build))
        else:
            self.log.error("Build %s ended without an outcome", build.id, exc_info=task.exception())
            self._finish(build, "failed", failed("Build failed: internal error."))

    @staticmethod
    def _cancelled_event(build: Build) -> Event:
        return failed(build.cancel_reason or "Build cancelled.", cancelled=True)

    def _finish(self, build: Build, state: str, event: Event) -> None:
        if build.done:
            return
        build.finished = time.time()
        build.state = state
        build.emit(event)
        self._running.discard(build)
        left_queue = build in self._queue
        if left_queue:
            self._queue.remove(build)
        if self._active.get(build.image_name) is build:
            del self._active[build.image_name]
        self.log.info(
            "Build %s of %s %s: %s", build.id, build.image_name, state, event.message.strip()
        )
        self._notify("finished", build)
        asyncio.get_running_loop().call_later(self.finished_build_retention, self._forget, build)
        if not self._pump() and left_queue:
            self._announce_positions()  # those behind it moved up

    def remember(self, build: Build) -> None:
        """Keep a finished answer (an image found in the registry) like a build, so that
        its id can be read back and it is recorded: a REST client gets a resource."""
        if build.id in self._builds:
            return
        self._builds[build.id] = build
        self._notify("created", build)
        self._notify("finished", build)
        asyncio.get_running_loop().call_later(self.finished_build_retention, self._forget, build)

    def _forget(self, build: Build) -> None:
        if self._builds.get(build.id) is build:
            del self._builds[build.id]
        if self._latest.get(build.image_name) is build:
            del self._latest[build.image_name]

    def cancel(self, build_id: str, by: str = "", *, for_all: bool = True) -> Build:
        """Cancel a queued or running build. Returns it; KeyError if unknown.

        `for_all` (an admin): stop it for everyone. Otherwise `by` withdraws their own
        request, and the build stops only when no requester still wants it.
        """
        build = self._builds[build_id]
        if build.done:
            return build
        if for_all:
            # The log is read by every requester: it names no one but an admin's role.
            reason = "Build cancelled by an administrator." if by else "Build cancelled."
        else:
            build.withdrawn.add(by)
            self._notify("withdrawn", build)
            if build.wanted_by:
                self.log.info(
                    "%s withdrew from build %s; %d still want it",
                    by or "anonymous",
                    build.id,
                    len(build.wanted_by),
                )
                return build
            reason = "Build cancelled: nobody who asked for it wants it any more."
        build.cancelled_by = by or None
        build.cancel_reason = reason
        if build.state == "queued":
            self._finish(build, "cancelled", self._cancelled_event(build))
        elif build.task is not None:
            build.task.cancel()
        return build

    # --- life cycle --------------------------------------------------------
    async def start(self) -> None:
        """Adopt builds the builder finds already running (after a restart)."""
        for request in await self.builder.start():
            build = await self.history.restore(request) if self.history is not None else None
            message = "Following the build again after a restart of the service.\n"
            follow = self.builder.follow
            if build is None:
                # The commit page and pinned spec are not in the pod; the rest is.
                build = Build(request, ready_fields(request), max_log_bytes=self.max_log_bytes)
                message = "Build starting...\n"
            elif build.log.last_id:
                # The builder reads the build's output again from its start: what the
                # record holds already is not logged twice.
                as_logged = functools.partial(_as_logged, scrub=_scrubber(request))
                replay = LogReplay(build.log.after(0), as_logged)
                follow = functools.partial(self.builder.follow, replay=replay)
            self._register(build)
            self._start(build, follow, message)
            self.log.info("Adopted running build %s of %s", request.name, request.image_name)

    async def stop(self, reason: str = "r2dservice is shutting down") -> None:
        """Stop queued builds, cancel running ones, and stop the builder."""
        self._stopping = True
        for build in list(self._queue):
            build.cancel_reason = f"Build cancelled: {reason}."
            self._finish(build, "cancelled", self._cancelled_event(build))
        await self.builder.stop()
        # Once each: a build's task cleans up when cancelled (kills repo2docker, records
        # the end), and a second cancel would cut that short.
        tasks = [b.task for b in self._running if b.task is not None]
        for t in tasks:
            t.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
