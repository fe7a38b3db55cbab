"""Credentials in a git URL never come back out, end to end: the real service process, real
repo2docker on the real engine, a private repository behind HTTP Basic auth, a push to the
real registry.

The password holds an "@", so the clone URL carries it %-encoded (p%40ss) and the spec, which
escapes the whole URL once more, double-encoded (p%2540ss). Each secret holds a random token:
finding the token anywhere, in whatever encoding, is a leak.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
import uuid
from urllib.parse import quote

import pytest
from yarl import URL

from tests.fakes.gitserver import GitHTTPServer, make_repo
from tests.support.service import ServiceProcess
from tests.support.sse import read_events

pytestmark = pytest.mark.docker

USER_TOKEN = uuid.uuid4().hex[:16]
PASSWORD_TOKEN = uuid.uuid4().hex[:16]
LOGIN = (f"u-{USER_TOKEN}", f"p@ss-{PASSWORD_TOKEN}")


@pytest.fixture(scope="module")
def private_git(tmp_path_factory):
    server = GitHTTPServer(tmp_path_factory.mktemp("git"), auth=LOGIN).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def service(infra, run_id, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("service")
    svc = ServiceProcess(
        str(workdir),
        f"""
        c.R2DService.auth_enabled = False
        c.R2DService.image_prefix = "{infra["registry"]}/r2dtest-{run_id}-secret-"
        c.R2DService.keepalive_interval = 1
        c.LocalBuilder.repo2docker_extra_args = ["--config", "{infra["r2d_config"]}"]
        c.GitRepoProvider.allow_loopback = True  # the git server is on 127.0.0.1
        """,
    ).start()
    yield svc
    assert svc.stop() == 0, svc.log()


def leaks(text: str) -> list[str]:
    """The secrets' tokens found in `text` (any encoding keeps the token's hex digits)."""
    return [t for t in (USER_TOKEN, PASSWORD_TOKEN) if t.lower() in text.lower()]


def raw(url: str) -> URL:
    """`url` sent as written, as a browser sends a link (aiohttp would decode %3A, %40...)."""
    return URL(url, encoded=True)


async def text_of(http, method, url, **kw):
    async with http.request(method, raw(url), **kw) as r:
        return r.status, await r.text()


async def test_credentials_never_shown_anywhere(http, service, private_git, infra):
    sha = make_repo(
        private_git.root / "private",
        {
            "Dockerfile": f"FROM {infra['base_image']}\nRUN echo {uuid.uuid4().hex}\n",
            "run-marker": f"{time.time_ns()}\n",
        },
    )
    clone_url = private_git.url("private", auth=True)
    assert f"p%40ss-{PASSWORD_TOKEN}" in clone_url
    spec = f"git/{quote(clone_url, safe='')}/main"
    assert f"p%2540ss-{PASSWORD_TOKEN}" in spec
    shown: dict[str, str] = {}

    # The shared link's page starts the build.
    status, page = await text_of(http, "GET", f"{service.url}v2/{spec}")
    assert status == 200, page
    shown["v2 page"] = page
    build_id = re.search(r'data-build-id="([0-9a-f]+)"', page).group(1)

    # The BinderHub event stream joins it and ends with ready (binder_request etc.).
    got = await read_events(http, raw(f"{service.url}build/{spec}?build_only=true"))
    assert got.last["phase"] == "ready", got.events[-3:]
    shown["event stream"] = json.dumps(got.events)
    image = got.last["imageName"]
    assert sha in image and got.last["binder_request"].startswith("v2/git/")
    fetching = [e["message"] for e in got.events if e["phase"] == "fetching"]
    assert any(m.startswith("Fetching ") and "127.0.0.1" in m for m in fetching), fetching

    # The REST API: create (now the image exists), list, get, log, events.
    status, body = await text_of(http, "POST", f"{service.url}api/builds", json={"spec": spec})
    assert status in (200, 201), body
    shown["POST api/builds"] = body
    for path in ("", f"/{build_id}", f"/{build_id}/log"):
        status, body = await text_of(http, "GET", f"{service.url}api/builds{path}")
        assert status == 200, (path, body)
        shown[f"GET api/builds{path}"] = body
    assert build_id in shown["GET api/builds"]
    assert "Fetching " in shown[f"GET api/builds/{build_id}/log"]
    replay = await read_events(http, f"{service.url}api/builds/{build_id}/events")
    assert replay.last["phase"] == "ready"
    shown["api events"] = json.dumps(replay.events)

    # A request that fails (an unknown ref) explains itself without the credentials, on the
    # page and on the stream.
    bad = f"git/{quote(clone_url, safe='')}/no-such-branch"
    status, page = await text_of(http, "GET", f"{service.url}v2/{bad}")
    assert status >= 400 and "no-such-branch" in page, page
    shown["error page"] = page
    failed = await read_events(http, raw(f"{service.url}build/{bad}"))
    assert failed.last["phase"] == "failed"
    shown["failed stream"] = json.dumps(failed.events)

    # The pushed image, as anyone who may pull it sees it.
    subprocess.run(["docker", "image", "rm", "-f", image], capture_output=True)
    subprocess.run(["docker", "pull", "-q", image], check=True, capture_output=True)
    try:
        shown["image labels"] = subprocess.run(
            ["docker", "image", "inspect", "-f", "{{json .Config.Labels}}", image],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    finally:
        subprocess.run(["docker", "image", "rm", "-f", image], capture_output=True)
    assert json.loads(shown["image labels"])["repo2docker.repo"] == private_git.url("private")

    # The service's own log, access log included.
    log = service.log()
    assert "GET /v2/git/" in log and "POST /api/builds" in log
    shown["service log"] = log

    found = {where: leaks(text) for where, text in shown.items() if leaks(text)}
    assert found == {}, found
