"""Deleting build pods: at once (with retries; gone already is fine), or after a
linger, so that another replica following a finished pod can read the end of its log
before it goes."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import aiohttp

from .kubeclient import api_message, request_timeout, retryable
from .podwatch import backoff_delays


class PodDeleter:
    """Deletes build pods in `namespace` through CoreV1Api `core`."""

    def __init__(self, core, namespace: str, log: logging.Logger):
        self.core = core
        self.namespace = namespace
        self.log = log
        self._lingering: dict[str, asyncio.Task] = {}  # pod name -> deletion after a linger

    async def delete(self, name: str, backoff_base: float = 0.5) -> None:
        """Delete a build pod; gone already is fine; the reaper retries what fails here."""
        from kubernetes_asyncio.client.exceptions import ApiException

        delays = backoff_delays(backoff_base)
        for _attempt in range(3):
            try:
                await self.core.delete_namespaced_pod(
                    name,
                    self.namespace,
                    propagation_policy="Background",
                    _request_timeout=request_timeout(),
                )
                self.log.info("Deleted build pod %s", name)
                return
            except ApiException as e:
                if e.status == 404:
                    return
                if not retryable(e.status):
                    self.log.warning("Deleting pod %s: %s", name, api_message(e))
                    return
                err: Any = e.status
            except (aiohttp.ClientError, asyncio.TimeoutError) as e:
                err = e
            self.log.warning("Deleting pod %s failed (%s); retrying", name, err)
            await asyncio.sleep(next(delays))

    def delete_later(self, name: str, linger: float, backoff_base: float = 0.5) -> None:
        """Delete the pod `linger` seconds from now (once, however often asked)."""

        async def linger_then_delete():
            try:
                await asyncio.sleep(linger)
            finally:
                # also when stop() cuts the linger short
                await self.delete(name, backoff_base)
                self._lingering.pop(name, None)

        if name not in self._lingering:
            self._lingering[name] = asyncio.create_task(linger_then_delete())

    async def stop(self) -> None:
        """Delete the pods waiting out their linger now."""
        pending = list(self._lingering.values())
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
