"""Warm rebuilds: which earlier image a new build of a repository takes its cache from.

Images are named "<prefix><repository slug>:<commit>-<config>", so every build of one
repository (and one kind of access: credentialed builds have a slug of their own) shares
the part before the ":". The newest ready images of it that the registry still has are
the cache: their unchanged layers are pulled instead of rebuilt (BuildKit's inline cache).

More than one: BuildKit before 0.10 (Docker 20.10) leaves a layer it took from an
imported cache out of the inline cache it exports, so an image built warm cannot pass
that layer on; an older image that built it still can.
"""

from __future__ import annotations

import logging


class PreviousImages:
    """`find(request)`: up to `candidates` earlier images of the request's repository,
    newest first."""

    def __init__(self, history, registry, log=None, candidates: int = 3):
        self.history = history
        self.registry = registry
        self.log = log or logging.getLogger("r2dservice")
        self.candidates = candidates

    async def find(self, request) -> list[str]:
        repository = request.image_name.rpartition(":")[0]
        images = await self.history.ready_images(repository, limit=self.candidates + 1)
        found = []
        for image in images:
            if image == request.image_name or len(found) >= self.candidates:
                continue
            # A pruned image would only cost BuildKit a failed lookup; asking first keeps
            # the build log free of it.
            if await self.registry.exists(image):
                found.append(image)
        if found:
            self.log.info("Build of %s takes its cache from %s", request.image_name, found)
        return found
