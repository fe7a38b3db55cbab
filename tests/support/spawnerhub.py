"""A real JupyterHub whose spawner is r2dservice's R2DDockerSpawner (tests/support/hub.py,
plus spawner settings), and the image a spawned server needs.

    hub = SpawnerHub(workdir, service_config, run_id=...).start()
    spec = singleuser_repo(git_server, base_image, nonce)   # a repository whose image runs
                                                            # jupyterhub-singleuser

Spawned containers reach the hub through the Docker bridge's gateway address: the hub
listens there (not on 127.0.0.1) and hands it to servers as `hub_connect_ip`. Containers
and images made here carry the label `r2dservice.test=spawner` (and the run id) so that
`cleanup_docker(run_id)` removes them.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
import textwrap
from urllib.parse import quote

from tests.fakes.gitserver import make_repo
from tests.support.bridge import bridge_gateway
from tests.support.hub import Hub
from tests.support.service import REPO

LABEL = "r2dservice.test"
LABEL_VALUE = "spawner"


class SpawnerHub(Hub):
    """Hub (dev/jupyterhub_config.py + test additions) with R2DDockerSpawner."""

    def __init__(
        self, workdir: str, service_config: str, *, run_id: str, spawner_config: str = "", **kw
    ):
        self.gateway = bridge_gateway()
        self.run_id = run_id
        self.spawner_config = spawner_config
        super().__init__(workdir, service_config, **kw)

    def _config(self) -> str:
        return (
            super()._config()
            + textwrap.dedent(
                f"""
            # ---- tests/support/spawnerhub.py: R2DDockerSpawner on the local engine
            c.JupyterHub.spawner_class = "r2dservice.spawners.docker.R2DDockerSpawner"
            # Containers reach the hub at the bridge's gateway; the hub listens there only.
            c.JupyterHub.hub_ip = {self.gateway!r}
            c.JupyterHub.hub_connect_ip = {self.gateway!r}
            c.JupyterHub.default_url = "/hub/home"
            # r2dservice_url stays unset: the helper finds the hub's service `binder`.
            c.DockerSpawner.remove = True
            c.DockerSpawner.pull_policy = "never"   # nothing can be pulled here
            c.DockerSpawner.prefix = "r2dtest-{self.run_id}"
            c.DockerSpawner.extra_create_kwargs = {{
                "labels": {{{LABEL!r}: {LABEL_VALUE!r}, "r2dservice.test.run": {self.run_id!r}}}
            }}
            c.Spawner.start_timeout = 120
            c.Spawner.http_timeout = 120
            c.JupyterHub.tornado_settings = {{"slow_spawn_timeout": 1}}
            """
            )
            + textwrap.dedent(self.spawner_config)
        )

    @property
    def api_url(self) -> str:
        return f"http://{self.gateway}:{self.api_port}/hub/api"

    @property
    def env(self) -> dict:
        # A hub from another venv imports r2dservice.spawner from this checkout (and
        # nothing else of r2dservice's dependencies: the venv has only JupyterHub and
        # DockerSpawner).
        env = super().env
        env["PYTHONPATH"] = os.pathsep.join(p for p in (REPO, env.get("PYTHONPATH")) if p)
        return env


def hub_venv(major: int) -> str:
    """A Python with JupyterHub <major>.x and DockerSpawner, nothing of r2dservice's own
    dependencies (as in a hub image): made once under the dev state folder and reused."""
    state = os.environ.get("R2DSERVICE_DEV_STATE", "/var/lib/r2dservice-dev")
    venv = os.path.join(state, "venvs", f"jupyterhub{major}-dockerspawner")
    python = os.path.join(venv, "bin", "python")
    check = [
        python,
        "-c",
        "import jupyterhub, dockerspawner, sys;"
        f" sys.exit(jupyterhub.__version__.split('.')[0] != '{major}')",
    ]
    os.makedirs(os.path.dirname(venv), exist_ok=True)
    with open(venv + ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if os.path.exists(python) and subprocess.run(check, capture_output=True).returncode == 0:
            return python
        want = [
            f"jupyterhub>={major}.3,<{major + 1}"
            if major == 5
            else f"jupyterhub>={major},<{major + 1}",
            "dockerspawner",
        ]
        for cmd in (
            [sys.executable, "-m", "venv", "--clear", venv],
            [python, "-m", "pip", "install", "-q", "--disable-pip-version-check", *want],
        ):
            out = subprocess.run(cmd, capture_output=True, text=True)
            if out.returncode:
                raise RuntimeError(f"{' '.join(cmd)} failed:\n{out.stdout}{out.stderr}")
        if subprocess.run(check, capture_output=True).returncode:
            raise RuntimeError(f"{venv} has no JupyterHub {major}.x after installing {want}")
    return python


def jupyterhub_version(python: str) -> str:
    return subprocess.run(
        [python, "-c", "import jupyterhub; print(jupyterhub.__version__)"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()


def singleuser_dockerfile(base_image: str, jupyterhub_version: str, nonce: str) -> str:
    """An image that runs jupyterhub-singleuser (the hub's JupyterHub version). The heavy
    layers do not change between runs, so Docker's layer cache makes them once per machine;
    the last step echoes the nonce, so every run really builds something."""
    return textwrap.dedent(
        f"""\
        FROM {base_image}
        LABEL {LABEL}={LABEL_VALUE}
        # HTTPS to PyPI from inside a build needs the machine's CA bundle.
        COPY ca-bundle.crt /etc/r2dtest-ca-bundle.crt
        ENV PIP_CERT=/etc/r2dtest-ca-bundle.crt REQUESTS_CA_BUNDLE=/etc/r2dtest-ca-bundle.crt \\
            PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
        RUN apt-get update \\
         && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends python3-venv \\
         && rm -rf /var/lib/apt/lists/*
        RUN python3 -m venv /opt/venv \\
         && /opt/venv/bin/pip install "jupyterhub=={jupyterhub_version}" jupyter_server
        RUN useradd --create-home --uid 1000 jovyan
        ENV PATH=/opt/venv/bin:$PATH
        RUN echo "r2dtest-spawner-built-{nonce}"
        USER 1000
        WORKDIR /home/jovyan
        CMD ["jupyterhub-singleuser"]
        """
    )


def git_spec(git_server, name: str) -> str:
    return f"git/{quote(git_server.url(name), safe='')}/main"


def singleuser_repo(
    git_server, base_image: str, nonce: str, version: str | None = None, name: str = "singleuser"
) -> str:
    """The repository of a singleuser image (JupyterHub `version`, default this one's) on
    the test git server -> its spec."""
    import jupyterhub

    ca = os.environ.get("R2D_TEST_CA_BUNDLE") or "/etc/ssl/certs/ca-certificates.crt"
    with open(ca, "rb") as f:
        bundle = f.read()
    dockerfile = singleuser_dockerfile(base_image, version or jupyterhub.__version__, nonce)
    make_repo(git_server.root / name, {"Dockerfile": dockerfile, "ca-bundle.crt": bundle})
    return git_spec(git_server, name)


def cleanup_docker(run_id: str, image_prefix: str) -> None:
    """Remove this run's spawned containers and the images r2dservice built for it."""
    ids = subprocess.run(
        ["docker", "ps", "-aq", "--filter", f"label=r2dservice.test.run={run_id}"],
        capture_output=True,
        text=True,
    ).stdout.split()
    if ids:
        subprocess.run(["docker", "rm", "-f", *ids], capture_output=True)
    images = subprocess.run(
        ["docker", "images", "--format", "{{.Repository}}:{{.Tag}}"], capture_output=True, text=True
    ).stdout.split()
    mine = [i for i in images if i.startswith(image_prefix)]
    if mine:
        subprocess.run(["docker", "rmi", "-f", *mine], capture_output=True)


def docker_available() -> bool:
    return shutil.which("docker") is not None
