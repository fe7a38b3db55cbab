"""The chart end to end without a cluster.

`helm template` proves the manifests are valid; it cannot prove that they fit together:
the env names the service reads, the files it expects where the Secret is mounted, the
user and read-only root it runs with, the socket the build pods mount. So the harness
that plays kubelet for the build pods (tests/fakes/kubelet.py, on the local Docker
engine) runs the chart's rendered service Deployment too, from the image the repository's
Dockerfile makes (dev/service-image.sh), with the rendered Secrets in the stand-in API
(tests/fakes/kubeapi.py). A build requested through that pod makes a build pod, which the
same kubelet runs with the build daemon's socket, and the image lands in the registry.

Three things differ from a cluster, on purpose and visible below: the build daemon is
the machine's own Docker engine (daemon.type host; the dind DaemonSet is rendered and
validated in test_chart_deploy.py, but a privileged dockerd would share this machine's
network with other tests); the service reaches the stand-in API by its URL
(`config.KubernetesBuilder.k8s_api_url`, as it would through `kubectl proxy`; the Role
is checked call by call in test_chart.py); and, as every pod here shares the host's
network, it listens on a free port (`config.R2DService.port`).
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote

import aiohttp
import pytest
import yaml

from tests.conftest import registry_has
from tests.fakes.gitserver import GitHTTPServer, make_repo
from tests.fakes.kubeapi import FakeKubeAPI
from tests.fakes.kubelet import DockerKubelet, remove_leftover_containers
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


async def apply(kube: FakeKubeAPI, kubelet: DockerKubelet, docs: list[dict]) -> dict:
    """What the API server and controllers would make of the rendered manifests: the
    Secrets (through the API, validated), the claims bound, the Deployment's pod
    created. Returns the pod."""
    async with aiohttp.ClientSession() as s:
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
    kube = FakeKubeAPI()
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
                "KubernetesBuilder": {"k8s_api_url": kube.url},
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

        # Build records outlive the pod: the sqlite file is on the claim.
        claim = kubelet.claims[(NAMESPACE, f"{RELEASE}-db")]
        assert (claim / "r2dservice.sqlite").exists()
        subprocess.run(["docker", "image", "rm", "-f", image], capture_output=True)
    finally:
        await kubelet.stop()
        await kube.stop()
        git.stop()
