"""A small Server-Sent Events client for tests and benchmarks (aiohttp)."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field

import aiohttp


@dataclass
class Received:
    status: int = 0
    events: list[dict] = field(default_factory=list)  # data, with "_id" and "_t"
    ids: list[str] = field(default_factory=list)
    keepalives: int = 0
    headers: dict = field(default_factory=dict)

    @property
    def phases(self) -> list[str]:
        return [e["phase"] for e in self.events]

    @property
    def last(self) -> dict:
        return self.events[-1] if self.events else {}


async def read_events(
    session: aiohttp.ClientSession,
    url: str,
    headers: dict | None = None,
    stop_after: int | None = None,
    timeout: float = 600,
) -> Received:
    """Read events until the server ends the stream, a ready/failed event, or
    `stop_after` events (to simulate a viewer that goes away)."""
    out = Received()
    hdrs = {"Accept": "text/event-stream", **(headers or {})}
    async with session.get(url, headers=hdrs, timeout=aiohttp.ClientTimeout(total=timeout)) as r:
        out.status = r.status
        out.headers = dict(r.headers)
        event_id, data = None, []
        async for raw in r.content:
            line = raw.decode().rstrip("\n").rstrip("\r")
            if line.startswith(":"):
                out.keepalives += 1
            elif line.startswith("id:"):
                event_id = line[3:].strip()
            elif line.startswith("data:"):
                data.append(line[5:].strip())
            elif line == "" and data:
                event = json.loads("\n".join(data))
                event["_id"], event["_t"] = event_id, time.monotonic()
                out.events.append(event)
                out.ids.append(event_id)
                event_id, data = None, []
                if event.get("phase") in ("ready", "failed"):
                    break
                if stop_after and len(out.events) >= stop_after:
                    break
    return out
