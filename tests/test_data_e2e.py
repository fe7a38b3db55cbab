"""End to end: builds from a Zenodo record and from a Gitea/Forgejo repository through
r2dservice as a process and real repo2docker, against stand-ins on loopback, pushed to
the real registry; and a restricted record failing with its reason, not a 500."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

import pytest

from tests.conftest import registry_has
from tests.fakes.datarepos import FakeDataRepos
from tests.fakes.forge import FakeRepo
from tests.fakes.gitserver import make_repo
from tests.support.service import ServiceProcess
from tests.support.sse import read_events

pytestmark = pytest.mark.docker

R2D_CONFIG = Path(__file__).parent / "support" / "r2d_standin_providers.py"


@pytest.fixture(scope="module")
def standins():
    """The stand-ins on their own event loop, so that the module's service can use them."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    repos = asyncio.run_coroutine_threadsafe(FakeDataRepos().start(), loop).result(10)
    yield repos
    asyncio.run_coroutine_threadsafe(repos.stop(), loop).result(10)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(5)


@pytest.fixture(scope="module")
def service(infra, run_id, tmp_path_factory, standins, git_server):
    workdir = tmp_path_factory.mktemp("service")
    svc = ServiceProcess(
        str(workdir),
        f"""
        c.R2DService.auth_enabled = False
        c.R2DService.image_prefix = "{infra["registry"]}/r2dtest-{run_id}-"
        c.LocalBuilder.repo2docker_extra_args = ["--config", "{R2D_CONFIG}"]
        c.HTTPRepoProvider.trust_env = False
        c.DataRepoProvider.doi_resolver_url = "{standins.url["doi"]}"
        c.ZenodoRepoProvider.sites = ["{standins.url["zenodo"]}"]
        c.GiteaRepoProvider.base_url = "git://127.0.0.1:{git_server.port}"
        c.GiteaRepoProvider.api_base_url = "{standins.url["gitea"]}/api/v1"
        c.GiteaRepoProvider.access_token = ""
        c.LocalBuilder.environment = [
            "R2D_STANDIN_DOI", "R2D_STANDIN_ZENODO", "R2D_TEST_REPO2DOCKER_CONFIG", "R2D_BASE_IMAGE"
        ]
        """,
        env={
            "R2D_STANDIN_DOI": standins.url["doi"],
            "R2D_STANDIN_ZENODO": standins.url["zenodo"],
            "R2D_TEST_REPO2DOCKER_CONFIG": infra["r2d_config"],
        },
    ).start()
    yield svc
    assert svc.stop() == 0, svc.log()


def build_url(service, spec: str) -> str:
    return f"{service.url}build/{spec}?build_only=true"


def dockerfile(infra) -> bytes:
    marker = f"{time.time_ns()}"  # a new first layer: no build is a cache hit of an earlier run
    return f"FROM {infra['base_image']}\nRUN echo {marker} > /built.txt\n".encode()


async def test_zenodo_record_builds_through_repo2docker(http, service, standins, infra):
    record = str(4_000_000 + time.time_ns() % 1_000_000)
    concept = str(int(record) - 1)
    standins.add_zenodo(record, concept=concept, files={"Dockerfile": dockerfile(infra)})
    # the concept DOI, as papers cite it: resolves to the record, builds it
    got = await read_events(http, build_url(service, f"zenodo/10.5281/zenodo.{concept}"))
    assert got.last["phase"] == "ready", "".join(e["message"] for e in got.events[-15:])
    image = got.last["imageName"]
    assert image.split(":")[-1].startswith(record)
    assert registry_has(infra["registry"], image)
    assert got.last["binder_persistent_request"] == f"v2/zenodo/10.5281/zenodo.{record}"
    assert any("Fetching Zenodo record" in e["message"] for e in got.events)
    # the version DOI and doi/ name the same image: ready at once, no build
    for spec in (f"zenodo/10.5281/zenodo.{record}", f"doi/10.5281/zenodo.{concept}"):
        again = await read_events(http, build_url(service, spec))
        assert (again.phases, again.last["imageName"]) == (["ready"], image)


async def test_gitea_repository_builds_through_repo2docker(
    http, service, standins, git_server, infra
):
    name = f"Team{time.time_ns() % 10**6}/Notebooks"
    sha = make_repo(git_server.root / f"{name}.git", {"Dockerfile": dockerfile(infra).decode()})
    standins.add_gitea(name, FakeRepo({"main": sha}))
    got = await read_events(http, build_url(service, f"gitea/{name.lower()}/HEAD"))
    assert got.last["phase"] == "ready", "".join(e["message"] for e in got.events[-15:])
    assert sha in got.last["imageName"]
    assert registry_has(infra["registry"], got.last["imageName"])
    assert got.last["repo_url"] == f"git://127.0.0.1:{git_server.port}/{name}.git"
    again = await read_events(http, build_url(service, f"gitea/{name}/main"))
    assert (again.phases, again.last["imageName"]) == (["ready"], got.last["imageName"])


@pytest.mark.parametrize(
    "spec, status, words",
    [
        ("zenodo/10.5281/zenodo.77", 403, "restricted"),
        ("zenodo/10.5281/zenodo.404404", 404, "does not exist"),
        ("doi/10.1234/nowhere", 400, "not on a repository this service builds from"),
    ],
)
async def test_record_errors_fail_clearly(http, service, standins, spec, status, words):
    standins.add_zenodo("77", access_right="restricted")
    standins.dois["10.1234/nowhere"] = "http://127.0.0.1:9/paper"
    got = await read_events(http, build_url(service, spec))
    assert got.phases == ["failed"] and words in got.last["message"], got.last
    async with http.post(service.url + "api/builds", json={"spec": spec}) as r:
        assert r.status == status, await r.text()


async def test_provider_api_down_is_503_not_500(http, service, standins):
    standins.add_zenodo("88")
    standins.status["zenodo"] = 429
    try:
        async with http.post(
            service.url + "api/builds", json={"spec": "zenodo/10.5281/zenodo.88"}
        ) as r:
            assert r.status == 503, await r.text()
            assert "try again" in (await r.text())
    finally:
        del standins.status["zenodo"]


def test_repo2docker_zenodo_hosts_are_fixed():
    """What the stand-in config works around: if repo2docker ever makes them
    configurable, tests/support/r2d_standin_providers.py can use that instead."""
    from repo2docker.contentproviders import Zenodo

    hosts = [h["api"] for h in Zenodo().hosts]
    assert "https://zenodo.org/api/records/" in hosts
