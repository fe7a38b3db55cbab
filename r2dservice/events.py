"""Build events and their Server-Sent Events encoding. Pure: no I/O."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

# The BinderHub event-stream phases, in the order a build passes through them.
PHASES = (
    "waiting",
    "fetching",
    "building",
    "pushing",
    "built",
    "launching",  # a launch starting the image in the caller's server (after `built`)
    "ready",
    "failed",
    "unknown",
)
TERMINAL_PHASES = frozenset({"ready", "failed"})
# What a build's own log may say; `launching` belongs to a launch, never to repo2docker.
BUILD_PHASES = frozenset(PHASES) - {"launching"}

KEEPALIVE = b":keepalive\n\n"


@dataclass(frozen=True)
class Event:
    """One event of a build: a phase, a human message, and extra JSON fields."""

    phase: str
    message: str = ""
    extra: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self):
        if self.phase not in PHASES:
            raise ValueError(f"unknown phase {self.phase!r}")

    @property
    def terminal(self) -> bool:
        return self.phase in TERMINAL_PHASES

    @cached_property
    def data(self) -> str:
        """The event as one line of JSON, made once: a build's events reach every viewer,
        and each new viewer replays the log so far (an event is never changed)."""
        return json.dumps(self.to_dict())

    def to_dict(self) -> dict[str, Any]:
        d = dict(self.extra)
        d["phase"] = self.phase
        d["message"] = self.message
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Event:
        d = dict(d)
        phase = d.pop("phase", "unknown")
        if phase not in PHASES:
            phase = "unknown"
        message = d.pop("message", "")
        return cls(phase, message if isinstance(message, str) else str(message), d)


def failed(message: str, **extra: Any) -> Event:
    if not message.endswith("\n"):
        message += "\n"
    return Event("failed", message, extra)


def encode_sse(event: Event, event_id: int | str | None = None) -> bytes:
    """One SSE frame. json.dumps escapes newlines, so `data:` is a single line."""
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}data: {event.data}\n\n".encode()


def parse_repo2docker_line(line: str, current_phase: str) -> tuple[Event, bool]:
    """Turn one line of repo2docker's --json-logs output into (Event, is_error).

    repo2docker leaves `phase` out of some lines (the first, for one); those carry
    the phase the build is in. A line that is not a JSON object is passed through as
    `unknown`, as BinderHub does. A line repo2docker marks `failed` is reported as
    is_error, not as a terminal event: the exit code decides how the build ends.
    """
    line = line.rstrip("\n")
    try:
        d = json.loads(line)
    except ValueError:
        d = None
    if not isinstance(d, dict):
        return Event("unknown", line + "\n"), False
    phase = d.get("phase") or current_phase
    is_error = phase == "failed"
    if phase in TERMINAL_PHASES or phase not in BUILD_PHASES:
        phase = current_phase if phase in TERMINAL_PHASES else "unknown"
    d["phase"] = phase
    d.setdefault("message", "")
    return Event.from_dict(d), is_error
