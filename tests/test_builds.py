"""The BuildManager with stand-in resolver, registry and builder: queueing, dedupe,
fan-out, cancel, resume. The real parts are exercised end to end in test_local_e2e."""

import asyncio

import pytest

from r2dservice.builders.base import Builder, BuildFailed
from r2dservice.builds import BuildManager, BuildRejected
from r2dservice.events import Event
from r2dservice.providers.base import ResolvedRepo, ResolveError
from r2dservice.registry import ImageChecker, RegistryError
from r2dservice.spec import SpecError


class StubResolver:
    def __init__(self):
        self.calls = 0

    async def resolve(self, provider, spec):
        self.calls += 1
        if spec.startswith("bad"):
            raise SpecError("bad spec: expected owner/repo/ref")
        if spec.endswith("/missing"):
            raise ResolveError("ref 'missing' not found", status=404)
        owner_repo, _, ref = spec.rpartition("/")
        return ResolvedRepo(
            provider=provider,
            spec=spec,
            repo=owner_repo,
            repo_url=f"https://user:secret@example.org/{owner_repo}",
            ref=ref,
            resolved_ref=(ref * 40)[:40],
            ref_url=f"https://example.org/{owner_repo}/tree/{ref}",
        )

    def describe(self):
        return []


class StubRegistry(ImageChecker):
    pushes = True

    def __init__(self, **kw):
        super().__init__(**kw)
        self.images = set()
        self.broken = False

    async def exists(self, image_name):
        await asyncio.sleep(0)
        if self.broken:
            raise RegistryError("registry unreachable")
        return image_name in self.images


class GatedBuilder(Builder):
    """Each build waits for its gate; then succeeds, or fails if told to."""

    def __init__(self, registry, **kw):
        super().__init__(**kw)
        self.registry = registry
        self.gates: dict[str, asyncio.Event] = {}
        self.started: list[str] = []
        self.fail: dict[str, str] = {}
        self.cancelled: list[str] = []

    def gate(self, image):
        return self.gates.setdefault(image, asyncio.Event())

    async def build(self, request, emit):
        self.started.append(request.image_name)
        emit(Event("fetching", "cloning https://user:secret@example.org/x\n"))
        try:
            await self.gate(request.image_name).wait()
        except asyncio.CancelledError:
            self.cancelled.append(request.image_name)
            raise
        emit(Event("building", "step\n"))
        if request.image_name in self.fail:
            raise BuildFailed(self.fail[request.image_name])
        self.registry.images.add(request.image_name)


@pytest.fixture
def parts():
    registry = StubRegistry()
    builder = GatedBuilder(registry)
    manager = BuildManager(
        builder=builder, registry=registry, resolver=StubResolver(), image_prefix="reg.example/r2d-"
    )
    return manager, builder, registry


async def collect(build, after=0):
    return [(i, e) async for i, e in build.follow(after)]


async def wait_started(builder, n):
    for _ in range(100):
        if len(builder.started) >= n:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"{n} builds did not start: {builder.started}")


async def test_one_build_for_many_requests_and_all_get_every_event(parts):
    manager, builder, _ = parts
    builds = await asyncio.gather(*(manager.request("gh", "o/r/a") for _ in range(20)))
    assert len({b.id for b in builds}) == 1
    watchers = [asyncio.create_task(collect(builds[0])) for _ in range(20)]
    await wait_started(builder, 1)
    builder.gate(builds[0].image_name).set()
    results = await asyncio.gather(*watchers)
    assert builder.started == [builds[0].image_name]
    first = [(i, e.phase) for i, e in results[0]]
    assert all([(i, e.phase) for i, e in r] == first for r in results)
    assert [i for i, _ in first] == list(range(1, len(first) + 1))
    assert first[-2][1] == "built" and first[-1][1] == "ready"
    ready = results[0][-1][1].to_dict()
    assert ready["imageName"] == builds[0].image_name
    assert ready["binder_request"] == "v2/gh/o/r/a"
    assert ready["binder_persistent_request"].startswith("v2/gh/o/r/")
    assert "secret" not in str([e.to_dict() for _, e in results[0]])


async def test_existing_image_is_ready_at_once_without_build(parts):
    manager, builder, registry = parts
    first = await manager.request("gh", "o/r/a")
    builder.gate(first.image_name).set()
    await collect(first)
    again = await manager.request("gh", "o/r/a")
    events = await collect(again)
    assert [e.phase for _, e in events] == ["ready"]
    assert builder.started == [first.image_name]


async def test_late_subscriber_and_resume_from_id(parts):
    manager, builder, _ = parts
    build = await manager.request("gh", "o/r/a")
    await wait_started(builder, 1)
    builder.gate(build.image_name).set()
    everything = await collect(build)
    resumed = await collect(build, after=2)
    assert resumed == everything[2:]


async def test_queue_positions_and_limit(parts):
    manager, builder, _ = parts
    manager.concurrent_build_limit = 1
    a = await manager.request("gh", "o/r/a")
    b = await manager.request("gh", "o/r/b")
    c = await manager.request("gh", "o/r/c")
    await wait_started(builder, 1)
    assert (a.state, b.state, c.state) == ("running", "queued", "queued")
    assert c.events[-1].extra == {"position": 2, "queue_length": 2}
    builder.gate(a.image_name).set()
    await collect(a)
    await wait_started(builder, 2)
    assert b.state == "running"
    assert c.events[-1].extra == {"position": 1, "queue_length": 1}
    builder.gate(b.image_name).set()
    builder.gate(c.image_name).set()
    await collect(c)
    assert builder.started == [a.image_name, b.image_name, c.image_name]


async def test_build_runs_on_without_watchers(parts):
    manager, builder, registry = parts
    build = await manager.request("gh", "o/r/a")
    watcher = asyncio.create_task(collect(build))
    await wait_started(builder, 1)
    watcher.cancel()
    builder.gate(build.image_name).set()
    await build.task
    assert build.state == "ready" and build.image_name in registry.images


async def test_failure_message_reaches_every_viewer(parts):
    manager, builder, _ = parts
    build = await manager.request("gh", "o/r/a")
    builder.fail[build.image_name] = "Step 2/3 : RUN false returned a non-zero code: 1"
    builder.gate(build.image_name).set()
    events = await collect(build)
    assert events[-1][1].phase == "failed"
    assert "RUN false" in events[-1][1].message
    assert build.state == "failed" and manager.active_build(build.image_name) is None


async def test_cancel_running_and_queued(parts):
    manager, builder, _ = parts
    manager.concurrent_build_limit = 1
    a = await manager.request("gh", "o/r/a")
    b = await manager.request("gh", "o/r/b")
    await wait_started(builder, 1)
    manager.cancel(b.id, by="alice")
    assert (
        b.state == "cancelled" and b.events[-1].message == "Build cancelled by an administrator.\n"
    )
    manager.cancel(a.id, by="bob")
    events = await collect(a)
    assert events[-1][1].phase == "failed" and events[-1][1].extra["cancelled"] is True
    assert a.state == "cancelled" and builder.cancelled == [a.image_name]
    # The next request builds anew.
    again = await manager.request("gh", "o/r/a")
    assert again.id != a.id


async def test_rejections(parts):
    manager, _, registry = parts
    with pytest.raises(BuildRejected) as e:
        await manager.request("gh", "bad")
    assert e.value.status == 400 and "expected" in e.value.message
    with pytest.raises(BuildRejected) as e:
        await manager.request("gh", "o/r/missing")
    assert e.value.status == 404
    with pytest.raises(BuildRejected) as e:
        await manager.request("gh", "o/r/a", may_build=False)
    assert e.value.status == 403
    registry.broken = True
    with pytest.raises(BuildRejected) as e:
        await manager.request("gh", "o/r/b")
    assert e.value.status == 503 and "registry unreachable" in e.value.message


async def test_queue_full(parts):
    manager, builder, _ = parts
    manager.concurrent_build_limit = 1
    manager.max_queue_length = 1
    await manager.request("gh", "o/r/a")
    await manager.request("gh", "o/r/b")
    with pytest.raises(BuildRejected) as e:
        await manager.request("gh", "o/r/c")
    assert e.value.status == 503


async def test_may_not_build_but_gets_existing_image(parts):
    manager, _, registry = parts
    image = manager.image_for(await manager.resolver.resolve("gh", "o/r/a"))
    registry.images.add(image)
    build = await manager.request("gh", "o/r/a", may_build=False)
    assert build.done and build.events[-1].phase == "ready"


async def test_wait_times_out_for_keepalives(parts):
    manager, builder, _ = parts
    build = await manager.request("gh", "o/r/a")
    n = build.last_event_id
    await wait_started(builder, 1)
    n = build.last_event_id
    assert await build.wait(n, timeout=0.05) is False
    builder.gate(build.image_name).set()
    assert await build.wait(n, timeout=1) is True


async def test_stop_fails_local_builds_and_drops_queued_ones_with_a_reason(parts):
    manager, builder, _ = parts
    manager.concurrent_build_limit = 1
    build = await manager.request("gh", "o/r/a")
    queued = await manager.request("gh", "o/r/b")
    await wait_started(builder, 1)
    await manager.stop()
    assert build.state == "failed" and builder.cancelled == [build.image_name]
    assert (
        build.events[-1].message
        == "The service stopped during this build. Request it again to build anew.\n"
    )
    assert queued.state == "cancelled" and "shutting down" in queued.events[-1].message


# --- races, shared builds, resume, bounded logs ---------------------------------------


class RacingBuilder(GatedBuilder):
    """Like GatedBuilder; `on_return[image]` runs in the same loop turn as the build's end.

    That is where a second API call lands when its request was read while the first
    build was finishing: after _finish has created the next build's task, before it ran.
    """

    def __init__(self, registry, **kw):
        super().__init__(registry, **kw)
        self.on_return = {}

    async def build(self, request, emit):
        await super().build(request, emit)
        if request.image_name in self.on_return:
            asyncio.get_running_loop().call_soon(self.on_return[request.image_name])


async def test_cancel_of_a_build_whose_task_never_ran_still_finishes_it():
    registry = StubRegistry()
    builder = RacingBuilder(registry)
    manager = BuildManager(builder=builder, registry=registry, resolver=StubResolver())
    manager.concurrent_build_limit = 1
    a = await manager.request("gh", "o/r/a")
    b = await manager.request("gh", "o/r/b")
    await wait_started(builder, 1)
    assert b.state == "queued"
    # A's end starts B's task; B's cancel comes before that task's first step.
    builder.on_return[a.image_name] = lambda: manager.cancel(b.id, by="alice")
    builder.gate(a.image_name).set()
    events = await asyncio.wait_for(collect(b), 5)
    assert events[-1][1].phase == "failed" and events[-1][1].extra["cancelled"] is True
    assert b.state == "cancelled" and b.image_name not in builder.started
    assert manager.active_build(b.image_name) is None and manager.running_count == 0
    # The slot came back: a later build runs, and a request for B's image builds anew.
    c = await manager.request("gh", "o/r/c")
    again = await manager.request("gh", "o/r/b")
    assert again.id != b.id
    builder.gate(c.image_name).set()
    builder.gate(again.image_name).set()
    assert (await asyncio.wait_for(collect(again), 5))[-1][1].phase == "ready"


async def test_a_build_is_shared_by_everyone_who_asked(parts):
    manager, builder, _ = parts
    first, outcome1 = await manager.submit("gh", "o/r/a", user="alice")
    second, outcome2 = await manager.submit("gh", "o/r/a", user="bob")
    assert second is first and (outcome1, outcome2) == ("new", "joined")
    assert first.requested_by("alice") and first.requested_by("bob")
    await wait_started(builder, 1)
    # bob withdraws: alice still wants it, so it runs on.
    manager.cancel(first.id, by="bob", for_all=False)
    assert first.state == "running" and first.wanted_by == ["alice"]
    assert builder.cancelled == []
    # alice withdraws too: now nobody wants it.
    manager.cancel(first.id, by="alice", for_all=False)
    events = await collect(first)
    assert first.state == "cancelled" and events[-1][1].extra["cancelled"] is True
    assert "alice" not in events[-1][1].message and "bob" not in events[-1][1].message


async def test_an_admins_cancel_stops_it_for_everyone(parts):
    manager, builder, _ = parts
    build = await manager.request("gh", "o/r/a", user="alice")
    await manager.request("gh", "o/r/a", user="bob")
    await wait_started(builder, 1)
    manager.cancel(build.id, by="admin", for_all=True)
    await collect(build)
    assert build.state == "cancelled" and build.cancelled_by == "admin"


async def test_a_user_who_asks_again_after_withdrawing_wants_it_again(parts):
    manager, builder, _ = parts
    build = await manager.request("gh", "o/r/a", user="alice")
    await manager.request("gh", "o/r/a", user="bob")
    manager.cancel(build.id, by="alice", for_all=False)
    await manager.request("gh", "o/r/a", user="alice")
    manager.cancel(build.id, by="bob", for_all=False)
    assert not build.done and build.wanted_by == ["alice"]


async def test_two_simultaneous_submits_make_one_new_build(parts):
    manager, builder, _ = parts
    results = await asyncio.gather(
        manager.submit("gh", "o/r/a", user="alice"), manager.submit("gh", "o/r/a", user="bob")
    )
    assert results[0][0] is results[1][0]
    assert sorted(outcome for _, outcome in results) == ["joined", "new"]


async def test_a_reconnect_after_a_failure_gets_the_rest_of_that_build(parts):
    manager, builder, _ = parts
    build = await manager.request("gh", "o/r/a")
    builder.fail[build.image_name] = "Step 2/3 : RUN false returned a non-zero code: 1"
    await wait_started(builder, 1)
    seen = build.last_event_id  # the viewer's connection dropped here
    builder.gate(build.image_name).set()
    await collect(build)
    assert build.state == "failed"
    resumed = await manager.request("gh", "o/r/a", resume_after=seen)
    assert resumed is build
    rest = await collect(resumed, seen)
    assert rest[-1][1].phase == "failed" and "RUN false" in rest[-1][1].message
    assert [i for i, _ in rest] == list(range(seen + 1, build.last_event_id + 1))
    # A fresh request (no Last-Event-ID) builds again.
    again = await manager.request("gh", "o/r/a")
    assert again is not build and again.state in ("queued", "running")


async def test_an_id_past_the_newest_log_starts_a_new_build(parts):
    manager, builder, _ = parts
    build = await manager.request("gh", "o/r/a")
    builder.fail[build.image_name] = "boom"
    builder.gate(build.image_name).set()
    await collect(build)
    again = await manager.request("gh", "o/r/a", resume_after=build.last_event_id + 50)
    assert again is not build


async def test_the_event_log_is_bounded_and_ids_survive(parts):
    manager, builder, _ = parts
    manager.max_log_bytes = 20_000

    class Chatty(GatedBuilder):
        async def build(self, request, emit):
            for n in range(2000):
                emit(Event("building", f"line {n:05d} " + "x" * 90 + "\n"))
            await super().build(request, emit)

    chatty = Chatty(manager.registry)
    manager.builder = chatty
    build = await manager.request("gh", "o/r/a")
    await wait_started(chatty, 1)
    chatty.gate(build.image_name).set()
    events = await collect(build)
    ids = [i for i, _ in events]
    assert ids == sorted(set(ids)) and ids[-1] == build.last_event_id
    assert build.last_event_id > 2000  # every line got an id, kept or not
    text = "".join(e.message for _, e in events)
    assert len(text) < 25_000
    assert "line 00000" in text and "line 01999" in text  # the head and the tail
    markers = [e for _, e in events if "truncated" in e.extra]
    assert len(markers) == 1 and "dropped" in markers[0].message
    assert markers[0].extra["truncated"]["events"] > 1000
    # A reader whose position was dropped gets the marker, then the tail.
    middle = ids[len(ids) // 2]
    resumed = await collect(build, middle - 1)
    assert resumed[0][0] >= middle - 1 and resumed[-1][1].phase == "ready"
    inside = [i for i in range(1, build.last_event_id) if i not in ids][0]
    after_gap = await collect(build, inside)
    assert "truncated" in after_gap[0][1].extra or after_gap[0][0] > inside
    assert after_gap[-1][0] == build.last_event_id


async def test_adopted_builds_take_slots(parts):
    manager, builder, _ = parts
    manager.concurrent_build_limit = 1
    resolved = await manager.resolver.resolve("gh", "o/r/old")
    from r2dservice.builders.base import make_build_request

    adopted = make_build_request(
        image_name=manager.image_for(resolved),
        repo_url=resolved.repo_url,
        ref=resolved.resolved_ref,
        provider="gh",
        spec="o/r/old",
        push=True,
    )

    async def start():
        return [adopted]

    async def follow(request, emit):
        await builder.gate(request.image_name).wait()

    builder.start = start
    builder.follow = follow
    await manager.start()
    assert manager.running_count == 1
    new = await manager.request("gh", "o/r/new")
    assert new.state == "queued" and new.events[-1].extra["position"] == 1
    builder.gate(adopted.image_name).set()
    await wait_started(builder, 1)
    assert new.state == "running"


def test_image_prefix_is_the_apps_not_the_managers():
    assert "image_prefix" not in BuildManager.class_trait_names(config=True)
    assert "max_log_bytes" in BuildManager.class_trait_names(config=True)


async def test_a_broken_checker_is_a_503_not_a_crash(parts):
    manager, _, registry = parts

    async def exists(image_name):
        raise TypeError("'list' object has no attribute 'get'")

    registry.exists = exists
    with pytest.raises(BuildRejected) as e:
        await manager.request("gh", "o/r/a")
    assert e.value.status == 503 and "internal error: TypeError" in e.value.message
