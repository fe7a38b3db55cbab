"""Launch: from a repository to the user's own running server, three ways in (the launch
API, BinderHub's event stream without build_only, a v2/ link in a browser), through a
real JupyterHub 6 (and 5) with r2dservice's DockerSpawner, real builds, real containers.

Users come from dev/jupyterhub_config.py, whose service entry lets r2dservice's OAuth
tokens carry "servers!user": alice may build and launch, bob may use images that exist.
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import time
from urllib.parse import quote

import aiohttp
import pytest

from r2dservice import repoquota
from r2dservice.builders.base import make_build_request
from r2dservice.builds import Build
from r2dservice.events import KEEPALIVE
from r2dservice.handlers.sse import with_keepalives
from r2dservice.hubapi import HubAPIError, said_by_hub
from r2dservice.launch import LaunchError, launch_path, launch_spec, may_launch, server_name_for
from tests.fakes.gitserver import make_repo
from tests.support.browser import BROWSER_ARGS
from tests.support.hub import ACCESS_SCOPE, BUILD_SCOPE, request
from tests.support.spawnerhub import (
    SpawnerHub,
    cleanup_docker,
    git_spec,
    hub_venv,
    jupyterhub_version,
    singleuser_dockerfile,
    singleuser_repo,
)
from tests.support.sse import read_events
from tests.test_binderhub_client import run_client

pytestmark = [pytest.mark.docker, pytest.mark.hub]

SERVICE_CONFIG = """
c.R2DService.image_prefix = "{registry}/r2dtest-{run_id}-"
c.R2DService.keepalive_interval = 1
c.LocalBuilder.repo2docker_extra_args = ["--config", "{r2d_config}"]
c.GitRepoProvider.allow_loopback = True  # the test git servers listen on 127.0.0.1
c.HubOAuth.cache_max_age = 2
"""
SPAWNER_CONFIG = """
c.JupyterHub.allow_named_servers = True
"""


# ------------------------------------------------------------------ pure parts
@pytest.mark.parametrize(
    "spec, name",
    [
        ("gh/Owner/Repo.x/main", "gh-owner-repo-x"),
        ("gh/owner/repo/0123456789abcdef0123456789abcdef01234567", "gh-owner-repo"),
        ("gl/group%2Fsub%2Fproject/v1", "gl-group-sub-project"),
        ("git/https%3A%2F%2Fexample.org%2Fa%2Fb.git/HEAD", "git-example-org-a-b-git"),
        ("gist/someone/0123abcd/HEAD", "gist-someone-0123abcd"),
    ],
)
def test_a_named_server_per_repository(spec, name):
    assert server_name_for(spec) == name


def test_long_repository_names_are_cut_and_kept_apart():
    a = server_name_for("gh/" + "a" * 60 + "/one/main")
    b = server_name_for("gh/" + "a" * 60 + "/two/main")
    assert len(a) <= 40 and len(b) <= 40 and a != b


@pytest.mark.parametrize(
    "args, path",
    [
        ({}, ""),
        ({"urlpath": "lab"}, "lab"),
        ({"urlpath": "/voila/render/a.ipynb"}, "voila/render/a.ipynb"),
        ({"labpath": "notebooks/a.ipynb"}, "lab/tree/notebooks/a.ipynb"),
        ({"filepath": "README.md"}, "tree/README.md"),
        ({"urlpath": "lab", "labpath": "x"}, "lab"),  # the first given, as BinderHub
    ],
)
def test_launch_paths_as_binderhub_links_give_them(args, path):
    assert launch_path(**args) == path


@pytest.mark.parametrize(
    "args",
    [{"urlpath": "https://evil.example/"}, {"labpath": "../../hub/admin"}, {"urlpath": "a\\b"}],
)
def test_a_path_that_leaves_the_server_is_refused(args):
    with pytest.raises(LaunchError) as e:
        launch_path(**args)
    assert e.value.status == 400


def test_who_may_launch():
    assert may_launch({"servers!user=alice"}, "alice")
    assert may_launch({"servers"}, "alice")  # an admin's
    assert may_launch({"start:servers!user=alice", "read:servers!user=alice"}, "alice")  # JH 6
    assert not may_launch({"start:servers!user=alice"}, "alice")  # cannot watch it start
    assert not may_launch({"servers!user=bob"}, "alice")
    assert not may_launch({ACCESS_SCOPE, BUILD_SCOPE}, "alice")


async def test_a_launch_runs_the_commit_that_was_built():
    request = make_build_request(
        image_name="r/x:1",
        repo_url="https://github.com/o/r",
        ref="a" * 40,
        provider="gh",
        spec="o/r/main",
        push=False,
    )
    pinned = {"binder_persistent_request": "v2/gh/o/r/" + "a" * 40}
    assert launch_spec(Build(request, pinned)) == "gh/o/r/" + "a" * 40
    assert launch_spec(Build(request, {})) == "gh/o/r/main"


async def test_a_quiet_server_start_keeps_the_stream_alive():
    class Handler:
        def __init__(self):
            self.writes = []

        def write(self, data):
            self.writes.append(data)

        async def flush(self):
            pass

    async def quiet_then_ready():
        await asyncio.sleep(0.35)
        yield (100, "ready")

    handler = Handler()
    got = [x async for x in with_keepalives(handler, quiet_then_ready(), 0.1)]
    assert got == [(100, "ready")]
    assert handler.writes.count(KEEPALIVE) >= 2, handler.writes


def servers(*repos, user="u"):
    return {
        "name": user,
        "servers": {f"s{i}": {"user_options": {"repo": r}} for i, r in enumerate(repos)},
    }


def test_the_per_repo_quota_counts_servers_of_the_repository_at_any_ref():
    key = repoquota.repo_key("gh/Owner/Repo/main")
    assert key == "gh/owner/repo" == repoquota.repo_key("gh/owner/repo/" + "a" * 40)
    users = [
        servers("gh/owner/repo/" + "a" * 40, "gh/owner/other/main", user="a"),
        servers("gh/OWNER/repo/v1", user="b"),
        servers("gl/owner%2Frepo/main", user="c"),  # another provider: another repository
        {"name": "d", "servers": {"": {"user_options": {}}, "x": {"user_options": None}}},
    ]
    assert repoquota.count_servers(users, key) == 2
    assert repoquota.count_servers(users, key, skip=("b", "s0")) == 1  # the one replaced
    assert repoquota.quota_for(False, 3, 10) == 3 and repoquota.quota_for(True, 3, 10) == 10
    message = repoquota.refusal("gh/owner/repo", 3, 3)
    assert message.startswith("Too many users running gh/owner/repo! Try again soon")


class ListingHub:
    """What the hub's API answers the service's token (tests of the answers it may give)."""

    def __init__(self, users=None, error=None):
        self.users, self.error = users, error

    async def active_users(self):
        if self.error:
            raise self.error
        return self.users


async def test_the_per_repo_quota_says_what_it_cannot_count():
    spec = "gh/owner/repo/main"
    assert await repoquota.check(ListingHub([servers(spec)]), spec, 2) == 1
    with pytest.raises(repoquota.QuotaExceeded) as e:
        await repoquota.check(ListingHub([servers(spec), servers(spec)]), spec, 2)
    assert (e.value.quota, e.value.used) == (2, 2)
    assert await repoquota.check(ListingHub(error=AssertionError("not asked")), spec, 0) == 0
    for hub, status in [
        (ListingHub(error=HubAPIError(403, "Action is not authorized")), 500),
        (ListingHub([{"name": "u"}]), 500),  # listed without servers: no read:servers
        (ListingHub(error=HubAPIError(503, "JupyterHub does not answer")), 503),
    ]:
        with pytest.raises(repoquota.QuotaUnknown) as e:
            await repoquota.check(hub, spec, 2)
        assert e.value.status == status
        assert "JupyterHub: JupyterHub" not in e.value.message
        if status == 500:
            assert "list:users and read:servers" in e.value.message


def test_a_hub_error_is_named_as_the_hubs_once():
    assert said_by_hub("Internal Server Error") == "JupyterHub: Internal Server Error"
    down = "JupyterHub does not answer (Timeout during request); try again in a moment."
    assert said_by_hub(down) == down


# ------------------------------------------------------------------ a real hub
def make_hub(infra, run_id, workdir, python=None) -> SpawnerHub:
    config = SERVICE_CONFIG.format(
        registry=infra["registry"], run_id=run_id, r2d_config=infra["r2d_config"]
    )
    return SpawnerHub(
        workdir, config, run_id=run_id, spawner_config=SPAWNER_CONFIG, python=python
    ).start()


@pytest.fixture(scope="module")
def hub(infra, run_id, tmp_path_factory):
    rid = f"{run_id}-launch"
    h = make_hub(infra, rid, str(tmp_path_factory.mktemp("launchhub")))
    yield h
    h.stop()
    cleanup_docker(rid, f"{infra['registry']}/r2dtest-{rid}-")


@pytest.fixture(scope="module")
def launchable(git_server, infra, run_id):
    """A repository whose image runs jupyterhub-singleuser -> its spec (branch main)."""
    return singleuser_repo(git_server, infra["base_image"], f"{run_id}-launch", name="launchable")


def auth(token):
    return {"Authorization": f"token {token}"}


async def built(hub, token, spec) -> dict:
    """POST api/builds and wait until the build is ready -> the build."""
    status, build = request(
        "POST", hub.service_url + "api/builds", {"spec": spec}, auth(token), timeout=60
    )
    assert status in (200, 201), build
    for _ in range(1800):
        if build["state"] != "queued" and build["state"] != "running":
            break
        await asyncio.sleep(0.5)
        status, build = request(
            "GET", hub.service_url + f"api/builds/{build['id']}", headers=auth(token)
        )
    assert build["state"] == "ready", build
    return build


async def server_ready(hub, user, name, token, timeout=180) -> dict:
    for _ in range(int(timeout * 2)):
        status, model = hub.api("GET", f"users/{user}", token=token)
        server = (model.get("servers") or {}).get(name)
        if server and server.get("ready"):
            return server
        await asyncio.sleep(0.5)
    raise AssertionError(f"{user}'s server {name!r} did not become ready: {model}")


def container_image(hub, user, server) -> str:
    """The image of the container DockerSpawner runs for `user`'s server `server`."""
    out = subprocess.run(
        [
            "docker",
            "ps",
            "--filter",
            f"label=r2dservice.test.run={hub.run_id}",
            "--format",
            "{{.Names}} {{.Image}}",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split("\n")
    found = [line.split()[1] for line in out if line and f"{user}-" in line and server in line]
    assert len(found) == 1, out
    return found[0]


async def stop_all(hub, user, token):
    status, model = hub.api("GET", f"users/{user}", token=token)
    for name in model.get("servers") or {}:
        path = f"users/{user}/servers/{quote(name)}" if name else f"users/{user}/server"
        hub.api("DELETE", path, token=token)
    for _ in range(240):
        status, model = hub.api("GET", f"users/{user}", token=token)
        if not model.get("servers"):
            return
        await asyncio.sleep(0.5)
    raise AssertionError(f"{user}'s servers did not stop: {model}")


async def test_the_launch_api_starts_the_users_own_server_on_the_image(hub, launchable):
    token = hub.token_for("alice")[0]  # all of alice's scopes, "servers!user" among them
    build = await built(hub, token, launchable)
    assert build["links"]["launch"].endswith(f"api/builds/{build['id']}/launch")
    status, launched = request(
        "POST",
        hub.url(build["links"]["launch"]),
        {"urlpath": "api/status"},
        auth(token),
        timeout=60,
    )
    assert status in (200, 202), launched
    name = server_name_for(launchable)
    assert launched["server_name"] == name and launched["user"] == "alice"
    assert launched["url"] == f"/user/alice/{name}/"
    if status == 200:
        assert launched["redirect_url"] == f"/user/alice/{name}/api/status"
    else:  # the hub's progress page, then the server at the path
        assert launched["redirect_url"] == (
            f"/hub/spawn-pending/alice/{name}?next=%2Fuser%2Falice%2F{name}%2Fapi%2Fstatus"
        )
    assert launched["image_name"] == build["image_name"]
    await server_ready(hub, "alice", name, token)
    # The server runs the built image and answers through the proxy.
    assert container_image(hub, "alice", name) == build["image_name"]
    status, body = request("GET", hub.url(f"user/alice/{name}/api"), timeout=30)
    assert status == 200 and "version" in body, (status, body)

    # Launching again finds it: the same server, no second start.
    status, again = request("POST", hub.url(build["links"]["launch"]), {}, auth(token), timeout=60)
    assert status == 200 and again["reused"] and again["server_name"] == name, again
    await stop_all(hub, "alice", token)


async def test_another_image_in_the_way_is_a_question_then_replaced(
    hub, git_server, infra, launchable
):
    token = hub.token_for("alice")[0]
    first = await built(hub, token, launchable)
    launch_url = hub.url(first["links"]["launch"])
    status, launched = request("POST", launch_url, {}, auth(token), timeout=60)
    assert status in (200, 202), launched
    name = launched["server_name"]
    await server_ready(hub, "alice", name, token)

    # A new commit of the same repository: the same named server, another image.
    singleuser_repo(git_server, infra["base_image"], f"newer-{time.time_ns()}", name="launchable")
    sha = subprocess.run(
        ["git", "-C", str(git_server.root / "launchable"), "rev-parse", "HEAD"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    newer = launchable.rsplit("/", 1)[0] + "/" + sha  # its commit: no cached "main"
    second = await built(hub, token, newer)
    assert second["image_name"] != first["image_name"]
    second_url = hub.url(second["links"]["launch"])
    status, conflict = request("POST", second_url, {}, auth(token), timeout=60)
    assert status == 409, conflict
    assert conflict["server"]["name"] == name and "already running" in conflict["message"]
    assert container_image(hub, "alice", name) == first["image_name"]  # untouched

    status, launched = request("POST", second_url, {"replace": True}, auth(token), timeout=120)
    assert status in (200, 202), launched
    await server_ready(hub, "alice", name, token)
    assert container_image(hub, "alice", name) == second["image_name"]
    await stop_all(hub, "alice", token)


async def test_who_may_not_launch_gets_the_image_only(hub, launchable):
    alice = hub.token_for("alice")[0]
    build = await built(hub, alice, launchable)
    # A token with the service's scopes only: no "servers" for alice.
    narrow = hub.token_for("alice", scopes=[ACCESS_SCOPE, BUILD_SCOPE])[0]
    launch_url = hub.url(build["links"]["launch"])
    status, body = request("POST", launch_url, {}, auth(narrow), timeout=30)
    assert status == 403 and '"servers"' in body["message"], body
    # bob did not ask for alice's build: it is not his to launch (he asks for the spec).
    bob = hub.token_for("bob")[0]
    status, body = request("POST", launch_url, {}, auth(bob), timeout=30)
    assert status == 404, body
    # Not ready yet, bad bodies: said so.
    status, body = request("POST", launch_url, {"replace": "yes"}, auth(alice), timeout=30)
    assert status == 400 and "replace" in body["message"], body
    # Leading slashes are dropped: a path in the server, never another host.
    status, body = request(
        "POST", launch_url, {"urlpath": "//evil.example"}, auth(alice), timeout=60
    )
    assert status in (200, 202) and "evil.example" in body["redirect_url"], body
    assert body["redirect_url"].startswith("/"), body
    await stop_all(hub, "alice", alice)
    # The narrow token's event stream without build_only: the image, as today.
    run = await run_client(hub.service_url + "build/", launchable, narrow, launch=True)
    assert run.result.get("outcome") == "ready", run
    assert run.result.get("imageName") == build["image_name"] and not run.result.get("url"), run
    assert "launching" not in run.phases, run


async def test_binderhub_client_without_build_only_gets_a_running_server(hub, launchable):
    token = hub.token_for("alice")[0]
    run = await run_client(hub.service_url + "build/", launchable, token, launch=True)
    assert run.result.get("outcome") == "ready", run
    phases = run.phases
    assert "built" in phases and "launching" in phases, phases
    assert phases.index("built") < phases.index("launching") < len(phases) - 1, phases
    assert phases.count("ready") == 1 and phases[-1] == "ready", phases
    last = run.last
    name = server_name_for(launchable)
    assert last["url"] == hub.url(f"user/alice/{name}/"), last
    for key in (
        "image",
        "repo_url",
        "binder_ref_url",
        "binder_request",
        "binder_persistent_request",
    ):
        assert key in last, (key, last)
    assert last["token"] == ""
    assert last["binder_launch_host"] == hub.service_url
    # The url works: the server answers there.
    status, body = request("GET", last["url"] + "api", timeout=30)
    assert status == 200 and "version" in body, (status, body)
    await stop_all(hub, "alice", token)


QUOTA_CONFIG = """
c.Launcher.per_repo_quota = 1
c.Launcher.per_repo_quota_higher = 2
c.GitRepoProvider.high_quota_specs = [".*/main$"]
"""


@pytest.fixture
def quota_hub(infra, run_id, tmp_path_factory):
    rid = f"{run_id}-quota"
    config = SERVICE_CONFIG.format(
        registry=infra["registry"], run_id=rid, r2d_config=infra["r2d_config"]
    )
    h = SpawnerHub(
        str(tmp_path_factory.mktemp("quotahub")),
        config + QUOTA_CONFIG,
        run_id=rid,
        spawner_config=SPAWNER_CONFIG,
    ).start()
    yield h
    h.stop()
    cleanup_docker(rid, f"{infra['registry']}/r2dtest-{rid}-")


async def test_per_repo_quota_counts_every_users_servers_of_the_repository(quota_hub, launchable):
    hub = quota_hub
    tokens = {user: hub.token_for(user)[0] for user in ("alice", "bob", "admin")}
    try:
        build = await built(hub, tokens["alice"], launchable)
        launch_url = hub.url(build["links"]["launch"])
        status, launched = request("POST", launch_url, {}, auth(tokens["alice"]), timeout=60)
        assert status in (200, 202), launched
        # bob asks for the same repository by its commit (no high_quota_specs match):
        # the quota of 1 is used by alice's server, starting or running.
        pinned = launchable.rsplit("/", 1)[0] + "/" + build["ref"]
        status, his = request(
            "POST", hub.service_url + "api/builds", {"spec": pinned}, auth(tokens["bob"])
        )
        assert status == 200 and his["image_name"] == build["image_name"], his
        status, body = request(
            "POST", hub.url(his["links"]["launch"]), {}, auth(tokens["bob"]), timeout=60
        )
        assert status == 429, body
        assert body["message"].startswith("Too many users running git/"), body
        assert "Try again soon" in body["message"] and (body["quota"], body["used"]) == (1, 1)
        # BinderHub's event stream without build_only: a `failed` event that says so.
        async with aiohttp.ClientSession() as http:
            got = await read_events(
                http,
                hub.service_url + "build/" + pinned,
                headers={"Authorization": f"Bearer {tokens['bob']}"},
                timeout=120,
            )
        assert got.phases[-1] == "failed" and got.last["status"] == 429, got.events
        assert "Too many users running" in got.last["message"]
        status, model = hub.api("GET", "users/bob", token=tokens["bob"])
        assert not model.get("servers"), model  # nothing started for him
        # Asked for by its branch, the spec matches high_quota_specs: 2 servers may run it.
        status, his = request(
            "POST", hub.service_url + "api/builds", {"spec": launchable}, auth(tokens["bob"])
        )
        assert status == 200, his
        status, launched = request(
            "POST", hub.url(his["links"]["launch"]), {}, auth(tokens["bob"]), timeout=60
        )
        assert status in (200, 202), launched
        status, theirs = request(
            "POST", hub.service_url + "api/builds", {"spec": launchable}, auth(tokens["admin"])
        )
        status, body = request(
            "POST", hub.url(theirs["links"]["launch"]), {}, auth(tokens["admin"]), timeout=60
        )
        assert status == 429 and (body["quota"], body["used"]) == (2, 2), body
        # A server that ends frees its place.
        await stop_all(hub, "alice", tokens["alice"])
        status, launched = request(
            "POST", hub.url(theirs["links"]["launch"]), {}, auth(tokens["admin"]), timeout=60
        )
        assert status in (200, 202), launched
    finally:
        for user, token in tokens.items():
            await stop_all(hub, user, token)


# ------------------------------------------------------------------ in a browser
async def test_a_v2_link_builds_launches_and_opens_the_users_server(hub, launchable, git_server):
    from playwright.async_api import async_playwright

    chromium = os.environ.get("R2D_TEST_CHROMIUM") or "/usr/bin/chromium"
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=chromium, args=BROWSER_ARGS)
        page = await browser.new_page()
        # urlpath "api": the server's version, which it shows without its own login.
        await page.goto(hub.service_url + "v2/" + launchable + "?urlpath=api")
        assert "/hub/login" in page.url, page.url
        await page.fill("#username_input", "alice")
        await page.fill("#password_input", hub.password("alice"))
        await page.click("#login_submit")
        # The build page, then the hub starts alice's server and the browser lands in it
        # at urlpath (through the server's own OAuth with the hub).
        name = server_name_for(launchable)
        await page.wait_for_url(f"**/user/alice/{name}/api", timeout=240_000)
        body = await page.inner_text("body")
        assert '"version"' in body, body

        # The build page's Launch button: the server runs already, so straight into it.
        token = hub.token_for("alice")[0]
        status, listing = request(
            "GET", hub.service_url + "api/builds?state=ready&limit=1", headers=auth(token)
        )
        assert status == 200 and listing["builds"], listing
        await page.goto(hub.service_url + f"builds/{listing['builds'][0]['id']}")
        await page.wait_for_selector("#launch:enabled", timeout=30_000)
        await page.click("#launch")
        await page.wait_for_url(re.compile(rf".*/user/alice/{name}/.*"), timeout=60_000)

        # The form: a pasted repository URL and "Build and launch" (the share link's way).
        await page.goto(hub.service_url)
        await page.wait_for_selector("#build-form[data-ready]")
        await page.fill("#spec", git_server.url("launchable"))
        await page.fill("#ref", "main")
        await page.click("#launch-button")
        try:
            await page.wait_for_url(re.compile(rf".*/user/alice/{name}/.*"), timeout=120_000)
        except Exception as e:  # say where the page stopped, and what hub and service said
            text = await page.inner_text("body")
            raise AssertionError(
                f"{e}\npage {page.url}:\n{text[-3000:]}\nhub and service log:\n{hub.log()[-6000:]}"
            ) from None
        await browser.close()
    await stop_all(hub, "alice", hub.token_for("alice")[0])


# ------------------------------------------------------------------ JupyterHub 5
async def test_jupyterhub5_launch_through_the_api_and_the_stream(
    infra, run_id, tmp_path_factory, git_server
):
    python = hub_venv(5)
    rid = f"{run_id}-launch5"
    hub = make_hub(infra, rid, str(tmp_path_factory.mktemp("launchhub5")), python=python)
    try:
        version = jupyterhub_version(python)
        assert version.startswith("5."), version
        spec = singleuser_repo(
            git_server, infra["base_image"], f"{rid}", version=version, name="launchable5"
        )
        token = hub.token_for("alice")[0]
        run = await run_client(hub.service_url + "build/", spec, token, launch=True)
        assert run.result.get("outcome") == "ready" and run.result.get("url"), run
        status, body = request("GET", run.result["url"] + "api", timeout=30)
        assert status == 200 and "version" in body, (status, body)
        build = await built(hub, token, spec)
        status, launched = request(
            "POST", hub.url(build["links"]["launch"]), {}, auth(token), timeout=60
        )
        assert status == 200 and launched["reused"], launched
        await stop_all(hub, "alice", token)
    finally:
        hub.stop()
        cleanup_docker(rid, f"{infra['registry']}/r2dtest-{rid}-")


# ------------------------------------------------------------------ a hub's own pace
async def test_a_slow_server_launches_and_a_broken_image_says_why(
    infra, run_id, tmp_path_factory, git_server
):
    """The hub answers a start when the server is up, or after its slow_spawn_timeout
    (10 s by default) with 202. The start call used to have the 10 s limit of every hub
    call, so a server slower than that failed as "JupyterHub does not answer" while the
    hub was about to answer. Here every other call keeps a 2 s limit, the hub has its
    default slow_spawn_timeout, and the server takes 5 s to come up."""
    import jupyterhub

    rid = f"{run_id}-slowstart"
    config = SERVICE_CONFIG.format(
        registry=infra["registry"], run_id=rid, r2d_config=infra["r2d_config"]
    )
    hub = SpawnerHub(
        str(tmp_path_factory.mktemp("slowstarthub")),
        config + "c.Launcher.hub_timeout = 2\n",
        run_id=rid,
        spawner_config=SPAWNER_CONFIG + "c.JupyterHub.tornado_settings = {}  # the defaults\n",
    ).start()
    try:
        dockerfile = singleuser_dockerfile(infra["base_image"], jupyterhub.__version__, rid)
        slow = 'CMD ["sh", "-c", "sleep 5 && exec jupyterhub-singleuser"]'
        assert 'CMD ["jupyterhub-singleuser"]' in dockerfile
        ca = os.environ.get("R2D_TEST_CA_BUNDLE") or "/etc/ssl/certs/ca-certificates.crt"
        with open(ca, "rb") as f:
            bundle = f.read()
        make_repo(
            git_server.root / "slowstart",
            {
                "Dockerfile": dockerfile.replace('CMD ["jupyterhub-singleuser"]', slow),
                "ca-bundle.crt": bundle,
            },
        )
        spec = git_spec(git_server, "slowstart")
        token = hub.token_for("alice")[0]
        build = await built(hub, token, spec)
        started = time.monotonic()
        status, launched = request(
            "POST", hub.url(build["links"]["launch"]), {}, auth(token), timeout=120
        )
        assert status in (200, 202), launched
        assert time.monotonic() - started >= 2  # longer than any other hub call may take
        name = launched["server_name"]
        await server_ready(hub, "alice", name, token)
        status, body = request("GET", hub.url(f"user/alice/{name}/api"), timeout=30)
        assert status == 200 and "version" in body, (status, body)
        await stop_all(hub, "alice", token)

        # An image with no notebook server: the hub's spawner fails at once, and the
        # hub keeps why for its log. The caller hears what to look at, not a bare 500.
        make_repo(
            git_server.root / "noserver",
            {"Dockerfile": f"FROM {infra['base_image']}\nRUN echo {rid}\n"},
        )
        build = await built(hub, token, git_spec(git_server, "noserver"))
        status, refused = request(
            "POST", hub.url(build["links"]["launch"]), {}, auth(token), timeout=120
        )
        assert status == 502, refused
        assert "could not start" in refused["message"], refused
        assert "jupyterhub-singleuser" in refused["message"], refused
        await stop_all(hub, "alice", token)
    finally:
        hub.stop()
        cleanup_docker(rid, f"{infra['registry']}/r2dtest-{rid}-")
