"""Following one build pod through the shared watch until its container ends, then
deciding how the build ended: success only on exit code 0; everything else fails with
a reason a person can read. A pod that does not start fails the build after the grace
(a waiting reason that does not clear, or a Warning in its Events); a build that takes
too long fails at its deadline; either way its pod is deleted."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from ..tasks import within
from .base import BuildFailed, BuildRequest, Emit
from .objects import is_finished, is_running, stuck_reason
from .poddelete import PodDeleter
from .podevents import read_pod_events, warning_reason
from .podoutcome import failure, not_started, state_message, timed_out, watch_refused
from .podrelay import Relay
from .podwatch import REFUSED, VANISHED, PodWatch
from .replay import LogReplay


@dataclass(frozen=True)
class FollowLimits:
    """The KubernetesBuilder settings one build follows its pod by (read when it starts)."""

    build_timeout: float = 0  # seconds; 0: none
    pending_grace: float = 300
    poll_interval: float = 5.0  # a build re-checks its deadlines this often without events
    events_interval: float = 15.0  # a late pod's Events are read at most this often
    log_drain_timeout: float = 30.0
    log_eof_grace: float = 2.0
    finished_pod_linger: float = 5.0
    backoff_base: float = 0.5
    backoff_cap: float = 30.0


class PodFollower:
    """Follows build pods in `namespace` (CoreV1Api `core`, ApiClient `api_client` for
    their logs) through the shared `watch`; deletes them with `deleter`."""

    def __init__(self, core, api_client, namespace: str, watch: PodWatch, deleter: PodDeleter):
        self.core = core
        self.api_client = api_client
        self.namespace = namespace
        self.watch = watch
        self.deleter = deleter

    async def follow(
        self,
        request: BuildRequest,
        emit: Emit,
        q: asyncio.Queue,
        uid: str | None,
        created: float,
        limits: FollowLimits,
        replay: LogReplay | None = None,
    ) -> None:
        """Follow the pod (`q` is subscribed to it) until its container ends; then decide.
        `created`: wall-clock time of the pod's creation; `uid`: the pod's, when known."""
        run = Relay(request, emit, replay)
        deadline = created + limits.build_timeout if limits.build_timeout else None
        # Past this (wall clock, like `created`), a pod that has not started is asked
        # why in its Events: FailedMount and FailedScheduling show nowhere else.
        late = created + limits.pending_grace
        events_read = 0.0  # monotonic time of the last read
        following_since = time.monotonic()
        pod = self.watch.pods.get(request.name)
        if pod is not None and uid not in (None, pod["metadata"].get("uid")):
            pod = None  # an older pod of the same name, on its way out
        deleted = False
        try:
            while True:
                if self.watch.denied:
                    # No news of the pod will come: fail now, not at build_timeout.
                    await self.deleter.delete(request.name, limits.backoff_base)
                    raise BuildFailed(watch_refused(self.watch.denied))
                if pod is not None:
                    uid = uid or pod["metadata"].get("uid")
                    if is_running(pod) and run.logs is None:
                        self._start_logs(run, limits)
                    if is_finished(pod) or deleted:
                        break
                    self._report_state(run, pod, limits)
                now = time.time()
                if deadline is not None and now >= deadline:
                    await self.deleter.delete(request.name, limits.backoff_base)
                    raise BuildFailed(timed_out(limits.build_timeout))
                if (
                    run.stuck_since is not None
                    and time.monotonic() - run.stuck_since > limits.pending_grace
                ):
                    await self.deleter.delete(request.name, limits.backoff_base)
                    raise BuildFailed(not_started(limits.pending_grace, run.stuck))
                # Not started and no waiting reason that says why (those have their
                # own clock above): only the Events can tell.
                waiting = (
                    pod is not None
                    and run.stuck_since is None
                    and not is_running(pod)
                    and not is_finished(pod)
                )
                if (
                    waiting
                    and now >= late
                    and time.monotonic() - events_read >= limits.events_interval
                ):
                    events_read = time.monotonic()
                    reason = warning_reason(
                        await read_pod_events(self.core, self.namespace, request.name, uid)
                    )
                    if reason:
                        await self.deleter.delete(request.name, limits.backoff_base)
                        raise BuildFailed(not_started(limits.pending_grace, reason))
                wait = (
                    limits.poll_interval
                    if deadline is None
                    else max(0.0, min(limits.poll_interval, deadline - now))
                )
                if waiting:
                    next_read = max(
                        late - now, events_read + limits.events_interval - time.monotonic()
                    )
                    wait = min(wait, max(0.0, next_read) + 0.01)
                if run.stuck_since is not None:
                    wait = min(
                        wait,
                        max(0.0, run.stuck_since + limits.pending_grace - time.monotonic()) + 0.01,
                    )
                try:
                    type_, event_pod = await within(q.get(), wait)
                except asyncio.TimeoutError:
                    if (
                        request.name not in self.watch.pods
                        and self.watch.listed_at > following_since
                    ):
                        # Created and deleted while the watch was re-listing: no event
                        # will ever come, but a list newer than the pod lacks it.
                        deleted = True
                        if pod is None:
                            raise BuildFailed(
                                f"The build pod {request.name} was deleted before it started.\n"
                            ) from None
                        break
                    continue
                if type_ == REFUSED:
                    continue  # the loop's top fails the build
                if uid is not None and event_pod["metadata"].get("uid") != uid:
                    continue  # another pod that had (or will have) this name
                pod = event_pod
                if type_ in ("DELETED", VANISHED):
                    deleted = True
            await self._finish(run, pod, deleted, limits)
        finally:
            await run.stop_logs()

    def _start_logs(self, run: Relay, limits: FollowLimits) -> None:
        run.start_logs(
            self.api_client,
            self.namespace,
            eof_grace=limits.log_eof_grace,
            backoff_base=limits.backoff_base / 2,
            backoff_cap=min(10.0, limits.backoff_cap),
        )

    def _report_state(self, run: Relay, pod: dict, limits: FollowLimits) -> None:
        reason = stuck_reason(pod)
        if reason:
            if run.stuck_since is None:
                run.stuck_since = time.monotonic()
            run.stuck = reason
        else:
            run.stuck_since = None
            run.stuck = ""
        run.emit_state(state_message(pod, reason, limits.pending_grace))

    async def _finish(self, run: Relay, pod: dict, deleted: bool, limits: FollowLimits) -> None:
        if is_running(pod) and run.logs is None:
            # It went from Pending to ended between two events: read the whole log now.
            self._start_logs(run, limits)
        await run.drain_logs(limits.log_drain_timeout)
        # We delete only after deciding, so a deletion seen before is someone else's.
        deleted = deleted or bool(pod["metadata"].get("deletionTimestamp"))
        if not deleted:
            self.deleter.delete_later(
                run.request.name, limits.finished_pod_linger, limits.backoff_base
            )
        why = failure(
            pod,
            deleted,
            build_timeout=limits.build_timeout,
            error=run.failure_message() if run.last_error else "",
            last_line=run.last_line,
        )
        if why is not None:
            raise BuildFailed(why)
