"""Build with a repo2docker process against the local Docker engine."""

from __future__ import annotations

import asyncio
import os
import shlex
import shutil
import signal
import sys
import tempfile

from traitlets import Float, Integer, List, Unicode, default

from ..events import Event
from .base import BuildFailed, BuildRequest, Emit
from .repo2docker import Repo2DockerBuilder, Repo2DockerOutput, read_lines, repo2docker_args

# The environment variable that carries a build's git credentials to its credential helper.
CREDENTIALS_ENV = "R2DSERVICE_GIT_CREDENTIALS"

# git runs this (through the shell) as its credential helper: on "get" it answers with
# the credentials, but only when git asks about their host. Secrets stay in the
# environment: the helper's command line holds only this text.
CREDENTIAL_HELPER = (
    '!f() { test "$1" = get || exit 0; '
    f"want=$(printf '%s\\n' \"${CREDENTIALS_ENV}\" | grep '^host='); "
    f'grep -qxF "$want" && printf \'%s\\n\' "${CREDENTIALS_ENV}"; }}; f'
)

# Output lines longer than this are cut (with a marker); the rest of such a line is dropped.
MAX_LINE = 1024 * 1024


def credential_env(credentials: str) -> dict[str, str]:
    """Environment that hands `credentials` (git-credential(1) input) to the git that
    repo2docker runs, without them ever being on a command line. {} for none."""
    if not credentials:
        return {}
    return {
        "GIT_CONFIG_COUNT": "1",
        "GIT_CONFIG_KEY_0": "credential.helper",
        "GIT_CONFIG_VALUE_0": CREDENTIAL_HELPER,
        CREDENTIALS_ENV: credentials,
    }


# repo2docker in a process group of its own, so that a stop can kill the whole group,
# but in the service's session: Linux's autogroup scheduling gives every session an
# equal share of the CPUs and applies nice only within one, so builds in new sessions
# (start_new_session) would each weigh as much as the service, whatever their nice.
# (Python 3.10 has no process_group; there a new session is the cheap way.)
OWN_GROUP = {"process_group": 0} if sys.version_info >= (3, 11) else {"start_new_session": True}


class LocalBuilder(Repo2DockerBuilder):
    """Runs `repo2docker` as a subprocess, one per build, in its own process group."""

    repo2docker_command = List(
        Unicode(),
        help="""The command that runs repo2docker. Default: this Python's `-m repo2docker`.""",
    ).tag(config=True)

    @default("repo2docker_command")
    def _repo2docker_command_default(self):
        return [sys.executable, "-m", "repo2docker"]

    kill_grace = Float(10, help="Seconds between SIGTERM and SIGKILL when a build is stopped.").tag(
        config=True
    )

    niceness = Integer(
        10,
        min=0,
        max=19,
        help="""repo2docker's CPU priority (nice): builds starting together must not
        starve the service's event loop, which answers every viewer. 0: the service's
        own priority.""",
    ).tag(config=True)

    environment = List(
        Unicode(),
        help="""Names of environment variables passed to repo2docker (besides PATH, HOME,
        DOCKER_* and locale settings). Nothing else of the service's environment leaks in.""",
    ).tag(config=True)

    # The Docker config.json (registry credentials) repo2docker pushes with: the service
    # sets it to c.RegistryImageChecker.docker_config_path, so that one file serves the
    # registry check and the push. None: repo2docker's DOCKER_CONFIG is the service's own.
    docker_config_path: str | None = None

    def _env(self, request: BuildRequest, docker_config_dir: str | None) -> dict[str, str]:
        keep = {"PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "SSL_CERT_FILE", *self.environment}
        env = {k: v for k, v in os.environ.items() if k in keep or k.startswith("DOCKER_")}
        # Nothing git-config-shaped of the service's own leaks in, and git never prompts.
        for k in list(env):
            if k.startswith("GIT_CONFIG_") or k == CREDENTIALS_ENV:
                del env[k]
        env["GIT_TERMINAL_PROMPT"] = "0"
        env["PYTHONUNBUFFERED"] = "1"
        if docker_config_dir:
            env["DOCKER_CONFIG"] = docker_config_dir
        env.update(credential_env(request.credentials))
        return env

    def _docker_config_dir(self) -> str | None:
        """A private folder whose config.json is docker_config_path (None when unset)."""
        if not self.docker_config_path:
            return None
        folder = tempfile.mkdtemp(prefix="r2dservice-docker-")
        os.symlink(os.path.abspath(self.docker_config_path), os.path.join(folder, "config.json"))
        return folder

    async def build(self, request: BuildRequest, emit: Emit) -> None:
        request = await self.with_cache(request)
        args = repo2docker_args(
            request,
            user_id=self.user_id,
            user_name=self.user_name,
            extra_args=self.repo2docker_extra_args,
            inline_cache=self.warm_rebuilds,
        )
        cmd = self.repo2docker_command + args
        self.log.debug("Running %s", shlex.join(cmd))
        emit(Event("fetching", f"Fetching {request.spec or request.repo_url}...\n"))
        docker_config_dir = self._docker_config_dir()
        try:
            await self._run(request, cmd, self._env(request, docker_config_dir), emit)
        finally:
            if docker_config_dir:
                shutil.rmtree(docker_config_dir, ignore_errors=True)
        if request.push:
            emit(Event("pushing", f"Pushed {request.image_name}\n"))

    def _niced(self, cmd: list[str]) -> list[str]:
        """repo2docker, and the docker client and BuildKit steps it starts, at a lower
        priority: through nice(1), not preexec_fn, which makes Python fork the whole
        service (6 ms for 140 MB, the event loop stopped) where it otherwise uses vfork
        (0.15 ms)."""
        if not self.niceness:
            return cmd
        return [shutil.which("nice") or "nice", "-n", str(self.niceness), *cmd]

    async def _run(self, request: BuildRequest, cmd: list[str], env: dict, emit: Emit) -> None:
        proc = await asyncio.create_subprocess_exec(
            *self._niced(cmd),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,  # --json-logs writes to stderr
            env=env,
            **OWN_GROUP,
            limit=MAX_LINE,
        )
        output = Repo2DockerOutput()
        done = False
        try:
            timeout = self.build_timeout if self.build_timeout > 0 else None
            await asyncio.wait_for(self._relay(proc, output, emit), timeout)
            returncode = await proc.wait()
            done = True
        except asyncio.TimeoutError:
            raise BuildFailed(f"Build timed out after {self.build_timeout:g} seconds.") from None
        finally:
            if not done:
                # Timeout, cancel, or any error (in emit, in reading): nothing is left
                # running unread.
                await asyncio.shield(self._kill(proc))
        if returncode != 0:
            reason = output.failure_message(f"repo2docker exited with code {returncode}")
            raise BuildFailed(reason.strip())

    async def _relay(self, proc, output: Repo2DockerOutput, emit: Emit) -> None:
        """Turn each output line into an event."""
        async for raw in read_lines(proc.stdout, MAX_LINE):
            event = output.line(raw.decode("utf-8", "replace"))
            if event is not None:
                emit(event)

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
