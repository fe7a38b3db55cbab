"""An async check answered once for all who ask while it runs, and reused briefly."""

from __future__ import annotations

import asyncio
import time


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
