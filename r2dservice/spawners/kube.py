"""KubeSpawner with r2dservice's images: ``c.JupyterHub.spawner_class =
"r2dservice.spawners.kube.R2DKubeSpawner"``."""

from __future__ import annotations

from kubespawner import KubeSpawner

from ..spawner import R2DServiceSpawnerMixin


class R2DKubeSpawner(R2DServiceSpawnerMixin, KubeSpawner):
    """KubeSpawner whose image r2dservice builds from the repository in ``user_options``
    (or in ``r2dservice_repo``, which a profile's ``kubespawner_override`` may set).

    KubeSpawner applies a profile's overrides in ``load_user_options()``: the profile is
    loaded before the build (so that its ``r2dservice_repo`` counts), and the built image
    wins over the profile's ``image`` whenever KubeSpawner loads it again in ``start()``.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # KubeSpawner never undoes a profile's overrides, and JupyterHub reuses a spawner
        # after a failed spawn: each load starts from the configured repository.
        self._r2d_configured = (self.r2dservice_repo, self.r2dservice_ref)

    async def r2dservice_get_image(self):
        if self.profile_list:
            await self.load_user_options()
        return await super().r2dservice_get_image()

    async def load_user_options(self):
        self.r2dservice_repo, self.r2dservice_ref = self._r2d_configured
        await super().load_user_options()
        if self._r2d_image:
            self.image = self._r2d_image
