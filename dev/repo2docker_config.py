"""repo2docker configuration for offline builds on development and CI machines.

Use it with ``repo2docker --config dev/repo2docker_config.py ...``. dev/services.sh
makes the base image (nothing can be pulled from a container registry here) and
writes the path of this file to ``R2D_TEST_REPO2DOCKER_CONFIG`` in its env.sh.

- ``base_image``: the debootstrapped Debian 12 image (``R2D_BASE_IMAGE`` overrides).
- ``buildpacks``: Dockerfile repositories, and everything else through the base
  buildpack (``apt.txt``, ``postBuild``, ``start``). The conda-based buildpacks
  download from anaconda.org and cannot finish offline.
- ``content_providers``: local folders and git only; the others (Dataverse first)
  probe the network for every spec before git gets its turn.
"""

import os

from repo2docker.buildpacks import BaseImage, DockerBuildPack
from repo2docker.contentproviders import Git, Local

c = get_config()  # noqa: F821 (provided by traitlets when it loads this file)

c.Repo2Docker.base_image = os.environ.get("R2D_BASE_IMAGE", "r2dservice-base:bookworm")
c.Repo2Docker.buildpacks = [DockerBuildPack, BaseImage]
c.Repo2Docker.content_providers = [Local, Git]
