"""Stand-ins for a live service without Docker or the internet: a scripted builder,
GitHub's API, a Docker engine's image endpoint and JupyterHub's user API, on 127.0.0.1.

Used by the API conformance tests and the build-records tests, which run the real
service process against them.
"""

from __future__ import annotations

import asyncio
import os
import textwrap
import threading

import pytest

from tests.fakes.forge import FakeForge, fake_sha
from tests.support.service import REPO, ServiceProcess

REPO_NAMES = ("quick", "slow", "slow2", "slow3", "fail", "fail2", "built", "broken")


SCRIPTED_BUILDER = '''
"""A stand-in builder: no Docker. The repository's name says how the build goes."""
import asyncio

from r2dservice.builders.base import Builder, BuildFailed
from r2dservice.events import Event


class ScriptedBuilder(Builder):
    async def build(self, request, emit):
        name = request.repo_url.rstrip("/").rsplit("/", 1)[-1]
        emit(Event("fetching", f"Fetching {request.repo_url} at {request.ref}\\n"))
        emit(Event("unknown", "a line that was not JSON\\n"))
        if name.startswith("fail"):
            raise BuildFailed("The scripted build failed: nothing to build.")
        if name.startswith("slow"):
            await asyncio.sleep(3600)
        emit(Event("building", "Step 1/1 : FROM scratch\\n", {"stream": "extra field"}))
        emit(Event("pushing", "Pushing the image\\n", {"progress": {"current": 1, "total": 1}}))
'''


class FakeServers:
    """GitHub's API and a Docker engine's image endpoint, on 127.0.0.1, in a thread.

    The engine has images of repositories named "built*"; it fails (HTTP 500) for
    repositories named "broken*"; it has no other image.
    """

    def __init__(self):
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.forge = FakeForge()
        self.engine_url = ""
        self.engine_paths: list[str] = []  # what the engine was asked, in order

    async def _engine(self, request):
        from aiohttp import web

        path = request.raw_path
        self.engine_paths.append(path)
        if path.startswith("/hub/api/user"):
            return self._hub_user(request)
        if "gh-octo-built" in path:
            return web.json_response({"Id": "sha256:" + "0" * 64})
        if "gh-octo-broken" in path:
            return web.json_response({"message": "engine trouble"}, status=500)
        return web.json_response({"message": "No such image"}, status=404)

    # JupyterHub's GET /hub/api/user for the tokens of the auth tests
    HUB_USERS = {
        "alice-token": {
            "kind": "user",
            "name": "alice",
            "scopes": ["access:services!service=binder", "custom:r2dservice:build"],
        },
        "bob-token": {"kind": "user", "name": "bob", "scopes": ["access:services!service=binder"]},
        "carol-token": {
            "kind": "user",
            "name": "carol",
            "scopes": ["access:services!service=binder", "custom:r2dservice:build"],
        },
        "root-token": {
            "kind": "user",
            "name": "root",
            "scopes": [
                "access:services!service=binder",
                "custom:r2dservice:build",
                "custom:r2dservice:admin",
            ],
        },
        "mallory-token": {
            "kind": "user",
            "name": "mallory",
            "scopes": ["read:users:name!user=mallory"],
        },
    }

    def _hub_user(self, request):
        from aiohttp import web

        token = request.headers.get("Authorization", "").partition(" ")[2]
        if token == "broken-token":
            return web.Response(status=500, text="database is locked")
        if token not in self.HUB_USERS:
            return web.json_response({"status": 403, "message": "Forbidden"}, status=403)
        return web.json_response(self.HUB_USERS[token])

    @property
    def hub_api_url(self) -> str:
        return "http://" + self.engine_url.split("://", 1)[1] + "/hub/api"

    async def _start(self):
        from aiohttp import web

        await self.forge.start()
        for name in REPO_NAMES:
            self.forge.add_github_repo(f"octo/{name}", {"main": fake_sha(name)})
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._engine)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        host, port = self._runner.addresses[0][:2]
        self.engine_url = f"tcp://{host}:{port}"

    async def _stop(self):
        await self.forge.stop()
        await self._runner.cleanup()

    def start(self) -> FakeServers:
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(30)
        return self

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


def start_service(workdir, fakes: FakeServers, config: str = "", env=None) -> ServiceProcess:
    """The real service (`python -m r2dservice -f ...`) with the stand-ins."""
    (workdir / "scripted_builder.py").write_text(SCRIPTED_BUILDER)
    base = f"""
        c.R2DService.builder_class = "scripted_builder.ScriptedBuilder"
        c.R2DService.image_prefix = "r2d-openapi-"
        c.R2DService.use_registry = False
        c.R2DService.keepalive_interval = 0.3
        c.LocalImageChecker.docker_host = {fakes.engine_url!r}
        c.GitHubAPIProvider.api_base_url = {fakes.forge.url!r}
        c.HTTPRepoProvider.trust_env = False
        c.BuildManager.concurrent_build_limit = 1
        c.GitRepoProvider.allow_loopback = True  # the stand-ins' git servers are on 127.0.0.1
    """
    svc = ServiceProcess(str(workdir), textwrap.dedent(base) + textwrap.dedent(config))
    # exactly this environment: nothing of a hub's leaks in from the test's
    svc.env = {k: v for k, v in os.environ.items() if not k.startswith("JUPYTERHUB_")}
    # the scripted builder, this checkout's r2dservice whatever the venv installed, then
    # whatever else PYTHONPATH holds
    path = [str(workdir), REPO, os.environ.get("PYTHONPATH", "")]
    svc.env.update(env or {}, PYTHONPATH=os.pathsep.join(p for p in path if p))
    return svc.start()


@pytest.fixture(scope="module")
def fakes():
    """The stand-ins, started once per test module."""
    servers = FakeServers().start()
    yield servers
    servers.stop()
