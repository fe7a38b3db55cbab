"""Shared fixtures: the infrastructure dev/services.sh provides, and the service."""

from __future__ import annotations

import os
import shutil
import subprocess
import urllib.request
import uuid

import aiohttp
import pytest

from tests.fakes.gitserver import GitDaemon
from tests.support.service import REPO


def infra_env() -> dict[str, str]:
    """What dev/services.sh exports; a clear failure (not a skip) when it is missing."""
    env = {
        "registry": os.environ.get("R2D_TEST_REGISTRY", ""),
        "base_image": os.environ.get("R2D_TEST_BASE_IMAGE", ""),
        "r2d_config": os.environ.get("R2D_TEST_REPO2DOCKER_CONFIG", ""),
    }
    missing = [k for k, v in env.items() if not v]
    if missing:
        pytest.fail(
            f"missing test infrastructure settings {missing}: run the tests with dev/test.sh, "
            "which starts Docker and the registry and exports them"
        )
    return env


@pytest.fixture(scope="session")
def infra():
    env = infra_env()
    try:
        urllib.request.urlopen(f"http://{env['registry']}/v2/", timeout=5)
    except OSError as e:
        pytest.fail(f"registry {env['registry']} does not answer ({e}); run dev/services.sh")
    if subprocess.run(
        ["docker", "image", "inspect", env["base_image"]], capture_output=True
    ).returncode:
        pytest.fail(f"base image {env['base_image']} missing; run dev/services.sh")
    return env


@pytest.fixture(scope="session")
def run_id():
    """Distinguishes this run's images in a registry that outlives runs."""
    return uuid.uuid4().hex[:8]


@pytest.fixture
async def http():
    async with aiohttp.ClientSession() as session:
        yield session


def registry_has(registry: str, image_name: str) -> bool:
    name, _, tag = image_name.partition("/")[2].rpartition(":")
    req = urllib.request.Request(
        f"http://{registry}/v2/{name}/manifests/{tag}",
        method="HEAD",
        headers={
            "Accept": ", ".join(
                [
                    "application/vnd.docker.distribution.manifest.v2+json",
                    "application/vnd.docker.distribution.manifest.list.v2+json",
                    "application/vnd.oci.image.manifest.v1+json",
                    "application/vnd.oci.image.index.v1+json",
                ]
            )
        },
    )
    try:
        return urllib.request.urlopen(req, timeout=5).status == 200
    except urllib.error.HTTPError as e:
        if e.code == 404:
            return False
        raise


@pytest.fixture(scope="session")
def repo_root():
    return REPO


def docker_available() -> bool:
    return shutil.which("docker") is not None


@pytest.fixture(scope="module")
def git_server(tmp_path_factory):
    """A git daemon on loopback serving the repositories made under `.root`."""
    root = tmp_path_factory.mktemp("git")
    with GitDaemon(root) as daemon:
        daemon.root = root
        yield daemon
