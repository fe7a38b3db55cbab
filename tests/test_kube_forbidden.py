"""A Role that loses a verb while the service runs: the Kubernetes builder against the
secure stand-in API (HTTPS, a service-account token, RBAC checked against the chart's
rendered Role), the test playing kubelet. Each refusal surfaces: builds fail with the
API's 403 instead of waiting for build_timeout, a build without its log says why, pods
that cannot be deleted show in the log (once) and in the builder's /health check.

As on a real API server, RBAC is checked when a request arrives: a watch that is open
goes on after its verb is taken away; the refusal comes when it reconnects (here: the
stand-in drops the stream, as a server-side timeout or an API server restart does).
"""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess

import pytest
import yaml

from r2dservice.builders import kubernetes as kubernetes_module
from r2dservice.builders.base import BuildFailed
from tests.fakes.kubeapi import FakeKubeAPI
from tests.test_kubernetes_builder import Events, make_builder, make_request, r2d, start_build

NS = "builds"  # where the build pods are (tests.test_kubernetes_builder's)
SERVICE_NS = "hub"
SA = "r2dservice"
CHART = os.path.join(os.path.dirname(__file__), os.pardir, "chart", "r2dservice")


def chart_role() -> dict:
    """The chart's Role for the build namespace, as `helm template` renders it."""
    helm = os.environ.get("R2D_TEST_HELM")
    if not helm:
        pytest.fail("R2D_TEST_HELM is not set: source the dev environment", pytrace=False)
    out = subprocess.run(
        [helm, "template", "r", CHART, "--namespace", SERVICE_NS]
        + ["--set", "builder=kubernetes", "--set", f"build.namespace={NS}"]
        + ["--show-only", "templates/rbac.yaml"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    [role] = [d for d in yaml.safe_load_all(out) if d and d["kind"] == "Role"]
    return role


@pytest.fixture(scope="module")
def role() -> dict:
    return chart_role()


@pytest.fixture
async def kube(role, tmp_path, monkeypatch):
    """The secure stand-in, with the chart's Role bound to the service's account, and
    the builder's client made as in a pod (in-cluster config from the mounted files)."""
    fake = FakeKubeAPI(secure=True, bookmark_interval=0.2)
    await fake.start()
    account = fake.add_service_account(SA, SERVICE_NS)
    fake.add_object(role)
    fake.add_object(
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": role["metadata"]["name"], "namespace": NS},
            "subjects": [{"kind": "ServiceAccount", "name": SA, "namespace": SERVICE_NS}],
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "Role",
                "name": role["metadata"]["name"],
            },
        }
    )
    (tmp_path / "token").write_text(fake.tokens.issue(SERVICE_NS, account))
    (tmp_path / "ca.crt").write_text(fake.ca_pem)

    async def in_cluster_client(api_url: str = ""):
        from kubernetes_asyncio import client, config

        conf = client.Configuration()
        config.load_incluster_config(
            client_configuration=conf,
            token_filename=str(tmp_path / "token"),
            cert_filename=str(tmp_path / "ca.crt"),
            environ={
                "KUBERNETES_SERVICE_HOST": fake.host,
                "KUBERNETES_SERVICE_PORT": str(fake.port),
            },
        )
        conf.connection_pool_maxsize = 0
        return client.ApiClient(conf)

    monkeypatch.setattr(kubernetes_module, "make_api_client", in_cluster_client)
    yield fake
    await fake.stop()


@pytest.fixture
async def builder(kube):
    b = make_builder(kube, push_secret="")  # the client: in_cluster_client
    await b.start()
    yield b
    await b.stop()


USER = f"system:serviceaccount:{SERVICE_NS}:{SA}"


def take_away(kube: FakeKubeAPI, role: dict, resource: str, verb: str) -> None:
    """`kubectl edit role`: `verb` on `resource` no longer granted."""
    live = kube.role(role["metadata"]["name"], NS)
    [rule] = [r for r in live["rules"] if r["resources"] == [resource]]
    rule["verbs"].remove(verb)


def give_back(kube: FakeKubeAPI, role: dict, resource: str, verb: str) -> None:
    live = kube.role(role["metadata"]["name"], NS)
    [rule] = [r for r in live["rules"] if r["resources"] == [resource]]
    rule["verbs"].append(verb)


def kubernetes_check(builder) -> dict:
    [check] = [c for c in builder.health() if c["service"] == "kubernetes"]
    return check


async def test_watch_forbidden_while_running_fails_the_build_naming_it(kube, builder, role):
    req = make_request()
    task, events = start_build(builder, req)
    await kube.wait_for_pod(req.name, NS)
    kube.schedule(req.name, namespace=NS)
    kube.start_container(req.name, namespace=NS)
    kube.log(req.name, r2d("step 1\n"), namespace=NS)
    await events.wait_for("step 1")
    assert kubernetes_check(builder) == {"service": "kubernetes", "ok": True, "critical": False}

    take_away(kube, role, "pods", "watch")
    loop = asyncio.get_running_loop()
    start = loop.time()
    kube.drop_watches()  # the open stream ends (timeout, API server restart)
    with pytest.raises(BuildFailed) as e:
        await asyncio.wait_for(task, 10)
    took = loop.time() - start
    refusal = (
        f'pods is forbidden: User "{USER}" cannot watch resource "pods" in API group "" '
        f'in the namespace "{NS}"'
    )
    assert e.value.args[0] == (
        "The service can no longer follow build pods: the Kubernetes API refuses to watch "
        f"them ({refusal}). Its Role needs list and watch on pods.\n"
    )
    assert took < 5, f"failed after {took:.1f}s"  # not at build_timeout
    # its pod is deleted (the Role still allows that)
    await kube.wait_gone(req.name, NS)
    check = kubernetes_check(builder)
    assert check == {
        "service": "kubernetes",
        "ok": False,
        "critical": False,
        "message": f"the build pod watch is refused: {refusal}",
    }
    # A new build fails at once, without a pod that nobody would watch.
    req2 = make_request("owner/other")
    with pytest.raises(BuildFailed, match="refuses to watch"):
        await asyncio.wait_for(builder.build(req2, Events()), 5)
    assert kube.get_pod(req2.name, NS) is None

    # The Role fixed: the watch comes back by itself, and so do builds.
    give_back(kube, role, "pods", "watch")
    deadline = loop.time() + 40  # the reconnect backoff is capped at 0.5 s here
    while not kubernetes_check(builder)["ok"]:
        assert loop.time() < deadline, kubernetes_check(builder)
        await asyncio.sleep(0.05)
    task3, events3 = start_build(builder, req2)
    await kube.wait_for_pod(req2.name, NS)
    kube.schedule(req2.name, namespace=NS)
    kube.start_container(req2.name, namespace=NS)
    kube.log(req2.name, r2d("again\n"), namespace=NS)
    kube.finish(req2.name, 0, namespace=NS)
    await asyncio.wait_for(task3, 10)
    assert "again\n" in events3.messages


async def test_list_forbidden_on_relist_fails_builds_too(kube, builder, role):
    """A relist (after 410 Gone) refused counts as the watch refused."""
    req = make_request()
    task, events = start_build(builder, req)
    await kube.wait_for_pod(req.name, NS)
    await events.wait_for("created")
    take_away(kube, role, "pods", "list")
    take_away(kube, role, "pods", "watch")
    kube.expire_next_watches(1)
    kube.drop_watches()
    with pytest.raises(BuildFailed, match='cannot (list|watch) resource "pods"'):
        await asyncio.wait_for(task, 10)
    assert not kubernetes_check(builder)["ok"]


async def test_log_forbidden_tells_the_user_and_the_build_ends_as_its_pod(kube, builder, role):
    take_away(kube, role, "pods/log", "get")
    req = make_request()
    task, events = start_build(builder, req)
    await kube.wait_for_pod(req.name, NS)
    kube.schedule(req.name, namespace=NS)
    kube.start_container(req.name, namespace=NS)
    kube.log(req.name, r2d("unseen\n"), namespace=NS)
    await events.wait_for("cannot be read", timeout=5)
    kube.finish(req.name, 0, namespace=NS)
    await asyncio.wait_for(task, 10)  # a success: the pod's outcome
    [event] = [e for e in events if "cannot be read" in e.message]
    assert event.message == (
        f'The build log cannot be read: pods "{req.name}" is forbidden: User "{USER}" '
        f'cannot get resource "pods/log" in API group "" in the namespace "{NS}". '
        "The build goes on; its Role needs get on pods/log.\n"
    )
    assert "unseen\n" not in events.messages
    # asked once: a refusal is not retried for the rest of the build
    assert [d for d in kube.denied if d[1:3] == ("get", "pods/log")] == [
        (USER, "get", "pods/log", NS, req.name)
    ]

    # a failing pod still fails the build, with its exit code
    req2 = make_request("owner/failing")
    task2, events2 = start_build(builder, req2)
    await kube.wait_for_pod(req2.name, NS)
    kube.schedule(req2.name, namespace=NS)
    kube.start_container(req2.name, namespace=NS)
    await events2.wait_for("cannot be read", timeout=5)
    kube.finish(req2.name, 3, namespace=NS)
    with pytest.raises(BuildFailed, match="3"):
        await asyncio.wait_for(task2, 10)


async def test_delete_forbidden_is_logged_once_and_shown_in_health(kube, builder, role, caplog):
    take_away(kube, role, "pods", "delete")
    caplog.set_level(logging.INFO)
    names = []
    for repo in ("owner/one", "owner/two"):
        req = make_request(repo)
        names.append(req.name)
        task, _events = start_build(builder, req)
        await kube.wait_for_pod(req.name, NS)
        kube.schedule(req.name, namespace=NS)
        kube.start_container(req.name, namespace=NS)
        kube.finish(req.name, 0, namespace=NS)
        await asyncio.wait_for(task, 10)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 5
    while len(builder._deleter.refused) < 2:  # after finished_pod_linger
        assert loop.time() < deadline
        await asyncio.sleep(0.02)
    for name in names:
        assert kube.get_pod(name, NS) is not None  # left behind
    refusals = [r.getMessage() for r in caplog.records if "refuses to delete" in r.getMessage()]
    assert len(refusals) == 1, refusals  # once, not per pod
    assert f'User "{USER}" cannot delete resource "pods"' in refusals[0]
    check = kubernetes_check(builder)
    assert check["ok"] is False and check["critical"] is False
    assert check["message"] == (
        f'2 build pods cannot be deleted: pods "{names[1]}" is forbidden: User "{USER}" '
        f'cannot delete resource "pods" in API group "" in the namespace "{NS}"'
    )
    # The reaper asks again every pass: no more log lines.
    builder.orphan_grace = 0
    await builder.reap()
    assert len([r for r in caplog.records if "refuses to delete" in r.getMessage()]) == 1, (
        caplog.text
    )

    # The Role fixed: the reaper deletes them, /health is ok again.
    give_back(kube, role, "pods", "delete")
    await builder.reap()
    for name in names:
        await kube.wait_gone(name, NS)
    assert kubernetes_check(builder)["ok"] is True
