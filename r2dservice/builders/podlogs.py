"""Follow one build container's log to its end: one stream per build, whoever watches.

Streams break (API server restarts, proxies, idle timeouts). We ask for timestamps and,
on reconnect, for the log since the last line we delivered (`sinceTime`, which has
one-second precision on the wire), then drop what we already delivered by comparing
timestamps: nothing is lost and nothing repeats.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import re
from collections.abc import Callable

import aiohttp

from ..tasks import within
from .podwatch import backoff_delays, error_message
from .repo2docker import TRUNCATED

CHUNK = 64 * 1024
# Log lines longer than this (bytes, with the timestamp) are cut, with a marker.
MAX_LINE = 1024 * 1024

log = logging.getLogger(__name__)

_TS_RE = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?(Z|[+-]\d\d:\d\d)$")


def parse_timestamp(value: str) -> int | None:
    """Nanoseconds since the epoch from the kubelet's RFC3339Nano prefix (trailing
    zeros trimmed, so string comparison would be wrong)."""
    m = _TS_RE.match(value)
    if not m:
        return None
    zone = "+00:00" if m.group(3) == "Z" else m.group(3)
    secs = int(datetime.datetime.fromisoformat(m.group(1) + zone).timestamp())
    return secs * 1_000_000_000 + int((m.group(2) or "0").ljust(9, "0"))


def format_since(ns: int) -> str:
    """RFC3339 at whole seconds, rounded down, as sinceTime wants it."""
    dt = datetime.datetime.fromtimestamp(ns // 1_000_000_000, datetime.timezone.utc)
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ")


class LogFollower:
    """Delivers each line of a container's log once, in order, to `on_line` (text without
    the timestamp, with its newline). `run()` returns when the log has ended: the pod
    is gone (404), or `finished` is set and the stream reached its end, or the API
    refuses to show the log (401/403: `on_refused` gets its message, once)."""

    def __init__(
        self,
        api_client,  # kubernetes_asyncio ApiClient
        namespace: str,
        name: str,
        on_line: Callable[[str], None],
        finished: asyncio.Event,
        *,
        container: str = "builder",
        eof_grace: float = 2.0,
        backoff_base: float = 0.25,
        backoff_cap: float = 10.0,
        on_refused: Callable[[str], None] | None = None,
    ):
        self.api_client = api_client
        self.on_refused = on_refused
        self.namespace = namespace
        self.name = name
        self.container = container
        self.on_line = on_line
        self.finished = finished
        self.eof_grace = eof_grace
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.last_ts: int | None = None
        self.seen_at_last_ts = 0  # lines delivered that carry exactly last_ts
        self._skip = 0  # of those, how many the current stream will send again
        self._unreadable_after_end = 0
        self.max_line = MAX_LINE
        self.streams = 0  # how many requests it took (for tests and metrics)
        self.lines = 0

    async def run(self) -> None:
        delays = backoff_delays(self.backoff_base, self.backoff_cap)
        while True:
            self.streams += 1
            try:
                ended = await self._stream_once()
            except asyncio.CancelledError:
                raise
            except _Done:
                return
            except (aiohttp.ClientError, asyncio.TimeoutError, ValueError) as e:
                log.info(
                    "Log stream of %s broke (%s: %s); resuming", self.name, type(e).__name__, e
                )
                await asyncio.sleep(next(delays))
                continue
            if not ended:
                await asyncio.sleep(next(delays))
                continue
            # A clean end: the container ended (the watch will say so in a moment),
            # or a proxy closed an idle stream. Only the watch can tell which.
            if self.finished.is_set():
                return
            try:
                await within(self.finished.wait(), self.eof_grace)
                return
            except asyncio.TimeoutError:
                delays = backoff_delays(self.backoff_base, self.backoff_cap)

    async def _stream_once(self) -> bool:
        """One log request. True if it ended cleanly, False to retry (not yet readable)."""
        query = [("container", self.container), ("follow", "true"), ("timestamps", "true")]
        if self.last_ts is not None:
            query.append(("sinceTime", format_since(self.last_ts)))
        self._skip = self.seen_at_last_ts
        # The generated read_namespaced_pod_log lacks sinceTime: call the same endpoint
        # through the client's generic call_api (same auth, same session).
        resp = await self.api_client.call_api(
            "/api/v1/namespaces/{namespace}/pods/{name}/log",
            "GET",
            path_params={"namespace": self.namespace, "name": self.name},
            query_params=query,
            header_params={"Accept": "text/plain"},
            auth_settings=["BearerToken"],
            _preload_content=False,
            _request_timeout=aiohttp.ClientTimeout(total=None, sock_connect=30),
        )
        try:
            if resp.status == 404:
                raise _Done()  # the pod is gone: its log with it
            if resp.status == 400:
                # "container ... is waiting to start": the watch saw it start before
                # the kubelet serves its log, or it never will (the builder decides).
                log.debug("Log of %s not readable yet: %s", self.name, await error_message(resp))
                if self.finished.is_set():
                    self._unreadable_after_end += 1
                    if self._unreadable_after_end > 3:
                        raise _Done()  # it ended without ever starting: no log
                return False
            if resp.status in (401, 403):
                # RBAC without `get` on pods/log (or a token no longer accepted): asking
                # again will not help, and the build goes on without its log.
                message = await error_message(resp)
                log.warning("Log of %s: HTTP %s %s", self.name, resp.status, message)
                if self.on_refused is not None:
                    self.on_refused(message)
                raise _Done()
            if resp.status != 200:
                log.warning(
                    "Log of %s: HTTP %s %s", self.name, resp.status, await error_message(resp)
                )
                return False
            await self._read_lines(resp.content)
            return True
        finally:
            resp.close()

    async def _read_lines(self, content) -> None:
        """Deliver each line of the stream. A line longer than max_line is delivered cut,
        with a marker, and the rest of it dropped: never an error (which would resume
        from the same line, for ever), never unbounded memory."""
        buf = bytearray()
        skipping = False  # inside the rest of a line already delivered cut
        while True:
            chunk = await content.read(CHUNK)
            if not chunk:
                if buf and not skipping:
                    self._deliver(bytes(buf).decode("utf-8", errors="replace"))
                return
            buf += chunk
            while True:
                i = buf.find(b"\n")
                if i < 0:
                    if len(buf) > self.max_line:
                        if not skipping:
                            head = bytes(buf[: self.max_line]) + TRUNCATED.encode()
                            self._deliver(head.decode("utf-8", errors="replace"))
                            skipping = True
                        buf.clear()
                    break
                line = bytes(buf[: i + 1])
                del buf[: i + 1]
                if skipping:
                    skipping = False
                    continue
                if len(line) > self.max_line:
                    line = line[: self.max_line] + TRUNCATED.encode()
                self._deliver(line.decode("utf-8", errors="replace"))

    def _deliver(self, line: str) -> None:
        stamp, sep, text = line.partition(" ")
        ts = parse_timestamp(stamp) if sep else None
        if ts is None:
            # No timestamp to dedupe by: deliver as it is.
            self._emit(line)
            return
        if self.last_ts is not None:
            if ts < self.last_ts:
                return
            if ts == self.last_ts:
                if self._skip > 0:
                    self._skip -= 1
                    return
                self.seen_at_last_ts += 1
                self._emit(text)
                return
        self.last_ts = ts
        self.seen_at_last_ts = 1
        self._skip = 0
        self._emit(text)

    def _emit(self, text: str) -> None:
        if not text.endswith("\n"):
            text += "\n"
        self.lines += 1
        self.on_line(text)


class _Done(Exception):
    pass
