"""KubernetesBuilder against the stand-in API server (tests/fakes/kubeapi.py).

The fake speaks the real wire protocol; the tests play kubelet through its Python API
(schedule, start_container, log, finish...) and inject faults (dropped watches, 410
Gone, 500s, broken and slow log streams, pods deleted by someone else, stuck pods).
"""

from __future__ import annotations

import asyncio
import json
import time

import pytest

from r2dservice import naming
from r2dservice.builders.base import BuildFailed, BuildRequest, make_build_request
from r2dservice.builders.kubernetes import KubernetesBuilder
from r2dservice.builders.objects import make_build_pod, to_dict
from r2dservice.builders.repo2docker import TRUNCATED
from r2dservice.events import Event
from tests.fakes.kubeapi import FakeKubeAPI, parse_selector, rfc3339nano

NS = "builds"


def r2d(message: str, phase: str | None = "building", **extra) -> str:
    """One repo2docker --json-logs line."""
    d = {"message": message, **extra}
    if phase:
        d["phase"] = phase
    return json.dumps(d)


def make_request(repo: str = "owner/repo", ref: str = "a" * 40, push: bool = True) -> BuildRequest:
    image = naming.image_name("registry.example/r2d-", "gh", repo, ref, "f1")
    return BuildRequest(
        name=naming.build_name(image),
        image_name=image,
        repo_url=f"https://github.com/{repo}",
        ref=ref,
        provider="gh",
        spec=f"{repo}/main",
        push=push,
        user="alice",
    )


@pytest.fixture
async def kube():
    fake = FakeKubeAPI(bookmark_interval=0.2)
    await fake.start()
    yield fake
    await fake.stop()


def make_builder(kube: FakeKubeAPI, **traits) -> KubernetesBuilder:
    traits.setdefault("build_image", "quay.io/jupyterhub/repo2docker:test")
    traits.setdefault("push_secret", "push-creds")
    b = KubernetesBuilder(k8s_api_url=kube.url, namespace=NS, reap_interval=3600, **traits)
    # Seconds where production waits minutes.
    b.backoff_base = 0.02
    b.backoff_cap = 0.5
    b.log_eof_grace = 0.3
    b.log_drain_timeout = 5
    b.watch_timeout_seconds = 30
    b.poll_interval = 0.2
    b.events_interval = 0.2
    b.finished_pod_linger = 0.05
    return b


@pytest.fixture
async def builder(kube):
    b = make_builder(kube)
    await b.start()
    yield b
    await b.stop()


class Events(list):
    """An emit() that records events, and lets a test wait for one."""

    def __call__(self, event: Event) -> None:
        assert event.phase not in ("waiting", "built", "ready", "failed"), event
        self.append(event)

    @property
    def messages(self) -> list[str]:
        return [e.message for e in self]

    async def wait_for(self, text: str, timeout: float = 5) -> Event:
        deadline = time.monotonic() + timeout
        while True:
            for e in self:
                if text in e.message:
                    return e
            if time.monotonic() > deadline:
                raise AssertionError(f"no event with {text!r} in {self.messages}")
            await asyncio.sleep(0.01)


def start_build(builder, request, events=None):
    events = events if events is not None else Events()
    task = asyncio.create_task(builder.build(request, events))
    return task, events


async def run_pod_to_success(kube, name, lines=("step 1", "step 2")):
    kube.schedule(name, namespace=NS)
    kube.start_container(name, namespace=NS)
    kube.log(name, r2d("Picked Git content provider.\n", phase=None), namespace=NS)
    kube.log(name, *(r2d(line + "\n") for line in lines), namespace=NS)
    kube.finish(name, 0, namespace=NS)


# --- the happy path -----------------------------------------------------------------


async def test_build_succeeds_when_container_exits_zero(kube, builder):
    req = make_request()
    task, events = start_build(builder, req)
    pod = await kube.wait_for_pod(req.name, NS)
    assert pod["metadata"]["labels"]["app.kubernetes.io/component"] == "build"
    await events.wait_for("created")
    await run_pod_to_success(kube, req.name)
    await asyncio.wait_for(task, 10)
    msgs = events.messages
    assert "step 1\n" in msgs and "step 2\n" in msgs
    # repo2docker's first line has no phase: it is fetching
    first = next(e for e in events if "Picked Git" in e.message)
    assert first.phase == "fetching"
    assert any(e.phase == "building" for e in events)
    # the finished pod is deleted
    await kube.wait_gone(req.name, NS)


async def test_pod_spec_is_what_make_build_pod_makes(kube, builder):
    req = make_request()
    task, _events = start_build(builder, req)
    pod = await kube.wait_for_pod(req.name, NS)
    expected = to_dict(make_build_pod(req, builder.pod_config()))
    assert pod["spec"]["containers"][0]["args"] == expected["spec"]["containers"][0]["args"]
    assert pod["metadata"]["annotations"] == expected["metadata"]["annotations"]
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_fast_pod_pending_to_succeeded_still_reads_whole_log(kube, builder):
    """The container ran and ended between two watch events: the log is read after."""
    req = make_request()
    task, events = start_build(builder, req)
    await kube.wait_for_pod(req.name, NS)
    # The log exists before the builder sees the pod running.
    kube.patch_pod(req.name, lambda p: None, namespace=NS)
    kube._log_for((NS, req.name)).lines.append((time.time_ns(), r2d("quick\n")))

    def to_done(pod):
        kube._set_container_state(
            pod,
            {
                "terminated": {
                    "exitCode": 0,
                    "reason": "Completed",
                    "finishedAt": "2024-01-01T00:00:00Z",
                }
            },
        )
        pod["status"]["phase"] = "Succeeded"

    kube._log_for((NS, req.name)).ended = True
    kube.patch_pod(req.name, to_done, namespace=NS)
    await asyncio.wait_for(task, 10)
    assert "quick\n" in events.messages


# --- honest failures ------------------------------------------------------------------


async def test_nonzero_exit_fails_with_last_repo2docker_error(kube, builder):
    req = make_request()
    task, events = start_build(builder, req)
    await kube.wait_for_pod(req.name, NS)
    kube.start_container(req.name, namespace=NS)
    kube.log(
        req.name,
        r2d("Step 1/3\n"),
        r2d("Error during build: apt failed\n", phase="failed"),
        r2d("some later noise\n"),
        namespace=NS,
    )
    kube.finish(req.name, 1, namespace=NS)
    with pytest.raises(BuildFailed) as e:
        await asyncio.wait_for(task, 10)
    assert "apt failed" in e.value.message
    # the failed line was passed on as a progress event, not as a terminal one
    line = next(ev for ev in events if "apt failed" in ev.message)
    assert line.phase == "building"
    await kube.wait_gone(req.name, NS)


async def test_buildkit_reason_replaces_generic_docker_failure(kube, builder):
    """repo2docker's error only says `docker buildx build` failed; BuildKit said why."""
    req = make_request()
    task, _ = start_build(builder, req)
    await kube.wait_for_pod(req.name, NS)
    kube.start_container(req.name, namespace=NS)
    kube.log(
        req.name,
        r2d("#5 [2/2] RUN exit 3\n"),
        r2d(
            'ERROR: failed to solve: process "/bin/sh -c exit 3" did not complete successfully: exit code: 3\n'
        ),
        r2d(
            "Error during build: Command '['docker', 'buildx', 'build']' returned non-zero exit status 1.\n",
            phase="failed",
        ),
        namespace=NS,
    )
    kube.finish(req.name, 1, namespace=NS)
    with pytest.raises(BuildFailed) as e:
        await asyncio.wait_for(task, 10)
    assert e.value.message == (
        'Error during build: failed to solve: process "/bin/sh -c exit 3" did not complete '
        "successfully: exit code: 3\n"
    )


async def test_nonzero_exit_without_error_line_names_exit_code_and_last_line(kube, builder):
    req = make_request()
    task, _events = start_build(builder, req)
    await kube.wait_for_pod(req.name, NS)
    kube.start_container(req.name, namespace=NS)
    kube.log(req.name, "plain text, not json", namespace=NS)
    kube.finish(req.name, 2, namespace=NS)
    with pytest.raises(BuildFailed) as e:
        await asyncio.wait_for(task, 10)
    assert "exit code 2" in e.value.message
    assert "plain text, not json" in e.value.message


async def test_oom_killed(kube, builder):
    req = make_request()
    task, _ = start_build(builder, req)
    await kube.wait_for_pod(req.name, NS)
    kube.start_container(req.name, namespace=NS)
    kube.finish(req.name, 137, reason="OOMKilled", namespace=NS)
    with pytest.raises(BuildFailed, match="out of memory"):
        await asyncio.wait_for(task, 10)


async def test_evicted_pod_fails_with_the_reason(kube, builder):
    req = make_request()
    task, _ = start_build(builder, req)
    await kube.wait_for_pod(req.name, NS)
    kube.start_container(req.name, namespace=NS)
    kube.set_phase(
        req.name,
        "Failed",
        reason="Evicted",
        message="The node was low on resource: ephemeral-storage.",
        namespace=NS,
    )
    with pytest.raises(BuildFailed, match="Evicted: The node was low"):
        await asyncio.wait_for(task, 10)


async def test_pod_deleted_by_someone_else_fails(kube, builder):
    req = make_request()
    task, events = start_build(builder, req)
    await kube.wait_for_pod(req.name, NS)
    kube.start_container(req.name, namespace=NS)
    kube.log(req.name, r2d("working\n"), namespace=NS)
    await events.wait_for("working")
    kube.delete_pod(req.name, NS)
    with pytest.raises(BuildFailed, match="deleted before the build finished"):
        await asyncio.wait_for(task, 10)


async def test_pod_deleted_after_success_by_another_replica_is_success(kube, builder):
    req = make_request()
    task, events = start_build(builder, req)
    await kube.wait_for_pod(req.name, NS)
    kube.start_container(req.name, namespace=NS)
    kube.log(req.name, r2d("done\n"), namespace=NS)
    await events.wait_for("done")
    # The other replica saw Succeeded first and cleaned up; we only see the deletion,
    # whose object carries the final state.
    kube.drop_watches()
    kube.finish(req.name, 0, namespace=NS)
    kube.delete_pod(req.name, NS)
    await asyncio.wait_for(task, 10)


async def test_image_pull_backoff_fails_after_grace(kube):
    b = make_builder(kube, pending_grace=1)
    await b.start()
    try:
        req = make_request()
        task, events = start_build(b, req)
        await kube.wait_for_pod(req.name, NS)
        kube.set_waiting(
            req.name,
            "ErrImagePull",
            'failed to pull image "quay.io/x:nope": not found',
            namespace=NS,
        )
        await events.wait_for("ErrImagePull")
        kube.set_waiting(
            req.name, "ImagePullBackOff", 'Back-off pulling image "quay.io/x:nope"', namespace=NS
        )
        t0 = time.monotonic()
        with pytest.raises(BuildFailed) as e:
            await asyncio.wait_for(task, 10)
        assert time.monotonic() - t0 < 5
        assert "ImagePullBackOff" in e.value.message and "could not start" in e.value.message
        await kube.wait_gone(req.name, NS)
    finally:
        await b.stop()


async def test_stuck_pod_that_recovers_within_grace_builds(kube):
    b = make_builder(kube, pending_grace=1)
    await b.start()
    try:
        req = make_request()
        task, events = start_build(b, req)
        await kube.wait_for_pod(req.name, NS)
        kube.set_waiting(req.name, "ImagePullBackOff", "slow registry", namespace=NS)
        await events.wait_for("ImagePullBackOff")
        await asyncio.sleep(0.5)
        kube.set_waiting(req.name, "ContainerCreating", namespace=NS)
        await asyncio.sleep(0.8)  # past the grace, counted from the first stuck state
        await run_pod_to_success(kube, req.name)
        await asyncio.wait_for(task, 10)
    finally:
        await b.stop()


async def test_unschedulable_fails_after_grace(kube):
    b = make_builder(kube, pending_grace=1)
    await b.start()
    try:
        req = make_request()
        task, _ = start_build(b, req)
        await kube.wait_for_pod(req.name, NS)
        kube.set_unschedulable(
            req.name, "0/3 nodes are available: 3 Insufficient memory.", namespace=NS
        )
        with pytest.raises(BuildFailed, match="Insufficient memory"):
            await asyncio.wait_for(task, 10)
    finally:
        await b.stop()


async def fails_fast(task, grace: float) -> BuildFailed:
    """The build fails, within a little more than its pending_grace."""
    t0 = time.monotonic()
    with pytest.raises(BuildFailed) as e:
        await asyncio.wait_for(task, grace + 10)
    assert time.monotonic() - t0 < grace + 3
    assert "could not start within" in e.value.message
    return e.value


async def test_missing_docker_socket_fails_after_grace_with_failed_mount(kube):
    """binderhub#1343: a node without the Docker socket. The kubelet leaves the pod in
    ContainerCreating with no waiting reason; only its Events say FailedMount."""
    b = make_builder(kube, pending_grace=1)
    await b.start()
    try:
        req = make_request()
        task, events = start_build(b, req)
        await kube.wait_for_pod(req.name, NS)
        kube.schedule(req.name, namespace=NS)
        message = (
            'MountVolume.SetUp failed for volume "docker-socket" : '
            "hostPath type check failed: /var/run/docker.sock is not a socket file"
        )
        for _ in range(3):  # the kubelet retries; its recorder counts
            kube.record_event(req.name, "FailedMount", message, namespace=NS)
        error = await fails_fast(task, 1)
        assert f"FailedMount: {message} (seen 3 times)" in error.message
        await kube.wait_gone(req.name, NS)
    finally:
        await b.stop()


async def test_missing_push_secret_volume_fails_after_grace_naming_it(kube):
    """binderhub#810: the Secret is not in the build pods' namespace."""
    b = make_builder(kube, pending_grace=1)
    await b.start()
    try:
        req = make_request()
        task, _ = start_build(b, req)
        await kube.wait_for_pod(req.name, NS)
        kube.schedule(req.name, namespace=NS)
        kube.record_event(
            req.name,
            "FailedMount",
            'MountVolume.SetUp failed for volume "push-secret" : secret "push-creds" not found',
            namespace=NS,
        )
        error = await fails_fast(task, 1)
        assert 'secret "push-creds" not found' in error.message
    finally:
        await b.stop()


async def test_failed_scheduling_event_fails_after_grace(kube):
    """A Pending pod the scheduler gave up on (say, a PersistentVolumeClaim it cannot
    bind) without an Unschedulable condition: the Event says why."""
    b = make_builder(kube, pending_grace=1)
    await b.start()
    try:
        req = make_request()
        task, _ = start_build(b, req)
        await kube.wait_for_pod(req.name, NS)
        kube.record_event(
            req.name,
            "FailedScheduling",
            "0/2 nodes are available: 2 node(s) didn't match Pod's node affinity/selector.",
            component="default-scheduler",
            namespace=NS,
        )
        error = await fails_fast(task, 1)
        assert "FailedScheduling: 0/2 nodes are available" in error.message
    finally:
        await b.stop()


async def test_slow_start_with_normal_latest_event_keeps_waiting(kube):
    """Past the grace, but the latest Event is Normal (a big image still pulling): the
    pod is on its way, so the build waits and succeeds. An earlier Warning that the
    kubelet got past does not count."""
    b = make_builder(kube, pending_grace=1)
    await b.start()
    try:
        req = make_request()
        task, _ = start_build(b, req)
        await kube.wait_for_pod(req.name, NS)
        kube.schedule(req.name, namespace=NS)
        kube.record_event(req.name, "FailedMount", "transient", namespace=NS)
        kube.record_event(
            req.name, "Pulling", 'Pulling image "quay.io/x"', type="Normal", namespace=NS
        )
        await asyncio.sleep(2)
        assert not task.done()
        reads = kube.stats["event-list"].requests
        assert 1 <= reads <= 15  # read now and then, not in a busy loop
        await run_pod_to_success(kube, req.name)
        await asyncio.wait_for(task, 10)
    finally:
        await b.stop()


async def test_events_of_an_older_pod_of_the_same_name_do_not_count(kube):
    b = make_builder(kube, pending_grace=1)
    await b.start()
    try:
        req = make_request()
        # What an earlier pod of this name left behind (Events outlive pods by an hour).
        kube.record_event(req.name, "FailedMount", "old news", namespace=NS)
        task, _ = start_build(b, req)
        await kube.wait_for_pod(req.name, NS)
        kube.schedule(req.name, namespace=NS)
        await asyncio.sleep(1.6)
        assert not task.done()
        await run_pod_to_success(kube, req.name)
        await asyncio.wait_for(task, 10)
        query = [q for m, q in kube.request_log if "/events" in q]
        assert query and all("involvedObject.uid" in q for q in query)
    finally:
        await b.stop()


async def test_build_timeout(kube):
    b = make_builder(kube, build_timeout=1)
    await b.start()
    try:
        req = make_request()
        task, _ = start_build(b, req)
        pod = await kube.wait_for_pod(req.name, NS)
        assert pod["spec"]["activeDeadlineSeconds"] == 1
        kube.start_container(req.name, namespace=NS)
        with pytest.raises(BuildFailed, match="longer than 1 second"):
            await asyncio.wait_for(task, 10)
        await kube.wait_gone(req.name, NS)
    finally:
        await b.stop()


async def test_deadline_exceeded_by_kubelet(kube, builder):
    req = make_request()
    task, _ = start_build(builder, req)
    await kube.wait_for_pod(req.name, NS)
    kube.start_container(req.name, namespace=NS)
    # The kubelet fails the pod past activeDeadlineSeconds, then kills the container.
    kube.set_phase(
        req.name,
        "Failed",
        reason="DeadlineExceeded",
        message="Pod was active on the node longer than the specified deadline",
        namespace=NS,
    )
    kube.finish(req.name, 143, namespace=NS)
    with pytest.raises(BuildFailed, match="longer than"):
        await asyncio.wait_for(task, 10)


async def test_create_rejected_is_a_failure_with_the_api_message(kube, builder):
    kube.fail_requests(1, status=403, endpoint="create")
    req = make_request()
    with pytest.raises(BuildFailed, match="injected failure"):
        await builder.build(req, Events())


# --- joining, cancelling, cleanup ---------------------------------------------------------


async def test_create_conflict_joins_the_running_pod(kube, builder):
    req = make_request()
    # Another replica made the pod and it is already running.
    other = to_dict(make_build_pod(req, builder.pod_config()))
    kube.add_pod(other, NS)
    kube.start_container(req.name, namespace=NS)
    kube.log(req.name, r2d("from before\n"), namespace=NS)
    task, events = start_build(builder, req)
    await events.wait_for("Joining the build")
    await events.wait_for("from before")
    kube.log(req.name, r2d("after join\n"), namespace=NS)
    kube.finish(req.name, 0, namespace=NS)
    await asyncio.wait_for(task, 10)
    assert kube.stats["create"].requests == 1
    assert events.messages.count("from before\n") == 1


async def test_failed_pod_left_by_an_earlier_run_is_replaced(kube, builder):
    req = make_request()
    kube.add_pod(to_dict(make_build_pod(req, builder.pod_config())), NS)
    kube.start_container(req.name, namespace=NS)
    kube.finish(req.name, 1, namespace=NS)
    old_uid = kube.get_pod(req.name, NS)["metadata"]["uid"]
    await asyncio.sleep(0.1)  # the watch has seen it
    task, _events = start_build(builder, req)
    while (pod := kube.get_pod(req.name, NS)) is None or pod["metadata"]["uid"] == old_uid:
        await asyncio.sleep(0.01)
    await run_pod_to_success(kube, req.name)
    await asyncio.wait_for(task, 10)
    assert kube.stats["create"].requests == 2


async def test_succeeded_pod_left_by_an_earlier_run_is_a_success(kube, builder):
    req = make_request()
    kube.add_pod(to_dict(make_build_pod(req, builder.pod_config())), NS)
    kube.start_container(req.name, namespace=NS)
    kube.log(req.name, r2d("built earlier\n"), namespace=NS)
    kube.finish(req.name, 0, namespace=NS)
    await asyncio.sleep(0.1)
    events = Events()
    await asyncio.wait_for(builder.build(req, events), 10)
    assert "built earlier\n" in events.messages
    await kube.wait_gone(req.name, NS)


async def test_two_builders_share_one_pod(kube):
    """Two replicas asked for the same image: one pod, both see it succeed."""
    b1, b2 = make_builder(kube), make_builder(kube)
    b1.finished_pod_linger = b2.finished_pod_linger = 2
    await b1.start()
    await b2.start()
    try:
        req = make_request()
        t1, e1 = start_build(b1, req)
        await kube.wait_for_pod(req.name, NS)
        t2, e2 = start_build(b2, req)
        await e2.wait_for("Joining")
        await run_pod_to_success(kube, req.name)
        await asyncio.wait_for(asyncio.gather(t1, t2), 10)
        # whichever replica deletes the pod lets the other read the whole log first
        assert "step 2\n" in e1.messages and "step 2\n" in e2.messages
        await kube.wait_gone(req.name, NS)
    finally:
        await b1.stop()
        await b2.stop()


async def test_cancel_deletes_the_pod(kube, builder):
    req = make_request()
    task, events = start_build(builder, req)
    await kube.wait_for_pod(req.name, NS)
    kube.start_container(req.name, namespace=NS)
    await events.wait_for("started")
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert kube.get_pod(req.name, NS) is None


async def test_stop_then_cancel_leaves_pod_running_and_restart_adopts_it(kube):
    b = make_builder(kube)
    await b.start()
    req = make_request()
    task, events = start_build(b, req)
    await kube.wait_for_pod(req.name, NS)
    kube.start_container(req.name, namespace=NS)
    kube.log(req.name, r2d("line one\n"), namespace=NS)
    await events.wait_for("line one")
    # Shutdown: stop() first, then the manager cancels the build tasks.
    await b.stop()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert kube.get_pod(req.name, NS) is not None

    kube.log(req.name, r2d("line two\n"), namespace=NS)
    b2 = make_builder(kube)
    adopted = await b2.start()
    try:
        assert adopted == [req]
        events2 = Events()
        follow = asyncio.create_task(b2.follow(adopted[0], events2))
        await events2.wait_for("line two")
        kube.log(req.name, r2d("line three\n"), namespace=NS)
        kube.finish(req.name, 0, namespace=NS)
        await asyncio.wait_for(follow, 10)
        # the whole log, once
        assert [m for m in events2.messages if m.startswith("line")] == [
            "line one\n",
            "line two\n",
            "line three\n",
        ]
        await kube.wait_gone(req.name, NS)
    finally:
        await b2.stop()


async def test_start_adopts_only_running_build_pods(kube):
    b = make_builder(kube)
    config = b.pod_config()
    running, done, foreign = make_request("a/running"), make_request("a/done"), make_request("a/x")
    for r in (running, done):
        kube.add_pod(to_dict(make_build_pod(r, config)), NS)
    kube.start_container(running.name, namespace=NS)
    kube.start_container(done.name, namespace=NS)
    kube.finish(done.name, 0, namespace=NS)
    # a pod with our labels but without our annotations, and one without our labels
    stray = to_dict(make_build_pod(foreign, config))
    stray["metadata"]["annotations"] = {}
    kube.add_pod(stray, NS)
    kube.add_pod(
        {"metadata": {"name": "unrelated"}, "spec": {"containers": [{"name": "c", "image": "x"}]}},
        NS,
    )
    adopted = await b.start()
    try:
        assert adopted == [running]
    finally:
        await b.stop()


async def test_follow_of_vanished_pod_fails(kube, builder):
    with pytest.raises(BuildFailed, match="no longer exists"):
        await builder.follow(make_request(), Events())


async def test_reaper_deletes_old_pods_and_orphans(kube, builder):
    config = builder.pod_config()
    old, orphan, fresh = make_request("a/old"), make_request("a/orphan"), make_request("a/fresh")
    for r in (old, orphan, fresh):
        kube.add_pod(to_dict(make_build_pod(r, config)), NS)
    kube.patch_pod(
        old.name, lambda p: p["metadata"].update(creationTimestamp="2020-01-01T00:00:00Z"), NS
    )
    kube.start_container(orphan.name, namespace=NS)
    kube.finish(orphan.name, 0, namespace=NS)

    def long_ago(pod):
        pod["status"]["containerStatuses"][0]["state"]["terminated"]["finishedAt"] = (
            "2020-01-01T00:00:00Z"
        )

    kube.patch_pod(orphan.name, long_ago, NS)
    await asyncio.sleep(0.2)  # let the watch see them
    reaped = await builder.reap()
    assert sorted(reaped) == sorted([old.name, orphan.name])
    assert kube.get_pod(fresh.name, NS) is not None
    assert kube.get_pod(old.name, NS) is None


# --- credentials: a Secret per build, never in the pod's args or annotations ----------------

PASSWORD = "tok-3n-s3cret"


def private_request(repo: str = "owner/private", push: bool = True) -> BuildRequest:
    url = f"https://alice:{PASSWORD}@git.example/{repo}"
    image = naming.image_name("registry.example/r2d-", "git", repo, "b" * 40, "f1")
    return make_build_request(
        image_name=image,
        repo_url=url,
        ref="b" * 40,
        provider="git",
        spec=url + "/main",
        push=push,
        user="alice",
    )


async def test_request_credentials_go_to_a_secret_owned_by_the_pod(kube, builder):
    req = private_request()
    task, events = start_build(builder, req)
    pod = await kube.wait_for_pod(req.name, NS)
    assert PASSWORD not in json.dumps(pod)  # args, annotations, labels, env: nowhere
    [container] = pod["spec"]["containers"]
    assert container["args"][-1] == "https://git.example/owner/private"
    assert (
        pod["metadata"]["annotations"]["r2dservice.jupyter.org/repo-url"]
        == "https://git.example/owner/private"
    )
    [env] = [e for e in container["env"] if e["name"] == "GIT_CREDENTIAL_ENV"]
    ref = env["valueFrom"]["secretKeyRef"]
    await events.wait_for("created")
    secret = kube.get_secret(ref["name"], NS)
    assert secret is not None
    assert kube.secret_value(ref["name"], ref["key"], NS) == req.credentials
    assert "password=" + PASSWORD in req.credentials
    # labelled like the pod (the reaper and the watch's selector find it)
    for k, v in pod["metadata"]["labels"].items():
        assert secret["metadata"]["labels"][k] == v
    # owned by the pod: Kubernetes deletes it with the pod, whatever becomes of us
    assert secret["metadata"]["ownerReferences"] == [
        {"apiVersion": "v1", "kind": "Pod", "name": req.name, "uid": pod["metadata"]["uid"]}
    ]
    await run_pod_to_success(kube, req.name)
    await asyncio.wait_for(task, 10)
    # deleted when the build ends, by us (not left to the pod's linger)
    assert kube.get_secret(ref["name"], NS) is None
    assert (NS, ref["name"]) in kube.deleted_secrets
    assert not any(PASSWORD in m for m in events.messages)


async def test_failed_and_cancelled_builds_delete_their_secret(kube, builder):
    req = private_request("owner/fails")
    task, events = start_build(builder, req)
    await kube.wait_for_pod(req.name, NS)
    await events.wait_for("created")
    kube.start_container(req.name, namespace=NS)
    kube.finish(req.name, 1, namespace=NS)
    with pytest.raises(BuildFailed):
        await asyncio.wait_for(task, 10)
    assert kube.secrets == {}

    req = private_request("owner/cancelled")
    task, events = start_build(builder, req)
    await kube.wait_for_pod(req.name, NS)
    await events.wait_for("created")
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert kube.secrets == {}
    await kube.wait_gone(req.name, NS)


async def test_operator_secret_when_the_request_has_no_credentials(kube):
    b = make_builder(kube, git_credentials_secret="git-creds", git_credentials_key="helper")
    await b.start()
    try:
        req = make_request()
        task, _ = start_build(b, req)
        pod = await kube.wait_for_pod(req.name, NS)
        [env] = [
            e for e in pod["spec"]["containers"][0]["env"] if e["name"] == "GIT_CREDENTIAL_ENV"
        ]
        assert env["valueFrom"]["secretKeyRef"] == {"name": "git-creds", "key": "helper"}
        assert kube.secrets == {}  # none made
        await run_pod_to_success(kube, req.name)
        await asyncio.wait_for(task, 10)
        # a request's own credentials win over the operator's
        req = private_request()
        task, events = start_build(b, req)
        pod = await kube.wait_for_pod(req.name, NS)
        [env] = [
            e for e in pod["spec"]["containers"][0]["env"] if e["name"] == "GIT_CREDENTIAL_ENV"
        ]
        assert env["valueFrom"]["secretKeyRef"]["name"] != "git-creds"
        await events.wait_for("created")
        await run_pod_to_success(kube, req.name)
        await asyncio.wait_for(task, 10)
    finally:
        await b.stop()


async def test_stopping_service_leaves_the_secret_to_the_pod(kube):
    b1 = make_builder(kube)
    await b1.start()
    req = private_request()
    task, events = start_build(b1, req)
    pod = await kube.wait_for_pod(req.name, NS)
    await events.wait_for("created")
    await b1.stop()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    secret_name = pod["spec"]["containers"][0]["env"][-1]["valueFrom"]["secretKeyRef"]["name"]
    assert kube.get_secret(secret_name, NS) is not None  # the pod still needs it to start
    # and Kubernetes' garbage collector takes it with the pod
    kube.delete_pod(req.name, NS)
    assert kube.get_secret(secret_name, NS) is None


async def test_secret_left_by_an_earlier_attempt_is_taken_over(kube, builder):
    """A Secret of this name exists (another replica, a pod on its way out): it gets this
    build's credentials and this pod as owner, instead of failing the build."""
    req = private_request()
    name = f"{req.name}-git"
    kube.add_secret(name, {"credentials": "stale"}, NS)
    task, events = start_build(builder, req)
    pod = await kube.wait_for_pod(req.name, NS)
    await events.wait_for("created")
    assert kube.secret_value(name, "credentials", NS) == req.credentials
    assert (
        kube.get_secret(name, NS)["metadata"]["ownerReferences"][0]["uid"] == pod["metadata"]["uid"]
    )
    await run_pod_to_success(kube, req.name)
    await asyncio.wait_for(task, 10)


async def test_reaper_deletes_secrets_whose_pod_is_gone(kube, builder):
    config = builder.pod_config()
    orphan, live = private_request("a/orphan"), private_request("a/live")
    labels = {
        **config.extra_labels,
        **{k: v for k, v in to_dict(make_build_pod(orphan, config))["metadata"]["labels"].items()},
    }
    for r in (orphan, live):
        kube.add_secret(f"{r.name}-git", {"credentials": "x"}, NS, labels=labels)
        kube.secrets[(NS, f"{r.name}-git")]["metadata"]["annotations"] = {
            "r2dservice.jupyter.org/build": r.name
        }
        kube.secrets[(NS, f"{r.name}-git")]["metadata"]["creationTimestamp"] = (
            "2020-01-01T00:00:00Z"
        )
    kube.add_pod(to_dict(make_build_pod(live, config)), NS)
    kube.add_secret("someone-elses", {"k": "v"}, NS)  # not ours: not selected
    await asyncio.sleep(0.2)
    await builder.reap()
    assert kube.get_secret(f"{orphan.name}-git", NS) is None
    assert kube.get_secret(f"{live.name}-git", NS) is not None
    assert kube.get_secret("someone-elses", NS) is not None


async def test_fake_secrets_behave_as_the_api(kube):
    """Create, 409, get, list by label, merge patch (null deletes), 415 for other
    patch types, delete, 404; bad base64 is a 400; owner gone: collected."""
    import base64

    import aiohttp

    url = f"{kube.url}/api/v1/namespaces/{NS}/secrets"
    body = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "s1", "labels": {"app": "x"}},
        "data": {"k": base64.b64encode(b"v").decode()},
    }
    async with aiohttp.ClientSession() as s:
        async with s.post(url, json=body) as r:
            assert r.status == 201
        async with s.post(url, json=body) as r:
            assert r.status == 409 and (await r.json())["reason"] == "AlreadyExists"
        async with s.post(
            url, json={**body, "metadata": {"name": "s2"}, "data": {"k": "not base64!"}}
        ) as r:
            assert r.status == 400
        async with s.post(url, json={**body, "metadata": {"name": "s3"}, "bogus": 1}) as r:
            assert r.status == 422
        async with s.post(
            url, json={"metadata": {"name": "s4"}, "stringData": {"k": "plain"}}
        ) as r:
            assert r.status == 201 and (await r.json())["data"] == {
                "k": base64.b64encode(b"plain").decode()
            }
        async with s.get(url, params={"labelSelector": "app=x"}) as r:
            assert [i["metadata"]["name"] for i in (await r.json())["items"]] == ["s1"]
        merge = {"Content-Type": "application/merge-patch+json"}
        async with s.patch(
            f"{url}/s1", data=json.dumps({"metadata": {"labels": None}}), headers=merge
        ) as r:
            assert r.status == 200 and "labels" not in (await r.json())["metadata"]
        strategic = {"Content-Type": "application/strategic-merge-patch+json"}
        async with s.patch(f"{url}/s1", data="{}", headers=strategic) as r:
            assert r.status == 415
        owner = {
            "metadata": {
                "ownerReferences": [{"apiVersion": "v1", "kind": "Pod", "name": "p", "uid": "gone"}]
            }
        }
        async with s.patch(f"{url}/s4", data=json.dumps(owner), headers=merge) as r:
            assert r.status == 200
        assert kube.get_secret("s4", NS) is None  # its owner does not exist: collected
        async with s.delete(f"{url}/s1") as r:
            assert r.status == 200
        async with s.get(f"{url}/s1") as r:
            assert r.status == 404 and (await r.json())["reason"] == "NotFound"


# --- long log lines -------------------------------------------------------------------------


async def test_log_line_longer_than_the_reader_limit_is_cut_and_the_build_goes_on(kube, builder):
    req = make_request()
    task, events = start_build(builder, req)
    await kube.wait_for_pod(req.name, NS)
    kube.start_container(req.name, namespace=NS)
    kube.log(req.name, r2d("before\n"), "y" * (3 * 1024 * 1024), r2d("after\n"), namespace=NS)
    kube.finish(req.name, 0, namespace=NS)
    await asyncio.wait_for(task, 20)
    long = [m for m in events.messages if m.startswith("yyyy")]
    assert len(long) == 1 and long[0].endswith(TRUNCATED)
    assert (
        events.messages.index("before\n")
        < events.messages.index(long[0])
        < events.messages.index("after\n")
    )
    assert kube.stats["log"].requests == 1  # no error, so no resume from the same line


# --- the shared watch under faults ------------------------------------------------------


async def test_watch_dropped_mid_build_reconnects_without_losing_state(kube, builder):
    req = make_request()
    task, events = start_build(builder, req)
    await kube.wait_for_pod(req.name, NS)
    await kube.wait_for_watches(1)
    watches_before = kube.stats["watch"].requests
    assert kube.drop_watches(abrupt=True) == 1
    # changes while nobody watches
    kube.start_container(req.name, namespace=NS)
    kube.log(req.name, r2d("hello\n"), namespace=NS)
    kube.finish(req.name, 0, namespace=NS)
    await asyncio.wait_for(task, 10)
    assert kube.stats["watch"].requests > watches_before
    assert "hello\n" in events.messages


async def test_watch_410_gone_relists(kube, builder):
    req = make_request()
    task, _events = start_build(builder, req)
    await kube.wait_for_pod(req.name, NS)
    lists_before = builder._watch.lists
    kube.expire_next_watches(1)
    kube.drop_watches(abrupt=False)
    kube.start_container(req.name, namespace=NS)
    await run_pod_to_success(kube, req.name)
    await asyncio.wait_for(task, 10)
    assert builder._watch.lists > lists_before


async def test_watch_410_after_compaction(kube, builder):
    """A real compaction: the resourceVersion we hold falls out of history."""
    req = make_request()
    task, _events = start_build(builder, req)
    await kube.wait_for_pod(req.name, NS)
    kube.drop_watches()
    kube.start_container(req.name, namespace=NS)
    kube.compact()
    lists_before = builder._watch.lists
    kube.log(req.name, r2d("x\n"), namespace=NS)
    kube.finish(req.name, 0, namespace=NS)
    await asyncio.wait_for(task, 10)
    assert builder._watch.lists > lists_before


async def test_watch_410_as_http_status(kube, builder):
    kube.gone_as_http_status = True
    req = make_request()
    task, _ = start_build(builder, req)
    await kube.wait_for_pod(req.name, NS)
    lists_before = builder._watch.lists
    kube.expire_next_watches(1)
    kube.drop_watches()
    await run_pod_to_success(kube, req.name)
    await asyncio.wait_for(task, 10)
    assert builder._watch.lists > lists_before


async def test_pod_deleted_while_watch_was_down_is_noticed_on_relist(kube, builder):
    req = make_request()
    task, _ = start_build(builder, req)
    await kube.wait_for_pod(req.name, NS)
    kube.start_container(req.name, namespace=NS)
    await asyncio.sleep(0.1)
    kube.expire_next_watches(1)
    kube.drop_watches()
    kube.delete_pod(req.name, NS)
    with pytest.raises(BuildFailed, match="deleted before"):
        await asyncio.wait_for(task, 10)


async def test_pod_deleted_before_the_watch_ever_saw_it(kube, builder):
    """Created and deleted while the watch was down, then history compacted: no event
    about the pod will ever come; the fresh list without it says it is gone."""
    kube.fail_requests(1000, status=500, endpoint="watch")
    kube.drop_watches()
    req = make_request()
    task, _ = start_build(builder, req)
    await kube.wait_for_pod(req.name, NS)
    kube.delete_pod(req.name, NS)
    kube.compact()
    kube._failures.clear()
    with pytest.raises(BuildFailed, match="deleted before it started"):
        await asyncio.wait_for(task, 20)


async def test_sticky_builds_prefer_the_node_that_built_before(kube):
    b = make_builder(kube, sticky_builds=True)
    await b.start()
    try:
        first = make_request("o/r", ref="1" * 40)
        task, _ = start_build(b, first)
        pod = await kube.wait_for_pod(first.name, NS)
        assert "affinity" not in pod["spec"]  # no node known yet
        kube.schedule(first.name, "node-a", namespace=NS)
        kube.start_container(first.name, namespace=NS, node="node-a")
        kube.finish(first.name, 0, namespace=NS)
        await asyncio.wait_for(task, 10)

        again = make_request("o/r", ref="2" * 40)
        task, _ = start_build(b, again)
        pod = await kube.wait_for_pod(again.name, NS)
        terms = pod["spec"]["affinity"]["nodeAffinity"][
            "preferredDuringSchedulingIgnoredDuringExecution"
        ]
        assert terms[0]["preference"]["matchExpressions"][0]["values"] == ["node-a"]
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    finally:
        await b.stop()


async def test_bookmarks_keep_the_resource_version_fresh(kube, builder):
    """Changes to pods we do not select move the resourceVersion on; bookmarks tell us,
    so a reconnect after a quiet hour does not resume from a compacted version."""
    kube.add_pod(
        {"metadata": {"name": "other"}, "spec": {"containers": [{"name": "c", "image": "x"}]}}, NS
    )
    kube.patch_pod("other", lambda p: p["metadata"].setdefault("labels", {}).update(x="y"), NS)
    deadline = time.monotonic() + 5
    while builder._watch.resource_version != str(kube.rv):
        assert time.monotonic() < deadline, (builder._watch.resource_version, kube.rv)
        await asyncio.sleep(0.05)
    kube.compact()
    kube.drop_watches(abrupt=False)
    lists = builder._watch.lists
    await asyncio.sleep(0.3)
    assert builder._watch.lists == lists  # resumed, no 410, no re-list
    assert kube.stats["watch"].requests >= 2


async def test_server_side_watch_timeout_reconnects_quietly(kube):
    b = make_builder(kube)
    b.watch_timeout_seconds = 1
    await b.start()
    try:
        await asyncio.sleep(2.5)
        assert kube.stats["watch"].requests >= 3
        assert b._watch.errors == 0 and b._watch.lists == 1
        req = make_request()
        task, _ = start_build(b, req)
        await kube.wait_for_pod(req.name, NS)
        await run_pod_to_success(kube, req.name)
        await asyncio.wait_for(task, 10)
    finally:
        await b.stop()


async def test_watch_survives_500s(kube, builder):
    req = make_request()
    task, _ = start_build(builder, req)
    await kube.wait_for_pod(req.name, NS)
    kube.fail_requests(3, status=500, endpoint="watch")
    kube.fail_requests(2, status=503, endpoint="list")
    kube.expire_next_watches(1)  # so the relist meets the failing list
    kube.drop_watches()
    await run_pod_to_success(kube, req.name)
    await asyncio.wait_for(task, 10)
    assert builder._watch.errors >= 3


async def test_create_retries_500s(kube, builder):
    kube.fail_requests(2, status=500, endpoint="create")
    req = make_request()
    task, _events = start_build(builder, req)
    await kube.wait_for_pod(req.name, NS)
    await run_pod_to_success(kube, req.name)
    await asyncio.wait_for(task, 10)
    assert kube.stats["create"].requests == 3


async def test_start_retries_a_failing_list(kube):
    kube.fail_requests(2, status=500, endpoint="list")
    b = make_builder(kube)
    assert await b.start() == []
    await b.stop()


async def test_start_refuses_a_bad_configuration(kube):
    b = make_builder(kube, tolerations=[{"key": "x", "operatr": "Exists"}])
    with pytest.raises(ValueError, match="unknown field 'operatr'"):
        await b.start()
    assert kube.stats["list"].requests == 0


async def test_start_fails_fast_on_forbidden(kube):
    kube.fail_requests(1, status=403, endpoint="list")
    b = make_builder(kube)
    with pytest.raises(Exception, match="403"):
        await b.start()


# --- logs under faults -------------------------------------------------------------------


async def test_broken_log_stream_resumes_without_loss_or_repeats(kube, builder):
    req = make_request()
    task, events = start_build(builder, req)
    await kube.wait_for_pod(req.name, NS)
    kube.break_logs(req.name, NS, after_lines=3)
    kube.break_logs(req.name, NS, after_lines=2)
    kube.start_container(req.name, namespace=NS)
    # many lines with the same timestamp, the hard case for resuming
    same = time.time_ns()
    log = kube._log_for((NS, req.name))
    for i in range(10):
        log.lines.append((same, r2d(f"line {i}\n")))
    log.notify()
    await events.wait_for("line 9")
    kube.log(req.name, *(r2d(f"line {i}\n") for i in range(10, 15)), namespace=NS)
    await events.wait_for("line 14")
    kube.break_logs(req.name, NS)  # cut the live stream too
    kube.log(req.name, *(r2d(f"line {i}\n") for i in range(15, 20)), namespace=NS)
    kube.finish(req.name, 0, namespace=NS)
    await asyncio.wait_for(task, 10)
    lines = [m for m in events.messages if m.startswith("line ")]
    assert lines == [f"line {i}\n" for i in range(20)]
    assert kube.stats["log"].requests >= 4


async def test_slow_log_stream_does_not_block_other_builds(kube, builder):
    slow, fast = make_request("a/slow"), make_request("a/fast")
    kube.log_delay = 0.0
    ts, es = start_build(builder, slow)
    tf, _ef = start_build(builder, fast)
    await kube.wait_for_pod(slow.name, NS)
    await kube.wait_for_pod(fast.name, NS)
    kube.start_container(slow.name, namespace=NS)
    kube.log(slow.name, *(r2d(f"slow {i}\n") for i in range(5)), namespace=NS)
    await es.wait_for("slow 4")
    kube.log_delay = 0.2  # every line sent from now on trickles
    kube.log(slow.name, r2d("slow 5\n"), r2d("slow 6\n"), namespace=NS)
    t0 = time.monotonic()
    await run_pod_to_success(kube, fast.name, lines=["quick"])
    kube.log_delay = 0.0
    await asyncio.wait_for(tf, 10)
    assert time.monotonic() - t0 < 2
    kube.finish(slow.name, 0, namespace=NS)
    await asyncio.wait_for(ts, 10)
    assert "slow 6\n" in es.messages


async def test_log_not_ready_yet_is_retried(kube, builder):
    """The watch says Running before the kubelet serves the log (400 waiting to start)."""
    req = make_request()
    task, events = start_build(builder, req)
    await kube.wait_for_pod(req.name, NS)
    kube.fail_requests(2, status=400, endpoint="log")
    await run_pod_to_success(kube, req.name)
    await asyncio.wait_for(task, 10)
    assert "step 2\n" in events.messages


# --- one watch, one log stream per build -----------------------------------------------


async def test_connections_one_watch_one_log_per_build(kube, builder):
    reqs = [make_request(f"o/r{i}") for i in range(10)]
    tasks = [start_build(builder, r)[0] for r in reqs]
    for r in reqs:
        await kube.wait_for_pod(r.name, NS)
        kube.start_container(r.name, namespace=NS)
    for _ in range(3):
        for r in reqs:
            kube.log(r.name, r2d("x\n"), namespace=NS)
        await asyncio.sleep(0.05)
    assert kube.stats["watch"].open == 1
    assert kube.stats["log"].open == len(reqs)
    for r in reqs:
        kube.finish(r.name, 0, namespace=NS)
    await asyncio.wait_for(asyncio.gather(*tasks), 10)
    assert kube.stats["watch"].requests == 1
    assert kube.stats["log"].requests == len(reqs)
    assert kube.stats["list"].requests == 1


# --- the fake itself speaks the protocol ---------------------------------------------------


def test_label_selector_parsing():
    m = parse_selector("a=b,c!=d,e,!f,g in (1, 2),h notin (3)")
    assert m({"a": "b", "e": "", "g": "1"})
    assert not m({"a": "b", "e": "", "g": "3"})
    assert not m({"a": "b", "c": "d", "e": "", "g": "1"})
    assert not m({"a": "b", "e": "", "f": "", "g": "1"})
    assert not m({"a": "b", "e": "", "g": "1", "h": "3"})
    assert parse_selector("a==b")({"a": "b"})
    with pytest.raises(ValueError):
        parse_selector("a b c")


def test_rfc3339nano_trims_zeros():
    assert rfc3339nano(1_700_000_000_000_000_000) == "2023-11-14T22:13:20Z"
    assert rfc3339nano(1_700_000_000_120_000_000) == "2023-11-14T22:13:20.12Z"


async def test_fake_validates_pods_strictly(kube, builder):
    import aiohttp

    async with aiohttp.ClientSession() as s:
        body = {
            "metadata": {"name": "bad"},
            "spec": {"containers": [{"name": "c", "image": "x", "bogus": 1}]},
        }
        async with s.post(f"{kube.url}/api/v1/namespaces/{NS}/pods", json=body) as r:
            assert r.status == 422
            assert (await r.json())["reason"] == "Invalid"
        async with s.get(f"{kube.url}/api/v1/namespaces/{NS}/pods/nope") as r:
            assert r.status == 404
            assert (await r.json())["reason"] == "NotFound"


# --- r2dservice build-pod ------------------------------------------------------------------

SHA = "0123456789abcdef0123456789abcdef01234567"


def write_config(tmp_path) -> str:
    path = tmp_path / "r2dservice_config.py"
    path.write_text(
        "c.R2DService.image_prefix = 'registry.example.org:5000/binder/r2d-'\n"
        "c.KubernetesBuilder.namespace = 'binder'\n"
        "c.KubernetesBuilder.push_secret = 'push-creds'\n"
        "c.KubernetesBuilder.repo2docker_extra_args = ['--appendix=RUN true']\n"
        "c.KubernetesBuilder.tolerations = [{'key': 'builds', 'operator': 'Exists'}]\n"
    )
    return str(path)


async def test_build_pod_manifest_is_what_the_service_creates(tmp_path):
    import yaml

    from r2dservice.buildpod import BuildPodApp

    app = BuildPodApp()
    app.initialize(
        ["-f", write_config(tmp_path), "--ref", SHA, "--user", "alice", "gh/owner/repo/main"]
    )
    pod = yaml.safe_load(await app.manifest("gh/owner/repo/main"))
    builder = KubernetesBuilder(config=app.config)
    image = naming.image_name(
        "registry.example.org:5000/binder/r2d-", "gh", "owner/repo", SHA, builder.fingerprint()
    )
    req = BuildRequest(
        name=naming.build_name(image),
        image_name=image,
        repo_url="https://github.com/owner/repo",
        ref=SHA,
        provider="gh",
        spec="owner/repo/main",
        push=True,
        user="alice",
    )
    assert pod == to_dict(builder.make_pod(req))
    assert pod["metadata"]["namespace"] == "binder"
    assert "--appendix=RUN true" in pod["spec"]["containers"][0]["args"]


@pytest.mark.parametrize(
    "spec, url",
    [
        ("gl/group%2Fsub%2Fproject/main", "https://gitlab.com/group/sub/project.git"),
        ("git/https%3A%2F%2Fexample.org%2Frepo.git/main", "https://example.org/repo.git"),
        (
            "gist/octocat/6cad326836d38bd3a7ae/HEAD",
            "https://gist.github.com/octocat/6cad326836d38bd3a7ae.git",
        ),
    ],
)
async def test_build_pod_clone_urls_offline(spec, url):
    import yaml

    from r2dservice.buildpod import BuildPodApp

    app = BuildPodApp()
    app.initialize(["--ref", SHA, spec])
    pod = yaml.safe_load(await app.manifest(spec))
    assert pod["spec"]["containers"][0]["args"][-1] == url
    # the service's default image prefix when the config names none
    assert pod["metadata"]["annotations"]["r2dservice.jupyter.org/image"].startswith("r2d-")


def test_build_pod_command_prints_valid_yaml(tmp_path):
    import subprocess
    import sys

    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "r2dservice",
            "build-pod",
            "-f",
            write_config(tmp_path),
            "gh/owner/repo/main",
            "--ref",
            SHA,
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    path = tmp_path / "pod.yaml"
    path.write_text(out.stdout)
    check = subprocess.run(
        [sys.executable, "-m", "kubernetes_validate", "--strict", "-k", "1.30.0", str(path)],
        capture_output=True,
        text=True,
    )
    assert check.returncode == 0, check.stdout
    assert "passed" in check.stdout


def test_build_pod_command_reports_bad_specs(tmp_path):
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-m", "r2dservice", "build-pod", "nonsense", "--ref", SHA],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 1
    assert "<provider>/<spec>" in out.stderr


# --- through the BuildManager ------------------------------------------------------------


class _Resolver:
    async def resolve(self, provider, spec):
        from r2dservice.providers.base import ResolvedRepo

        repo, _, ref = spec.rpartition("/")
        return ResolvedRepo(provider, spec, repo, f"https://github.com/{repo}", ref, "d" * 40, "")


class _Registry:
    pushes = True

    async def exists(self, image):
        return False


def make_manager(builder):
    from r2dservice.builds import BuildManager

    return BuildManager(
        builder=builder,
        resolver=_Resolver(),
        registry=_Registry(),
        image_prefix="registry.example/r2d-",
    )


async def test_service_restart_adopts_the_build_and_viewers_see_it_finish(kube):
    manager = make_manager(make_builder(kube))
    await manager.start()
    build = await manager.request("gh", "owner/repo/main")
    name = build.request.name
    await kube.wait_for_pod(name, NS)
    kube.start_container(name, namespace=NS)
    kube.log(name, r2d("before restart\n"), namespace=NS)
    while not any("before restart" in e.message for e in build.events):
        await asyncio.sleep(0.01)
    await manager.stop()  # shutdown: the pod keeps building
    assert kube.get_pod(name, NS) is not None
    kube.log(name, r2d("during restart\n"), namespace=NS)

    manager2 = make_manager(make_builder(kube))
    await manager2.start()
    try:
        adopted = manager2.active_build(build.image_name)
        assert adopted is not None and adopted.request == build.request
        # a viewer reconnecting asks for the same image and joins the adopted build
        again = await manager2.request("gh", "owner/repo/main")
        assert again is adopted
        kube.log(name, r2d("after restart\n"), namespace=NS)
        kube.finish(name, 0, namespace=NS)
        seen = [e async for _, e in again.follow()]
        messages = [e.message for e in seen]
        assert "during restart\n" in messages and "after restart\n" in messages
        assert seen[-1].phase == "ready"
    finally:
        await manager2.stop()


@pytest.mark.parametrize("seed", [0, 3, 7])
async def test_many_builds_under_random_faults_all_succeed_with_exact_logs(kube, seed):
    """Chaos: dropped watches, 410s, 500s and cut log streams while 20 builds run."""
    import random

    rnd = random.Random(seed)
    b = make_builder(kube)
    await b.start()
    try:
        reqs = [make_request(f"chaos/r{i}") for i in range(20)]
        runs = [start_build(b, r) for r in reqs]
        for r in reqs:
            await kube.wait_for_pod(r.name, NS)
            kube.start_container(r.name, namespace=NS)
        for step in range(30):
            for r in reqs:
                kube.log(r.name, r2d(f"{r.name} line {step}\n"), namespace=NS)
            fault = rnd.choice(["none", "drop", "drop-clean", "410", "500", "cut-log"])
            if fault == "drop":
                kube.drop_watches(abrupt=True)
            elif fault == "drop-clean":
                kube.drop_watches(abrupt=False)
            elif fault == "410":
                kube.expire_next_watches(1)
                kube.drop_watches()
            elif fault == "500":
                kube.fail_requests(2, status=500, endpoint=rnd.choice(["watch", "log", "list"]))
            elif fault == "cut-log":
                kube.break_logs(rnd.choice(reqs).name, NS)
            await asyncio.sleep(0.02)
        for r in reqs:
            kube.finish(r.name, 0, namespace=NS)
        await asyncio.wait_for(asyncio.gather(*(t for t, _ in runs)), 30)
        for r, (_, events) in zip(reqs, runs, strict=True):
            lines = [m for m in events.messages if " line " in m]
            assert lines == [f"{r.name} line {i}\n" for i in range(30)], r.name
        assert kube.stats["watch"].peak_open == 1
    finally:
        await b.stop()
