"""Stopping background loops: a cancellation that asyncio.wait_for swallows must not
hang the service's shutdown (what made test_app's SIGINT test time out now and then)."""

import asyncio
import sys

from r2dservice.tasks import cancel_and_wait, within


async def a_loop_like_ours(rounds: list):
    """A background loop whose every step waits for a thread's answer with a timeout,
    as the store's reads do, and that lets every error but cancellation pass."""
    loop = asyncio.get_running_loop()
    while True:
        answer = loop.create_future()
        loop.call_soon(answer.set_result, None)  # the thread answers...
        await asyncio.wait_for(answer, 10)
        rounds.append(1)
        await asyncio.sleep(0.01)


async def cancel_as_the_answer_arrives(task):
    await asyncio.sleep(0)  # the task now waits inside wait_for; its answer is on the way
    task.cancel()  # ...and the stop arrives in the same turn of the loop


async def test_one_cancel_can_be_swallowed_by_wait_for():
    """The race itself (CPython gh-86296, fixed in 3.12): on 3.10 and 3.11, cancel()
    once and the loop goes on, so a plain `await task` would hang."""
    rounds = []
    task = asyncio.create_task(a_loop_like_ours(rounds))
    await cancel_as_the_answer_arrives(task)
    done, _ = await asyncio.wait({task}, timeout=0.3)
    swallowed = sys.version_info < (3, 12)
    assert (not done and len(rounds) > 3) if swallowed else done
    await cancel_and_wait(task)


async def test_cancel_and_wait_ends_a_task_that_swallowed_a_cancel():
    rounds = []
    task = asyncio.create_task(a_loop_like_ours(rounds))
    await asyncio.sleep(0)
    await asyncio.wait_for(cancel_and_wait(task), 5)
    assert task.done()


async def test_cancel_and_wait_takes_none_finished_and_failed_tasks():
    async def fails():
        raise RuntimeError("boom")

    failed = asyncio.create_task(fails())
    finished = asyncio.create_task(asyncio.sleep(0))
    await asyncio.sleep(0.01)
    sleeper = asyncio.create_task(asyncio.sleep(60))
    await asyncio.wait_for(cancel_and_wait(None, failed, finished, sleeper), 5)
    assert sleeper.cancelled() and failed.done() and finished.done()


async def a_follower_like_ours(q: asyncio.Queue, wait, seen: list):
    """A build following its pod: each watch event from a queue, with a timeout."""
    while True:
        try:
            seen.append(await wait(q.get(), 10))
        except asyncio.TimeoutError:
            continue


async def cancel_as_an_event_arrives(wait) -> tuple[asyncio.Task, list]:
    q: asyncio.Queue = asyncio.Queue()
    seen: list = []
    task = asyncio.create_task(a_follower_like_ours(q, wait, seen))
    await asyncio.sleep(0)  # the follower waits for an event
    q.put_nowait("ADDED")  # the watch delivers one...
    await asyncio.sleep(0)  # ...its get() has it
    task.cancel()  # ...and the cancel comes in the same turn
    done, _ = await asyncio.wait({task}, timeout=0.3)
    return task, seen


async def test_a_build_cancelled_as_its_pods_event_arrives_stops():
    """What hung test_sticky_builds once: with wait_for the follower swallows the
    cancel (on 3.10 and 3.11) and waits for its pod forever; with within() it stops."""
    task, _ = await cancel_as_an_event_arrives(asyncio.wait_for)
    assert task.done() == (sys.version_info >= (3, 12))
    await cancel_and_wait(task)

    task, _ = await cancel_as_an_event_arrives(within)
    assert task.cancelled()


async def test_within_answers_times_out_and_leaves_queued_items():
    q: asyncio.Queue = asyncio.Queue()
    q.put_nowait(1)
    assert await within(q.get(), 1) == 1
    try:
        await within(q.get(), 0.05)
        raise AssertionError("no TimeoutError")
    except asyncio.TimeoutError:
        pass
    q.put_nowait(2)  # the timed-out get() took nothing
    assert await within(q.get(), 1) == 2
    assert await within(asyncio.sleep(0, "done"), None) == "done"
