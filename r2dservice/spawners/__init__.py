"""Ready-made spawners with r2dservice's mixin (see r2dservice.spawner).

Each lives in its own module so that importing one imports only its base spawner:
``r2dservice.spawners.docker.R2DDockerSpawner`` (dockerspawner),
``r2dservice.spawners.kube.R2DKubeSpawner`` (kubespawner).
"""
