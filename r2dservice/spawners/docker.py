"""DockerSpawner with r2dservice's images: ``c.JupyterHub.spawner_class =
"r2dservice.spawners.docker.R2DDockerSpawner"``."""

from __future__ import annotations

from dockerspawner import DockerSpawner
from traitlets import default

from ..spawner import OPTIONS_FORM, R2DServiceSpawnerMixin


class R2DDockerSpawner(R2DServiceSpawnerMixin, DockerSpawner):
    """DockerSpawner whose image r2dservice builds from the repository in ``user_options``.

    Its spawn form asks for a repository and a ref (empty: ``c.DockerSpawner.image``).
    """

    @default("options_form")
    def _r2d_options_form(self):
        return OPTIONS_FORM
