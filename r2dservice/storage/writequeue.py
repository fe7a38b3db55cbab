"""Pure: the writes waiting for the writer, in order; no I/O, no clock, no event loop.

A save not yet in flight takes the newest state of its build in place (one row write for many
changes); a whole-log replace drops the appends it supersedes; past a bound on the events held,
the oldest log batches go first. Ops at the queue's left are "in flight" between take_batch()
and finish_batch(): they are not changed or dropped meanwhile.
"""

from __future__ import annotations

from collections import deque
from typing import Any


class Op:
    __slots__ = ("kind", "build_id", "payload", "seq")

    def __init__(self, kind: str, build_id: str, payload: Any, seq: int):
        self.kind = kind  # "save" | "append" | "replace"
        self.build_id = build_id
        self.payload = payload  # a BuildRecord copy, or a list of (id, event)
        self.seq = seq

    @property
    def n_events(self) -> int:
        return len(self.payload) if self.kind != "save" else 0


class WriteQueue:
    def __init__(self):
        self.ops: deque[Op] = deque()
        self.inflight = 0  # ops at the queue's left being written now
        self.pending_saves: dict[str, Op] = {}  # build id -> its queued (not in flight) save
        self.pending_events = 0
        self.seq = 0  # of the newest queued op
        self.done_seq = 0  # every op up to this one is written (or dropped)

    def __len__(self) -> int:
        return len(self.ops)

    def save(self, build_id: str, record: Any) -> None:
        op = self.pending_saves.get(build_id)
        if op is not None:
            op.payload = record  # the newest state replaces a save not yet written
            return
        self.pending_saves[build_id] = self._enqueue("save", build_id, record)

    def append(self, build_id: str, events: list) -> None:
        self._enqueue("append", build_id, events)

    def replace(self, build_id: str, events: list) -> None:
        for op in self._waiting_ops():
            if op.build_id == build_id and op.kind in ("append", "replace"):
                self._drop(op)  # superseded
        self._enqueue("replace", build_id, events)

    def shed(self, max_events: int) -> int:
        """Past max_events, drop the oldest waiting log batches; how many events went."""
        if self.pending_events <= max_events:
            return 0
        dropped = 0
        for kind in ("append", "replace"):  # appends first: a replace holds a whole log
            for op in self._waiting_ops()[:-1]:  # never the op just queued
                if self.pending_events <= max_events:
                    break
                if op.kind == kind:
                    self._drop(op)
                    dropped += op.n_events
        return dropped

    def take_batch(self, limit: int) -> list[Op]:
        """Up to `limit` ops at the queue's left (in flight until finish_batch)."""
        batch = list(self.ops)[:limit]
        # a log in this batch whose build's save waits behind the cut: bring the save along
        for build_id in {op.build_id for op in batch if op.kind != "save"}:
            save = self.pending_saves.get(build_id)
            if save is not None and save.seq > batch[-1].seq:
                self.ops.remove(save)
                self.ops.insert(len(batch), save)
                batch.append(save)
        self.inflight = len(batch)
        for op in batch:
            if self.pending_saves.get(op.build_id) is op:
                del self.pending_saves[op.build_id]
        return batch

    def finish_batch(self, batch: list[Op], done: set[Op]) -> None:
        """The batch is back: `done` leaves the queue, the rest waits again at its front."""
        for _ in batch:
            self.ops.popleft()
        left = [op for op in batch if op not in done]
        self.ops.extendleft(reversed(left))
        self.pending_events -= sum(op.n_events for op in done)
        self.inflight = 0
        # ops not written go back to waiting; a newer save of the same build may follow them
        for op in left:
            if op.kind == "save" and op.build_id not in self.pending_saves:
                self.pending_saves[op.build_id] = op
        # everything older than the oldest op still queued is written or was dropped
        oldest = min((op.seq for op in self.ops), default=self.seq + 1)
        self.done_seq = max(self.done_seq, oldest - 1)

    def _enqueue(self, kind: str, build_id: str, payload: Any) -> Op:
        self.seq += 1
        op = Op(kind, build_id, payload, self.seq)
        self.ops.append(op)
        self.pending_events += op.n_events
        return op

    def _waiting_ops(self) -> list[Op]:
        """Queued ops not in flight (which may still be changed or dropped)."""
        return [op for n, op in enumerate(self.ops) if n >= self.inflight]

    def _drop(self, op: Op) -> None:
        self.ops.remove(op)
        self.pending_events -= op.n_events
