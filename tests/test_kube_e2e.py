"""End to end: a real repo2docker build inside the pod spec KubernetesBuilder generates.

No cluster can run here, so the test harness is the cluster: the stand-in API server
(tests/fakes/kubeapi.py) takes the pod, and DockerKubelet (tests/fakes/kubelet.py) runs
it on the local Docker engine as a node would: the build image made by
dev/build-image/build.sh, the docker socket hostPath as a bind mount, the push secret as
a file, git credentials from a Secret. Its real log streams back through the API and its
real exit code decides. The image must land in the local registry.

Needs dev/services.sh (Docker, the registry on 127.0.0.1:5000, the base image): the
`infra` fixture fails, never skips, when they are missing. The build image is made here
when it is missing (dev/build-image/build.sh caches it).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
from pathlib import Path

import pytest

from r2dservice import naming
from r2dservice.builders.base import BuildFailed, BuildRequest, make_build_request
from r2dservice.builders.kubernetes import KubernetesBuilder
from tests.conftest import registry_has
from tests.fakes.gitserver import GitHTTPServer, make_repo
from tests.fakes.kubeapi import FakeKubeAPI
from tests.fakes.kubelet import DockerKubelet, remove_leftover_containers

pytestmark = pytest.mark.docker

REPO = Path(__file__).resolve().parents[1]
BUILD_IMAGE = "r2dservice-repo2docker:local"
NS = "r2d-e2e"
GIT_LOGIN = ("builder", "s3cret-token")


def docker_socket() -> str:
    host = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    if not host.startswith("unix://"):
        pytest.fail(f"DOCKER_HOST={host}: the end-to-end test mounts a unix socket into the pod")
    path = host[len("unix://") :]
    if not os.path.exists(path):
        pytest.fail(f"no docker socket at {path}; run dev/services.sh")
    return path


@pytest.fixture(scope="module")
def build_image(infra):
    """r2dservice-repo2docker:local, made (or found up to date) by dev/build-image/build.sh."""
    proc = subprocess.run(
        ["bash", str(REPO / "dev" / "build-image" / "build.sh")],
        capture_output=True,
        text=True,
        timeout=900,
        env={**os.environ, "BASE_IMAGE": infra["base_image"], "IMAGE": BUILD_IMAGE},
    )
    if proc.returncode:
        pytest.fail(f"dev/build-image/build.sh failed:\n{proc.stderr[-3000:]}")
    return BUILD_IMAGE


@pytest.fixture
async def cluster(infra, build_image, tmp_path):
    """The stand-in API, a Docker kubelet, a private git server and a started builder."""
    await remove_leftover_containers()
    kube = FakeKubeAPI()
    await kube.start()
    # the local registry needs no login; the file must still reach docker
    kube.add_secret("push-creds", {"config.json": json.dumps({"auths": {}})}, NS)
    kube.add_secret(
        "git-creds", {"credentials": f"username={GIT_LOGIN[0]}\npassword={GIT_LOGIN[1]}"}, NS
    )
    kubelet = DockerKubelet(kube)
    await kubelet.start()
    git_root = tmp_path / "git"
    server = GitHTTPServer(git_root, auth=GIT_LOGIN).start()
    config_dir = str(Path(infra["r2d_config"]).parent)
    builder = KubernetesBuilder(
        k8s_api_url=kube.url,
        namespace=NS,
        build_image=build_image,
        build_image_pull_policy="Never",
        docker_host=docker_socket(),
        push_secret="push-creds",
        git_credentials_secret="git-creds",
        # repo2docker's offline configuration (base image, buildpacks, content providers)
        extra_volumes=[
            {"name": "r2d-config", "hostPath": {"path": config_dir, "type": "Directory"}}
        ],
        extra_volume_mounts=[{"name": "r2d-config", "mountPath": "/etc/r2d-dev", "readOnly": True}],
        repo2docker_extra_args=[f"--config=/etc/r2d-dev/{Path(infra['r2d_config']).name}"],
        extra_envs={"R2D_BASE_IMAGE": infra["base_image"]},
        build_timeout=900,
    )
    assert await builder.start() == []
    try:
        yield kube, kubelet, server, builder
    finally:
        await builder.stop()
        await kubelet.stop()
        server.stop()
        await kube.stop()


def request_for(builder, infra, run_id, url: str, sha: str, name: str) -> BuildRequest:
    image = naming.image_name(
        f"{infra['registry']}/r2dtest-{run_id}-k8s-", "git", name, sha, builder.fingerprint()
    )
    return BuildRequest(
        name=naming.build_name(image),
        image_name=image,
        repo_url=url,
        ref=sha,
        provider="git",
        spec=name,
        push=True,
        user="e2e",
    )


async def test_real_build_in_generated_pod_pushes_to_registry(cluster, infra, run_id):
    kube, kubelet, server, builder = cluster
    sha = make_repo(
        server.root / "demo",
        {"Dockerfile": f"FROM {infra['base_image']}\nRUN echo built-in-a-pod > /built.txt\n"},
    )
    # A private repository: the clone works only with the Secret's credentials.
    request = request_for(builder, infra, run_id, server.url("demo"), sha, "demo")
    events = []
    await asyncio.wait_for(builder.build(request, events.append), 900)

    assert registry_has(infra["registry"], request.image_name)
    phases = {e.phase for e in events}
    assert "building" in phases, [e.message for e in events]
    # repo2docker's own JSON lines came through the pod log
    assert any("Picked Git content provider" in e.message for e in events)
    # the pod ran from the generated spec: socket and push secret mounted, no secret in env
    run_args = kubelet.docker_args[request.name]
    assert f"{docker_socket()}:/var/run/docker.sock" in run_args
    assert any(a.endswith(":/var/run/r2dservice/docker/config.json:ro") for a in run_args)
    assert "--push" in run_args and request.repo_url == run_args[-1]
    env = [run_args[i + 1] for i, a in enumerate(run_args) if a == "-e"]
    assert not any("auths" in e for e in env)
    assert not any(GIT_LOGIN[1] in e.message for e in events)
    # the finished pod goes (after a short linger for other replicas), its container too
    await kube.wait_gone(request.name, NS, timeout=30)
    assert kubelet.containers == {}


async def test_failing_build_fails_with_repo2docker_message(cluster, infra, run_id):
    kube, _kubelet, server, builder = cluster
    sha = make_repo(
        server.root / "broken",
        {"Dockerfile": f"FROM {infra['base_image']}\nRUN echo about to fail && exit 3\n"},
    )
    request = request_for(builder, infra, run_id, server.url("broken"), sha, "broken")
    events = []
    with pytest.raises(BuildFailed) as e:
        await asyncio.wait_for(builder.build(request, events.append), 900)
    # BuildKit's reason (the failing step, its exit code), not just "docker failed"
    assert "exit code: 3" in e.value.message, e.value.message
    assert e.value.message.startswith("Error during build:")
    assert any("about to fail" in ev.message for ev in events)
    assert not registry_has(infra["registry"], request.image_name)
    await kube.wait_gone(request.name, NS, timeout=30)


async def test_request_credentials_reach_git_through_a_build_secret(cluster, infra, run_id):
    """A URL with credentials (as a user gives it): the pod gets the clean URL and a
    Secret of its own; the operator's Secret is not needed (here: not there at all)."""
    kube, kubelet, server, builder = cluster
    kube.secrets.pop((NS, "git-creds"))
    sha = make_repo(
        server.root / "private",
        {"Dockerfile": f"FROM {infra['base_image']}\nRUN echo private > /built.txt\n"},
    )
    url = server.url("private", auth=True)
    image = naming.image_name(
        f"{infra['registry']}/r2dtest-{run_id}-k8s-", "git", "private", sha, builder.fingerprint()
    )
    request = make_build_request(
        image_name=image,
        repo_url=url,
        ref=sha,
        provider="git",
        spec=url + "/main",
        push=True,
        user="e2e",
    )
    events = []
    await asyncio.wait_for(builder.build(request, events.append), 900)
    assert registry_has(infra["registry"], request.image_name)
    run_args = kubelet.docker_args[request.name]
    assert run_args[-1] == server.url("private")  # clean
    password = GIT_LOGIN[1]
    # only the env of the container (from the Secret) carries it; args and labels do not
    assert not any(password in a for a in run_args if not a.startswith("GIT_CREDENTIAL_ENV="))
    labels = subprocess.run(
        ["docker", "image", "inspect", "-f", "{{json .Config.Labels}}", request.image_name],
        capture_output=True,
        text=True,
    ).stdout
    assert labels and password not in labels
    assert not any(password in e.message for e in events)
    assert kube.secrets == {} or all(n != f"{request.name}-git" for _, n in kube.secrets)
    subprocess.run(["docker", "image", "rm", "-f", request.image_name], capture_output=True)


async def test_missing_env_secret_is_a_create_container_config_error(cluster, infra, run_id):
    """As a real kubelet: an env var from a Secret that is not there keeps the container
    waiting (CreateContainerConfigError 'secret ... not found'; a volume from one is a
    FailedMount instead, below); the build fails after pending_grace with that reason."""
    kube, _kubelet, server, builder = cluster
    kube.secrets.pop((NS, "git-creds"))
    builder.pending_grace = 3
    sha = make_repo(server.root / "nosecret", {"Dockerfile": f"FROM {infra['base_image']}\n"})
    request = request_for(builder, infra, run_id, server.url("nosecret"), sha, "nosecret")
    events = []
    with pytest.raises(BuildFailed) as e:
        await asyncio.wait_for(builder.build(request, events.append), 120)
    assert 'CreateContainerConfigError: secret "git-creds" not found' in e.value.message
    assert ("Failed", 'Error: secret "git-creds" not found') in [
        (ev["reason"], ev["message"]) for ev in kube.events_for(request.name, NS)
    ]
    await kube.wait_gone(request.name, NS, timeout=30)


async def test_missing_docker_socket_fails_within_grace_naming_it(cluster, infra, run_id, tmp_path):
    """A node without the Docker socket (containerd nodes; binderhub#1343): the kubelet
    leaves the pod in ContainerCreating with a FailedMount Event, and the build fails
    after pending_grace with that Event, not after build_timeout."""
    kube, kubelet, server, builder = cluster
    builder.pending_grace = 3
    builder.events_interval = 1
    builder.docker_host = str(tmp_path / "no-docker.sock")
    sha = make_repo(server.root / "nosocket", {"Dockerfile": f"FROM {infra['base_image']}\n"})
    request = request_for(builder, infra, run_id, server.url("nosocket"), sha, "nosocket")
    with pytest.raises(BuildFailed) as e:
        await asyncio.wait_for(builder.build(request, [].append), 60)
    message = e.value.message
    assert "could not start within 3 seconds" in message, message
    assert 'FailedMount: MountVolume.SetUp failed for volume "docker-socket"' in message
    assert (
        f"hostPath type check failed: {tmp_path / 'no-docker.sock'} is not a socket file" in message
    )
    assert request.name not in kubelet.docker_args  # never ran
    await kube.wait_gone(request.name, NS, timeout=30)


async def test_missing_push_secret_fails_within_grace_naming_it(cluster, infra, run_id):
    """The push Secret is not in the build pods' namespace (binderhub#810): FailedMount."""
    kube, kubelet, server, builder = cluster
    kube.secrets.pop((NS, "push-creds"))
    builder.pending_grace = 3
    builder.events_interval = 1
    sha = make_repo(server.root / "nopush", {"Dockerfile": f"FROM {infra['base_image']}\n"})
    request = request_for(builder, infra, run_id, server.url("nopush"), sha, "nopush")
    with pytest.raises(BuildFailed) as e:
        await asyncio.wait_for(builder.build(request, [].append), 60)
    assert 'volume "push-secret" : secret "push-creds" not found' in e.value.message
    pod_events = [ev["reason"] for ev in kube.events_for(request.name, NS)]
    assert "FailedMount" in pod_events and "Started" not in pod_events
    assert "CreateContainerConfigError" not in str(kube.events_for(request.name, NS))
    await kube.wait_gone(request.name, NS, timeout=30)
