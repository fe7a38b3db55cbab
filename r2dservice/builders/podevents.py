"""Why a pod does not start, from its Events (what `kubectl describe pod` shows).

A pod whose volume cannot be mounted (a node without the Docker socket, a Secret that is
not in the pod's namespace) or that no node takes says so only in Events: its container
just waits in ContainerCreating, or the pod in Pending, with no waiting reason. So a build
pod that has not started within the grace reads its Events, and a Warning as the latest
one (FailedMount, FailedScheduling, Failed...) is why. The read happens only for pods
that are late, so it costs nothing while builds start normally.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterable, Mapping
from typing import Any

import aiohttp

from .objects import parse_time

log = logging.getLogger(__name__)


def pod_event_selector(name: str, uid: str | None = None) -> str:
    """The fieldSelector of the Events about one pod (the uid tells apart an older pod
    of the same name)."""
    selector = f"involvedObject.kind=Pod,involvedObject.name={name}"
    return selector + (f",involvedObject.uid={uid}" if uid else "")


def _when(event: Mapping[str, Any]) -> tuple[float, int]:
    """When an Event last happened: lastTimestamp (core/v1 recorders, with `count`),
    else eventTime (events.k8s.io recorders), else its creation; resourceVersion breaks
    ties within a second."""
    meta = event.get("metadata") or {}
    series = (event.get("series") or {}).get("lastObservedTime")
    t = (
        parse_time(event.get("lastTimestamp"))
        or parse_time(series)
        or parse_time(event.get("eventTime"))
        or parse_time(meta.get("creationTimestamp"))
        or 0.0
    )
    try:
        rv = int(meta.get("resourceVersion") or 0)
    except ValueError:
        rv = 0
    return t, rv


def warning_reason(events: Iterable[Mapping[str, Any]]) -> str | None:
    """ "Reason: message" of the latest Event when it is a Warning, else None: a Normal
    event last (Pulling, Scheduled) means the pod is on its way, however slowly."""
    events = list(events)
    if not events:
        return None
    latest = max(events, key=_when)
    if latest.get("type") != "Warning":
        return None
    message = " ".join((latest.get("message") or "").split())
    count = latest.get("count") or (latest.get("series") or {}).get("count") or 1
    repeated = f" (seen {count} times)" if count > 1 else ""
    return f"{latest.get('reason') or 'Warning'}: {message}{repeated}".strip()


async def read_pod_events(core, namespace: str, name: str, uid: str | None) -> list[dict]:
    """The Events about pod `name` (raw JSON dicts); [] when they cannot be read, with a
    warning (the Role needs `list` on `events`)."""
    try:
        resp = await core.list_namespaced_event(
            namespace,
            field_selector=pod_event_selector(name, uid),
            _preload_content=False,
            _request_timeout=aiohttp.ClientTimeout(total=30),
        )
    except (aiohttp.ClientError, asyncio.TimeoutError) as e:
        log.warning("Reading the events of pod %s: %s", name, e)
        return []
    try:
        body = await resp.read()
        if resp.status != 200:
            log.warning(
                "Reading the events of pod %s: %s %s (the Role needs list on events)",
                name,
                resp.status,
                body[:200].decode(errors="replace"),
            )
            return []
    finally:
        resp.release()
    try:
        return list(json.loads(body).get("items") or ())
    except (ValueError, AttributeError):
        return []
