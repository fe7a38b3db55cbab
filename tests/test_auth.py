"""Authentication without a real hub: scopes -> permissions, the JUPYTERHUB_* settings,
and r2dservice's answers against a stand-in hub API (fast; tests/test_hub*.py use a real hub).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from aiohttp import web

from r2dservice.app import R2DService
from r2dservice.auth import R2DServiceAuth
from tests.support.hub import ExternalService
from tests.support.service import free_port
from tests.support.sse import read_events

ACCESS = "access:services!service=binder"
BUILD = "custom:r2dservice:build"
ADMIN = "custom:r2dservice:admin"
HUB_ENV = ("JUPYTERHUB_", "R2DSERVICE_COOKIE_SECRET")


@pytest.fixture
def hub_env(monkeypatch):
    """A clean JUPYTERHUB_* environment, with what a managed service gets."""
    for key in list(os.environ):
        if key.startswith(HUB_ENV):
            monkeypatch.delenv(key)
    monkeypatch.setenv("JUPYTERHUB_SERVICE_NAME", "binder")
    monkeypatch.setenv("JUPYTERHUB_API_TOKEN", "service-secret")
    monkeypatch.setenv("JUPYTERHUB_API_URL", "http://127.0.0.1:1/hub/api")
    return monkeypatch


def model(name="alice", scopes=(), kind="user"):
    return {"kind": kind, "name": name, "scopes": list(scopes)}


@pytest.mark.parametrize(
    "scopes, use, build, admin",
    [
        ([], False, False, False),
        ([ACCESS], True, False, False),
        ([ACCESS, BUILD], True, True, False),
        ([ACCESS, BUILD, ADMIN], True, True, True),
        ([ACCESS, ADMIN], True, False, True),
        (["access:services"], True, False, False),  # every service, e.g. hub admins
        ([BUILD, ADMIN], False, False, False),  # nothing without access
        (["access:services!service=other", BUILD], False, False, False),
        ([ACCESS, BUILD + "!user=alice"], True, False, False),  # filtered: not the scope
    ],
)
def test_scopes_make_permissions(hub_env, scopes, use, build, admin):
    caller = R2DServiceAuth().caller_from_model(model(scopes=scopes))
    assert (caller.may_use, caller.may_build, caller.is_admin) == (use, build, admin)
    assert caller.name == "alice" and caller.kind == "user"


def test_scope_names_are_configurable(hub_env):
    from traitlets.config import Config

    c = Config()
    c.R2DServiceAuth.build_scope = "custom:images:build"
    c.R2DServiceAuth.admin_scope = ""
    auth = R2DServiceAuth(config=c)
    caller = auth.caller_from_model(model(scopes=[ACCESS, "custom:images:build", ADMIN]))
    assert caller.may_build and not caller.is_admin
    c.R2DServiceAuth.build_scope = ""  # everyone with access builds
    assert R2DServiceAuth(config=c).caller_from_model(model(scopes=[ACCESS])).may_build


def test_services_are_named_apart_from_users(hub_env):
    caller = R2DServiceAuth().caller_from_model(model("binder", [ACCESS, BUILD], kind="service"))
    assert caller.name == "service:binder" and caller.may_build


def test_hub_auth_from_the_managed_service_environment(hub_env):
    hub_env.setenv("JUPYTERHUB_CLIENT_ID", "service-binder")
    hub_env.setenv("JUPYTERHUB_OAUTH_CALLBACK_URL", "/services/binder/oauth_callback")
    hub_env.setenv("JUPYTERHUB_OAUTH_ACCESS_SCOPES", json.dumps(["access:services", ACCESS]))
    hub_env.setenv("JUPYTERHUB_SERVICE_PREFIX", "/services/binder/")
    hub_env.setenv("JUPYTERHUB_SERVICE_URL", "http://127.0.0.1:9876")
    app = R2DService()
    assert (app.ip, app.port, app.base_url) == ("127.0.0.1", 9876, "/services/binder/")
    auth = R2DServiceAuth(base_url=app.base_url)
    assert auth.missing_settings() == []
    a = auth.hub_auth
    assert a.api_token == "service-secret" and a.oauth_client_id == "service-binder"
    assert a.oauth_redirect_uri == "/services/binder/oauth_callback"
    assert a.cache_max_age == 60  # ours; HubOAuth's 300 s is long for a revoked token


def test_external_service_needs_only_name_token_and_api_url(hub_env):
    """What an operator sets for an external service; the rest follows the hub's defaults."""
    app = R2DService()
    assert (app.ip, app.port, app.base_url) == ("127.0.0.1", 8585, "/services/binder/")
    hub_env.setenv("JUPYTERHUB_BASE_URL", "/jhub/")
    assert R2DService().base_url == "/jhub/services/binder/"
    a = R2DServiceAuth(base_url="/jhub/services/binder/").hub_auth
    assert a.oauth_client_id == "service-binder"
    assert a.oauth_redirect_uri == "/jhub/services/binder/oauth_callback"
    assert a.access_scopes == {ACCESS}
    assert a.login_url.startswith("/jhub/hub/api/oauth2/authorize?client_id=service-binder")


def test_without_auth_the_hub_environment_is_not_needed(hub_env):
    for key in ("JUPYTERHUB_SERVICE_NAME", "JUPYTERHUB_API_TOKEN", "JUPYTERHUB_API_URL"):
        hub_env.delenv(key)
    app = R2DService(auth_enabled=False)
    assert (app.ip, app.port, app.base_url) == ("127.0.0.1", 8585, "/")


@pytest.mark.parametrize(
    "missing", ["JUPYTERHUB_SERVICE_NAME", "JUPYTERHUB_API_TOKEN", "JUPYTERHUB_API_URL"]
)
def test_missing_hub_settings_stop_the_start_with_their_names(tmp_path, missing):
    env = {k: v for k, v in os.environ.items() if not k.startswith(HUB_ENV)}
    env.update(
        JUPYTERHUB_SERVICE_NAME="binder",
        JUPYTERHUB_API_TOKEN="service-secret",
        JUPYTERHUB_API_URL="http://127.0.0.1:1/hub/api",
    )
    del env[missing]
    (tmp_path / "c.py").write_text('c.R2DService.image_prefix = "r2d-"\n')
    out = subprocess.run(
        [sys.executable, "-m", "r2dservice", "-f", "c.py"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.returncode == 1
    assert missing in out.stderr and "missing" in out.stderr
    assert "Traceback" not in out.stderr and "service-secret" not in out.stderr


# ------------------------------------------------------------------ a stand-in hub API
USERS = {
    "alice-token": model("alice", [ACCESS, BUILD]),
    "bob-token": model("bob", [ACCESS]),
    "mallory-token": model("mallory", ["read:users:name!user=mallory"]),
}


@pytest.fixture
async def fake_hub():
    """GET /hub/api/user as JupyterHub answers it: the token's model, 403, or a failure."""
    calls = []

    async def user(request):
        token = request.headers.get("Authorization", "").partition(" ")[2]
        calls.append(token)
        if token == "broken-token":
            return web.Response(status=500, text="database is locked")
        if token not in USERS:
            return web.json_response({"status": 403, "message": "Forbidden"}, status=403)
        return web.json_response(USERS[token])

    app = web.Application()
    app.router.add_get("/hub/api/user", user)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}/hub/api", calls
    await runner.cleanup()


@pytest.fixture
async def service(fake_hub, tmp_path):
    api_url, calls = fake_hub
    env = {k: v for k, v in os.environ.items() if not k.startswith(HUB_ENV)}
    env.update(
        JUPYTERHUB_SERVICE_NAME="binder",
        JUPYTERHUB_API_TOKEN="service-secret",
        JUPYTERHUB_API_URL=api_url,
    )
    svc = ExternalService(
        str(tmp_path),
        'c.R2DService.image_prefix = "r2d-"\nc.HubOAuth.cache_max_age = 30\n',
        env=env,
        port=free_port(),
    )
    svc.env = env  # exactly this environment: nothing of a hub's leaks in
    svc.start()
    svc.calls = calls
    yield svc
    assert svc.stop() == 0, svc.log()


async def status_json(http, url, headers=None, method="GET"):
    async with http.request(method, url, headers=headers or {}, allow_redirects=False) as r:
        return r.status, await r.json(content_type=None)


async def test_bearer_and_token_schemes_and_the_cache(http, service):
    for scheme in ("Bearer", "token", "bearer"):
        status, body = await status_json(
            http, service.url + "api/builds", {"Authorization": f"{scheme} alice-token"}
        )
        assert status == 200, body
    # Cached: one hub request for three calls with the same token.
    assert service.calls.count("alice-token") == 1


@pytest.mark.parametrize(
    "headers, message",
    [
        ({}, "Authentication required"),
        ({"Authorization": "Bearer nobody-knows-it"}, "does not accept this token"),
        (
            {"Authorization": "Basic YWxpY2U6cHc="},
            "Send the token as 'Authorization: Bearer <token>'",
        ),
        ({"Authorization": "Bearer mallory-token"}, "mallory may not use this service"),
        ({"Authorization": "Bearer broken-token"}, "Could not check your credentials"),
    ],
)
async def test_refusals_say_why(http, service, headers, message):
    status, body = await status_json(http, service.url + "api/builds", headers)
    assert status == (503 if "broken" in str(headers) else 403)
    assert message in body["message"]
    got = await read_events(http, service.url + "build/gh/o/r/main", headers=headers)
    assert got.status == status and got.phases == ["failed"] and message in got.last["message"]
    assert "nobody-knows-it" not in service.log() and "broken-token" not in service.log()


async def test_no_login_routes_and_page_redirect(http, service):
    for path in ("versions", "metrics"):
        async with http.get(service.url + path) as r:
            assert r.status == 200
    async with http.get(service.url, allow_redirects=False) as r:
        assert r.status == 302
        location = r.headers["Location"]
    assert location.startswith("/hub/api/oauth2/authorize?client_id=service-binder")
    assert "redirect_uri=%2Fservices%2Fbinder%2Foauth_callback" in location
    assert "code_challenge=" in location and "state=" in location
    # The API never redirects, even for a browser.
    status, _ = await status_json(http, service.url + "api/builds", {"Accept": "text/html"})
    assert status == 403


async def test_token_posts_need_no_xsrf_and_a_stale_callback_says_what_to_do(http, service):
    status, body = await status_json(
        http, service.url + "api/builds", {"Authorization": "Bearer bob-token"}, method="POST"
    )
    assert status == 400 and "spec" in body["message"]  # past auth and XSRF, to the body
    async with http.get(service.url + "oauth_callback?code=x&state=y") as r:
        assert r.status == 403
        assert "Try logging in again" in await r.text()
