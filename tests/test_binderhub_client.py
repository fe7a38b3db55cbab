"""Existing clients work unchanged: the real `@jupyterhub/binderhub-client` from npm, used
the way jupyterhub-fancy-profiles uses it (tests/js/build-with-binderhub-client.mjs), in
Node, against r2dservice behind a real JupyterHub and configurable-http-proxy with a
Bearer user token, and against r2dservice alone.

The client and its dependencies are pinned in tests/js/package-lock.json and installed
by the `js_client` fixture with `npm ci` (from npm's cache when it has them).
"""

from __future__ import annotations

import asyncio
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from urllib.parse import quote, unquote

import pytest

from tests.conftest import registry_has
from tests.fakes.gitserver import make_repo
from tests.support.hub import Hub
from tests.support.service import REPO, ServiceProcess

pytestmark = [pytest.mark.docker, pytest.mark.hub]

JS_DIR = os.path.join(REPO, "tests", "js")
SCRIPT = os.path.join(JS_DIR, "build-with-binderhub-client.mjs")
CLIENT = "@jupyterhub/binderhub-client"

# Longest a build here may take (a Dockerfile repository on the local engine: seconds).
BUILD_TIMEOUT = 300
# After the iteration ends, the script waits this long counting requests: longer than
# fetch-event-source's default retry interval (1 s), so a reconnect would be seen.
GRACE = 2.5


# ------------------------------------------------------------------ installing the client
def _npm_ci() -> str:
    """`npm ci` in tests/js unless node_modules already matches the lockfile; returns the
    installed client's version. Skips npm entirely on a second run; a fresh machine
    needs the npm registry, or npm's cache (--prefer-offline)."""
    for tool in ("node", "npm"):
        if not shutil.which(tool):
            pytest.fail(f"{tool} is not on PATH: these tests need Node.js >= 20.19 and npm")
    with open(os.path.join(JS_DIR, "package.json"), "rb") as f:
        package = f.read()
    with open(os.path.join(JS_DIR, "package-lock.json"), "rb") as f:
        lock = f.read()
    want = hashlib.sha256(package + b"\0" + lock).hexdigest()
    modules = os.path.join(JS_DIR, "node_modules")
    stamp = os.path.join(modules, ".r2dservice-installed")
    where = hashlib.sha256(JS_DIR.encode()).hexdigest()[:12]
    lock_path = os.path.join(tempfile.gettempdir(), f"r2dservice-npm-ci-{where}.lock")
    with open(lock_path, "w") as lockfile:
        fcntl.flock(lockfile, fcntl.LOCK_EX)  # one installer at a time (parallel runs)
        try:
            with open(stamp) as f:
                have = f.read().strip()
        except OSError:
            have = None
        if have != want:
            out = subprocess.run(
                ["npm", "ci", "--prefer-offline", "--no-audit", "--no-fund", "--loglevel=error"],
                cwd=JS_DIR,
                capture_output=True,
                text=True,
                timeout=300,
                check=False,
            )
            if out.returncode:
                pytest.fail(f"npm ci failed ({out.returncode}):\n{out.stdout}{out.stderr}")
            with open(stamp, "w") as f:
                f.write(want + "\n")
    pinned = json.loads(package)["dependencies"][CLIENT]
    with open(os.path.join(modules, *CLIENT.split("/"), "package.json")) as f:
        installed = json.load(f)["version"]
    assert installed == pinned, f"{CLIENT} {installed} installed, {pinned} pinned"
    return installed


@pytest.fixture(scope="session")
def js_client():
    return _npm_ci()


@dataclass
class ClientRun:
    returncode: int
    took: float
    states: list[dict] = field(default_factory=list)
    requests: list[dict] = field(default_factory=list)
    result: dict = field(default_factory=dict)
    stderr: str = ""

    @property
    def phases(self) -> list[str]:
        return [s.get("phase") for s in self.states]

    @property
    def last(self) -> dict:
        return self.states[-1] if self.states else {}

    def __str__(self) -> str:  # for assertion messages
        tail = [f"{s.get('phase')}: {str(s.get('message', ''))[:200]!r}" for s in self.states[-8:]]
        return (
            f"exit {self.returncode} after {self.took:.1f}s, {len(self.states)} states "
            f"(last: {tail}), result {self.result}, stderr: {self.stderr[-2000:]}"
        )


async def run_client(
    endpoint: str,
    spec: str,
    token: str | None = None,
    timeout: float = BUILD_TIMEOUT,
    launch: bool = False,
) -> ClientRun:
    """Run the Node script; Node stops itself after `timeout`, and we kill it a little later."""
    env = {k: v for k, v in os.environ.items() if k != "BINDER_API_TOKEN"}
    if token:
        env["BINDER_API_TOKEN"] = token  # not on the command line, where ps shows it
    t0 = time.monotonic()
    proc = await asyncio.create_subprocess_exec(
        "node",
        SCRIPT,
        "--endpoint",
        endpoint,
        "--spec",
        spec,
        "--timeout",
        str(timeout),
        "--grace",
        str(GRACE),
        *(["--launch"] if launch else []),
        cwd=JS_DIR,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout + GRACE + 15)
    except asyncio.TimeoutError:  # noqa: UP041 (not the builtin one on Python 3.10)
        proc.kill()
        out, err = await proc.communicate()
    run = ClientRun(proc.returncode, time.monotonic() - t0, stderr=err.decode(errors="replace"))
    for line in out.decode().splitlines():
        obj = json.loads(line)  # stdout is JSON lines only
        if obj["kind"] == "state":
            run.states.append(obj["data"])
        elif obj["kind"] == "request":
            run.requests.append(obj)
        elif obj["kind"] == "result":
            run.result = obj
    return run


def assert_ended_by_itself(run: ClientRun):
    """The iteration ended, no request followed (no reconnect), and Node exited on its own."""
    assert run.returncode == 0, run
    assert len(run.requests) == 1 and run.result["requests"] == 1, run


# ------------------------------------------------------------------ repositories
BASE = "FROM {base}\nRUN echo nonce-{nonce}\n"
QUICK = BASE + "RUN echo built-by-r2dservice > /built.txt\n"
FAILING = BASE + "RUN echo about to fail && false\n"


class Repos:
    def __init__(self, git_server, infra):
        self.git_server = git_server
        self.base = infra["base_image"]

    def new(self, name: str, dockerfile: str, ref: str = "main") -> tuple[str, str]:
        """A fresh repository (a new commit, hence a new image) -> (git spec, sha).
        The nonce also keeps Docker's layer cache from answering for the build."""
        nonce = uuid.uuid4().hex
        sha = make_repo(
            self.git_server.root / name,
            {"Dockerfile": dockerfile.format(base=self.base, nonce=nonce), "marker": f"{nonce}\n"},
        )
        # The BinderHub `git` provider: the repository URL escaped as one path segment.
        return f"git/{quote(self.git_server.url(name), safe='')}/{ref}", sha


@pytest.fixture(scope="module")
def repos(git_server, infra):
    return Repos(git_server, infra)


SERVICE_CONFIG = """
c.R2DService.image_prefix = "{registry}/r2dtest-{run_id}-"
c.R2DService.keepalive_interval = 1
c.LocalBuilder.repo2docker_extra_args = ["--config", "{r2d_config}"]
c.GitRepoProvider.allow_loopback = True  # the test git servers listen on 127.0.0.1
c.BuildManager.concurrent_build_limit = 2
"""


def service_config(infra, run_id) -> str:
    return SERVICE_CONFIG.format(
        registry=infra["registry"], run_id=run_id, r2d_config=infra["r2d_config"]
    )


# ------------------------------------------------------------------ through the hub
@pytest.fixture(scope="module")
def hub(infra, run_id, tmp_path_factory):
    h = Hub(str(tmp_path_factory.mktemp("hub")), service_config(infra, run_id)).start()
    yield h
    h.stop()


@pytest.fixture(scope="module")
def endpoint(hub):
    # What fancy-profiles passes: new URL("/services/binder/build/", window.location.origin).
    # The library resolves the spec against it (new URL(providerSpec, endpoint)), so the
    # endpoint is the build/ folder, not the service's root.
    return hub.url("services/binder/build/")


@pytest.fixture(scope="module")
def user_token(hub):
    """A token as fancy-profiles mints one: POST /hub/api/users/<name>/tokens with
    expires_in 3600 and no scopes (so it has all of the user's)."""

    def mint(user: str) -> str:
        return hub.token_for(user, expires_in=3600)[0]

    return mint


@pytest.fixture(scope="module")
def built(js_client, hub, endpoint, user_token, repos):
    """One fresh build by the client, shared by the first two tests."""
    token = user_token("alice")
    # HEAD: the ref fancy-profiles sends when the user names none.
    spec, sha = repos.new("fresh", QUICK, ref="HEAD")
    run = asyncio.run(run_client(endpoint, spec, token))
    return spec, sha, token, run


async def api_builds(http, hub, token):
    headers = {"Authorization": f"Bearer {token}"}
    async with http.get(hub.service_url + "api/builds", headers=headers) as r:
        assert r.status == 200, await r.text()
        return (await r.json())["builds"]


async def test_client_builds_a_fresh_repository_through_the_hub(built, hub, endpoint, infra, http):
    spec, sha, token, run = built
    assert run.result["outcome"] == "ready", run
    assert_ended_by_itself(run)
    # The client sent the spec with its escaped slashes as it was given.
    assert run.result["buildUrl"] == f"{endpoint}{spec}?build_only=true"
    assert run.requests[0]["url"] == run.result["buildUrl"]
    assert run.requests[0]["headers"]["Authorization"] == "Bearer <redacted>"
    # Phases progressed: every state had a phase and a message, and the build went
    # through waiting/building/built before ready, which came last.
    assert all(isinstance(s.get("phase"), str) and "message" in s for s in run.states), run
    phases = run.phases
    assert phases[-1] == "ready" and phases.count("ready") == 1, run
    for earlier, later in (("waiting", "building"), ("building", "built"), ("built", "ready")):
        assert phases.index(earlier) < phases.index(later), phases
    assert any("built-by-r2dservice" in s["message"] for s in run.states), run
    assert "failed" not in phases
    # imageName is what r2dservice's API reports for the build, and the registry has it.
    image = run.last["imageName"]
    assert image == run.result["imageName"] and sha in image
    assert image.startswith(f"{infra['registry']}/r2dtest-")
    mine = [b for b in await api_builds(http, hub, token) if b["image_name"] == image]
    assert len(mine) == 1 and mine[0]["state"] == "ready" and mine[0]["user"] == "alice", mine
    # ... and the escaped repository URL arrived whole, through the proxy and r2dservice.
    assert mine[0]["repo_url"] == unquote(spec.split("/")[1]), mine
    assert registry_has(infra["registry"], image)
    print(
        f"\nfresh build through the hub: {run.took:.1f}s, {len(run.states)} states, "
        f"ready at {run.result['iterationEnded'] / 1000:.1f}s"
    )


async def test_client_gets_an_existing_image_at_once(built, endpoint, hub, http):
    spec, _, token, first = built
    assert first.result.get("outcome") == "ready", first
    before = await api_builds(http, hub, token)
    run = await run_client(endpoint, spec, token, timeout=60)
    assert run.phases == ["ready"], run
    assert run.last["imageName"] == first.last["imageName"]
    assert run.result["iterationEnded"] < 5000, run
    assert_ended_by_itself(run)
    assert len(await api_builds(http, hub, token)) == len(before)  # no new build
    print(
        f"\nexisting image through the hub: ready after {run.result['iterationEnded']} ms "
        f"(node process {run.took:.1f}s incl. {GRACE}s grace)"
    )


async def test_failing_build_ends_the_iteration_with_repo2docker_error(
    js_client, endpoint, user_token, repos
):
    spec, _ = repos.new("failing", FAILING)
    run = await run_client(endpoint, spec, user_token("alice"))
    assert run.result["outcome"] == "failed", run
    assert run.phases.count("failed") == 1 and run.phases[-1] == "failed", run
    assert "Error during build" in run.last["message"], run
    assert any("about to fail" in s["message"] for s in run.states), run
    # The client stopped: the iteration ended, no reconnect in the grace period, and
    # Node exited by itself (no retry timer pending).
    assert_ended_by_itself(run)
    print(
        f"\nfailing build through the hub: failed at {run.result['iterationEnded'] / 1000:.1f}s; "
        f"unhandled rejections in the library: {run.result['unhandledRejections']}"
    )


async def test_user_without_access_gets_a_failure_not_a_hang(
    js_client, endpoint, user_token, repos
):
    # mallory is a hub user without access:services!service=binder: r2dservice answers
    # 403 with a `failed` event. binderhub-client 0.5.0 does not read the body of a
    # non-2xx answer: for 4xx (except 429) it makes up its own failed state.
    spec, _ = repos.new("no-access", QUICK)
    run = await run_client(endpoint, spec, user_token("mallory"), timeout=60)
    assert run.result["outcome"] == "failed", run
    assert run.phases == ["failed"], run
    assert run.last["message"].startswith("Failed to connect to event stream: 403 - "), run
    assert_ended_by_itself(run)
    print(
        f"\nno access: {run.last['message']!r} after {run.result['iterationEnded']} ms; "
        f"unhandled rejections in the library: {run.result['unhandledRejections']}"
    )


async def test_user_who_may_not_build_sees_the_services_message(
    js_client, endpoint, user_token, repos
):
    # bob may use the service but not start builds: 200 and a `failed` event, whose
    # message the client passes on.
    spec, _ = repos.new("not-a-builder", QUICK)
    run = await run_client(endpoint, spec, user_token("bob"), timeout=60)
    assert run.result["outcome"] == "failed" and run.phases == ["failed"], run
    assert "may not start builds" in run.last["message"], run
    assert_ended_by_itself(run)


# ------------------------------------------------------------------ r2dservice alone
@pytest.fixture(scope="module")
def service(infra, run_id, tmp_path_factory):
    svc = ServiceProcess(
        str(tmp_path_factory.mktemp("service")),
        "c.R2DService.auth_enabled = False\n" + service_config(infra, run_id),
    ).start()
    yield svc
    assert svc.stop() == 0, svc.log()


async def test_client_against_the_service_alone(js_client, service, repos, infra):
    # Auth off and no apiToken: the library's other path (looks for an _xsrf cookie).
    endpoint = service.url + "build/"
    spec, sha = repos.new("direct", QUICK)
    run = await run_client(endpoint, spec)
    assert run.result["outcome"] == "ready", run
    assert "Authorization" not in run.requests[0]["headers"]
    assert sha in run.last["imageName"] and registry_has(infra["registry"], run.last["imageName"])
    assert_ended_by_itself(run)
    again = await run_client(endpoint, spec, timeout=60)
    assert again.phases == ["ready"] and again.last["imageName"] == run.last["imageName"], again
    assert_ended_by_itself(again)
