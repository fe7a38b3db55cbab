"""r2dservice's configuration in the demo hub of `dev/run.sh` (dev/jupyterhub_config.py).

The hub starts r2dservice with this file and tells it, in JUPYTERHUB_* variables, its
name, token, OAuth client, prefix and address: nothing about the hub is needed here.
"""

import os
from pathlib import Path

c = get_config()  # noqa: F821 (provided by traitlets when r2dservice loads this file)

HERE = Path(__file__).resolve().parent

# Images go to the local registry dev/services.sh runs on 127.0.0.1:5000.
c.R2DService.image_prefix = os.environ.get("R2D_DEMO_IMAGE_PREFIX", "127.0.0.1:5000/r2d-demo-")
# Offline-capable repo2docker settings: the local base image, Dockerfile and apt.txt/postBuild
# repositories, git and local content providers only.
c.LocalBuilder.repo2docker_extra_args = ["--config", str(HERE / "repo2docker_config.py")]
c.BuildManager.concurrent_build_limit = 2
# The demo's repositories are served by a git daemon on 127.0.0.1, which git URLs may
# not name by default (c.GitRepoProvider.allow_loopback: the service's own machine).
c.GitRepoProvider.allow_loopback = True
# Launch where the demo hub starts the built images in users' servers (dev/run.sh found
# the Docker bridge); otherwise images only. See docs/launch.md.
c.Launcher.enabled = bool(os.environ.get("R2D_DEMO_HUB_CONNECT_IP"))
