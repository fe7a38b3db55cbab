"""The hub side: r2dservice.spawner's mixin in a real JupyterHub with DockerSpawner on the
local Docker engine, r2dservice as the hub's managed service (local builder, local
registry), and KubeSpawner's pod manifest with the image the helper got.

Users come from dev/jupyterhub_config.py: alice may build, bob may only use images that
exist, admin administers r2dservice.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import textwrap
import time

import pytest

from r2dservice.spawner import R2DServiceSpawnError, repo_to_spec
from r2dservice.spec import SpecError
from tests.fakes.gitserver import make_repo
from tests.support.hub import ACCESS_SCOPE, request
from tests.support.spawnerhub import (
    SpawnerHub,
    cleanup_docker,
    git_spec,
    hub_venv,
    jupyterhub_version,
    singleuser_repo,
)
from tests.support.sse import read_events

SERVICE_CONFIG = """
c.R2DService.image_prefix = "{registry}/r2dtest-{run_id}-"
c.R2DService.keepalive_interval = 1
c.LocalBuilder.repo2docker_extra_args = ["--config", "{r2d_config}"]
c.GitRepoProvider.allow_loopback = True  # the test git servers listen on 127.0.0.1
c.HubOAuth.cache_max_age = 2
# One build at a time: a second one waits in the queue, and its position shows.
c.BuildManager.concurrent_build_limit = 1
"""


# ------------------------------------------------------------------ pure parts
@pytest.mark.parametrize(
    "repo, ref, spec",
    [
        ("gh/owner/repo", "", "gh/owner/repo/HEAD"),
        ("gh/owner/repo", "dev", "gh/owner/repo/dev"),
        ("gh/owner/repo/main", "", "gh/owner/repo/main"),
        ("https://github.com/owner/repo", "", "gh/owner/repo/HEAD"),
        ("https://github.com/owner/repo.git", "v1", "gh/owner/repo/v1"),
        ("https://github.com/owner/repo/tree/feature/x", "", "gh/owner/repo/feature/x"),
        ("https://gitlab.com/group/sub/project", "", "gl/group%2Fsub%2Fproject/HEAD"),
        ("https://gitlab.com/group/project/-/tree/v2", "", "gl/group%2Fproject/v2"),
        ("gl/group%2Fproject", "main", "gl/group%2Fproject/main"),
        ("https://gist.github.com/someone/0123abcd", "", "gist/someone/0123abcd/HEAD"),
        ("gist/someone/0123abcd", "", "gist/someone/0123abcd/HEAD"),
        ("zenodo/10.5281/zenodo.3242074", "", "zenodo/10.5281/zenodo.3242074"),
        ("gitea/owner/repo/main", "", "gitea/owner/repo/main"),
        ("git://127.0.0.1:9418/demo", "main", "git/git%3A%2F%2F127.0.0.1%3A9418%2Fdemo/main"),
        ("git/git://127.0.0.1:9418/demo", "", "git/git%3A%2F%2F127.0.0.1%3A9418%2Fdemo/HEAD"),
        (
            "https://example.org/team/repo.git",
            "",
            "git/https%3A%2F%2Fexample.org%2Fteam%2Frepo.git/HEAD",
        ),
        (
            "git@example.org:team/repo.git",
            "main",
            "git/ssh%3A%2F%2Fgit%40example.org%2Fteam%2Frepo.git/main",
        ),
    ],
)
def test_repo_to_spec(repo, ref, spec):
    assert repo_to_spec(repo, ref) == spec


@pytest.mark.parametrize(
    "repo, ref, words",
    [
        ("", "", "no repository"),
        ("owner/repo", "", "neither"),
        ("zz/owner/repo", "", "neither"),
        ("gh/owner/repo/main", "dev", "names a ref already"),
        ("gh/not an owner!/repo", "", "not a valid spec"),
    ],
)
def test_repo_to_spec_refuses(repo, ref, words):
    with pytest.raises(SpecError, match=words):
        repo_to_spec(repo, ref)


def test_importing_the_helper_pulls_in_nothing_heavy():
    code = textwrap.dedent(
        """
        import sys
        import r2dservice.spawner
        from r2dservice.spawner import R2DServiceSpawnerMixin
        heavy = ("repo2docker", "kubernetes", "kubernetes_asyncio", "kubespawner",
                 "dockerspawner", "docker", "aiohttp", "sqlalchemy", "jupyterhub",
                 "r2dservice.app", "r2dservice.builds", "r2dservice.handlers",
                 "r2dservice.builders", "r2dservice.store", "r2dservice.registry")
        print(sorted(m for m in sys.modules if m in heavy or m.startswith(tuple(h + "." for h in heavy))))
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout
    # The ready-made spawners import only their own base.
    code = "import sys, r2dservice.spawner as s; s.R2DDockerSpawner; print('kubespawner' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


class _Stub:
    """The mixin on a bare Spawner: options, state and progress without a hub."""

    @staticmethod
    def make(**kw):
        from jupyterhub.spawner import LocalProcessSpawner

        from r2dservice.spawner import R2DServiceSpawnerMixin

        class S(R2DServiceSpawnerMixin, LocalProcessSpawner):
            pass

        return S(**kw)


def test_options_from_form_and_state():
    sp = _Stub.make()
    assert sp.run_options_from_form({"repo": [" gh/a/b "], "ref": [""]}) == {"repo": "gh/a/b"}
    # /hub/spawn?repo=...&ref=... goes through options_from_query
    assert sp.options_from_query({"repo": ["gh/a/b"], "ref": ["v1"]}) == {
        "repo": "gh/a/b",
        "ref": "v1",
    }
    sp.user_options = {"repo": ["gh/a/b"]}  # a base that passes form lists through
    assert sp.r2dservice_spec() == "gh/a/b/HEAD"
    sp.user_options = {"repo": "https://github.com/a/b", "ref": "main"}
    assert sp.r2dservice_spec() == "gh/a/b/main"
    sp.user_options = {}
    assert sp.r2dservice_spec() is None
    sp.r2dservice_repo, sp.r2dservice_ref = "gh/a/c", "v1"  # e.g. a profile's override
    assert sp.r2dservice_spec() == "gh/a/c/v1"
    sp.user_options = {"repo": "nope"}
    with pytest.raises(R2DServiceSpawnError, match="Cannot build 'nope'"):
        sp.r2dservice_spec()
    # A build not yet seen to its end survives clear_state (JupyterHub clears the state
    # before every start): the next start re-attaches to it.
    sp._r2d_build = {"id": "abc", "spec": "gh/a/b/main"}
    state = sp.get_state()
    assert state["r2dservice_build"] == {"id": "abc", "spec": "gh/a/b/main"}
    sp.clear_state()
    other = _Stub.make()
    other.load_state(state)
    assert other.get_state()["r2dservice_build"]["id"] == "abc"


async def test_progress_replays_to_every_reader_then_the_base_progress():
    sp = _Stub.make()
    sp.clear_state()
    sp._r2d_emit(2, "Waiting for a build slot: position 1 of 1")

    async def read():
        return [e async for e in sp.progress()]

    first = asyncio.ensure_future(read())
    await asyncio.sleep(0.05)
    sp._r2d_emit(10, "Step 1/3")
    second = asyncio.ensure_future(read())
    await asyncio.sleep(0.05)
    sp._r2d_emit(48, "Image x is ready.")
    sp._r2d_done = True
    sp._r2d_changed.set()
    got = await asyncio.wait_for(asyncio.gather(first, second), 5)
    for events in got:
        assert [e["message"] for e in events][:3] == [
            "Waiting for a build slot: position 1 of 1",
            "Step 1/3",
            "Image x is ready.",
        ]
        assert events[-1] == {"progress": 50, "message": "Spawning server..."}  # the base's


# ------------------------------------------------------------------ a real hub
@pytest.fixture(scope="module")
def hub(infra, run_id, tmp_path_factory):
    config = SERVICE_CONFIG.format(
        registry=infra["registry"], run_id=run_id, r2d_config=infra["r2d_config"]
    )
    h = SpawnerHub(str(tmp_path_factory.mktemp("spawnerhub")), config, run_id=run_id).start()
    yield h
    h.stop()  # DockerSpawner.remove: the hub's shutdown removes running servers' containers
    cleanup_docker(run_id, f"{infra['registry']}/r2dtest-{run_id}-")


@pytest.fixture(scope="module")
def tokens(hub):
    return {user: hub.token_for(user)[0] for user in ("alice", "bob", "admin")}


@pytest.fixture(scope="module")
def singleuser(git_server, infra, run_id):
    """The singleuser repository (made once per session run): spec, and its image once built."""
    nonce = f"{run_id}-{time.time_ns()}"
    return {
        "spec": singleuser_repo(git_server, infra["base_image"], nonce),
        "nonce": nonce,
        "image": None,
    }


def auth(token):
    return {"Authorization": f"token {token}"}


async def spawn(http, hub, user, token, options, timeout=900):
    """POST the spawn, then read the hub's progress stream to its end -> (status, events).

    A spawn that fails within the hub's slow_spawn_timeout fails the POST itself (the hub
    answers 500 with the spawner's message): then its one event is that failure."""
    status, body = request(
        "POST", hub.url(f"hub/api/users/{user}/server"), options, auth(token), timeout=60
    )
    if status == 500:
        return status, [{"failed": True, "message": f"Spawn failed: {body['message']}"}]
    assert status in (201, 202), (status, body)
    got = await read_events(
        http, hub.url(f"hub/api/users/{user}/server/progress"), headers=auth(token), timeout=timeout
    )
    assert got.status == 200, got
    return status, got.events


async def stop(hub, user, token):
    status, body = hub.api("DELETE", f"users/{user}/server", token=token)
    assert status in (202, 204), (status, body)
    for _ in range(300):
        status, model = hub.api("GET", f"users/{user}", token=token)
        if not model["servers"]:
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"{user}'s server did not stop")


def container_image(hub, user) -> str:
    name = f"r2dtest-{hub.run_id}-{user}"
    out = subprocess.run(
        ["docker", "inspect", name, "--format", "{{.Config.Image}}"], capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def spawn_tokens_left(hub, user) -> list:
    status, body = hub.api("GET", f"users/{user}/tokens")
    assert status == 200, body
    return [t for t in body["api_tokens"] if (t.get("note") or "").startswith("r2dservice spawn")]


def service_requests(hub) -> list[str]:
    """r2dservice's API requests in the hub's log (a managed service logs there)."""
    return [
        line for line in hub.log().splitlines() if "/services/binder/api/" in line and " 20" in line
    ]


async def test_spawn_builds_the_repository_and_starts_the_server(
    http, hub, tokens, git_server, singleuser
):
    # A repository URL and a ref, as a form or a script sends them.
    options = {"repo": git_server.url("singleuser"), "ref": "main"}
    assert repo_to_spec(options["repo"], options["ref"]) == singleuser["spec"]
    status, events = await spawn(http, hub, "alice", tokens["alice"], options)
    assert status == 202  # pending: the image builds
    messages = [e.get("message", "") for e in events]
    text = "\n".join(messages)
    assert events[-1].get("ready"), messages[-15:]
    # The hub's own progress page showed repo2docker's log while the image was built ...
    assert f"r2dtest-spawner-built-{singleuser['nonce']}" in text, text[-3000:]
    assert any("Picked Git content provider" in m or m.startswith("Fetching") for m in messages), (
        messages[:10]
    )
    build_i = max(i for i, m in enumerate(messages) if "r2dtest-spawner-built" in m)
    # ... then the base spawner's own progress.
    assert any(e.get("message") == "Spawning server..." for e in events[build_i:]), messages[
        build_i:
    ]
    progress = [e["progress"] for e in events if "progress" in e]
    assert progress == sorted(progress), progress

    # The build is alice's, and the server runs its image.
    status, body = request(
        "GET", hub.service_url + "api/builds?spec=singleuser", headers=auth(tokens["alice"])
    )
    assert status == 200, body
    builds = [b for b in body["builds"] if b["state"] == "ready"]
    assert builds and builds[0]["user"] == "alice", body
    image = builds[0]["image_name"]
    assert container_image(hub, "alice") == image
    singleuser["image"] = image

    # The server answers through the proxy.
    status, body = request("GET", hub.url("user/alice/api"), timeout=30)
    assert status == 200 and "version" in body, (status, body)
    # The hub-made token was revoked once the image was known.
    assert spawn_tokens_left(hub, "alice") == []
    await stop(hub, "alice", tokens["alice"])


async def test_an_image_that_exists_costs_one_api_call(http, hub, tokens, git_server, singleuser):
    assert singleuser["image"], "needs the image built by the test before"
    before = len(service_requests(hub))
    t0 = time.monotonic()
    status, events = await spawn(http, hub, "alice", tokens["alice"], {"repo": singleuser["spec"]})
    assert events[-1].get("ready"), events
    assert any(f"Image {singleuser['image']} is ready" in e.get("message", "") for e in events), (
        events
    )
    assert container_image(hub, "alice") == singleuser["image"]
    calls = service_requests(hub)[before:]
    assert len(calls) == 1 and "POST /services/binder/api/builds" in calls[0], calls
    assert time.monotonic() - t0 < 60
    assert spawn_tokens_left(hub, "alice") == []
    await stop(hub, "alice", tokens["alice"])


async def test_the_queue_position_shows_on_the_progress_page(
    http, hub, tokens, git_server, singleuser
):
    assert singleuser["image"], "needs the image built by the first test"
    # admin's slow build takes the only build slot ...
    make_repo(
        git_server.root / "blocker",
        {"Dockerfile": f"FROM {singleuser['image']}\nRUN echo {time.time_ns()} && sleep 6\n"},
    )
    status, blocker = request(
        "POST",
        hub.service_url + "api/builds",
        {"spec": git_spec(git_server, "blocker")},
        auth(tokens["admin"]),
    )
    assert status == 201, blocker
    # ... so alice's image waits for it, and her spawn page says where she is.
    make_repo(
        git_server.root / "queued",
        {"Dockerfile": f"FROM {singleuser['image']}\nRUN echo queued-{time.time_ns()}\n"},
    )
    status, events = await spawn(
        http, hub, "alice", tokens["alice"], {"repo": git_spec(git_server, "queued")}
    )
    messages = [e.get("message", "") for e in events]
    assert events[-1].get("ready"), messages[-10:]
    waiting = [m for m in messages if m.startswith("Waiting for a build slot: position 1 of 1")]
    assert waiting, messages[:10]
    assert messages.index(waiting[0]) < messages.index("Build starting..."), messages[:10]
    await stop(hub, "alice", tokens["alice"])


async def test_a_failing_repository_fails_the_spawn_with_repo2dockers_message(
    http, hub, tokens, git_server, infra
):
    nonce = time.time_ns()
    make_repo(
        git_server.root / "failing",
        {
            "Dockerfile": f"FROM {infra['base_image']}\nRUN echo r2dtest-failing-{nonce} && sleep 3 && exit 3\n"
        },
    )
    status, events = await spawn(
        http, hub, "alice", tokens["alice"], {"repo": git_spec(git_server, "failing")}
    )
    last = events[-1]
    assert last.get("failed"), events[-5:]
    assert last["message"].startswith("Spawn failed: Building the image of git/"), last
    # repo2docker's own words: the step that failed and its exit code.
    assert "exit 3" in last["message"] or "exit code: 3" in last["message"], last["message"]
    assert any(f"r2dtest-failing-{nonce}" in e.get("message", "") for e in events[:-1]), events
    status, model = hub.api("GET", "users/alice", token=tokens["alice"])
    assert model["servers"] == {}, model
    assert spawn_tokens_left(hub, "alice") == []


async def test_without_the_build_scope_existing_images_only(
    http, hub, tokens, git_server, infra, singleuser
):
    assert singleuser["image"], "needs the image built by the first test"
    # bob gets the image that exists ...
    status, events = await spawn(http, hub, "bob", tokens["bob"], {"repo": singleuser["spec"]})
    assert events[-1].get("ready"), events
    assert container_image(hub, "bob") == singleuser["image"]
    await stop(hub, "bob", tokens["bob"])

    # ... but no build of a new one.
    make_repo(
        git_server.root / "bobs",
        {"Dockerfile": f"FROM {infra['base_image']}\nRUN echo {time.time_ns()}\n"},
    )
    spec = git_spec(git_server, "bobs")
    status, events = await spawn(http, hub, "bob", tokens["bob"], {"repo": spec})
    last = events[-1]
    assert last.get("failed"), events
    assert "may not start builds" in last["message"], last
    assert "custom:r2dservice:build" in last["message"], last
    status, body = request(
        "GET", hub.service_url + "api/builds?spec=bobs", headers=auth(tokens["admin"])
    )
    assert status == 200 and body["builds"] == [], body
    assert spawn_tokens_left(hub, "bob") == []


# ------------------------------------------------------------------ KubeSpawner
@pytest.fixture
def kubeconfig(tmp_path, monkeypatch):
    """KubeSpawner loads a client configuration when it is made; building a pod manifest
    talks to no API server, so a configuration naming an unreachable one is enough."""
    from kubernetes_asyncio.config import kube_config

    path = tmp_path / "kubeconfig"
    path.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "none", "cluster": {"server": "https://127.0.0.1:9"}}],
                "users": [{"name": "none", "user": {"token": "unused"}}],
                "contexts": [{"name": "none", "context": {"cluster": "none", "user": "none"}}],
                "current-context": "none",
            }
        )
    )
    monkeypatch.setattr(kube_config, "KUBE_CONFIG_DEFAULT_LOCATION", str(path))
    return path


class HubUser:
    """What KubeSpawner and the mixin read of a hub user, with tokens made by the real hub
    (through its API, as the hub process does in its database)."""

    def __init__(self, hub, name):
        self.hub, self.name, self.id, self.url = hub, name, 1, f"/user/{name}/"
        self.tokens: dict[str, str] = {}
        self.made: list[list[str]] = []

    def new_api_token(self, note, scopes, expires_in):
        status, reply = self.hub.api(
            "POST",
            f"users/{self.name}/tokens",
            {"note": note, "scopes": scopes, "expires_in": expires_in},
        )
        if status == 400 and "Not assigning requested scopes" in str(reply):
            raise ValueError(reply["message"])  # what the hub's database raises
        assert status == 201, (status, reply)
        self.made.append(scopes)
        self.tokens[reply["token"]] = reply["id"]
        return reply["token"]


def kube_spawner(hub, user, **config):
    from r2dservice.spawners.kube import R2DKubeSpawner

    class KubeSpawnerOnHub(R2DKubeSpawner):
        def r2dservice_new_token(self, scopes, expires_in):
            return self.user.new_api_token(f"r2dservice spawn {self._log_name}", scopes, expires_in)

        def r2dservice_revoke_token(self, token):
            self.user.hub.revoke(self.user.name, self.user.tokens.pop(token))

    return KubeSpawnerOnHub(
        _mock=True, user=HubUser(hub, user), r2dservice_url=hub.service_url, **config
    )


async def test_kubespawner_pod_manifest_carries_the_image(hub, singleuser, kubeconfig):
    assert singleuser["image"], "needs the image built by the first test"
    sp = kube_spawner(hub, "alice", image="configured-default-image:1")
    sp.user_options = {"repo": singleuser["spec"]}
    assert await sp.r2dservice_get_image() == singleuser["image"]
    await sp.load_user_options()
    pod = await sp.get_pod_manifest()
    assert pod.spec.containers[0].image == singleuser["image"]
    # alice may build: her token had both scopes; it was revoked.
    assert sp.user.made == [[ACCESS_SCOPE, "custom:r2dservice:build"]] and sp.user.tokens == {}

    # A profile form: an option whose free-text choice names the repository (through
    # kubespawner_override), and a profile image the built one replaces.
    profiles = [
        {
            "display_name": "From a repository",
            "slug": "repo",
            "kubespawner_override": {"image": "example.org/default:1"},
            "profile_options": {
                "repo": {
                    "display_name": "Repository",
                    "choices": {"none": {"display_name": "-", "kubespawner_override": {}}},
                    "unlisted_choice": {
                        "enabled": True,
                        "display_name": "Repository URL or <provider>/<spec>",
                        "kubespawner_override": {"r2dservice_repo": "{value}"},
                    },
                }
            },
        }
    ]
    sp = kube_spawner(hub, "bob", profile_list=profiles)
    # What the profile form posts, through KubeSpawner's options_from_form (and the mixin's).
    sp.user_options = sp.run_options_from_form(
        {"profile": ["repo"], "profile-option-repo--repo--unlisted-choice": [singleuser["spec"]]}
    )
    assert "repo" not in sp.user_options, sp.user_options  # the profile names it
    assert await sp.r2dservice_get_image() == singleuser["image"]
    await sp.load_user_options()  # as KubeSpawner.start() does
    pod = await sp.get_pod_manifest()
    assert pod.spec.containers[0].image == singleuser["image"]
    # bob may not build: his token had only the access scope.
    assert sp.user.made == [[ACCESS_SCOPE]], sp.user.made

    # The same spawner again (JupyterHub keeps it after a failed spawn), now with a profile
    # choice that names no repository: the profile's image, no build.
    profiles.append(
        {"display_name": "Plain", "slug": "plain", "kubespawner_override": {"image": "plain:1"}}
    )
    sp.profile_list = profiles
    sp.clear_state()
    sp.user_options = sp.run_options_from_form({"profile": ["plain"]})
    assert await sp.r2dservice_get_image() is None
    await sp.load_user_options()
    pod = await sp.get_pod_manifest()
    assert pod.spec.containers[0].image == "plain:1"
    assert sp.user.made == [[ACCESS_SCOPE]]  # no new token: nothing asked of r2dservice


async def test_unconfigured_url_says_what_to_set(kubeconfig):
    from r2dservice.spawners.kube import R2DKubeSpawner

    sp = R2DKubeSpawner(_mock=True)
    sp.user_options = {"repo": "gh/a/b"}
    with pytest.raises(R2DServiceSpawnError, match="r2dservice_url"):
        await sp.r2dservice_get_image()


# ------------------------------------------------------------------ hub restarts
@pytest.fixture(scope="module")
def external_hub(infra, run_id, tmp_path_factory):
    """A hub whose r2dservice is an external service (as on Kubernetes): it outlives hub
    restarts, and so do its builds."""
    config = SERVICE_CONFIG.format(
        registry=infra["registry"], run_id=run_id, r2d_config=infra["r2d_config"]
    )
    workdir = tmp_path_factory.mktemp("spawnerhub-external")
    h = SpawnerHub(str(workdir), config, run_id=run_id, external=True)
    service = h.external_service(str(tmp_path_factory.mktemp("r2dservice-external"))).start()
    try:
        h.start()
        h.r2dservice = service
        yield h
        h.stop()
    finally:  # a hub that failed to start must not leave the service running
        service.stop()
        cleanup_docker(run_id, f"{infra['registry']}/r2dtest-{run_id}-")


def saved_build(hub, user) -> dict | None:
    """The spawner state the hub keeps in its database for the user's default server."""
    import sqlite3

    with sqlite3.connect(f"{hub.state}/jupyterhub.sqlite") as db:
        rows = db.execute(
            "SELECT spawners.state FROM spawners JOIN users ON spawners.user_id = users.id"
            " WHERE users.name = ? AND spawners.name = ''",
            (user,),
        ).fetchall()
    state = json.loads(rows[0][0] or "{}") if rows else {}
    return state.get("r2dservice_build")


async def test_a_hub_restart_during_the_build_reattaches_to_it(
    http, external_hub, git_server, singleuser
):
    hub = external_hub
    assert singleuser["image"], "needs the image built by the first test"
    token = hub.token_for("alice")[0]
    # A slow build on top of the singleuser image: its server can start.
    make_repo(
        git_server.root / "slow",
        {
            "Dockerfile": f"FROM {singleuser['image']}\nUSER root\n"
            f"RUN for i in $(seq 1 15); do echo tick-$i-{time.time_ns()}; sleep 1; done\nUSER 1000\n"
        },
    )
    spec = git_spec(git_server, "slow")
    status, body = request(
        "POST", hub.url("hub/api/users/alice/server"), {"repo": spec}, auth(token), timeout=60
    )
    assert status == 202, (status, body)
    # The build id is in the hub's database while the image builds.
    for _ in range(300):
        saved = saved_build(hub, "alice")
        if saved:
            break
        await asyncio.sleep(0.1)
    assert saved and saved["spec"] == spec, saved
    await asyncio.sleep(3)  # into the build

    hub.stop()
    assert saved_build(hub, "alice") == saved  # kept across the hub's shutdown
    hub.start()
    status, body = request("GET", f"{hub.service_url}api/builds/{saved['id']}", headers=auth(token))
    assert status == 200 and body["state"] in ("running", "ready"), body  # it went on

    # Start again (the hub remembers the options): the helper follows the same build.
    status, events = await spawn(http, hub, "alice", token, None)
    messages = [e.get("message", "") for e in events]
    assert events[-1].get("ready"), messages[-10:]
    assert f"Re-attached to build {saved['id']} of {spec}." in messages, messages[:5]
    assert any("tick-1-" in m for m in messages), messages  # the log from its start
    status, body = request("GET", f"{hub.service_url}api/builds?spec=slow", headers=auth(token))
    assert [b["id"] for b in body["builds"]] == [saved["id"]], body
    assert container_image(hub, "alice") == body["builds"][0]["image_name"]
    assert saved_build(hub, "alice") is None  # seen to its end: forgotten
    assert spawn_tokens_left(hub, "alice") == []
    await stop(hub, "alice", token)


# ------------------------------------------------------------------ JupyterHub 5
@pytest.fixture(scope="module")
def hub5(infra, run_id, tmp_path_factory):
    """A JupyterHub 5 hub from a venv with only JupyterHub and DockerSpawner (r2dservice's
    spawner module comes from this checkout, without its service's dependencies)."""
    python = hub_venv(5)
    config = SERVICE_CONFIG.format(
        registry=infra["registry"], run_id=run_id, r2d_config=infra["r2d_config"]
    )
    h = SpawnerHub(
        str(tmp_path_factory.mktemp("spawnerhub5")), config, run_id=f"{run_id}-5", python=python
    ).start()
    h.jupyterhub_version = jupyterhub_version(python)
    yield h
    h.stop()
    cleanup_docker(f"{run_id}-5", f"{infra['registry']}/r2dtest-{run_id}-")


async def test_jupyterhub5_spawn_builds_the_repository_and_starts_the_server(
    http, hub5, git_server, infra, run_id
):
    hub = hub5
    assert hub.jupyterhub_version.startswith("5."), hub.jupyterhub_version
    token = hub.token_for("alice")[0]
    nonce = f"{run_id}-5-{time.time_ns()}"
    spec = singleuser_repo(
        git_server, infra["base_image"], nonce, version=hub.jupyterhub_version, name="singleuser5"
    )
    status, events = await spawn(http, hub, "alice", token, {"repo": spec})
    messages = [e.get("message", "") for e in events]
    assert events[-1].get("ready"), messages[-15:]
    assert any(f"r2dtest-spawner-built-{nonce}" in m for m in messages), messages[-30:]
    status, body = request(
        "GET", f"{hub.service_url}api/builds?spec=singleuser5", headers=auth(token)
    )
    assert body["builds"][0]["user"] == "alice" and body["builds"][0]["state"] == "ready", body
    assert container_image(hub, "alice") == body["builds"][0]["image_name"]
    status, body = request("GET", hub.url("user/alice/api"), timeout=30)
    assert status == 200 and "version" in body, (status, body)
    assert spawn_tokens_left(hub, "alice") == []
    await stop(hub, "alice", token)
