"""Health and versions: reachable without login."""

from __future__ import annotations

import asyncio
import sys
import time

import tornado

from .._version import __version__
from .base import BaseHandler


class Shared:
    """An async check whose answer is reused for `ttl` seconds, and shared by the
    callers that ask while it runs: probes, however many, ask upstream at most once
    per `ttl`."""

    def __init__(self, check, ttl: float, clock=time.monotonic):
        self.check, self.ttl, self.clock = check, ttl, clock
        self._answer = None
        self._expires = 0.0
        self._running: asyncio.Future | None = None

    async def __call__(self):
        if self._answer is not None and self.clock() < self._expires:
            return self._answer
        if self._running is None:
            self._running = asyncio.ensure_future(self._run())
        # shield: a probe that gives up must not cancel the check for the others
        return await asyncio.shield(self._running)

    async def _run(self):
        try:
            answer = await self.check()
            if self.ttl > 0:
                self._answer, self._expires = answer, self.clock() + self.ttl
            return answer
        finally:
            self._running = None


class HealthHandler(BaseHandler):
    def check_xsrf_cookie(self):
        pass

    login = None  # reachable without a login

    async def get(self):
        """200 while the service can answer; 503 with the failing check otherwise.
        A check marked `critical: false` shows trouble without failing the whole."""
        checks = await self.settings["health_checks"]()
        ok = all(c["ok"] for c in checks if c.get("critical", True))
        self.write_json({"ok": ok, "checks": checks}, 200 if ok else 503)

    head = get


class VersionsHandler(BaseHandler):
    login = None  # reachable without a login

    def get(self):
        import repo2docker

        self.write_json(
            {
                "r2dservice": __version__,
                "builder": self.settings["builder_info"],
                "repo2docker": repo2docker.__version__,
                "python": sys.version.split()[0],
                "tornado": tornado.version,
            }
        )
