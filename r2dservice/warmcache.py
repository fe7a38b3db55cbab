"""Warm rebuilds: which earlier image a new build of a repository takes its cache from.

Images are named "<prefix><repository slug>:<commit>-<config>", so every build of one
repository (and one kind of access: credentialed builds have a slug of their own) shares
the part before the ":". The newest ready image of it that the registry still has is the
cache: its unchanged layers are pulled instead of rebuilt (BuildKit's inline cache).
"""

from __future__ import annotations

import logging


class PreviousImages:
    """`find(request)`: at most one earlier image of the request's repository."""

    def __init__(self, history, registry, log=None, candidates: int = 3):
        self.history = history
        self.registry = registry
        self.log = log or logging.getLogger("r2dservice")
        self.candidates = candidates

    async def find(self, request) -> list[str]:
        repository = request.image_name.rpartition(":")[0]
        images = await self.history.ready_images(repository, limit=self.candidates + 1)
        for image in images:
            if image == request.image_name:
                continue
            # A pruned image would only cost BuildKit a failed lookup; asking first keeps
            # the build log free of it.
            if await self.registry.exists(image):
                self.log.info("Build of %s takes its cache from %s", request.image_name, image)
                return [image]
        return []
