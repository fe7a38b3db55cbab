"""Build with a repo2docker process against the local Docker engine."""
from __future__ import annotations

import asyncio
import os
import signal
import sys

from traitlets import Float, Integer, List, Unicode, default

from ..events import Event, parse_repo2docker_line
from ..naming import config_fingerprint
from .base import Builder, BuildFailed, BuildRequest, Emit


def repo2docker_args(request: BuildRequest, user_id: int, user_name: str, extra: list[str]) -> list[str]:
    """repo2docker's arguments for one build. Pure."""
    args = [
        "--json-logs",
        "--no-run",
        "--user-id", str(user_id),
        "--user-name", user_name,
        "--image-name", request.image_name,
        "--ref", request.ref,
    ]
    if request.push:
        args.append("--push")
    return args + list(extra) + [request.repo_url]


class LocalBuilder(Builder):
    """Runs `repo2docker` as a subprocess, one per build, in its own process group."""

    repo2docker_command = List(
        Unicode(),
        config=True,
        help="""The command that runs repo2docker. Default: this Python's `-m repo2docker`.""",
    )

    @default("repo2docker_command")
    def _repo2docker_command_default(self):
        return [sys.executable, "-m", "repo2docker"]

    repo2docker_extra_args = List(
        Unicode(),
        config=True,
        help="""Extra repo2docker arguments, put before the repository. For example
        ["--config", "/etc/r2dservice/repo2docker_config.py"] to set the base image and
        buildpacks. They are part of the image tag: changing them builds anew.""",
    )
    user_id = Integer(1000, config=True, help="User id of the image's user (--user-id).")
    user_name = Unicode("jovyan", config=True, help="Name of the image's user (--user-name).")
    build_timeout = Float(
        3600, config=True, help="Seconds a build may take before it is stopped and fails."
    )
    kill_grace = Float(
        10, config=True, help="Seconds between SIGTERM and SIGKILL when a build is stopped."
    )
    environment = List(
        Unicode(),
        config=True,
        help="""Names of environment variables passed to repo2docker (besides PATH, HOME,
        DOCKER_* and locale settings). Nothing else of the service's environment leaks in.""",
    )

    def fingerprint(self) -> str:
        return config_fingerprint(self.repo2docker_extra_args, self.user_id, self.user_name)

    def _env(self) -> dict[str, str]:
        keep = {"PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "SSL_CERT_FILE", *self.environment}
        env = {k: v for k, v in os.environ.items() if k in keep or k.startswith("DOCKER_")}
        env["GIT_TERMINAL_PROMPT"] = "0"
        env["PYTHONUNBUFFERED"] = "1"
        return env

    async def build(self, request: BuildRequest, emit: Emit) -> None:
        cmd = self.repo2docker_command + repo2docker_args(
            request, self.user_id, self.user_name, self.repo2docker_extra_args
        )
        self.log.debug("Running %s", cmd[:-1] + ["<repo>"])
        emit(Event("fetching", f"Fetching {request.spec or request.repo_url}...\n"))
        proc = await asyncio.create_subprocess_exec(
            *cmd,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,  # --json-logs writes to stderr
            env=self._env(),
            start_new_session=True,  # so that cancel can kill the whole group
            limit=16 * 1024 * 1024,  # BuildKit progress lines can be long
        )
        try:
            last_error = await asyncio.wait_for(self._relay(proc, emit), self.build_timeout)
            returncode = await proc.wait()
        except asyncio.TimeoutError:
            await self._kill(proc)
            raise BuildFailed(f"Build timed out after {self.build_timeout:g} seconds.") from None
        except asyncio.CancelledError:
            await self._kill(proc)
            raise
        if returncode != 0:
            reason = last_error or f"repo2docker exited with code {returncode}"
            raise BuildFailed(reason.strip())
        if request.push:
            emit(Event("pushing", f"Pushed {request.image_name}\n"))

    async def _relay(self, proc, emit: Emit) -> str:
        """Turn each output line into an event; return repo2docker's last error message."""
        phase, last_error = "fetching", ""
        async for raw in proc.stdout:
            line = raw.decode("utf-8", "replace")
            if not line.strip():
                continue
            event, is_error = parse_repo2docker_line(line, phase)
            if is_error:
                last_error = event.message
            elif event.phase != "unknown":
                phase = event.phase
            emit(event)
        return last_error

    async def _kill(self, proc) -> None:
        """SIGTERM the process group, then SIGKILL whatever of it is left.

        The group matters: repo2docker's children (docker buildx, git) would
        otherwise outlive it and go on building.
        """
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            await asyncio.wait_for(asyncio.shield(proc.wait()), self.kill_grace)
        except asyncio.TimeoutError:
            pass
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        await proc.wait()
