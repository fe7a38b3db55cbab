"""A build's event log: append-only, ids 1, 2, 3, ..., bounded in memory. Pure: no I/O.

A build that prints without end (a chatty test suite in postBuild, a loop) must not
take the service's memory with it. The log keeps its head (what repo2docker set out
to do) and its tail (how it ended) within `max_bytes`, and drops the middle. Ids never
change: a reader whose position was dropped gets one marker event saying what is
missing, under the id of the last dropped event, then the tail; resume ids stay valid.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator

from .events import Event

# Bytes an event costs besides its message (the object, its id, its extra fields).
EVENT_OVERHEAD = 200


def event_size(event: Event) -> int:
    return len(event.message) + EVENT_OVERHEAD


class EventLog:
    """Events with ids 1..last_id; the middle is dropped past `max_bytes` (0: no limit)."""

    def __init__(self, max_bytes: int = 0, head_fraction: float = 0.25):
        self.max_bytes = max_bytes
        self._head_budget = int(max_bytes * head_fraction)
        self._head: list[Event] = []
        self._head_bytes = 0
        self._tail: deque[Event] = deque()
        self._tail_bytes = 0
        self._dropped = 0  # events dropped between head and tail
        self._dropped_bytes = 0
        self._dropped_phase = "unknown"
        self.last_id = 0  # kept, not computed: every viewer reads it on every step

    # --- writing ---
    def append(self, event: Event) -> int:
        """Add an event; returns its id."""
        size = event_size(event)
        if not self.max_bytes or (
            not self._tail and not self._dropped and self._head_bytes + size <= self._head_budget
        ):
            self._head.append(event)
            self._head_bytes += size
            self.last_id += 1
            return self.last_id
        self._tail.append(event)
        self.last_id += 1
        self._tail_bytes += size
        # Keep at least the newest event, however large.
        while self._tail_bytes > self.max_bytes - self._head_bytes and len(self._tail) > 1:
            gone = self._tail.popleft()
            self._tail_bytes -= event_size(gone)
            self._dropped += 1
            self._dropped_bytes += len(gone.message)
            self._dropped_phase = gone.phase
        return self.last_id

    @classmethod
    def restore(cls, pairs, max_bytes: int = 0) -> EventLog:
        """A log rebuilt from stored (id, event) pairs in order, ids as they were.

        A stored log may have a gap: the middle a bounded log dropped (its marker
        stands at the gap's last id) or events that were never written (a crash
        between writes). Either way the gap becomes the dropped middle again.
        """
        log = cls(0)
        log.max_bytes = max_bytes
        for event_id, event in pairs:
            last_id = len(log._head) + log._dropped + len(log._tail)
            if event_id <= last_id:
                continue  # a repeat: ids only grow
            gap = event_id - last_id - 1
            marker = "truncated" in event.extra
            if gap or marker:
                if not log._dropped and not log._tail:
                    log._dropped = gap + (1 if marker else 0)
                else:  # a second gap: the tail so far joins the dropped middle
                    log._dropped += len(log._tail) + gap + (1 if marker else 0)
                    log._tail.clear()
                    log._tail_bytes = 0
                if marker:
                    counts = event.extra.get("truncated") or {}
                    log._dropped_bytes = (
                        int(counts.get("bytes", 0)) if isinstance(counts, dict) else 0
                    )
                    log._dropped_phase = event.phase
                    continue
            if log._dropped:
                log._tail.append(event)
                log._tail_bytes += event_size(event)
            else:
                log._head.append(event)
                log._head_bytes += event_size(event)
        log.last_id = len(log._head) + log._dropped + len(log._tail)
        return log

    # --- reading ---
    def __len__(self) -> int:
        return self.last_id

    @property
    def dropped(self) -> int:
        return self._dropped

    @property
    def last(self) -> Event | None:
        if self._tail:
            return self._tail[-1]
        return self._head[-1] if self._head else None

    def marker(self) -> Event:
        """The event that stands for the dropped middle."""
        return Event(
            self._dropped_phase,
            f"[r2dservice: {self._dropped} log lines ({self._dropped_bytes} bytes) were dropped "
            f"here to keep this build's log within {self.max_bytes} bytes]\n",
            {"truncated": {"events": self._dropped, "bytes": self._dropped_bytes}},
        )

    def after(self, after: int) -> list[tuple[int, Event]]:
        """(id, event) for every id past `after`; the dropped middle is one marker."""
        if not self._tail and not self._dropped:
            # Nothing dropped (nearly every build): a slice, on every viewer's hot path.
            head = self._head
            after = max(after, 0)
            return list(zip(range(after + 1, len(head) + 1), head[after:], strict=True))
        return list(self.iter_after(after))

    def iter_after(self, after: int) -> Iterator[tuple[int, Event]]:
        head_end = len(self._head)
        tail_start = head_end + self._dropped  # the id before the first tail event
        after = max(after, 0)
        for i in range(after, head_end):
            yield i + 1, self._head[i]
        if self._dropped and after < tail_start:
            yield tail_start, self.marker()
        skip = max(after - tail_start, 0)
        for n, event in enumerate(self._tail):
            if n >= skip:
                yield tail_start + n + 1, event

    def __iter__(self) -> Iterator[Event]:
        for _, event in self.iter_after(0):
            yield event

    def text(self) -> str:
        """Every message, in order (the dropped middle as its marker)."""
        return "".join(event.message for event in self)
