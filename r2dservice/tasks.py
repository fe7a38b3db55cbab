"""Stopping background tasks for good."""

from __future__ import annotations

import asyncio


async def cancel_and_wait(*tasks: asyncio.Future | None, retry: float = 0.05) -> None:
    """Cancel the tasks and wait until every one has ended.

    One cancel() is not always enough: on Python 3.10 and 3.11, asyncio.wait_for
    swallows a cancellation that arrives as its inner future finishes (CPython
    gh-86296), and the task goes on. A loop that went on so would hang the service's
    shutdown forever; so cancel again until it is done. Their results and errors are
    dropped: the caller is stopping them.
    """
    pending = {t for t in tasks if t is not None}
    while pending:
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=retry)
    for task in tasks:
        if task is not None and not task.cancelled():
            task.exception()  # retrieved: no "exception was never retrieved" at exit


async def within(aw, timeout: float | None):
    """`await aw` for at most `timeout` seconds (None: no limit), else TimeoutError: as
    asyncio.wait_for, but a cancellation of the caller always goes through.

    On Python 3.10 and 3.11, wait_for swallows a cancellation that arrives as its inner
    future finishes (CPython gh-86296): a build cancelled just as its pod's watch event
    came in went on following a pod that nobody would ever finish. Here the caller's
    cancel is raised whatever the inner future did, and a result it had is dropped.
    On a timeout the inner future is cancelled: a Queue.get() so stopped takes no item.
    """
    inner = asyncio.ensure_future(aw)
    try:
        done, _ = await asyncio.wait({inner}, timeout=timeout)
    except asyncio.CancelledError:
        inner.cancel()
        raise
    if not done:
        inner.cancel()
        raise asyncio.TimeoutError
    return inner.result()
