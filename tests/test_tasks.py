"""Stopping background loops: a cancellation that asyncio.wait_for swallows must not
hang the service's shutdown (what made test_app's SIGINT test time out now and then)."""

import asyncio
import sys

from r2dservice.tasks import cancel_and_wait


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
