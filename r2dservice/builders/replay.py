"""Which events of a build's output, read again from its start, the build's record
holds already.

A service that restarts while a build pod runs adopts the pod and reads its log again
from the start: the log stays with the pod, but where this service had read to is
lost with the process. The record (restored with the build, ids as they were) holds
the events made from those lines; emitting them again would show every line twice,
under new ids. So each re-read event is matched against the record, in order: the
output's events are the same lines in the same order as before, and the record holds
them as a subsequence (interleaved with progress events of the service's own, which
the output never repeats). Matching walks the record forward only; the first re-read
event the rest of the record lacks is new, and so is everything after it.

A record past its byte limit lost its middle (one marker event stands for it, with
the count): re-read events past the head are counted off against the dropped middle,
then matched against the tail the same way.

Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from ..events import Event

_HEAD, _MIDDLE, _TAIL, _NEW = "head", "middle", "tail", "new"


def is_marker(event: Event) -> bool:
    """The event that stands for a bounded log's dropped middle (see eventlog.py)."""
    return "truncated" in event.extra


class LogReplay:
    """`seen(event)` for each event of the re-read output, in order: True for those the
    record holds already. `normalize` turns a re-read event into what the record would
    hold (the manager scrubs credentials before it records an event)."""

    def __init__(
        self,
        recorded: Iterable[tuple[int, Event]],
        normalize: Callable[[Event], Event] = lambda event: event,
    ):
        self.normalize = normalize
        self.head: list[Event] = []
        self.tail: list[Event] = []
        self.dropped = 0  # events the record lost between head and tail
        last_id = 0
        for event_id, event in recorded:
            gap = max(0, event_id - last_id - 1) + (1 if is_marker(event) else 0)
            last_id = max(last_id, event_id)
            if gap:
                if self.tail:
                    # A second gap: the tail so far joins the dropped middle (as in
                    # EventLog.restore).
                    self.dropped += len(self.tail)
                    self.tail.clear()
                # The marker stands at the gap's last id: it counts among the dropped.
                self.dropped += gap
                if is_marker(event):
                    continue
            (self.tail if self.dropped else self.head).append(event)
        self._state = _HEAD
        self._pos = 0  # in head or tail: the next recorded event to compare with
        self._counted = 0  # re-read events counted off against the dropped middle
        self.skipped = 0  # re-read events found in the record (for tests and logs)

    @property
    def caught_up(self) -> bool:
        """Past everything the record holds: every further event is new."""
        return self._state == _NEW

    def seen(self, event: Event) -> bool:
        if self._state == _NEW:
            return False
        event = self.normalize(event)
        if self._state == _HEAD:
            if self._find(self.head, event):
                return self._skip()
            if not self.dropped:
                self._state = _NEW
                return False
            self._state = _MIDDLE
        if self._state == _MIDDLE:
            self._counted += 1
            if self._counted >= self.dropped:
                self._state, self._pos = _TAIL, 0
            return self._skip()
        if self._find(self.tail, event):
            return self._skip()
        self._state = _NEW
        return False

    def _find(self, events: list[Event], event: Event) -> bool:
        for i in range(self._pos, len(events)):
            if events[i] == event:
                self._pos = i + 1
                return True
        return False

    def _skip(self) -> bool:
        self.skipped += 1
        return True
