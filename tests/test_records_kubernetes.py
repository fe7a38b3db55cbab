"""Build records with the Kubernetes builder across a service restart: the adopted pod
keeps its build's id, event ids and log; a pod that ended while no service ran is
recorded failed. The stand-in API server is tests/fakes/kubeapi.py; the records are a
real sqlite file."""

from __future__ import annotations

import asyncio

from r2dservice.records import POD_GONE, Records
from r2dservice.store import BuildStore
from tests.test_kubernetes_builder import NS, kube, make_builder, make_manager, r2d  # noqa: F401


async def start_service(kube, db_url):
    """What R2DService.serve() does, without HTTP: store, records, manager, settle."""
    manager = make_manager(make_builder(kube))
    store = BuildStore(db_url=db_url)
    await store.start()
    records = Records(manager, store, builder="kubernetes", flush_interval=0.05)
    await records.start()
    await manager.start()
    await records.settle()
    return manager, records, store


async def stop_service(manager, records, store):
    await manager.stop()
    await records.stop()
    await store.close()


async def wait_for(predicate, timeout=10):
    for _ in range(int(timeout / 0.02)):
        if predicate():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("timed out")


async def test_an_adopted_build_keeps_its_id_and_log(kube, tmp_path):  # noqa: F811
    db = f"sqlite:///{tmp_path}/records.sqlite"
    manager, records, store = await start_service(kube, db)
    build = await manager.request("gh", "owner/repo/main", user="alice")
    name = build.request.name
    await kube.wait_for_pod(name, NS)
    kube.start_container(name, namespace=NS)
    kube.log(name, r2d("before restart\n"), namespace=NS)
    await wait_for(lambda: any("before restart" in e.message for e in build.events))
    before = [(i, e.phase, e.message) for i, e in build.log.after(0)]
    await stop_service(manager, records, store)  # the pod keeps building
    kube.log(name, r2d("during restart\n"), namespace=NS)

    manager, records, store = await start_service(kube, db)
    try:
        adopted = manager.active_build(build.image_name)
        assert adopted is not None and adopted.id == build.id
        assert adopted.requested_by("alice")
        # The events from before the restart, under their ids; then the new ones.
        again = [(i, e.phase, e.message) for i, e in adopted.log.after(0)]
        assert again[: len(before)] == before
        assert "Following the build again" in again[len(before)][2]
        # A viewer who reconnects with the last id it saw gets the rest.
        kube.log(name, r2d("after restart\n"), namespace=NS)
        kube.finish(name, 0, namespace=NS)
        rest = [(i, e) async for i, e in adopted.follow(before[-1][0])]
        assert rest[0][0] == before[-1][0] + 1
        messages = [e.message for _, e in rest]
        assert "during restart\n" in messages and "after restart\n" in messages
        assert rest[-1][1].phase == "ready"
        # Re-reading the pod's log from its start repeats nothing already recorded.
        whole = [e.message for _, e in adopted.log.after(0)]
        for line in ("before restart\n", "during restart\n", "after restart\n"):
            assert whole.count(line) == 1, (line, whole)
        await store.flush()
        record = await store.get(build.id)
        assert record.state == "ready" and record.last_event_id == adopted.last_event_id
        stored = await store.events(build.id)
        assert [i for i, _ in stored] == list(range(1, adopted.last_event_id + 1))
    finally:
        await stop_service(manager, records, store)


async def test_a_pod_that_ended_while_no_service_ran_is_recorded_failed(kube, tmp_path):  # noqa: F811
    db = f"sqlite:///{tmp_path}/records.sqlite"
    manager, records, store = await start_service(kube, db)
    build = await manager.request("gh", "owner/gone/main", user="alice")
    name = build.request.name
    await kube.wait_for_pod(name, NS)
    kube.start_container(name, namespace=NS)
    await wait_for(lambda: build.state == "running")
    await stop_service(manager, records, store)
    kube.delete_pod(name, namespace=NS)

    manager, records, store = await start_service(kube, db)
    try:
        assert manager.active_build(build.image_name) is None
        await store.flush()
        record = await store.get(build.id)
        assert record.state == "failed" and record.failure == POD_GONE
        stored = await store.events(build.id)
        assert stored[-1][0] == record.last_event_id and stored[-1][1]["phase"] == "failed"
    finally:
        await stop_service(manager, records, store)
