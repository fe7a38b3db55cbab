"""Deleting build pods: at once (with retries; gone already is fine), or after a
linger, so that another replica following a finished pod can read the end of its log
before it goes. A deletion the API refuses (a Role without `delete` on pods) is told
once in the log and kept in `refused` for /health until a deletion works again."""

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
        # Pods whose deletion the API refused (401/403), and its latest message.
        self.refused: set[str] = set()
        self.refusal = ""

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
                self._deleted(name)
                return
            except ApiException as e:
                if e.status == 404:
                    self._deleted(name)
                    return
                if e.status in (401, 403):
                    self._refused(name, api_message(e))
                    return
                if not retryable(e.status):
                    self.log.warning("Deleting pod %s: %s", name, api_message(e))
                    return
                err: Any = e.status
            except (aiohttp.ClientError, asyncio.TimeoutError) as e:
                err = e
            self.log.warning("Deleting pod %s failed (%s); retrying", name, err)
            await asyncio.sleep(next(delays))

    def _refused(self, name: str, message: str) -> None:
        if not self.refused:
            # Once, not per pod: the reaper asks again every pass.
            self.log.error(
                "The Kubernetes API refuses to delete build pods (%s): they are left "
                "behind until the Role allows delete on pods",
                message,
            )
        self.refused.add(name)
        self.refusal = message

    def _deleted(self, name: str) -> None:
        self.refused.discard(name)
        if not self.refused and self.refusal:
            self.log.warning("Build pods can be deleted again")
            self.refusal = ""

    def forget_gone(self, present) -> None:
        """Pods no longer `present` (someone else deleted them) are left behind no more."""
        self.refused.intersection_update(present)
        if not self.refused:
            self.refusal = ""

    @property
    def problem(self) -> str:
        """Why pods are left behind ("" when none are)."""
        if not self.refused:
            return ""
        n = len(self.refused)
        return f"{n} build pod{'s' if n != 1 else ''} cannot be deleted: {self.refusal}"

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
