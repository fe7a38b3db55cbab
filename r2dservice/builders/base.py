"""The interface every builder implements."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from traitlets.config import LoggingConfigurable

from .. import naming
from ..events import Event
from ..spec import redact, split_credentials

if TYPE_CHECKING:
    from .replay import LogReplay

Emit = Callable[[Event], None]


class BuildFailed(Exception):
    """A build ended without an image. The message is shown to the person who asked."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class BuildRequest:
    """Everything a builder needs to know about one build. No HTTP, no config objects."""

    name: str  # deterministic from the image, DNS-safe (<= 63): the pod name
    image_name: str  # full reference, "<prefix><name>:<tag>"
    repo_url: str  # what repo2docker fetches
    ref: str  # the resolved, immutable ref (commit)
    provider: str = ""  # "gh", "gl", "git", "gist"
    spec: str = ""  # the spec as asked, for labels and annotations
    push: bool = False  # push the image to a registry when built
    user: str = ""  # who asked, for records and labels
    labels: dict = field(default_factory=dict)
    # git credential helper input for repo_url ("" for none): never in argv, labels,
    # annotations or logs; builders hand it to git through the environment or a Secret.
    credentials: str = field(default="", repr=False, compare=False)
    # Images whose layers this build may reuse (repo2docker's --cache-from): the newest
    # earlier image of the same repository, so that a new commit rebuilds warm.
    cache_from: tuple[str, ...] = field(default=(), compare=False)


def make_build_request(
    *,
    image_name: str,
    repo_url: str,
    ref: str,
    provider: str,
    spec: str,
    push: bool,
    user: str = "",
) -> BuildRequest:
    """The one way to make a BuildRequest: credentials leave the URL, the spec is redacted."""
    clean_url, credentials = split_credentials(repo_url)
    return BuildRequest(
        name=naming.build_name(image_name),
        image_name=image_name,
        repo_url=clean_url,
        ref=ref,
        provider=provider,
        spec=redact(spec, repo_url),
        push=push,
        user=user,
        credentials=credentials,
    )


class Builder(LoggingConfigurable):
    """Runs builds.

    `build()` emits progress events (fetching/building/pushing, repo2docker's lines)
    through `emit`, returns when the image is built (and pushed, with push), raises
    BuildFailed with a message a person can act on otherwise, and on cancellation
    (asyncio.CancelledError) stops the build and cleans up before re-raising.
    The BuildManager owns waiting/built/ready/failed: builders never emit those.
    """

    # True when builds run outside this process (pods) and a restarted service can
    # adopt them: then shutdown detaches from running builds instead of cancelling them.
    survives_restart = False

    def fingerprint(self) -> str:
        """A digest of this builder's configuration that changes the image it makes
        (builder image, repo2docker arguments); part of the image tag. "" for none."""
        return ""

    async def start(self) -> list[BuildRequest]:
        """Called once at service start. Returns builds already running that
        this builder can follow (a restarted service adopts them)."""
        return []

    async def stop(self) -> None:
        """Called at service shutdown, before the manager cancels the tasks running
        build()/follow(). A builder with survives_restart must remember that it is
        stopping and, when those tasks are then cancelled, leave its builds running
        (for the next start() to adopt) instead of deleting them."""

    def health(self) -> list[dict]:
        """/health checks of this builder's own (`service`, `ok`, `message` when not
        ok, `critical`); none by default."""
        return []

    async def build(self, request: BuildRequest, emit: Emit) -> None:
        raise NotImplementedError

    async def follow(
        self, request: BuildRequest, emit: Emit, replay: LogReplay | None = None
    ) -> None:
        """Follow a build adopted from start(); same contract as build(). `replay`
        (when the build's record holds events already): a builder that reads the
        build's output again from its start emits only the events for which
        `replay.seen(event)` is False, so that nothing recorded is logged twice."""
        raise NotImplementedError
