"""Creating a build's pod, or joining the one already there.

The pod is named after the image, so creating it twice (another replica, a restarted
service) finds it (409) and joins it: one build per image, however many ask. A pod of
that name on its way out is waited for; a failed one left by an earlier run is replaced.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping

import aiohttp

from ..events import Event
from ..tasks import within
from .base import BuildFailed, BuildRequest, Emit
from .buildsecrets import BuildSecrets
from .kubeclient import api_message, request_timeout, retryable
from .objects import BuildPodConfig, parse_time
from .poddelete import PodDeleter
from .podoutcome import is_failed
from .podwatch import PodWatch, backoff_delays


class PodCreator:
    """Creates build pods in `namespace`; the shared `watch` says what is there already."""

    def __init__(
        self,
        core,
        namespace: str,
        watch: PodWatch,
        secrets: BuildSecrets,
        deleter: PodDeleter,
        following: Mapping[str, int],  # pod name -> builds here following it
        log: logging.Logger,
    ):
        self.core = core
        self.namespace = namespace
        self.watch = watch
        self.secrets = secrets
        self.deleter = deleter
        self.following = following
        self.log = log

    async def create(
        self,
        request: BuildRequest,
        body: dict,
        config: BuildPodConfig,
        emit: Emit,
        q: asyncio.Queue,
        *,
        attempts: int = 5,
        backoff_base: float = 0.5,
    ) -> tuple[str | None, float]:
        """Create the pod `body`, or join the one of the same name.
        Returns (uid or None, created)."""
        from kubernetes_asyncio.client.exceptions import ApiException

        delays = backoff_delays(backoff_base)
        attempt = 0
        while True:
            attempt += 1
            try:
                if request.credentials:
                    # Before the pod, so that its container finds it when it starts.
                    await self.secrets.put(request, config)
                pod = await self.core.create_namespaced_pod(
                    self.namespace, body, _request_timeout=request_timeout()
                )
            except ApiException as e:
                if e.status == 409:
                    existing = self.watch.pods.get(request.name)
                    if existing and existing["metadata"].get("deletionTimestamp"):
                        # A previous build of this image is still being torn down.
                        await self.wait_deleted(request.name, q)
                        continue
                    if existing and is_failed(existing) and self.following.get(request.name) == 1:
                        # A failure left behind by an earlier run (the service stopped
                        # before deleting it): a new request deserves a new attempt.
                        self.log.info("Replacing failed build pod %s", request.name)
                        await self.deleter.delete(request.name, backoff_base)
                        await self.wait_deleted(request.name, q)
                        continue
                    uid = existing["metadata"].get("uid") if existing else None
                    if request.credentials and uid:
                        await self.secrets.own(request, uid, backoff_base)
                    emit(
                        Event(
                            "fetching", f"Joining the build already running in pod {request.name}\n"
                        )
                    )
                    created = (
                        parse_time(existing["metadata"].get("creationTimestamp"))
                        if existing
                        else None
                    )
                    return uid, created or time.time()
                if retryable(e.status) and attempt < attempts:
                    self.log.warning("Creating pod %s: HTTP %s; retrying", request.name, e.status)
                    await asyncio.sleep(next(delays))
                    continue
                raise BuildFailed(f"Could not create the build pod: {api_message(e)}\n") from None
            except (aiohttp.ClientError, asyncio.TimeoutError) as e:
                if attempt < attempts:
                    self.log.warning("Creating pod %s: %s; retrying", request.name, e)
                    await asyncio.sleep(next(delays))
                    continue
                raise BuildFailed(
                    f"Could not reach the Kubernetes API to create the build pod: {e}\n"
                ) from None
            if request.credentials:
                await self.secrets.own(request, pod.metadata.uid, backoff_base)
            self.log.info("Created build pod %s for %s", request.name, request.image_name)
            emit(Event("fetching", f"Build pod {request.name} created, waiting for it to start\n"))
            return pod.metadata.uid, time.time()

    async def wait_deleted(self, name: str, q: asyncio.Queue, timeout: float = 120) -> None:
        """Until the watch no longer has pod `name` (`q` is subscribed to it)."""
        deadline = time.monotonic() + timeout
        while name in self.watch.pods:
            left = deadline - time.monotonic()
            if left <= 0:
                raise BuildFailed(f"The previous build pod {name} is taking too long to go away.\n")
            try:
                await within(q.get(), min(left, 5))
            except asyncio.TimeoutError:
                pass
