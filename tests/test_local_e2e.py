"""End to end through real HTTP: r2dservice as a process, real repo2docker builds on the
real Docker engine, pushed to the real registry, repositories served by git daemon."""

from __future__ import annotations

import asyncio
import time
import uuid
from urllib.parse import quote

import pytest

from tests.conftest import registry_has
from tests.fakes.gitserver import make_repo
from tests.support.service import ServiceProcess
from tests.support.sse import read_events

pytestmark = pytest.mark.docker


@pytest.fixture(scope="module")
def service(infra, run_id, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("service")
    svc = ServiceProcess(
        str(workdir),
        f"""
        c.R2DService.auth_enabled = False
        c.R2DService.image_prefix = "{infra["registry"]}/r2dtest-{run_id}-"
        c.R2DService.keepalive_interval = 1
        c.LocalBuilder.repo2docker_extra_args = ["--config", "{infra["r2d_config"]}"]
        c.GitRepoProvider.allow_loopback = True  # the git daemon is on 127.0.0.1
        c.BuildManager.concurrent_build_limit = 2
        """,
    ).start()
    yield svc
    assert svc.stop() == 0, svc.log()


def new_repo(git_server, name: str, files: dict) -> tuple[str, str]:
    """A fresh repository (a new commit each run, hence a new image) -> (spec, sha)."""
    files = {**files, "run-marker": f"{time.time_ns()}\n"}
    sha = make_repo(git_server.root / name, files)
    return f"git/{quote(git_server.url(name), safe='')}/main", sha


def build_url(service, spec: str) -> str:
    return f"{service.url}build/{spec}?build_only=true"


DOCKERFILE = {"Dockerfile": "FROM {base}\nRUN echo built-by-r2dservice > /built.txt\n"}
FAILING = {"Dockerfile": "FROM {base}\nRUN echo about to fail && false\n"}
SLOW = {"Dockerfile": "FROM {base}\nRUN sleep 8\n"}


def dockerfile(template, infra):
    """The Dockerfile with a fresh first layer, so Docker's layer cache of earlier
    runs cannot make a build instant (and its timing-dependent checks meaningless)."""
    marker = uuid.uuid4().hex
    return {
        k: v.format(base=infra["base_image"]).replace("\n", f"\nRUN echo {marker}\n", 1)
        for k, v in template.items()
    }


async def api_builds(http, service):
    async with http.get(service.url + "api/builds") as r:
        return (await r.json())["builds"]


async def test_dockerfile_repo_builds_pushes_then_is_cached(http, service, git_server, infra):
    spec, sha = new_repo(git_server, "dockerfile", dockerfile(DOCKERFILE, infra))
    got = await read_events(http, build_url(service, spec))
    assert got.status == 200
    assert got.headers["Content-Type"].startswith("text/event-stream")
    assert got.last["phase"] == "ready", got.events[-3:]
    image = got.last["imageName"]
    assert image.startswith(infra["registry"] + "/") and sha in image
    assert got.last["image"] == image
    assert got.last["binder_persistent_request"].endswith(sha)
    assert {"waiting", "building", "built", "ready"} <= set(got.phases)
    assert [int(i) for i in got.ids] == list(range(1, len(got.ids) + 1))
    assert all("message" in e for e in got.events)
    assert registry_has(infra["registry"], image)

    before = await api_builds(http, service)
    t0 = time.monotonic()
    again = await read_events(http, build_url(service, spec))
    assert again.phases == ["ready"] and again.last["imageName"] == image
    assert time.monotonic() - t0 < 5
    assert len(await api_builds(http, service)) == len(before)  # no repo2docker run


async def test_apt_repo_builds(http, service, git_server, infra):
    spec, _ = new_repo(
        git_server,
        "apt",
        {"apt.txt": "cowsay\n", "postBuild": "#!/bin/sh\necho postbuild-ran > ~/postbuild.txt\n"},
    )
    got = await read_events(http, build_url(service, spec))
    assert got.last["phase"] == "ready", "".join(e["message"] for e in got.events[-20:])
    assert registry_has(infra["registry"], got.last["imageName"])
    assert any("cowsay" in e["message"] for e in got.events)


async def test_twenty_viewers_one_build_same_events(http, service, git_server, infra):
    spec, _ = new_repo(git_server, "crowd", dockerfile(DOCKERFILE, infra))
    results = await asyncio.gather(
        *(read_events(http, build_url(service, spec)) for _ in range(20))
    )
    assert all(r.last["phase"] == "ready" for r in results)
    image = results[0].last["imageName"]
    builds = [b for b in await api_builds(http, service) if b["image_name"] == image]
    assert len(builds) == 1
    # Every viewer saw the whole log, in the same order, with the same ids.
    reference = [(e["_id"], e["phase"], e["message"]) for e in results[0].events]
    for r in results[1:]:
        assert [(e["_id"], e["phase"], e["message"]) for e in r.events] == reference


async def test_viewer_leaves_build_finishes_and_is_cached(http, service, git_server, infra):
    spec, _ = new_repo(git_server, "leaver", dockerfile(SLOW, infra))
    partial = await read_events(http, build_url(service, spec), stop_after=2)
    assert partial.last["phase"] != "ready"
    # Reconnect with Last-Event-ID: the stream resumes after what we saw.
    resumed = await read_events(
        http, build_url(service, spec), headers={"Last-Event-ID": partial.ids[-1]}
    )
    assert int(resumed.ids[0]) == int(partial.ids[-1]) + 1
    assert resumed.last["phase"] == "ready"
    assert resumed.keepalives >= 1  # `RUN sleep 8` is quiet for longer than 1 s
    assert registry_has(infra["registry"], resumed.last["imageName"])


async def test_disconnected_build_still_finishes(http, service, git_server, infra):
    spec, _ = new_repo(git_server, "orphan", dockerfile(SLOW, infra))
    partial = await read_events(http, build_url(service, spec), stop_after=1)
    build_id = None
    for _ in range(50):
        running = [
            b for b in await api_builds(http, service) if b["state"] in ("queued", "running")
        ]
        if running:
            build_id = running[0]["id"]
            break
        await asyncio.sleep(0.1)
    assert build_id and partial.events
    for _ in range(600):
        async with http.get(f"{service.url}api/builds/{build_id}") as r:
            state = (await r.json())["state"]
        if state not in ("queued", "running"):
            break
        await asyncio.sleep(0.2)
    assert state == "ready"
    cached = await read_events(http, build_url(service, spec))
    assert cached.phases == ["ready"]


async def test_failing_build_reports_repo2docker_error(http, service, git_server, infra):
    spec, _ = new_repo(git_server, "failing", dockerfile(FAILING, infra))
    got = await read_events(http, build_url(service, spec))
    assert got.last["phase"] == "failed"
    assert "Error during build" in got.last["message"]
    assert any("about to fail" in e["message"] for e in got.events)
    log = await (await http.get(f"{service.url}api/builds")).json()
    assert [b for b in log["builds"] if b["state"] == "failed"]


@pytest.mark.parametrize(
    "spec, expect",
    [
        ("nope/owner/repo/main", "provider"),
        ("git/not-a-url/main", "git"),
        ("gh/owner", "gh/"),
        ("git/" + quote("file:///etc", safe="") + "/main", "file"),
    ],
)
async def test_malformed_specs_fail_clearly(http, service, spec, expect):
    got = await read_events(http, build_url(service, spec))
    assert got.phases == ["failed"]
    assert expect in got.last["message"]


async def test_unknown_ref_and_repo(http, service, git_server, infra):
    spec, _ = new_repo(git_server, "refs", dockerfile(DOCKERFILE, infra))
    got = await read_events(http, build_url(service, spec.rsplit("/", 1)[0] + "/no-such-branch"))
    assert got.phases == ["failed"] and "no-such-branch" in got.last["message"]
    missing = "git/" + quote(git_server.url("does-not-exist"), safe="") + "/main"
    got = await read_events(http, build_url(service, missing))
    assert got.phases == ["failed"] and got.last["message"].strip()


async def test_cancel_stops_repo2docker(http, service, git_server, infra):
    spec, _ = new_repo(
        git_server, "cancelme", dockerfile({"Dockerfile": "FROM {base}\nRUN sleep 300\n"}, infra)
    )
    viewer = asyncio.create_task(read_events(http, build_url(service, spec)))
    build = None
    for _ in range(100):
        active = [
            b
            for b in await api_builds(http, service)
            if b["state"] == "running" and "cancelme" in b["repo_url"]
        ]
        if active:
            build = active[0]
            break
        await asyncio.sleep(0.1)
    assert build
    await asyncio.sleep(3)  # let repo2docker get into `RUN sleep 300`
    async with http.post(f"{service.url}api/builds/{build['id']}/cancel") as r:
        assert r.status == 202
    got = await asyncio.wait_for(viewer, 30)
    assert got.last["phase"] == "failed" and got.last.get("cancelled") is True
    async with http.get(f"{service.url}api/builds/{build['id']}") as r:
        assert (await r.json())["state"] == "cancelled"
    async with http.post(f"{service.url}api/builds/{build['id']}/cancel") as r:
        assert r.status == 409
    # No repo2docker process of this build is left.
    ps = await asyncio.create_subprocess_exec(
        "pgrep", "-f", build["image_name"], stdout=asyncio.subprocess.PIPE
    )
    out, _ = await ps.communicate()
    assert not out.strip()
