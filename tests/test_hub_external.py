"""r2dservice as an external JupyterHub service (`url` + `api_token`, the way it runs on
Kubernetes), started by the test, so that it outlives the hub: the hub stops, hangs and
comes back, and token checks fail cleanly (503 with a message, quickly) and then recover.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time

import pytest

from tests.support.hub import ACCESS_SCOPE, Hub
from tests.support.sse import read_events

pytestmark = [pytest.mark.hub]

SERVICE_CONFIG = """
c.R2DService.image_prefix = "{registry}/r2dtest-{run_id}-"
c.R2DService.log_level = "DEBUG"
c.LocalBuilder.repo2docker_extra_args = ["--config", "{r2d_config}"]
c.HubOAuth.cache_max_age = 1
c.R2DServiceAuth.hub_timeout = 3
"""


@pytest.fixture(scope="module")
def hub_and_service(infra, run_id, tmp_path_factory):
    config = SERVICE_CONFIG.format(
        registry=infra["registry"], run_id=run_id, r2d_config=infra["r2d_config"]
    )
    hub = Hub(str(tmp_path_factory.mktemp("hub")), config, external=True)
    # The service first: a hub waits half a minute for an external service that is not up.
    service = hub.external_service(str(tmp_path_factory.mktemp("service"))).start()
    hub.start()
    yield hub, service
    hub.stop()
    assert service.stop() == 0, service.log()


@pytest.fixture
def hub(hub_and_service):
    return hub_and_service[0]


@pytest.fixture
def service(hub_and_service):
    return hub_and_service[1]


def bearer(token):
    return {"Authorization": f"Bearer {token}"}


async def status_and_message(http, url, token):
    async with http.get(url, headers=bearer(token)) as r:
        body = await r.json(content_type=None)
        return r.status, body.get("message", "")


async def test_external_service_serves_through_the_proxy(http, hub, service):
    token, _ = hub.token_for("alice")
    assert await status_and_message(http, hub.service_url + "api/builds", token) == (200, "")
    # And directly, where the hub's proxy sends it.
    assert (await status_and_message(http, service.url + "api/builds", token))[0] == 200
    # Browsers are sent to the hub's OAuth with the external service's client id.
    async with http.get(hub.service_url, allow_redirects=False) as r:
        assert r.status == 302 and "client_id=service-binder" in r.headers["Location"]


async def test_hub_stopped_then_started_again(http, hub, service):
    cached, _ = hub.token_for("alice", scopes=[ACCESS_SCOPE])
    fresh, _ = hub.token_for("alice", scopes=[ACCESS_SCOPE])
    assert (await status_and_message(http, service.url + "api/builds", cached))[0] == 200

    hub.stop()  # the hub stops its proxy too: ask the service directly
    await asyncio.sleep(1.2)  # past c.HubOAuth.cache_max_age
    t0 = time.monotonic()
    status, message = await status_and_message(http, service.url + "api/builds", fresh)
    assert status == 503, message
    assert "Could not check your credentials with JupyterHub" in message
    assert time.monotonic() - t0 < 3
    got = await read_events(http, service.url + "build/gh/owner/repo/main", headers=bearer(fresh))
    assert got.status == 503 and got.phases == ["failed"]
    assert "try again" in got.last["message"]
    # Routes without login still answer.
    async with http.get(service.url + "versions") as r:
        assert r.status == 200

    hub.start()
    for token in (fresh, cached):
        assert (await status_and_message(http, hub.service_url + "api/builds", token))[0] == 200
        assert (await status_and_message(http, service.url + "api/builds", token))[0] == 200
    assert service.proc.poll() is None  # it never went away


async def test_hub_that_does_not_answer_times_out_with_a_message(http, hub, service):
    token, _ = hub.token_for("alice", scopes=[ACCESS_SCOPE])
    os.kill(hub.proc.pid, signal.SIGSTOP)  # accepts connections, answers nothing
    try:
        t0 = time.monotonic()
        status, message = await status_and_message(http, service.url + "api/builds", token)
        took = time.monotonic() - t0
    finally:
        os.kill(hub.proc.pid, signal.SIGCONT)
    assert status == 503 and "did not answer within 3 s" in message
    assert 2.5 < took < 6
    assert (await status_and_message(http, service.url + "api/builds", token))[0] == 200


def test_no_tokens_in_logs(hub, service):
    logs = hub.log() + service.log()
    assert "GET /services/binder/api/builds" in logs
    for secret in hub.secrets_handed_out:
        assert secret not in logs
