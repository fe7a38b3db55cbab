"""Adopting build pods found running when the service starts: which pods are builds
to follow (the request is read back from the pod's labels and annotations). Pure.

Following an adopted pod reads its log again from the start; replay.py keeps the lines
the build's record holds already from being emitted twice."""

from __future__ import annotations

from collections.abc import Iterable

from .base import BuildRequest
from .objects import is_finished, request_from_pod


def adoptable(pods: Iterable[dict]) -> list[BuildRequest]:
    """The requests of the build pods still running (or yet to start), not being
    deleted, and made by a service that knows how (see request_from_pod)."""
    adopted = []
    for pod in pods:
        if is_finished(pod) or pod["metadata"].get("deletionTimestamp"):
            continue
        request = request_from_pod(pod)
        if request is not None:
            adopted.append(request)
    return adopted
