"""The chart end to end without a cluster.

`helm template` proves the manifests are valid; it cannot prove that they fit together:
the env names the service reads, the files it expects where the Secret is mounted, the
user and read-only root it runs with, the socket the build pods mount. So the harness
that plays kubelet for the build pods (tests/fakes/kubelet.py, on the local Docker
engine) runs the chart's rendered service Deployment too, from the image the repository's
Dockerfile makes (dev/service-image.sh), with the rendered Secrets in the stand-in API
(tests/fakes/kubeapi.py). A build requested through that pod makes a build pod, which the
same kubelet runs with the build daemon's socket, and the image lands in the registry.

The first test uses the machine's own Docker engine as the build daemon (daemon.type
host). The second runs the chart's default, the dind DaemonSet, as the kubelet would:
privileged, its socket and data on hostPaths, the image cleaner beside it, from a
stand-in of the official docker:*-dind image made here (dev/daemon-image: Debian's
dockerd behind the official entrypoint's argument rules; Docker Hub is out of reach).
That pod gets a network namespace of its own, as on a cluster (a second dockerd on the
host's network would take over this machine's docker0 and iptables), so the registry it
pushes to listens where a pod can reach it (the bridge's gateway) and, being plain HTTP,
is named in `build.daemon.extraArgs` (--insecure-registry), as an operator with such a
registry does. The third leaves the DaemonSet out: the build fails within pendingGrace
naming the socket.

The stand-in API is a cluster's as a pod meets it (FakeKubeAPI(secure=True)): the
service finds it as in a cluster, with no URL in its configuration, through the
KUBERNETES_SERVICE_* variables and the token, ca.crt and namespace the kubelet mounts
from its ServiceAccount (kubernetes_asyncio's in-cluster configuration), over HTTPS, and
every request it makes is authorized against the chart's rendered Role and RoleBinding:
what the Role does not grant is refused with the API server's 403. Build pods get no
token (the chart turns automount off for them). The fourth test takes a verb out of the
Role and sees the build fail naming it.

The one difference left: as every pod here shares the host's network, the service
listens on a free port (`config.R2DService.port`).
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import quote

import aiohttp
import pytest
import yaml

from tests.conftest import registry_has
from tests.fakes.gitserver import GitHTTPServer, make_repo
from tests.fakes.kubeapi import FakeKubeAPI
from tests.fakes.kubeauth import SA_MOUNT
from tests.fakes.kubelet import DockerKubelet, remove_leftover_containers
from tests.support.bridge import bridge_gateway
from tests.support.registry import AuthRegistry
from tests.support.sse import read_events
from tests.test_chart import CHART, NAMESPACE, RELEASE, helm, run_helm
from tests.test_kube_e2e import build_image, docker_socket

pytestmark = pytest.mark.docker
__all__ = ["build_image", "helm"]  # fixtures

REPO = Path(__file__).resolve().parents[1]
SERVICE_IMAGE = "r2dservice:local"
BUILD_NS = "r2d-builds"
HUB_TOKEN = "token-that-z2jh-generated"


@pytest.fixture(scope="module")
def service_image(infra):
    """r2dservice:local from the repository's Dockerfile (dev/service-image.sh caches it)."""
    proc = subprocess.run(
        ["bash", str(REPO / "dev" / "service-image.sh")],
        capture_output=True,
        text=True,
        timeout=1200,
        env={
            **os.environ,
            "BASE_IMAGE": infra["base_image"],
            "IMAGE": SERVICE_IMAGE,
            "PYTHON": sys.executable,
        },
    )
    if proc.returncode:
        pytest.fail(f"dev/service-image.sh failed:\n{proc.stderr[-3000:]}")
    return SERVICE_IMAGE


@pytest.fixture(scope="module")
def daemon_image(infra, helm, tmp_path_factory):
    """The image the rendered dind DaemonSet names, made on this machine by
    dev/daemon-image/build.sh (cached by its recipe)."""
    docs = render(helm, tmp_path_factory.mktemp("daemon"), {"imagePrefix": "r.example/x-"})
    [ds] = [d for d in docs if d["kind"] == "DaemonSet"]
    image = ds["spec"]["template"]["spec"]["containers"][0]["image"]
    proc = subprocess.run(
        ["bash", str(REPO / "dev" / "daemon-image" / "build.sh")],
        capture_output=True,
        text=True,
        timeout=1200,
        env={**os.environ, "BASE_IMAGE": infra["base_image"], "IMAGE": image},
    )
    if proc.returncode:
        pytest.fail(f"dev/daemon-image/build.sh failed:\n{proc.stderr[-3000:]}")
    return image


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def render(helm: str, tmp_path, values: dict) -> list[dict]:
    proc = run_helm(
        helm, "template", RELEASE, CHART, "--namespace", NAMESPACE, values=values, tmp_path=tmp_path
    )
    assert proc.returncode == 0, proc.stderr
    return [d for d in yaml.safe_load_all(proc.stdout) if d]


RBAC_KINDS = ("ServiceAccount", "Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding")


async def apply(kube: FakeKubeAPI, kubelet: DockerKubelet, docs: list[dict]) -> dict:
    """What the API server and controllers would make of the rendered manifests: the
    ServiceAccount, Roles and bindings in place, the Secrets (through the API,
    validated), the claims bound, the Deployment's pod created. Returns the pod."""
    for doc in docs:
        if doc["kind"] in RBAC_KINDS:
            kube.add_object(doc, NAMESPACE)
    async with kube.admin_session() as s:
        for doc in docs:
            ns = doc["metadata"].get("namespace", NAMESPACE)
            if doc["kind"] == "Secret":
                url = f"{kube.url}/api/v1/namespaces/{ns}/secrets"
                async with s.post(url, json=doc) as r:
                    assert r.status == 201, await r.text()
            elif doc["kind"] == "PersistentVolumeClaim":
                kubelet.add_claim(doc["metadata"]["name"], ns)
        [deployment] = [d for d in docs if d["kind"] == "Deployment"]
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                **deployment["spec"]["template"]["metadata"],
                "name": deployment["metadata"]["name"] + "-0",
            },
            "spec": deployment["spec"]["template"]["spec"],
        }
        async with s.post(f"{kube.url}/api/v1/namespaces/{NAMESPACE}/pods", json=pod) as r:
            assert r.status == 201, await r.text()
            return await r.json()


async def run_daemon_set(kube: FakeKubeAPI, kubelet: DockerKubelet, docs: list[dict]) -> dict:
    """What the DaemonSet controller would do on this one-node cluster: its pod on the
    node, with the ConfigMaps it mounts. Returns the pod."""
    for doc in docs:
        if doc["kind"] == "ConfigMap":
            kubelet.add_config_map(
                doc["metadata"]["name"], doc["data"], doc["metadata"]["namespace"]
            )
    [ds] = [d for d in docs if d["kind"] == "DaemonSet"]
    ns = ds["metadata"]["namespace"]
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            **ds["spec"]["template"]["metadata"],
            "name": f"{ds['metadata']['name']}-{kubelet.node}",
        },
        "spec": ds["spec"]["template"]["spec"],
    }
    async with kube.admin_session() as s:
        async with s.post(f"{kube.url}/api/v1/namespaces/{ns}/pods", json=pod) as r:
            assert r.status == 201, await r.text()
            return await r.json()


def service_account_name(docs: list[dict]) -> str:
    [deployment] = [d for d in docs if d["kind"] == "Deployment"]
    return deployment["spec"]["template"]["spec"]["serviceAccountName"]


def is_daemon(pod: dict) -> bool:
    labels = pod["metadata"].get("labels") or {}
    return labels.get("app.kubernetes.io/component") == "build-daemon"


async def wait_ready(kube: FakeKubeAPI, name: str, ns: str, timeout: float = 90) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        pod = kube.get_pod(name, ns) or {}
        statuses = (pod.get("status") or {}).get("containerStatuses") or [{}]
        if statuses[0].get("ready"):
            return
        if loop.time() > deadline or (pod.get("status") or {}).get("phase") == "Failed":
            raise AssertionError(
                f"{name} is not ready: {json.dumps(pod.get('status'))}\n"
                f"{kube.log_text(name, ns)[-3000:]}\n"
                f"events: {[(e['reason'], e['message']) for e in kube.events_for(name, ns)]}"
            )
        await asyncio.sleep(0.5)


def chart_values(infra, kube: FakeKubeAPI, port: int, image_prefix: str, daemon: dict) -> dict:
    """What an operator sets (the registry, its credentials, the service's name, the
    daemon), and what this machine needs (its own images, repo2docker's offline
    configuration, a free port). No API URL: the service finds it as in a cluster."""
    config_dir = str(Path(infra["r2d_config"]).parent)
    return {
        "imagePrefix": image_prefix,
        "registry": {"username": "pusher", "password": "s3cret"},
        "service": {"name": "binder"},
        "image": {"name": "r2dservice", "tag": "local", "pullPolicy": "Never"},
        "build": {
            "namespace": BUILD_NS,
            "image": {"name": "r2dservice-repo2docker", "tag": "local", "pullPolicy": "Never"},
            **daemon,
            "extraVolumes": [
                {"name": "r2d-config", "hostPath": {"path": config_dir, "type": "Directory"}}
            ],
            "extraVolumeMounts": [
                {"name": "r2d-config", "mountPath": "/etc/r2d-dev", "readOnly": True}
            ],
            "repo2dockerExtraArgs": [f"--config=/etc/r2d-dev/{Path(infra['r2d_config']).name}"],
        },
        # no hub here: the hub's side is tested in test_hub.py
        "auth": {"enabled": False},
        "config": {
            "R2DService": {"port": port},
            # the test's git server listens on 127.0.0.1
            "GitRepoProvider": {"allow_loopback": True},
        },
    }


def host_volume(docs: list[dict], volume: str) -> str:
    """The node folder of one of the DaemonSet's hostPath volumes."""
    [ds] = [d for d in docs if d["kind"] == "DaemonSet"]
    [v] = [v for v in ds["spec"]["template"]["spec"]["volumes"] if v["name"] == volume]
    return v["hostPath"]["path"]


def docker(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=check)


async def wait_answering(url: str, kube: FakeKubeAPI, pod: str, timeout: float = 120) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    async with aiohttp.ClientSession() as s:
        while True:
            try:
                async with s.get(url) as r:
                    if r.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            p = kube.get_pod(pod, NAMESPACE) or {}
            if loop.time() > deadline or (p.get("status") or {}).get("phase") == "Failed":
                raise AssertionError(
                    f"the service pod does not answer {url}: {json.dumps(p.get('status'))}\n"
                    f"{kube.log_text(pod, NAMESPACE)[-3000:]}\n"
                    f"events: {[(e['reason'], e['message']) for e in kube.events_for(pod, NAMESPACE)]}"
                )
            await asyncio.sleep(0.5)


async def test_chart_runs_and_builds_through_the_service_pod(
    helm, service_image, build_image, infra, run_id, tmp_path
):
    await remove_leftover_containers()
    port = free_port()
    config_dir = str(Path(infra["r2d_config"]).parent)
    git = GitHTTPServer(tmp_path / "git").start()
    kube = FakeKubeAPI(secure=True)
    await kube.start()
    kubelet = DockerKubelet(kube)
    await kubelet.start()
    try:
        values = {
            # what an operator sets: the registry, its credentials, the service's name
            "imagePrefix": f"{infra['registry']}/r2dtest-{run_id}-chart-",
            "registry": {"username": "pusher", "password": "s3cret"},
            "service": {"name": "binder"},
            # this machine's images, made by the repository
            "image": {"name": "r2dservice", "tag": "local", "pullPolicy": "Never"},
            "build": {
                "namespace": BUILD_NS,
                "image": {"name": "r2dservice-repo2docker", "tag": "local", "pullPolicy": "Never"},
                # This machine's Docker engine, as the node's ("host"): a privileged
                # dockerd (the default, "dind") cannot run beside others' tests here.
                "daemon": {"type": "host"},
                "dockerHost": docker_socket(),
                # repo2docker's offline configuration (base image, buildpacks)
                "extraVolumes": [
                    {"name": "r2d-config", "hostPath": {"path": config_dir, "type": "Directory"}}
                ],
                "extraVolumeMounts": [
                    {"name": "r2d-config", "mountPath": "/etc/r2d-dev", "readOnly": True}
                ],
                "repo2dockerExtraArgs": [f"--config=/etc/r2d-dev/{Path(infra['r2d_config']).name}"],
            },
            # no hub here: the hub's side is tested in test_hub.py
            "auth": {"enabled": False},
            "config": {
                "R2DService": {"port": port},
                # the test's git server listens on 127.0.0.1
                "GitRepoProvider": {"allow_loopback": True},
            },
        }
        docs = render(helm, tmp_path, values)
        # z2jh's Secret, as the hub's release makes it for the hub.services entry
        kube.add_secret("hub", {"hub.services.binder.apiToken": HUB_TOKEN}, NAMESPACE)
        pod = await apply(kube, kubelet, docs)
        name = pod["metadata"]["name"]
        base = f"http://127.0.0.1:{port}/services/binder/"
        await wait_answering(base + "versions", kube, name)
        await wait_answering(base + "health", kube, name)

        # It runs as the chart says: uid 1000, read-only root, Secret files and env.
        run_args = kubelet.docker_args[name]
        assert "--read-only" in run_args and "--user" in run_args
        assert run_args[run_args.index("--user") + 1] == "1000:1000"
        assert f"JUPYTERHUB_API_TOKEN={HUB_TOKEN}" in run_args
        async with aiohttp.ClientSession() as s:
            async with s.get(base + "versions") as r:
                versions = await r.json()
        assert versions["r2dservice"] and versions["repo2docker"], versions
        assert "Kubernetes" in json.dumps(versions["builder"]), versions

        # It reaches the API as a pod does: the kubelet's variables and mounted token.
        assert f"KUBERNETES_SERVICE_HOST={kube.host}" in run_args
        assert any(a.endswith(f":{SA_MOUNT}:ro") for a in run_args), run_args
        service = kubelet.container_names[(name, "r2dservice")]
        for f in ("token", "ca.crt", "namespace"):
            assert (
                docker("exec", service, "test", "-s", f"{SA_MOUNT}/{f}", check=False).returncode
                == 0
            ), f

        # A build through the service pod: a build pod, the daemon's socket, a push.
        sha = make_repo(
            git.root / "demo",
            {"Dockerfile": f"FROM {infra['base_image']}\nRUN echo {run_id} > /built.txt\n"},
        )
        spec = f"git/{quote(git.url('demo'), safe='')}/{sha}"
        async with aiohttp.ClientSession() as s:
            got = await read_events(s, f"{base}build/{spec}?build_only=true", timeout=900)
        assert got.last["phase"] == "ready", "".join(e["message"] for e in got.events[-20:])
        image = got.last["imageName"]
        assert registry_has(infra["registry"], image)
        [build_pod] = [n for n in kubelet.docker_args if n != name]
        build_args = kubelet.docker_args[build_pod]
        assert f"{docker_socket()}:/var/run/docker.sock" in build_args
        assert any(a.endswith(":/var/run/r2dservice/docker/config.json:ro") for a in build_args)
        # the registry Secret the build pod mounted is the one the chart made in its namespace
        assert kube.get_secret(f"{RELEASE}-registry", BUILD_NS) is not None
        # No token in the build pod: the chart turns automount off, the kubelet honours it.
        assert not any(SA_MOUNT in a for a in build_args), build_args
        assert any(a.startswith("KUBERNETES_SERVICE_HOST=") for a in build_args)
        # The chart's Role allowed every request the service made, over HTTPS, as its
        # ServiceAccount.
        assert kube.denied == [], kube.denied
        service_account = f"system:serviceaccount:{NAMESPACE}:{service_account_name(docs)}"
        assert kube.users_seen == {service_account}, kube.users_seen

        # Build records outlive the pod: the sqlite file is on the claim.
        claim = kubelet.claims[(NAMESPACE, f"{RELEASE}-db")]
        assert (claim / "r2dservice.sqlite").exists()
        subprocess.run(["docker", "image", "rm", "-f", image], capture_output=True)
    finally:
        await kubelet.stop()
        await kube.stop()
        git.stop()


async def test_dind_daemon_serves_builds_through_its_socket(
    helm, service_image, build_image, daemon_image, infra, run_id, tmp_path
):
    """The chart's default build daemon, run as rendered: a build through the service
    pod makes a build pod that mounts the daemon's socket (not the node's Docker), the
    daemon builds and pushes with the chart's registry credentials, nothing else can
    reach its API, and its image cleaner prunes it."""
    await remove_leftover_containers()
    port = free_port()
    git = GitHTTPServer(tmp_path / "git").start()
    (tmp_path / "registry").mkdir()
    registry = AuthRegistry(str(tmp_path / "registry"), {"pusher": "s3cret"}, bridge_gateway())
    kube = FakeKubeAPI(secure=True)
    await kube.start()
    kubelet = DockerKubelet(kube, own_network=is_daemon)
    await kubelet.start()
    docs: list[dict] = []
    try:
        values = chart_values(
            infra,
            kube,
            port,
            f"{registry.host}/r2dtest-{run_id}-dind-",
            # the chart's default daemon (dind); a plain-HTTP registry must be named
            {"daemon": {"extraArgs": [f"--insecure-registry={registry.host}"]}},
        )
        # ... and the service's check of it speaks plain HTTP too
        values["config"]["RegistryImageChecker"] = {"insecure_registries": [registry.host]}
        docs = render(helm, tmp_path, values)
        socket_path = f"{host_volume(docs, 'run')}/docker.sock"
        kube.add_secret("hub", {"hub.services.binder.apiToken": HUB_TOKEN}, NAMESPACE)
        daemon = await run_daemon_set(kube, kubelet, docs)
        daemon_name = daemon["metadata"]["name"]
        await wait_ready(kube, daemon_name, BUILD_NS)
        dockerd = kubelet.container_names[(daemon_name, "dockerd")]
        cleaner = kubelet.container_names[(daemon_name, "image-cleaner")]
        assert daemon_image in kubelet.container_args[(daemon_name, "dockerd")]

        # Its API is the socket only: no TCP listener in the pod, which RUN steps share
        # (the official entrypoint adds an unauthenticated tcp://0.0.0.0:2375 unless the
        # arguments start with "dockerd").
        listening = docker("exec", dockerd, "cat", "/proc/net/tcp", "/proc/net/tcp6").stdout
        ports = [
            int(f[1].rsplit(":", 1)[1], 16)
            for f in (line.split() for line in listening.splitlines()[1:])
            if len(f) > 3 and f[3] == "0A"
        ]
        assert ports == [], f"the build daemon listens on TCP ports {ports}"

        # The node's daemon has the base image (nothing can be pulled here).
        save = subprocess.Popen(["docker", "save", infra["base_image"]], stdout=subprocess.PIPE)
        load = subprocess.run(
            ["docker", "-H", f"unix://{socket_path}", "load", "-q"],
            stdin=save.stdout,
            capture_output=True,
            text=True,
        )
        save.wait()
        assert load.returncode == 0, load.stderr

        pod = await apply(kube, kubelet, docs)
        name = pod["metadata"]["name"]
        base = f"http://127.0.0.1:{port}/services/binder/"
        await wait_answering(base + "health", kube, name)

        sha = make_repo(
            git.root / "demo",
            {"Dockerfile": f"FROM {infra['base_image']}\nRUN echo {run_id} > /built.txt\n"},
        )
        spec = f"git/{quote(git.url('demo'), safe='')}/{sha}"
        async with aiohttp.ClientSession() as s:
            got = await read_events(s, f"{base}build/{spec}?build_only=true", timeout=900)
        assert got.last["phase"] == "ready", "".join(e["message"] for e in got.events[-20:])
        image = got.last["imageName"]

        # The build pod used the daemon's socket, not the node's Docker.
        [build_pod] = [n for n in kubelet.docker_args if n not in (name, daemon_name)]
        build_args = kubelet.docker_args[build_pod]
        assert f"{socket_path}:/var/run/docker.sock" in build_args
        assert not any(a.startswith("/var/run/docker.sock:") for a in build_args)
        # The daemon built it (the node's Docker never saw it) and pushed it with the
        # chart's credentials (the registry wants them).
        assert (
            docker("-H", f"unix://{socket_path}", "image", "inspect", image, check=False).returncode
            == 0
        )
        assert docker("image", "inspect", image, check=False).returncode != 0
        assert registry_has_with_auth(registry.host, image, ("pusher", "s3cret"))

        # The image cleaner runs beside it, reaching the daemon as rendered (socket,
        # read-only data, no capabilities): a pass with the disk "full" prunes it.
        assert json.loads(docker("inspect", "-f", "{{json .State.Running}}", cleaner).stdout)
        cleaned = docker(
            "exec", "-e", "ONCE=1", "-e", "DISK_HIGH=0", "-e", "DISK_LOW=0",
            cleaner, "sh", "/etc/image-cleaner/image-cleaner.sh", check=False,
        )  # fmt: skip
        assert cleaned.returncode == 0, cleaned.stdout + cleaned.stderr
        assert "image-cleaner: removed image" in cleaned.stdout, cleaned.stdout + cleaned.stderr
        assert docker(
            "-H", f"unix://{socket_path}", "image", "inspect", image, check=False
        ).returncode
    finally:
        await kubelet.stop()
        await kube.stop()
        registry.stop()
        git.stop()
        # the node's folders of the daemon (its socket, images and cache)
        for d in [host_volume(docs, v) for v in ("run", "data")] if docs else []:
            subprocess.run(["rm", "-rf", d])


async def test_build_without_the_daemon_fails_within_pending_grace_naming_the_socket(
    helm, service_image, build_image, infra, run_id, tmp_path
):
    """The dind DaemonSet is not running on the node (not scheduled there, not yet
    started, deleted): the build pod waits in ContainerCreating with FailedMount of the
    socket, and the build fails after pendingGrace with that reason."""
    await remove_leftover_containers()
    port = free_port()
    git = GitHTTPServer(tmp_path / "git").start()
    kube = FakeKubeAPI(secure=True)
    await kube.start()
    kubelet = DockerKubelet(kube)
    await kubelet.start()
    try:
        values = chart_values(infra, kube, port, f"{infra['registry']}/r2dtest-{run_id}-nod-", {})
        values["build"]["pendingGrace"] = 5
        docs = render(helm, tmp_path, values)
        socket_path = f"{host_volume(docs, 'run')}/docker.sock"
        subprocess.run(["rm", "-rf", host_volume(docs, "run")])  # never ran on this node
        kube.add_secret("hub", {"hub.services.binder.apiToken": HUB_TOKEN}, NAMESPACE)
        pod = await apply(kube, kubelet, docs)
        base = f"http://127.0.0.1:{port}/services/binder/"
        await wait_answering(base + "health", kube, pod["metadata"]["name"])
        sha = make_repo(git.root / "demo", {"Dockerfile": f"FROM {infra['base_image']}\n"})
        spec = f"git/{quote(git.url('demo'), safe='')}/{sha}"
        loop = asyncio.get_running_loop()
        start = loop.time()
        async with aiohttp.ClientSession() as s:
            got = await read_events(s, f"{base}build/{spec}?build_only=true", timeout=120)
        took = loop.time() - start
        assert got.last["phase"] == "failed", got.last
        message = got.last["message"]
        assert "FailedMount" in message, message
        assert f"hostPath type check failed: {socket_path} is not a socket file" in message
        assert took < 5 + 30, f"failed after {took:.0f}s"
    finally:
        await kubelet.stop()
        await kube.stop()
        git.stop()


async def test_a_verb_missing_from_the_role_fails_the_build_naming_it(
    helm, service_image, build_image, infra, run_id, tmp_path
):
    """The stand-in authorizes the service's requests against the rendered Role: take
    `create` on pods out of it and a build fails at once with the API server's 403,
    which names the verb, the resource, the ServiceAccount and the namespace."""
    await remove_leftover_containers()
    port = free_port()
    git = GitHTTPServer(tmp_path / "git").start()
    kube = FakeKubeAPI(secure=True)
    await kube.start()
    kubelet = DockerKubelet(kube)
    await kubelet.start()
    try:
        values = chart_values(infra, kube, port, f"{infra['registry']}/r2dtest-{run_id}-rbac-", {})
        docs = render(helm, tmp_path, values)
        [role] = [d for d in docs if d["kind"] == "Role"]
        [pods_rule] = [r for r in role["rules"] if r["resources"] == ["pods"]]
        pods_rule["verbs"].remove("create")
        kube.add_secret("hub", {"hub.services.binder.apiToken": HUB_TOKEN}, NAMESPACE)
        pod = await apply(kube, kubelet, docs)
        base = f"http://127.0.0.1:{port}/services/binder/"
        await wait_answering(base + "health", kube, pod["metadata"]["name"])
        sha = make_repo(git.root / "demo", {"Dockerfile": f"FROM {infra['base_image']}\n"})
        spec = f"git/{quote(git.url('demo'), safe='')}/{sha}"
        loop = asyncio.get_running_loop()
        start = loop.time()
        async with aiohttp.ClientSession() as s:
            got = await read_events(s, f"{base}build/{spec}?build_only=true", timeout=120)
        took = loop.time() - start
        assert got.last["phase"] == "failed", got.last
        user = f"system:serviceaccount:{NAMESPACE}:{service_account_name(docs)}"
        assert got.last["message"] == (
            f'Could not create the build pod: pods is forbidden: User "{user}" cannot create '
            f'resource "pods" in API group "" in the namespace "{BUILD_NS}"\n'
        ), got.last
        assert took < 30, f"failed after {took:.0f}s"
        assert kube.denied == [(user, "create", "pods", BUILD_NS, "")], kube.denied
        assert [n for n in kubelet.docker_args if n != pod["metadata"]["name"]] == []
    finally:
        await kubelet.stop()
        await kube.stop()
        git.stop()


@pytest.mark.parametrize("verb", ["list", "watch"])
async def test_a_role_without_list_or_watch_on_pods_stops_the_service_naming_it(
    verb, helm, service_image, infra, run_id, tmp_path
):
    """Without `list` or `watch` on pods the service cannot know its builds: it stops at
    start with the API server's 403 (the pod fails, its log says why), rather than
    serving builds that never hear of their pods."""
    await remove_leftover_containers()
    kube = FakeKubeAPI(secure=True)
    await kube.start()
    kubelet = DockerKubelet(kube)
    await kubelet.start()
    try:
        values = chart_values(
            infra, kube, free_port(), f"{infra['registry']}/r2dtest-{run_id}-rbac-", {}
        )
        docs = render(helm, tmp_path, values)
        [role] = [d for d in docs if d["kind"] == "Role"]
        [pods_rule] = [r for r in role["rules"] if r["resources"] == ["pods"]]
        pods_rule["verbs"].remove(verb)
        kube.add_secret("hub", {"hub.services.binder.apiToken": HUB_TOKEN}, NAMESPACE)
        name = (await apply(kube, kubelet, docs))["metadata"]["name"]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 60
        while (kube.get_pod(name, NAMESPACE)["status"]).get("phase") != "Failed":
            assert loop.time() < deadline, kube.log_text(name, NAMESPACE)[-3000:]
            await asyncio.sleep(0.5)
        user = f"system:serviceaccount:{NAMESPACE}:{service_account_name(docs)}"
        assert (
            f'pods is forbidden: User "{user}" cannot {verb} resource "pods" in API group "" '
            f'in the namespace "{BUILD_NS}"'
        ) in kube.log_text(name, NAMESPACE)
        assert kube.denied == [(user, verb, "pods", BUILD_NS, "")], kube.denied
    finally:
        await kubelet.stop()
        await kube.stop()


def registry_has_with_auth(registry: str, image_name: str, auth: tuple[str, str]) -> bool:
    name, _, tag = image_name.partition("/")[2].rpartition(":")
    req = urllib.request.Request(
        f"http://{registry}/v2/{name}/manifests/{tag}",
        method="HEAD",
        headers={
            "Authorization": "Basic " + base64.b64encode(":".join(auth).encode()).decode(),
            "Accept": ", ".join(
                [
                    "application/vnd.docker.distribution.manifest.v2+json",
                    "application/vnd.oci.image.manifest.v1+json",
                    "application/vnd.oci.image.index.v1+json",
                ]
            ),
        },
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status == 200
    except urllib.error.HTTPError:
        return False
