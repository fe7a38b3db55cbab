"""One watch of the build pods, shared by every build (like KubeSpawner's reflector.py).

List the pods, then watch from the list's resourceVersion; on 410 Gone list again; on
errors and dropped streams reconnect with backoff. Keeps the latest state of every
build pod in `pods` (raw JSON dicts: no model deserialization on the hot path) and
hands each change to the queues subscribed to that pod's name. Builds never talk to
the API to learn their pod's state, so N builds watched by M viewers cost one watch.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from typing import Any

import aiohttp

from ..tasks import cancel_and_wait

log = logging.getLogger(__name__)

# Added/modified pods arrive as (type, pod); a re-list that no longer finds a pod
# reports it as VANISHED: deleted while we were not watching, final state unknown.
VANISHED = "VANISHED"
# Put in every subscriber's queue as (REFUSED, {}) when the API has refused the watch
# (or the list) `refusals_to_deny` times in a row: builds stop waiting for news that
# will not come. `PodWatch.denied` says why.
REFUSED = "REFUSED"
# 401 (the token is no longer accepted) and 403 (RBAC says no): configuration, which
# retrying alone does not fix.
REFUSAL_STATUSES = frozenset({401, 403})


class WatchError(Exception):
    """The API answered the watch or list with an error."""

    def __init__(self, status: int, message: str):
        super().__init__(f"{status}: {message}")
        self.status = status
        self.message = message


class _Gone(Exception):
    """410: our resourceVersion is too old; list again."""


def backoff_delays(base: float = 0.5, cap: float = 30.0) -> Iterator[float]:
    """Exponential backoff with full jitter: many replicas reconnecting after an API
    outage do not come back in lockstep."""
    delay = base
    while True:
        yield random.uniform(base / 2, delay)
        delay = min(cap, delay * 2)


async def error_message(resp: aiohttp.ClientResponse) -> str:
    """The message of a Kubernetes Status body, or the start of whatever came back."""
    try:
        body = await resp.read()
    except aiohttp.ClientError:
        return resp.reason or ""
    try:
        return json.loads(body).get("message") or resp.reason or ""
    except (ValueError, AttributeError):
        return body[:200].decode(errors="replace") or resp.reason or ""


class PodWatch:
    """The shared list+watch of pods matching `label_selector` in `namespace`."""

    def __init__(
        self,
        api,  # kubernetes_asyncio CoreV1Api
        namespace: str,
        label_selector: str,
        *,
        timeout_seconds: int = 120,
        backoff_base: float = 0.5,
        backoff_cap: float = 30.0,
        refusals_to_deny: int = 3,
    ):
        self.api = api
        self.namespace = namespace
        self.label_selector = label_selector
        self.timeout_seconds = timeout_seconds
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.refusals_to_deny = refusals_to_deny
        # Refusals (401/403) in a row since the last watch that opened, and the API's
        # message of the latest: a Role that lost `watch` or `list` on pods while we run.
        self.refusals = 0
        self.refusal = ""
        self.pods: dict[str, dict] = {}
        self.resource_version: str | None = None
        # When the last successful list began (monotonic): a pod created before then
        # and absent from `pods` is gone, even if no event ever told us about it.
        self.listed_at = 0.0
        self._subscribers: dict[str, set[asyncio.Queue]] = defaultdict(set)
        self._listeners: list[Callable[[str, dict], None]] = []
        self._task: asyncio.Task | None = None
        self._resp: aiohttp.ClientResponse | None = None
        self._opened: aiohttp.ClientResponse | None = None  # start()'s first watch
        self._stream_events = 0
        # for tests and metrics
        self.lists = 0
        self.watches = 0
        self.errors = 0

    # --- consumers ---

    def subscribe(self, name: str) -> asyncio.Queue:
        """A queue receiving (type, pod) for every change of pod `name` from now on."""
        q: asyncio.Queue = asyncio.Queue()
        self._subscribers[name].add(q)
        return q

    def unsubscribe(self, name: str, q: asyncio.Queue) -> None:
        subs = self._subscribers.get(name)
        if subs is not None:
            subs.discard(q)
            if not subs:
                del self._subscribers[name]

    @property
    def denied(self) -> str:
        """Why the API refuses to tell us about the build pods (its message), once it
        has refused `refusals_to_deny` times in a row; "" while the watch works."""
        return self.refusal if self.refusals >= self.refusals_to_deny else ""

    def add_listener(self, callback: Callable[[str, dict], None]) -> None:
        """callback(type, pod) for every change of every pod (the reaper, node tracking)."""
        self._listeners.append(callback)

    # --- lifecycle ---

    async def start(self, timeout: float = 60) -> None:
        """List (retrying transient errors for up to `timeout` s), then watch in the background."""
        delays = backoff_delays(self.backoff_base, self.backoff_cap)
        deadline = time.monotonic() + timeout
        while True:
            try:
                await self._list()
                break
            except (WatchError, aiohttp.ClientError, asyncio.TimeoutError) as e:
                if isinstance(e, WatchError) and e.status < 500 and e.status != 429:
                    raise  # 401/403/404: configuration, not weather
                if time.monotonic() > deadline:
                    raise
                log.warning("Listing build pods failed (%s); retrying", e)
                await asyncio.sleep(next(delays))
        # The first watch opens here too: a Role without `watch` fails the start as one
        # without `list` does, instead of builds that never hear of their pods again.
        try:
            self._opened = await self._open_watch()
        except (WatchError, _Gone, aiohttp.ClientError, asyncio.TimeoutError) as e:
            self._close_stream()
            if isinstance(e, WatchError) and e.status < 500 and e.status != 429:
                raise
        self._task = asyncio.create_task(self._run(), name="r2dservice-podwatch")

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None
        self._close_stream()

    # --- the loop ---

    async def _run(self) -> None:
        delays = backoff_delays(self.backoff_base, self.backoff_cap)
        gone_in_a_row = 0
        while True:
            started = time.monotonic()
            self._stream_events = 0
            try:
                if self.resource_version is None:
                    await self._list()
                await self._watch_once()
                failed = False
            except _Gone:
                log.info("Build pod watch expired (410 Gone); listing again")
                self.resource_version = None
                gone_in_a_row += 1
                if gone_in_a_row > 3:  # a server that expires every fresh list: don't spin
                    await asyncio.sleep(next(delays))
                continue
            except asyncio.CancelledError:
                raise
            except Exception as e:  # noqa: BLE001 - the watch must outlive any one failure
                self.errors += 1
                failed = True
                error = f"{type(e).__name__}: {e}"
                if isinstance(e, WatchError) and e.status in REFUSAL_STATUSES:
                    self._refused(e)
            finally:
                self._close_stream()
            if self._stream_events or time.monotonic() - started > 5:
                # The stream worked for a while: whatever ended it, start backing off anew.
                delays = backoff_delays(self.backoff_base, self.backoff_cap)
                gone_in_a_row = 0
                if not failed:
                    continue  # a server-side timeout: reconnect at once
            delay = next(delays)
            if failed:
                log.warning("Build pod watch failed (%s); reconnecting in %.1fs", error, delay)
            # else: a stream that ended at once with nothing in it; don't spin.
            await asyncio.sleep(delay)

    async def _list(self) -> None:
        self.lists += 1
        started = time.monotonic()
        resp = await self.api.list_namespaced_pod(
            self.namespace,
            label_selector=self.label_selector,
            _preload_content=False,
            _request_timeout=aiohttp.ClientTimeout(total=60),
        )
        try:
            if resp.status != 200:
                raise WatchError(resp.status, await error_message(resp))
            body = await resp.json(content_type=None)
        finally:
            resp.release()
        fresh = {p["metadata"]["name"]: p for p in body.get("items") or ()}
        old = self.pods
        self.pods = fresh
        self.resource_version = body["metadata"]["resourceVersion"]
        self.listed_at = started
        # Tell subscribers what changed while we were not watching.
        for name, pod in fresh.items():
            before = old.get(name)
            if before is None:
                self._dispatch("ADDED", pod)
            elif before["metadata"].get("resourceVersion") != pod["metadata"].get(
                "resourceVersion"
            ):
                self._dispatch("MODIFIED", pod)
        for name, pod in old.items():
            if name not in fresh:
                self._dispatch(VANISHED, pod)

    async def _watch_once(self) -> int:
        """Follow one watch stream to its end; returns how many events it carried."""
        resp, self._opened = self._opened, None
        if resp is None:
            resp = await self._open_watch()
        while True:
            line = await resp.content.readline()
            if not line:
                return self._stream_events
            if not line.strip():
                continue
            self._stream_events += 1
            self._handle(json.loads(line))

    async def _open_watch(self) -> aiohttp.ClientResponse:
        """A watch stream from resource_version, its status checked (_close_stream()
        closes it)."""
        self.watches += 1
        self._resp = resp = await self.api.list_namespaced_pod(
            self.namespace,
            label_selector=self.label_selector,
            watch=True,
            resource_version=self.resource_version,
            allow_watch_bookmarks=True,
            timeout_seconds=self.timeout_seconds,
            _preload_content=False,
            # The server ends the stream after timeout_seconds; a read timeout a little
            # beyond it catches a connection that died without a FIN.
            _request_timeout=aiohttp.ClientTimeout(
                total=None, sock_connect=30, sock_read=self.timeout_seconds + 30
            ),
        )
        if resp.status == 410:
            raise _Gone()
        if resp.status != 200:
            raise WatchError(resp.status, await error_message(resp))
        if self.refusals:
            if self.denied:
                log.warning("Build pod watch works again")
            self.refusals = 0
            self.refusal = ""
        return resp

    def _refused(self, e: WatchError) -> None:
        """One more refusal in a row; at the threshold, tell every build once."""
        self.refusals += 1
        self.refusal = e.message or f"HTTP {e.status}"
        if self.refusals == self.refusals_to_deny:
            log.error(
                "The Kubernetes API refuses the build pod watch (%s); builds following "
                "their pods fail until it works again",
                self.refusal,
            )
            for queues in list(self._subscribers.values()):
                for q in queues:
                    q.put_nowait((REFUSED, {}))

    def _handle(self, event: dict[str, Any]) -> None:
        type_, obj = event.get("type"), event.get("object") or {}
        if type_ == "ERROR":
            if obj.get("code") == 410:
                raise _Gone()
            raise WatchError(obj.get("code") or 500, obj.get("message") or "watch error")
        rv = (obj.get("metadata") or {}).get("resourceVersion")
        if type_ == "BOOKMARK":
            if rv:
                self.resource_version = rv
            return
        name = obj["metadata"]["name"]
        if type_ == "DELETED":
            self.pods.pop(name, None)
        else:
            self.pods[name] = obj
        if rv:
            self.resource_version = rv
        self._dispatch(type_, obj)

    def _dispatch(self, type_: str, pod: dict) -> None:
        for q in self._subscribers.get(pod["metadata"]["name"], ()):
            q.put_nowait((type_, pod))
        for callback in self._listeners:
            try:
                callback(type_, pod)
            except Exception:
                log.exception("Pod watch listener failed")

    def _close_stream(self) -> None:
        self._opened = None
        if self._resp is not None:
            self._resp.close()
            self._resp = None
