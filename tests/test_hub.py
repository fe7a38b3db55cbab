"""r2dservice as a JupyterHub-managed service, against a real JupyterHub and the npm
configurable-http-proxy: OAuth in a browser, API tokens, scopes, XSRF, real builds.

The hub runs dev/jupyterhub_config.py, the configuration operators copy (see
tests/support/hub.py): alice may build, bob may only use existing images, admin
administers r2dservice, mallory may not use it.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import time
from urllib.parse import quote

import pytest

from tests.fakes.gitserver import make_repo
from tests.support.browser import BROWSER_ARGS
from tests.support.hub import ACCESS_SCOPE, BUILD_SCOPE, Hub, jupyterhub_python
from tests.support.sse import read_events

pytestmark = [pytest.mark.docker, pytest.mark.hub]

SERVICE_CONFIG = """
c.R2DService.image_prefix = "{registry}/r2dtest-{run_id}-"
c.R2DService.keepalive_interval = 1
c.R2DService.log_level = "DEBUG"
c.LocalBuilder.repo2docker_extra_args = ["--config", "{r2d_config}"]
c.GitRepoProvider.allow_loopback = True  # the test git servers listen on 127.0.0.1
c.BuildManager.concurrent_build_limit = 3
# Short, so that revoked and expired tokens are refused within the test's patience.
c.HubOAuth.cache_max_age = 2
c.R2DServiceAuth.hub_timeout = 3
"""

# The nonce keeps Docker's layer cache from answering for a build.
BASE = "FROM {base}\nRUN echo nonce-{nonce}\n"
QUICK = BASE + "RUN echo built-by-r2dservice > /built.txt\n"
# Output spread over seconds: the stream must deliver it as it comes, not at the end. One
# step per tick: BuildKit's plain printer may hold a running step's lines back (it did, once
# in CI, all six in one write), but it prints a step's lines when the step ends.
TICKING = BASE + "".join(f"RUN echo tick-{i} && sleep 1\n" for i in range(1, 7))
SLEEPY = BASE + "RUN sleep 300\n"


def hub_config(infra, run_id) -> str:
    return SERVICE_CONFIG.format(
        registry=infra["registry"], run_id=run_id, r2d_config=infra["r2d_config"]
    )


# The current JupyterHub (installed with r2dservice) and the previous major version: the
# hub runs from a venv with 5.x, r2dservice (HubOAuth of 6.x) talks to it over the wire.
@pytest.fixture(scope="module", params=[6, 5], ids=["jupyterhub6", "jupyterhub5"])
def hub(request, infra, run_id, tmp_path_factory):
    python = jupyterhub_python(request.param)
    h = Hub(str(tmp_path_factory.mktemp("hub")), hub_config(infra, run_id), python=python).start()
    version = subprocess.run(
        [python, "-m", "jupyterhub", "--version"], capture_output=True, text=True
    ).stdout.strip()
    assert version.startswith(f"{request.param}."), version
    yield h
    h.stop()


@pytest.fixture(scope="module")
def tokens(hub):
    """One API token per user, with the scopes their roles give (no `scopes`: inherit)."""
    return {user: hub.token_for(user)[0] for user in ("alice", "bob", "admin", "mallory")}


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


class Repos:
    def __init__(self, git_server, infra):
        self.git_server = git_server
        self.base = infra["base_image"]

    def new(self, name: str, dockerfile: str) -> str:
        """A fresh repository (a new commit each run, hence a new image) -> its spec."""
        nonce = time.time_ns()
        make_repo(
            self.git_server.root / name,
            {"Dockerfile": dockerfile.format(base=self.base, nonce=nonce), "marker": f"{nonce}\n"},
        )
        return f"git/{quote(self.git_server.url(name), safe='')}/main"


@pytest.fixture(scope="module")
def repos(git_server, infra):
    return Repos(git_server, infra)


def stream_url(hub, spec: str) -> str:
    return f"{hub.service_url}build/{spec}?build_only=true"


async def get_json(http, url, headers=None):
    async with http.get(url, headers=headers or {}, allow_redirects=False) as r:
        return r.status, await r.json(content_type=None)


async def post_json(http, url, body=None, headers=None):
    async with http.post(url, json=body or {}, headers=headers or {}) as r:
        return r.status, await r.json(content_type=None)


# ------------------------------------------------------------------ no login needed
async def test_health_versions_metrics_need_no_login(http, hub):
    for path in ("health", "versions", "metrics"):
        async with http.get(hub.service_url + path) as r:
            assert r.status == 200, (path, await r.text())


async def test_strangers_get_403_on_api_and_stream_and_a_login_redirect_on_pages(http, hub):
    status, body = await get_json(http, hub.service_url + "api/builds")
    assert status == 403 and "Authentication required" in body["message"]
    assert "access:services!service=binder" in body["message"]

    got = await read_events(http, stream_url(hub, "gh/owner/repo/main"))
    assert got.status == 403 and got.phases == ["failed"]
    assert "Authentication required" in got.last["message"]

    async with http.get(hub.service_url, allow_redirects=False) as r:
        assert r.status == 302
        assert "/hub/api/oauth2/authorize" in r.headers["Location"]
        assert "client_id=service-binder" in r.headers["Location"]

    # A token the hub does not know: 403, and the message says so.
    status, body = await get_json(http, hub.service_url + "api/builds", bearer("not-a-token"))
    assert status == 403 and "does not accept this token" in body["message"]


# ------------------------------------------------------------------ tokens and scopes
async def test_bearer_token_streams_a_build_through_the_proxy_as_it_happens(http, hub, repos):
    token, _ = hub.token_for("alice", scopes=[ACCESS_SCOPE, BUILD_SCOPE])
    spec = repos.new("ticking", TICKING)
    got = await read_events(http, stream_url(hub, spec), headers=bearer(token))
    assert got.status == 200, got.events
    assert got.last["phase"] == "ready", [e["message"] for e in got.events[-10:]]
    # Events came while the build ran, not in one lump at its end: the ticks one second
    # apart arrived about one second apart.
    ticks = [e["_t"] for e in got.events if "tick-" in e["message"] and "echo" not in e["message"]]
    assert len(ticks) >= 4, "".join(e["message"] for e in got.events)
    assert ticks[-1] - ticks[0] >= 3, ticks
    assert got.events[-1]["_t"] - got.events[0]["_t"] >= 5
    assert got.keepalives >= 1 or len({round(t) for t in ticks}) >= 4

    # The build belongs to alice.
    status, body = await get_json(http, hub.service_url + "api/builds", bearer(token))
    assert status == 200
    mine = [b for b in body["builds"] if b["image_name"] == got.last["imageName"]]
    assert mine and mine[0]["user"] == "alice"


async def test_token_scheme_works_too(http, hub, tokens, repos):
    status, _ = await get_json(
        http, hub.service_url + "api/builds", {"Authorization": f"token {tokens['alice']}"}
    )
    assert status == 200
    spec = repos.new("token-scheme", QUICK)
    got = await read_events(
        http, stream_url(hub, spec), headers={"Authorization": f"token {tokens['alice']}"}
    )
    assert got.last["phase"] == "ready", got.events[-3:]


async def test_users_without_access_get_403(http, hub, tokens, repos):
    spec = repos.new("no-access", QUICK)
    # mallory is a hub user without access:services!service=binder.
    status, body = await get_json(http, hub.service_url + "api/builds", bearer(tokens["mallory"]))
    assert status == 403
    assert "mallory may not use this service" in body["message"]
    assert "access:services!service=binder" in body["message"]
    got = await read_events(http, stream_url(hub, spec), headers=bearer(tokens["mallory"]))
    assert got.status == 403 and got.phases == ["failed"]
    assert "mallory may not use this service" in got.last["message"]
    status, body = await post_json(
        http, hub.service_url + "api/builds", {"spec": spec}, bearer(tokens["mallory"])
    )
    assert status == 403
    # alice may, but not with a token whose scopes leave the service out.
    narrow, _ = hub.token_for("alice", scopes=["read:users:name!user=alice"])
    status, body = await get_json(http, hub.service_url + "api/builds", bearer(narrow))
    assert status == 403 and "alice may not use" in body["message"]


async def test_without_the_build_scope_existing_images_only(http, hub, tokens, repos):
    spec = repos.new("viewer", QUICK)
    # bob may use the service but not build: a new image is refused...
    got = await read_events(http, stream_url(hub, spec), headers=bearer(tokens["bob"]))
    assert got.phases == ["failed"], got.events
    assert got.last["status"] == 403 and "may not start builds" in got.last["message"]
    status, body = await post_json(
        http, hub.service_url + "api/builds", {"spec": spec}, bearer(tokens["bob"])
    )
    assert status == 403 and "may not start builds" in body["message"]
    # ... and so is alice with a token that has access but not the build scope.
    access_only, _ = hub.token_for("alice", scopes=[ACCESS_SCOPE])
    got = await read_events(http, stream_url(hub, spec), headers=bearer(access_only))
    assert got.phases == ["failed"] and "may not start builds" in got.last["message"]
    # Once alice has built it, bob gets the image at once.
    built = await read_events(http, stream_url(hub, spec), headers=bearer(tokens["alice"]))
    assert built.last["phase"] == "ready"
    got = await read_events(http, stream_url(hub, spec), headers=bearer(tokens["bob"]))
    assert got.phases == ["ready"] and got.last["imageName"] == built.last["imageName"]


async def test_admin_sees_and_cancels_what_others_cannot(http, hub, tokens, repos):
    spec = repos.new("admin-cancels", SLEEPY)
    status, build = await post_json(
        http, hub.service_url + "api/builds", {"spec": spec}, bearer(tokens["alice"])
    )
    assert status == 201, build
    url = f"{hub.service_url}api/builds/{build['id']}"
    try:
        # bob (no admin scope) sees none of alice's builds and cannot cancel them.
        status, body = await get_json(http, hub.service_url + "api/builds", bearer(tokens["bob"]))
        assert status == 200 and build["id"] not in {b["id"] for b in body["builds"]}
        assert (await get_json(http, url, bearer(tokens["bob"])))[0] == 404
        assert (await post_json(http, url + "/cancel", None, bearer(tokens["bob"])))[0] == 404
        # admin sees it and cancels it.
        status, body = await get_json(http, hub.service_url + "api/builds", bearer(tokens["admin"]))
        assert build["id"] in {b["id"] for b in body["builds"]}
        status, body = await post_json(http, url + "/cancel", None, bearer(tokens["admin"]))
        assert status == 202, body
        for _ in range(100):
            status, body = await get_json(http, url, bearer(tokens["alice"]))
            if body["state"] != "running":
                break
            await asyncio.sleep(0.2)
        # alice learns that an administrator stopped it, not who.
        assert body["state"] == "cancelled" and body["cancelled_by"] is None
        assert body["message"] == "Build cancelled by an administrator.\n"
        status, body = await get_json(http, url, bearer(tokens["admin"]))
        assert body["cancelled_by"] == "admin"
    finally:
        await post_json(http, url + "/cancel", None, bearer(tokens["admin"]))


async def test_revoked_token_is_refused(http, hub):
    token, token_id = hub.token_for("alice", scopes=[ACCESS_SCOPE])
    assert (await get_json(http, hub.service_url + "api/builds", bearer(token)))[0] == 200
    hub.revoke("alice", token_id)
    await asyncio.sleep(2.5)  # c.HubOAuth.cache_max_age = 2 in this hub's service config
    status, body = await get_json(http, hub.service_url + "api/builds", bearer(token))
    assert status == 403 and "does not accept this token" in body["message"]


async def test_expired_token_is_refused(http, hub):
    token, _ = hub.token_for("alice", scopes=[ACCESS_SCOPE], expires_in=3)
    assert (await get_json(http, hub.service_url + "api/builds", bearer(token)))[0] == 200
    await asyncio.sleep(5.5)  # past its expiry and the service's cache
    status, body = await get_json(http, hub.service_url + "api/builds", bearer(token))
    assert status == 403 and "does not accept this token" in body["message"]
    got = await read_events(http, stream_url(hub, "gh/owner/repo/main"), headers=bearer(token))
    assert got.status == 403 and got.phases == ["failed"]


# ------------------------------------------------------------------ browsers
async def browser_login(playwright, hub, user: str):
    chromium = os.environ.get("R2D_TEST_CHROMIUM") or "/usr/bin/chromium"
    browser = await playwright.chromium.launch(executable_path=chromium, args=BROWSER_ARGS)
    page = await browser.new_page()
    await page.goto(hub.service_url)
    # Not logged in: r2dservice sent the browser to the hub's login page.
    assert "/hub/login" in page.url, page.url
    await page.fill("#username_input", user)
    await page.fill("#password_input", hub.password(user))
    await page.click("#login_submit")
    await page.wait_for_load_state()
    return browser, page


FETCH = """async ([url, method, body, headers]) => {
    const r = await fetch(url, {method, headers, body: body ? JSON.stringify(body) : undefined});
    return [r.status, await r.text()];
}"""


@pytest.mark.browser
async def test_browser_oauth_round_trip_xsrf_and_a_build(hub, repos):
    from playwright.async_api import async_playwright

    spec = repos.new("browser", QUICK)
    async with async_playwright() as p:
        browser, page = await browser_login(p, hub, "alice")
        try:
            # Back on r2dservice after the OAuth round trip, logged in.
            assert page.url == hub.service_url, page.url
            assert await page.inner_text("#user") == "alice"
            assert await page.inner_text("#may-build") == "may"
            # Our cookies live under /services/binder/ (the hub has its own _xsrf under /hub/).
            cookies = {
                c["name"]: c["value"]
                for c in await page.context.cookies()
                if c["path"] == "/services/binder/"
            }
            assert "service-binder" in cookies and "_xsrf" in cookies
            hub.secrets_handed_out.append(cookies["service-binder"])
            # The page's scripts see the token both in the page and in document.cookie.
            xsrf = await page.evaluate("xsrf")
            assert xsrf == cookies["_xsrf"]
            assert f"_xsrf={xsrf}" in await page.evaluate("document.cookie")

            # A cookie-authenticated POST from a script without the XSRF token is refused...
            status, text = await page.evaluate(FETCH, ["api/builds", "POST", {"spec": spec}, {}])
            assert status == 403 and "XSRF" in text, text
            # ... and accepted with it (the _xsrf cookie's value in X-XSRFToken).
            status, text = await page.evaluate(
                FETCH, ["api/builds", "POST", {"spec": spec}, {"X-XSRFToken": xsrf}]
            )
            assert status in (200, 201), text
            # The page's form streams the build (EventSource, cookie + _xsrf argument).
            await page.fill("#spec", spec)
            await page.click("button[type=submit]")
            await page.wait_for_function(
                "document.getElementById('status').textContent.startsWith('ready')",
                timeout=300_000,
            )
            assert "built-by-r2dservice" in await page.inner_text(
                "#log"
            ) or "Found built image" in await page.inner_text("#log")
            # A cookie-authenticated GET from a script needs the token too (JupyterHub >= 4).
            status, _ = await page.evaluate(FETCH, ["api/builds", "GET", None, {}])
            assert status == 403
            status, _ = await page.evaluate(
                FETCH, ["api/builds", "GET", None, {"X-XSRFToken": xsrf}]
            )
            assert status == 200
        finally:
            await browser.close()


@pytest.mark.browser
async def test_browser_logins_of_viewer_and_stranger(hub):
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        browser, page = await browser_login(p, hub, "bob")
        try:
            assert page.url == hub.service_url
            assert await page.inner_text("#may-build") == "may not"
        finally:
            await browser.close()
        # The hub itself refuses to log mallory in to the service.
        browser, page = await browser_login(p, hub, "mallory")
        try:
            assert "/services/binder/" not in page.url or "oauth" in page.url
            assert "permission" in (await page.content()).lower()
        finally:
            await browser.close()


# ------------------------------------------------------------------ last: logs and stopping
async def test_no_tokens_or_cookies_in_logs(hub):
    log = hub.log()
    assert "r2dservice" in log and "GET /services/binder/" in log
    for secret in hub.secrets_handed_out:
        assert secret not in log


def test_hub_stop_stops_the_managed_service_promptly(hub):
    pids = hub.managed_service_pids()
    assert pids, "the managed r2dservice is not running"
    took = hub.stop()
    assert took < 10, f"the hub took {took:.1f}s to stop"
    for _ in range(50):
        if not hub.managed_service_pids():
            break
        time.sleep(0.1)
    assert not hub.managed_service_pids()
