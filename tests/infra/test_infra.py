"""Smoke tests of the infrastructure dev/services.sh provides.

They fail (never skip) when a piece is missing, so a broken machine shows up as
one clear failure here instead of many puzzling ones elsewhere.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

REGISTRY = os.environ.get("R2D_TEST_REGISTRY", "127.0.0.1:5000")
BASE_IMAGE = os.environ.get("R2D_TEST_BASE_IMAGE", "r2dservice-base:bookworm")
R2D_CONFIG = os.environ.get(
    "R2D_TEST_REPO2DOCKER_CONFIG",
    str(Path(__file__).resolve().parents[2] / "dev" / "repo2docker_config.py"),
)
HINT = "run dev/services.sh (or dev/test.sh)"
REPO = Path(__file__).resolve().parents[2]


def run(*cmd: str, timeout: float = 30) -> subprocess.CompletedProcess:
    if shutil.which(cmd[0]) is None:
        pytest.fail(f"{cmd[0]} is not on PATH; {HINT}")
    return subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=timeout)


@pytest.mark.docker
def test_docker_engine_answers():
    proc = run("docker", "info", "--format", "{{.ServerVersion}}")
    assert proc.returncode == 0, f"docker info failed: {proc.stderr.strip()}; {HINT}"
    assert proc.stdout.strip(), "docker info printed no server version"


@pytest.mark.docker
def test_buildx_plugin():
    # repo2docker refuses to build without it.
    proc = run("docker", "buildx", "version")
    assert proc.returncode == 0, f"docker buildx missing: {proc.stderr.strip()}; {HINT}"
    assert "buildx" in proc.stdout


@pytest.mark.docker
def test_registry_answers_v2():
    with urllib.request.urlopen(f"http://{REGISTRY}/v2/", timeout=5) as resp:
        assert resp.status == 200
        assert resp.headers.get("Docker-Distribution-Api-Version") == "registry/2.0"


@pytest.mark.docker
def test_base_image_has_apt_and_python():
    """The base image exists and has what repo2docker's BaseImage steps need."""
    proc = run("docker", "image", "inspect", BASE_IMAGE)
    assert proc.returncode == 0, f"base image {BASE_IMAGE} is missing; {HINT}"
    proc = run(
        "docker",
        "run",
        "--rm",
        BASE_IMAGE,
        "sh",
        "-c",
        "command -v apt-get useradd python3 && grep -rh '^deb ' /etc/apt/sources.list*",
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "deb http" in proc.stdout, "the base image has no apt source"


@pytest.mark.hub
def test_configurable_http_proxy_on_path():
    # The npm proxy (5.x) streams SSE; the PyPI port buffers whole responses.
    proc = run("configurable-http-proxy", "--version")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().startswith("5."), (
        f"want configurable-http-proxy 5.x, got {proc.stdout!r}"
    )


@pytest.mark.browser
def test_chromium_and_driver():
    for exe in ("chromium", "chromedriver"):
        assert shutil.which(exe), f"{exe} is not on PATH; {HINT}"


def test_repo2docker_config_loads():
    from repo2docker.buildpacks import BaseImage, DockerBuildPack
    from repo2docker.contentproviders import Git, Local
    from traitlets.config.loader import PyFileConfigLoader

    path = Path(R2D_CONFIG)
    assert path.is_file(), f"{path} missing"
    config = PyFileConfigLoader(path.name, str(path.parent)).load_config()
    r2d = config.Repo2Docker
    assert r2d.base_image == os.environ.get("R2D_BASE_IMAGE", BASE_IMAGE)
    assert r2d.buildpacks == [DockerBuildPack, BaseImage]
    assert r2d.content_providers == [Local, Git]


def test_tests_run_in_the_state_folders_venv():
    """dev/test.sh runs pytest with the venv dev/services.sh makes (R2D_PYTHON in env.sh),
    never with the system Python (externally managed on Debian 12)."""
    venv_python = os.environ.get("R2D_PYTHON")
    assert venv_python, f"R2D_PYTHON is not set; {HINT}"
    assert sys.prefix != sys.base_prefix, f"pytest runs outside a venv: {sys.executable}"
    assert Path(sys.prefix) == Path(venv_python).parent.parent, (sys.prefix, venv_python)
    state = os.environ.get("R2DSERVICE_DEV_STATE", "/var/lib/r2dservice-dev")
    assert Path(sys.prefix) == Path(state) / "venv"
    # Its bin folder comes first on PATH, so `python3` in a subprocess is the venv's too.
    assert Path(shutil.which("python3")).parent == Path(sys.prefix) / "bin"


@pytest.mark.hub
def test_node_is_new_enough():
    # tests/js (the ESM-only @jupyterhub/binderhub-client) needs Node.js >= 20.19.
    proc = run("node", "--version")
    assert proc.returncode == 0, proc.stderr
    major, minor = (int(x) for x in proc.stdout.strip().lstrip("v").split(".")[:2])
    assert (major, minor) >= (20, 19), f"node {proc.stdout.strip()} is older than 20.19; {HINT}"


def test_dev_scripts_parse():
    for script in sorted((REPO / "dev").glob("*.sh")) + [REPO / ".ci" / "run"]:
        proc = run("bash", "-n", str(script))
        assert proc.returncode == 0, f"{script}: {proc.stderr}"


def test_fresh_debian_check_does_not_start_inside_itself():
    # Inside the fresh-Debian container R2DSERVICE_IN_FRESH_CHECK=1 is set: a check run there
    # (by a script or a test) returns at once instead of starting a container in the container.
    proc = subprocess.run(
        ["bash", str(REPO / "dev" / "fresh-debian.sh")],
        env={**os.environ, "R2DSERVICE_IN_FRESH_CHECK": "1"},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "not starting another" in proc.stderr


def test_debian_archive_override_drops_the_trailing_slash():
    proc = subprocess.run(
        ["bash", "-c", f". {REPO / 'dev' / 'lib.sh'} && debian_archive"],
        env={**os.environ, "R2DSERVICE_DEBIAN_ARCHIVE": "http://archive.invalid/debian/"},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "http://archive.invalid/debian"
