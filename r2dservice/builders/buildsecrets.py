"""The per-build credentials Secret: a build whose repository URL carried credentials
gets a Secret of its own, made before its pod (so that the container finds it when it
starts), owned by the pod once the pod exists (Kubernetes' garbage collector then
deletes it with the pod, whatever becomes of this service), deleted when the build
ends, and reaped when the service stopped between making it and handing it over."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable

import aiohttp

from .base import BuildRequest
from .kubeclient import api_message, request_timeout, retryable
from .objects import (
    ANNOTATION_PREFIX,
    BuildPodConfig,
    credentials_secret_name,
    make_credentials_secret,
    owner_reference,
    to_dict,
)
from .podwatch import backoff_delays

MERGE_PATCH = "application/merge-patch+json"


def orphaned_secrets(
    secrets: Iterable, in_use: Callable[[str], bool], now: float, grace: float
) -> list[str]:
    """Names of the build Secrets (kubernetes_asyncio V1Secret models) whose build is
    not `in_use` (no pod, nobody here building it) and that are older than `grace`."""
    doomed = []
    for secret in secrets:
        meta = secret.metadata
        build = (meta.annotations or {}).get(ANNOTATION_PREFIX + "build", "")
        created = meta.creation_timestamp.timestamp() if meta.creation_timestamp else now
        if in_use(build) or meta.deletion_timestamp:
            continue
        if now - created > grace:
            doomed.append(meta.name)
    return doomed


class BuildSecrets:
    """The credentials Secrets of build pods in `namespace`, through CoreV1Api `core`."""

    def __init__(self, core, namespace: str, log: logging.Logger):
        self.core = core
        self.namespace = namespace
        self.log = log

    async def put(self, request: BuildRequest, config: BuildPodConfig) -> None:
        """Create the build's credentials Secret, or (left by an earlier attempt, another
        replica or a previous pod of this name) give it these credentials and no owner,
        so that the old pod's deletion does not take it along. ApiException and client
        errors go to the caller (its retries)."""
        from kubernetes_asyncio.client.exceptions import ApiException

        body = to_dict(make_credentials_secret(request, config))
        timeout = request_timeout()
        try:
            await self.core.create_namespaced_secret(self.namespace, body, _request_timeout=timeout)
        except ApiException as e:
            if e.status != 409:
                raise
            await self.core.patch_namespaced_secret(
                body["metadata"]["name"],
                self.namespace,
                {"metadata": {"ownerReferences": None}, "data": body["data"]},
                _content_type=MERGE_PATCH,
                _request_timeout=timeout,
            )

    async def own(self, request: BuildRequest, uid: str, backoff_base: float) -> None:
        """Make the pod the owner of the build's Secret: Kubernetes' garbage collector
        deletes it with the pod, whatever becomes of this service."""
        from kubernetes_asyncio.client.exceptions import ApiException

        name = credentials_secret_name(request)
        patch = {"metadata": {"ownerReferences": [to_dict(owner_reference(request.name, uid))]}}
        delays = backoff_delays(backoff_base)
        for _attempt in range(3):
            try:
                await self.core.patch_namespaced_secret(
                    name,
                    self.namespace,
                    patch,
                    _content_type=MERGE_PATCH,
                    _request_timeout=request_timeout(),
                )
                return
            except ApiException as e:
                if e.status == 404:
                    return  # gone already (the pod started and another replica ended)
                if not retryable(e.status):
                    self.log.warning("Secret %s: %s", name, api_message(e))
                    return
            except (aiohttp.ClientError, asyncio.TimeoutError) as e:
                self.log.warning("Secret %s: %s", name, e)
            await asyncio.sleep(next(delays))
        # The reaper deletes it if this never works.

    async def delete(self, name: str) -> None:
        """Delete a build's Secret; gone already is fine; the reaper retries what fails."""
        from kubernetes_asyncio.client.exceptions import ApiException

        try:
            await self.core.delete_namespaced_secret(
                name, self.namespace, _request_timeout=request_timeout()
            )
            self.log.info("Deleted build secret %s", name)
        except ApiException as e:
            if e.status != 404:
                self.log.warning("Deleting secret %s: %s", name, api_message(e))
        except (aiohttp.ClientError, asyncio.TimeoutError) as e:
            self.log.warning("Deleting secret %s: %s", name, e)

    async def reap(
        self, label_selector: str, in_use: Callable[[str], bool], now: float, grace: float
    ) -> list[str]:
        """Delete build Secrets whose pod is gone: left when the service stopped between
        creating one and handing it to its pod (an owned one goes with its pod)."""
        from kubernetes_asyncio.client.exceptions import ApiException

        try:
            secrets = await self.core.list_namespaced_secret(
                self.namespace, label_selector=label_selector, _request_timeout=request_timeout()
            )
        except (ApiException, aiohttp.ClientError, asyncio.TimeoutError) as e:
            self.log.warning("Listing build secrets: %s", getattr(e, "reason", e))
            return []
        doomed = orphaned_secrets(secrets.items, in_use, now, grace)
        for name in doomed:
            self.log.info("Reaping build secret %s whose pod is gone", name)
            await self.delete(name)
        return doomed
