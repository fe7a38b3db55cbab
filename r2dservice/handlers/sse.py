"""Stream a build's events as Server-Sent Events, with ids and keepalives."""

from __future__ import annotations

import asyncio

from tornado.iostream import StreamClosedError

from ..events import KEEPALIVE, Event, encode_sse
from ..metrics import VIEWERS

# The id of an event that belongs to no build's log (a refusal, a rejected spec):
# resuming after it means starting from a log's beginning.
OUTSIDE_BUILD = 0


def last_event_id(handler) -> int:
    """The id to resume after: the Last-Event-ID header (EventSource reconnects)
    or a `last_event_id` query argument (clients that cannot set headers)."""
    raw = handler.request.headers.get("Last-Event-ID") or handler.get_query_argument(
        "last_event_id", ""
    )
    try:
        return max(int(raw), 0)
    except ValueError:
        return 0


def start_sse(handler) -> None:
    handler.set_header("Content-Type", "text/event-stream")
    handler.set_header("Cache-Control", "no-cache")
    handler.set_header("X-Accel-Buffering", "no")  # nginx: do not buffer the stream


async def send_event(handler, event: Event, event_id: int | None = None) -> None:
    handler.write(encode_sse(event, event_id))
    await handler.flush()


async def stream_build(
    handler, build, after: int, keepalive: float, launch: bool = False, idle: float = 0
) -> bool:
    """Send the build's log after `after`, then live events, until its last event.
    False when the viewer went away (a viewer that goes away leaves the build running;
    nothing here owns it), or when nothing but keepalives went out for `idle` seconds
    (0: no limit): the stream ends, the build goes on, a reconnect resumes.

    `launch`: a launch follows, so the image's `ready` goes out as `built` (BinderHub's
    clients take `ready` for the server's, with its `url`), under the same id.
    """
    # Ids only grow, so an id past the end of this log came from another build of
    # the same image (a retry after a failure): send this build's log whole.
    i = after if after <= build.last_event_id else 0
    VIEWERS.inc()
    quiet = 0.0
    try:
        while True:
            frames = []
            for event_id, event in build.log.after(i):
                if launch and event.phase == "ready":
                    event = Event("built", "Found built image, launching...\n", event.extra)
                frames.append(encode_sse(event, event_id))
                i = event_id
            if frames:  # one write for a viewer's whole replay
                quiet = 0.0
                handler.write(b"".join(frames))
                await handler.flush()
            if build.done and i >= build.last_event_id:
                return True
            if not await build.wait(i, keepalive):
                quiet += keepalive
                if idle and quiet >= idle:
                    return False
                handler.write(KEEPALIVE)
                await handler.flush()
    except StreamClosedError:
        return False
    finally:
        VIEWERS.dec()


async def with_keepalives(handler, items, interval: float):
    """The items of an async iterator, with a keepalive written whenever none came for
    `interval` seconds (a server start can be quiet for minutes; proxies drop quiet
    streams)."""
    it = items.__aiter__()
    while True:
        step = asyncio.ensure_future(it.__anext__())
        while not (await asyncio.wait({step}, timeout=interval))[0]:
            handler.write(KEEPALIVE)
            await handler.flush()
        try:
            yield step.result()
        except StopAsyncIteration:
            return


async def stream_remote(handler, history, build, after: int, keepalive: float) -> None:
    """Like stream_build, for a build another replica runs: its events come from the
    build records as that replica writes them (within about a second)."""
    VIEWERS.inc()
    try:
        async for item in history.follow_remote(build, after, keepalive):
            handler.write(KEEPALIVE if item is None else encode_sse(item[1], item[0]))
            await handler.flush()
    except StreamClosedError:
        return
    finally:
        VIEWERS.dec()
