"""Relaying one build pod to the build's events: its container's log (one log
follower per build) as repo2docker's events, its state as progress messages, each once."""

from __future__ import annotations

import asyncio
import logging

from ..events import Event
from .base import BuildRequest, Emit
from .podlogs import LogFollower
from .podoutcome import log_refused
from .replay import LogReplay
from .repo2docker import Repo2DockerOutput

log = logging.getLogger(__name__)


class Relay:
    """What one build remembers while it follows its pod. With `replay` (an adopted
    build whose record holds the start of its log), log lines already recorded are
    read again, to know the phase and the last error, but not emitted again."""

    def __init__(self, request: BuildRequest, emit: Emit, replay: LogReplay | None = None):
        self.request = request
        self.emit = emit
        self.replay = replay
        self.output = Repo2DockerOutput()
        self.last_state = ""
        self.stuck = ""
        self.stuck_since: float | None = None
        self.finished = asyncio.Event()
        self.logs: asyncio.Task | None = None

    @property
    def phase(self) -> str:
        return self.output.phase

    @property
    def last_error(self) -> str:
        return self.output.last_error

    @property
    def last_line(self) -> str:
        return self.output.last_line

    def emit_state(self, message: str) -> None:
        """A progress message, unless it says what the last one said."""
        if message and message != self.last_state:
            self.last_state = message
            self.emit(Event(self.phase, message + "\n"))

    def on_line(self, line: str) -> None:
        event = self.output.line(line)
        if event is None:
            return
        if self.replay is not None and self.replay.seen(event):
            return
        self.emit(event)

    def on_log_refused(self, reason: str) -> None:
        """The API refuses to show the log: the build says so (its outcome still comes
        from the pod's state)."""
        self.emit(Event(self.phase, log_refused(reason)))

    def failure_message(self) -> str:
        return self.output.failure_message()

    def start_logs(
        self,
        api_client,
        namespace: str,
        *,
        eof_grace: float,
        backoff_base: float,
        backoff_cap: float,
    ) -> None:
        """Follow the container's log, once (from its start) for the whole build."""
        follower = LogFollower(
            api_client,
            namespace,
            self.request.name,
            self.on_line,
            self.finished,
            eof_grace=eof_grace,
            backoff_base=backoff_base,
            backoff_cap=backoff_cap,
            on_refused=self.on_log_refused,
        )
        self.logs = asyncio.create_task(follower.run(), name=f"logs-{self.request.name}")

    async def drain_logs(self, timeout: float) -> None:
        """The container has ended: wait up to `timeout` for the rest of its log."""
        self.finished.set()
        if self.logs is None:
            return
        try:
            await asyncio.wait_for(asyncio.shield(self.logs), timeout)
        except asyncio.TimeoutError:
            pass
        except Exception:
            log.exception("Log follower of %s failed", self.request.name)

    async def stop_logs(self) -> None:
        if self.logs is not None and not self.logs.done():
            self.logs.cancel()
            try:
                await self.logs
            except (asyncio.CancelledError, Exception):  # noqa: BLE001
                pass
