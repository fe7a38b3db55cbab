"""Pure: a stored log's bound (head and tail kept, one marker between) and its compressed chunks."""

from __future__ import annotations

import json
import zlib
from collections.abc import Iterable

from ..eventlog import EVENT_OVERHEAD

HEAD_FRACTION = 0.25  # of max_log_bytes kept from a log's start, as in eventlog.py


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
