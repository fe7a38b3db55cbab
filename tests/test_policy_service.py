"""Spec policy, per-user limits and the first fuzzing pass's findings, through a real
service process (stand-in forge, hub API and builder from tests/support/standins.py)."""

from __future__ import annotations

import asyncio
import json
import socket
from urllib.parse import quote

import pytest
import yaml
from yarl import URL

from tests.fakes.gitserver import GitDaemon, make_repo
from tests.support.sse import read_events
from tests.support.standins import fakes, start_service  # noqa: F401 (a fixture)

ALICE = {"Authorization": "Bearer alice-token"}
CAROL = {"Authorization": "Bearer carol-token"}
ROOT = {"Authorization": "Bearer root-token"}

POLICY = """
c.R2DService.base_url = "/"
c.HubOAuth.cache_max_age = 0
c.GitHubRepoProvider.banned_specs = ["^octo/fail"]
c.GitLabRepoProvider.enabled = False
c.BuildManager.concurrent_build_limit = 2
c.BuildManager.per_user_build_limit = 1
c.BuildManager.per_user_queue_limit = 1
"""


@pytest.fixture(scope="module")
def service(tmp_path_factory, fakes):  # noqa: F811
    svc = start_service(
        tmp_path_factory.mktemp("policy-service"),
        fakes,
        POLICY,
        env={
            "JUPYTERHUB_SERVICE_NAME": "binder",
            "JUPYTERHUB_API_TOKEN": "service-secret",
            "JUPYTERHUB_API_URL": fakes.hub_api_url,
        },
    )
    yield svc
    svc.stop()


@pytest.fixture(scope="module")
def open_service(tmp_path_factory, fakes):  # noqa: F811
    svc = start_service(
        tmp_path_factory.mktemp("policy-open-service"),
        fakes,
        "c.R2DService.auth_enabled = False\n",
    )
    yield svc
    svc.stop()


async def post(http, svc, spec, headers):
    async with http.post(svc.url + "api/builds", json={"spec": spec}, headers=headers) as r:
        return r.status, await r.json()


async def cancel_all(http, svc):
    async with http.get(svc.url + "api/builds?state=queued&state=running", headers=ROOT) as r:
        builds = (await r.json())["builds"]
    for b in builds:
        async with http.post(svc.url + f"api/builds/{b['id']}/cancel", headers=ROOT):
            pass


async def test_banned_spec_is_a_403_that_says_so_everywhere(http, service):
    status, body = await post(http, service, "gh/Octo/fail/main", ALICE)
    assert status == 403 and "banned" in body["message"], body
    got = await read_events(http, service.url + "build/gh/octo/fail2/main", headers=ALICE)
    assert got.phases == ["failed"] and got.last["status"] == 403
    assert "gh/octo/fail2/main has been disabled" in got.last["message"]
    async with http.get(service.url + "api/images/gh/octo/fail/main", headers=ALICE) as r:
        assert r.status == 403
    async with http.get(service.url + "v2/gh/octo/fail/main", headers=ALICE) as r:
        assert r.status == 403 and "banned" in await r.text()


async def test_a_disabled_provider_is_a_clear_400_everywhere(http, service):
    async with http.get(service.url + "api/repoproviders") as r:
        ids = [p["id"] for p in await r.json()]
    assert "gl" not in ids and "gh" in ids
    status, body = await post(http, service, "gl/g%2Fp/main", ALICE)
    assert status == 400 and "'gl' is turned off" in body["message"]
    got = await read_events(http, service.url + "build/gl/g%2Fp/main", headers=ALICE)
    assert got.last["status"] == 400 and "turned off" in got.last["message"]
    async with http.get(service.url + "v2/gl/g%2Fp/main", headers=ALICE) as r:
        assert r.status == 400 and "turned off" in await r.text()
    async with http.get(service.url + "api/images/gl/g%2Fp/main", headers=ALICE) as r:
        assert r.status == 400


async def test_per_user_limits_name_the_builds_and_joining_is_free(http, service):
    try:
        status, running = await post(http, service, "gh/octo/slow/main", ALICE)
        assert status == 201 and running["state"] == "running"
        status, waiting = await post(http, service, "gh/octo/slow2/main", ALICE)
        # alice has her one running build: the free slot is not hers
        assert status == 201 and waiting["state"] == "queued"
        status, body = await post(http, service, "gh/octo/slow3/main", ALICE)
        assert status == 429, body
        assert f"gh/octo/slow2/main (queued, build {waiting['id']})" in body["message"]
        assert "(1)" in body["message"] and "1 running" in body["message"]
        got = await read_events(http, service.url + "build/gh/octo/slow3/main", headers=ALICE)
        assert got.phases == ["failed"] and got.last["status"] == 429
        # Joining counts against nobody: carol joins alice's queued build, then starts
        # her own, which takes the free slot ahead of alice's.
        status, joined = await post(http, service, "gh/octo/slow2/main", CAROL)
        assert status == 200 and joined["id"] == waiting["id"]
        status, carols = await post(http, service, "gh/octo/slow3/main", CAROL)
        assert status == 201 and carols["state"] == "running"
        # An admin is exempt.
        assert (await post(http, service, "gh/octo/quick/main", ROOT))[0] in (200, 201)
    finally:
        await cancel_all(http, service)


async def test_two_quick_requests_at_the_limit_let_one_through(http, service):
    try:
        assert (await post(http, service, "gh/octo/slow/main", ALICE))[0] == 201
        results = await asyncio.gather(
            post(http, service, "gh/octo/slow2/main", ALICE),
            post(http, service, "gh/octo/slow3/main", ALICE),
        )
        assert sorted(status for status, _ in results) == [201, 429], results
    finally:
        await cancel_all(http, service)


# --- the first fuzzing pass's findings ---------------------------------------------------


async def test_an_upper_case_scheme_is_the_same_repository(http, open_service, tmp_path):
    with GitDaemon(tmp_path / "git") as daemon:
        make_repo(tmp_path / "git" / "r", {"Dockerfile": "FROM scratch\n"})
        url = daemon.url("r")
        images = []
        for scheme in ("git", "Git", "GIT"):
            spec = quote(scheme + url[len("git") :], safe="")
            async with http.get(open_service.url + f"api/images/git/{spec}/HEAD") as r:
                assert r.status == 200, await r.text()
                images.append((await r.json())["image_name"])
    assert len(set(images)) == 1


async def test_an_invalid_utf8_escape_is_our_failed_event(http, open_service):
    for path in ("build/gh/%ff/r/HEAD", "build/gh/o/r/main?build_only=%ff"):
        got = await read_events(http, URL(open_service.url + path, encoded=True))
        assert got.status == (200 if "%ff/" in path else 400), path
        assert got.phases == ["failed"], (path, got.events)
        assert "UTF-8" in got.last["message"] or "unicode" in got.last["message"].lower()


async def test_an_empty_or_missing_spec_is_ours_not_tornados(http, open_service):
    got = await read_events(http, open_service.url + "build/gh/")
    assert got.phases == ["failed"] and got.last["status"] == 400
    assert "it is empty" in got.last["message"]
    for path in ("build/gh", "build/", "build"):
        got = await read_events(http, open_service.url + path)
        assert got.status == 404 and got.phases == ["failed"], path
        assert "build/<provider>/<spec>" in got.last["message"]
    async with http.get(open_service.url + "api/images/gh/") as r:
        assert r.status == 400 and "it is empty" in (await r.json())["message"]
    async with http.get(open_service.url + "v2/gh/") as r:
        assert r.status == 400 and "text/html" in r.headers["Content-Type"]
    async with http.get(open_service.url + "no/such/page") as r:
        assert r.status == 404 and "text/html" in r.headers["Content-Type"]


async def test_an_unknown_state_filter_is_a_400_naming_the_states(http, open_service):
    async with http.get(open_service.url + "api/builds?state=bogus&state=ready") as r:
        body = await r.json()
    assert r.status == 400
    assert "bogus" in body["message"] and "queued, running" in body["message"]


def test_a_request_line_over_64_kib_is_answered_431(open_service):
    with socket.create_connection(("127.0.0.1", open_service.port), timeout=10) as s:
        s.sendall(b"GET /build/gh/" + b"a" * 70_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
        answer = b""
        while chunk := s.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 431 "), answer[:200]
    assert json.loads(body)["status"] == 431
    # the service goes on
    with socket.create_connection(("127.0.0.1", open_service.port), timeout=10) as s:
        s.sendall(b"GET /versions HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert s.recv(100).startswith(b"HTTP/1.1 200")


async def test_the_openapi_document_declares_security_only_with_auth(http, open_service, service):
    async with http.get(open_service.url + "api/openapi.yaml") as r:
        text = await r.text()
    assert "security" not in text and "jupyterhubToken" not in text
    async with http.get(service.url + "api/openapi.json") as r:
        doc = await r.json()
    assert doc["security"] and doc["components"]["securitySchemes"]
    assert yaml.safe_load(text)["paths"].keys() == doc["paths"].keys()
