"""What every builder that runs repo2docker shares: its configuration, its command line,
and the reading of its output. Pure, but for read_lines() (which reads a stream).

LocalBuilder (a process) and KubernetesBuilder (a pod) both subclass Repo2DockerBuilder,
so `c.Repo2DockerBuilder.user_id` configures both and `c.LocalBuilder.user_id` one of them
(traitlets inheritance).
"""

from __future__ import annotations

import asyncio
import math
from dataclasses import replace

from traitlets import Bool, Float, Integer, List, Unicode

from ..events import Event, parse_repo2docker_line
from ..naming import config_fingerprint
from .base import Builder, BuildRequest

# What an over-long output line is cut to, and the marker that says so.
TRUNCATED = " [... line truncated by r2dservice ...]\n"


class Repo2DockerBuilder(Builder):
    """A builder that runs repo2docker. Its traits shape the image (part of its tag)
    or the build, whichever way repo2docker runs.

    `pod=True` tags a trait that is part of the build pod's shape (BuildPodConfig).
    """

    repo2docker_extra_args = List(
        Unicode(),
        help="""Extra repo2docker arguments, put before the repository. For example
        ["--config", "/etc/r2dservice/repo2docker_config.py"] to set the base image and
        buildpacks. They are part of the image tag: changing them builds anew.""",
    ).tag(config=True, pod=True)

    user_id = Integer(
        1000, help="User id of the image's user (repo2docker's --user-id). Part of the image tag."
    ).tag(config=True, pod=True)

    user_name = Unicode(
        "jovyan",
        help="Name of the image's user (repo2docker's --user-name). Part of the image tag.",
    ).tag(config=True, pod=True)

    build_timeout = Float(
        3600,
        help="""Seconds a build may take before it is stopped and fails (0: no limit).
        Build pods get it as their activeDeadlineSeconds (rounded up), counted from pod creation.""",
    ).tag(config=True, pod=True)

    warm_rebuilds = Bool(
        True,
        help="""Build a new commit of a repository with its newest earlier image as cache
        (repo2docker's --cache-from), and push every image with BuildKit's inline cache
        metadata (BUILDKIT_INLINE_CACHE=1), so that a builder whose local cache is empty
        (another node, a fresh Docker daemon) reuses the unchanged layers from the
        registry. Only with a registry; not part of the image tag.""",
    ).tag(config=True, pod=True)

    # Set by the service: `async (request) -> [image, ...]`, earlier images of the
    # request's repository (records.PreviousImages.find); None looks nothing up.
    previous_images = None

    async def with_cache(self, request: BuildRequest) -> BuildRequest:
        """`request` with the images its build may take layers from (see warm_rebuilds).
        Never fails a build: without an answer, the build is merely cold."""
        if not (self.warm_rebuilds and request.push) or request.cache_from:
            return request
        if self.previous_images is None:
            return request
        try:
            images = await self.previous_images(request)
        except Exception as e:
            self.log.warning("No cache image for %s: %s", request.image_name, e)
            return request
        images = tuple(i for i in images if i != request.image_name)
        return replace(request, cache_from=images) if images else request

    def fingerprint_parts(self) -> list:
        """What of this builder's configuration changes the image it makes."""
        return [list(self.repo2docker_extra_args), self.user_id, self.user_name]

    def fingerprint(self) -> str:
        return config_fingerprint(*self.fingerprint_parts())


def deadline_seconds(build_timeout: float) -> int | None:
    """activeDeadlineSeconds for a build timeout in seconds (None for no limit)."""
    if not build_timeout or build_timeout <= 0:
        return None
    return max(1, math.ceil(build_timeout))


def repo2docker_args(
    request: BuildRequest,
    *,
    user_id: int,
    user_name: str,
    extra_args=(),
    inline_cache: bool = False,
) -> list[str]:
    """repo2docker's arguments (without the command) for one build: it builds, pushes
    with push, never runs. The repository comes last, after every option (repo2docker#128),
    and is the clean URL: credentials never reach a command line.

    `inline_cache`: a pushed image carries BuildKit's cache metadata, so that a later
    build on any builder can use it as --cache-from (the request's cache_from)."""
    if request.repo_url.startswith("-"):
        # repo2docker would read it as an option.
        raise ValueError(f"refusing a repository URL that starts with '-': {request.repo_url!r}")
    args = [
        "--json-logs",
        "--no-run",
        f"--ref={request.ref}",
        f"--image-name={request.image_name}",
        f"--user-id={user_id}",
        f"--user-name={user_name}",
    ]
    if request.push:
        args.append("--push")
        if inline_cache:
            args.append("--build-arg=BUILDKIT_INLINE_CACHE=1")
    args.extend(f"--cache-from={image}" for image in request.cache_from)
    args.extend(extra_args)
    args.append(request.repo_url)
    return args


class Repo2DockerOutput:
    """Reads repo2docker's --json-logs output line by line: turns each line into an
    Event (phase filled in), tracks the phase, remembers the last error and BuildKit's
    own reason ("ERROR: failed to solve: ..."), and says why a failed build failed."""

    def __init__(self, phase: str = "fetching"):
        self.phase = phase
        self.last_error = ""
        self.last_line = ""
        self.buildkit_error = ""

    def line(self, line: str) -> Event | None:
        """The event for one output line (None for a blank line)."""
        if not line.strip():
            return None
        event, is_error = parse_repo2docker_line(line, self.phase)
        if event.phase in ("fetching", "building", "pushing"):
            self.phase = event.phase
        message = event.message
        if is_error and message.strip():
            self.last_error = message if message.endswith("\n") else message + "\n"
        if message.strip():
            self.last_line = message
        if message.startswith("ERROR: "):
            self.buildkit_error = message[len("ERROR: ") :].strip()
        return event

    def failure_message(self, fallback: str = "") -> str:
        """repo2docker's last error line; when that only says the docker command failed,
        BuildKit's reason instead (the failing step and its exit code); else `fallback`."""
        if self.buildkit_error and "returned non-zero exit status" in self.last_error:
            return f"Error during build: {self.buildkit_error}\n"
        return self.last_error or fallback


def cut_line(data: bytes, limit: int) -> bytes:
    """`data` (one line, maybe without its newline) cut to `limit` bytes with a marker."""
    if len(data) <= limit:
        return data
    return data[:limit] + TRUNCATED.encode()


async def read_lines(stream, limit: int):
    """Yield the lines of an asyncio StreamReader (made with `limit`) as bytes. A line
    longer than `limit` neither fails nor stalls the reading: its first `limit` bytes
    are yielded with TRUNCATED, the rest of it is read and dropped."""
    while True:
        try:
            raw = await stream.readuntil(b"\n")
        except asyncio.IncompleteReadError as e:
            if e.partial:
                yield cut_line(e.partial, limit)
            return
        except asyncio.LimitOverrunError as e:
            head = await stream.readexactly(min(e.consumed, limit))
            await _skip_line(stream)
            yield head + TRUNCATED.encode()
            continue
        yield cut_line(raw, limit)


async def _skip_line(stream) -> None:
    """Read and drop the rest of the current line, however long."""
    while True:
        try:
            await stream.readuntil(b"\n")
            return
        except asyncio.IncompleteReadError:
            return
        except asyncio.LimitOverrunError as e:
            await stream.readexactly(e.consumed)
