"""Which build pods the reaper deletes, and the loop that runs it. The decision is
pure (the shared watch's cache, no extra API reads); deleting is the caller's."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Container, Mapping

from .objects import is_finished, parse_time, terminated_state

TOO_OLD = "too old"
ORPHAN = "finished, nobody follows it"


def pods_to_reap(
    pods: Mapping[str, dict],
    following: Container[str],
    now: float,
    max_age: float,
    orphan_grace: float,
) -> list[tuple[str, str]]:
    """(name, why) of the build pods to delete: older than `max_age` (0: no limit),
    whoever made them; and finished pods nobody here follows, `orphan_grace` seconds
    after they ended (the service stopped before it could clean them up). Pods being
    deleted already are left alone."""
    doomed = []
    for name, pod in pods.items():
        meta = pod["metadata"]
        if meta.get("deletionTimestamp"):
            continue
        created = parse_time(meta.get("creationTimestamp")) or now
        if max_age and now - created > max_age:
            doomed.append((name, TOO_OLD))
            continue
        if is_finished(pod) and name not in following:
            ended = parse_time((terminated_state(pod) or {}).get("finishedAt")) or created
            if now - ended > orphan_grace:
                doomed.append((name, ORPHAN))
    return doomed


async def reap_every(
    interval: Callable[[], float], reap: Callable[[], Awaitable], log: logging.Logger
) -> None:
    """Run `reap` every `interval()` seconds until cancelled; a failed pass is logged."""
    while True:
        await asyncio.sleep(interval())
        try:
            await reap()
        except Exception:
            log.exception("Reaping build pods failed")
