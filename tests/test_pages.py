"""The web pages in a real headless Chromium (Playwright, Debian's chromium), against a
real JupyterHub and the npm configurable-http-proxy: users log in through the hub's OAuth,
paste repository URLs into the form, watch builds live, reload and lose their connection
mid-build, cancel, come back after a service restart, and administer builds.

r2dservice runs as the hub's external service (so that the test can restart it while
the hub stays), with a scripted builder (no Docker), GitHub's API stand-in and a Docker
engine stand-in: tests/support/standins.py. A real build through these pages runs in
tests/test_hub.py (test_browser_oauth_round_trip_xsrf_and_a_build).

Screenshots: set R2D_SCREENSHOTS=docs/images to write the documentation's pictures.
"""

from __future__ import annotations

import json
import os
import subprocess
import textwrap
import urllib.error
import urllib.request

import pytest
import pytest_asyncio

from tests.fakes.forge import fake_sha
from tests.support.browser import BROWSER_ARGS
from tests.support.hub import Hub
from tests.support.service import REPO
from tests.support.standins import FakeServers, start_service

# One browser and one event loop for the module (starting Chromium costs a second).
pytestmark = [pytest.mark.hub, pytest.mark.browser, pytest.mark.asyncio(loop_scope="module")]

AXE = os.path.join(REPO, "share", "r2dservice", "js", "node_modules", "axe-core", "axe.min.js")
VENDOR = os.path.join(REPO, "share", "r2dservice", "static", "vendor", "xterm", "xterm.mjs")
REPOS = ("tick", "tick2", "tick3", "quick", "slow", "slow2", "slow3", "slow4", "fail", "key")

# The repository's name says how the build goes; log lines with ANSI colours and a
# carriage-return progress line, as repo2docker's.
PAGES_BUILDER = """
import asyncio

from r2dservice.builders.base import Builder, BuildFailed
from r2dservice.events import Event


class PagesBuilder(Builder):
    async def build(self, request, emit):
        name = request.repo_url.rstrip("/").rsplit("/", 1)[-1]
        emit(Event("fetching", f"Fetching {request.repo_url} at {request.ref}\\n"))
        if name.startswith("fail"):
            emit(Event("building", "\\x1b[1mStep 1/2 : FROM scratch\\x1b[0m\\n"))
            raise BuildFailed("requirements.txt names a package that does not exist: nosuchpackage")
        if name.startswith("slow"):
            emit(Event("building", "Step 1/1 : RUN sleep 3600\\n"))
            await asyncio.sleep(3600)
        n = 24 if name.startswith("tick") else 3
        for i in range(1, n + 1):
            emit(Event("building", f"\\x1b[32mStep {i}/{n}\\x1b[0m : RUN echo line-{i:02d}\\n"))
            if name.startswith("tick"):
                await asyncio.sleep(0.25)
        emit(Event("building", "Downloading 10%\\rDownloading 55%\\rDownloading 100%\\n"))
        emit(Event("pushing", "Pushing the image\\n"))
"""

SERVICE_CONFIG = """
c.R2DService.builder_class = "pages_builder.PagesBuilder"
c.R2DService.image_prefix = "r2d-pages-"
c.R2DService.use_registry = False
c.R2DService.keepalive_interval = 1
c.R2DService.db_url = "sqlite:///{workdir}/records.sqlite"
c.LocalImageChecker.docker_host = {engine!r}
c.GitHubAPIProvider.api_base_url = {forge!r}
c.HTTPRepoProvider.trust_env = False
c.BuildManager.concurrent_build_limit = 1
c.HubOAuth.cache_max_age = 2
# This hub's spawner cannot run images: tests/test_launch.py launches, with DockerSpawner.
c.Launcher.enabled = False
"""


def screenshots_dir(tmp_path_factory) -> str:
    return os.environ.get("R2D_SCREENSHOTS") or str(tmp_path_factory.mktemp("screenshots"))


@pytest.fixture(scope="module")
def static_files():
    """The vendored xterm.js (and axe-core for the checks): dev/build-static.sh, as CI runs it."""
    subprocess.run(
        ["bash", os.path.join(REPO, "dev", "build-static.sh")], check=True, capture_output=True
    )
    assert os.path.exists(VENDOR) and os.path.exists(AXE)


@pytest.fixture(scope="module")
def fakes():
    f = FakeServers().start()
    for name in REPOS:
        f.forge.add_github_repo(
            f"octo/{name}", {"main": fake_sha(name), "dev": fake_sha(name + "-dev")}
        )
    yield f
    f.stop()


@pytest.fixture(scope="module")
def hub_and_service(static_files, fakes, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("service")
    (workdir / "pages_builder.py").write_text(PAGES_BUILDER)
    config = SERVICE_CONFIG.format(workdir=workdir, engine=fakes.engine_url, forge=fakes.forge.url)
    hub = Hub(str(tmp_path_factory.mktemp("hub")), config, external=True)
    service = hub.external_service(str(workdir))
    service.env["PYTHONPATH"] = os.pathsep.join([str(workdir), REPO])  # this checkout
    # The service first: a hub waits for an external service that is not up.
    service.start()
    hub.start()
    yield hub, service
    hub.stop()
    service.stop()


@pytest.fixture(scope="module")
def hub(hub_and_service):
    return hub_and_service[0]


@pytest.fixture(scope="module")
def admin_token(hub):
    return hub.token_for("admin")[0]


def api(hub, token, method, path, body=None):
    req = urllib.request.Request(
        hub.service_url + path,
        method=method,
        data=json.dumps(body).encode() if body is not None else None,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


@pytest.fixture(autouse=True)
def nothing_left_running(hub, admin_token):
    """One build slot: whatever a test leaves running or queued is cancelled after it."""
    yield
    token = admin_token
    _, page = api(hub, token, "GET", "api/builds?state=running&state=queued&limit=200")
    for b in page["builds"]:
        api(hub, token, "POST", f"api/builds/{b['id']}/cancel")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def browser():
    from playwright.async_api import async_playwright

    chromium = os.environ.get("R2D_TEST_CHROMIUM") or "/usr/bin/chromium"
    async with async_playwright() as p:
        b = await p.chromium.launch(executable_path=chromium, args=BROWSER_ARGS)
        yield b
        await b.close()


@pytest.fixture(scope="module")
def shots(tmp_path_factory):
    folder = screenshots_dir(tmp_path_factory)
    os.makedirs(folder, exist_ok=True)
    return folder


class Session:
    """A logged-in browser context of one user; page errors fail the test."""

    def __init__(self, context, page):
        self.context, self.page = context, page
        self.errors: list[str] = []
        page.on("pageerror", lambda e: self.errors.append(str(e)))
        page.on("console", lambda m: m.type == "error" and self.errors.append(m.text))


async def login(browser, hub, user: str, **context_args) -> Session:
    context = await browser.new_context(viewport={"width": 1100, "height": 900}, **context_args)
    page = await context.new_page()
    s = Session(context, page)
    await page.goto(hub.service_url)
    assert "/hub/login" in page.url, page.url
    await page.fill("#username_input", user)
    await page.fill("#password_input", hub.password(user))
    await page.click("#login_submit")
    await page.wait_for_url(hub.service_url)
    await page.wait_for_selector("#build-form[data-ready]")
    return s


@pytest_asyncio.fixture(loop_scope="module")
async def alice(browser, hub):
    s = await login(browser, hub, "alice")
    yield s
    await s.context.close()
    assert not s.errors, s.errors


@pytest_asyncio.fixture(loop_scope="module")
async def admin(browser, hub):
    s = await login(browser, hub, "admin")
    yield s
    await s.context.close()
    assert not s.errors, s.errors


async def build_from_form(page, repository: str, ref: str = "") -> str:
    """Fill the form, press Build, land on the build's page -> the build id."""
    await page.fill("#spec", repository)
    await page.fill("#ref", ref)
    await page.click("#build-button")
    await page.wait_for_url("**/builds/*")
    return page.url.rsplit("/", 1)[1]


async def wait_phase(page, phase: str, timeout: float = 20_000):
    await page.wait_for_function(
        f"document.querySelector('#status .phase-word')?.textContent === {phase!r}", timeout=timeout
    )


async def plain_log(page) -> str:
    return await page.evaluate("document.getElementById('log').textContent")


def line_counts(text: str) -> dict[str, int]:
    counts: dict[str, int] = {}
    for line in text.splitlines():
        counts[line] = counts.get(line, 0) + 1
    return counts


# ------------------------------------------------------------------ the form
async def test_pasted_urls_give_the_right_spec_and_share_links(alice, hub, shots):
    page = alice.page
    requests = []
    page.on("request", lambda r: "api/builds" in r.url and requests.append(r.url))
    cases = [
        ("https://github.com/octo/tick", "", "gh/octo/tick/HEAD", "gh"),
        ("https://github.com/octo/tick/tree/dev", None, "gh/octo/tick/dev", "gh"),
        ("https://github.com/octo/tick.git", "", "gh/octo/tick/HEAD", "gh"),
        (
            "https://gitlab.com/group/sub/project/-/tree/main",
            None,
            "gl/group%2Fsub%2Fproject/main",
            "gl",
        ),
        (
            "https://gist.github.com/octocat/6cad326836d38bd3a7ae",
            "",
            "gist/octocat/6cad326836d38bd3a7ae/HEAD",
            "gist",
        ),
        (
            "https://git.example.org/team/repo.git",
            "v1.0",
            "git/https%3A%2F%2Fgit.example.org%2Fteam%2Frepo.git/v1.0",
            "git",
        ),
        ("gh/octo/tick/main", "", "gh/octo/tick/main", "gh"),
    ]
    for text, ref, spec, provider in cases:
        if ref is not None:
            await page.fill("#ref", ref)
        await page.fill("#spec", text)
        assert await page.inner_text("#resolved-spec") == spec, text
        assert await page.input_value("#provider") == provider, text
        assert await page.get_attribute("#spec", "aria-invalid") is None
    # owner/repo, typed, for the provider chosen in the picker.
    await page.select_option("#provider", "gh")
    await page.fill("#ref", "")
    await page.fill("#spec", "octo/tick")
    assert await page.inner_text("#resolved-spec") == "gh/octo/tick/HEAD"
    # A /blob/ link fills the ref and the path to open; the share link keeps the path.
    await page.fill("#spec", "https://github.com/octo/tick/blob/main/notebooks/index.ipynb")
    assert await page.input_value("#ref") == "main"
    assert await page.input_value("#filepath") == "notebooks/index.ipynb"
    link = await page.input_value("#share-link")
    assert link == hub.service_url + "v2/gh/octo/tick/main?labpath=notebooks%2Findex.ipynb"
    badge = hub.service_url + "static/images/badge.svg"
    assert await page.input_value("#badge-md") == f"[![Build the image]({badge})]({link})"
    assert await page.input_value("#badge-rst") == f".. image:: {badge}\n   :target: {link}"
    await page.screenshot(path=os.path.join(shots, "home.png"), full_page=True)
    # The copy button copies (the clipboard needs a permission in headless Chromium).
    await alice.context.grant_permissions(["clipboard-read", "clipboard-write"])
    await page.click("button[data-copy=share-link]")
    assert await page.evaluate("navigator.clipboard.readText()") == link
    # The badge image is served.
    with urllib.request.urlopen(badge) as r:
        assert r.headers["Content-Type"].startswith("image/svg+xml")
    assert requests == [], "the form asked the service before anyone pressed Build"


async def test_invalid_input_is_explained_under_the_field_before_any_request(alice):
    page = alice.page
    requests = []
    page.on("request", lambda r: "api/builds" in r.url and requests.append(r.url))
    for text, says in [
        ("https://github.com/octo", "not a repository's page"),
        ("https://github.com/octo/tick/issues/5", "not a repository's page"),
        ("ftp://example.org/repo.git", "cannot be built"),
        ("just-a-word", "not a GitHub repository"),
    ]:
        await page.fill("#spec", text)
        await page.dispatch_event("#spec", "blur")
        assert says in await page.inner_text("#spec-error"), text
        assert await page.get_attribute("#spec", "aria-invalid") == "true"
        assert await page.inner_text("#resolved-spec") == "—"
    await page.fill("#spec", "octo/tick")
    await page.fill("#ref", "bad..ref")
    assert "“..”" in await page.inner_text("#ref-error")
    await page.click("#build-button")
    assert await page.evaluate("document.activeElement.id") == "ref"
    assert requests == [] and "/builds/" not in page.url
    await page.fill("#ref", "")
    assert await page.inner_text("#ref-error") == ""


async def test_a_data_repository_has_no_ref_field(alice):
    """Zenodo and the other data repositories name their version in the record."""
    page = alice.page
    await page.goto(page.url.split("?")[0])
    await page.wait_for_selector("#build-form[data-ready]")
    await page.select_option("#provider", "zenodo")
    await page.fill("#spec", "10.5281/zenodo.3242074")
    await page.dispatch_event("#spec", "input")
    assert await page.inner_text("#resolved-spec") == "zenodo/10.5281/zenodo.3242074"
    state = await page.evaluate(
        "({hidden: document.getElementById('ref').closest('.field').hidden,"
        " disabled: document.getElementById('ref').disabled})"
    )
    assert state == {"hidden": True, "disabled": True}, state
    assert await page.is_hidden("#ref")
    await page.select_option("#provider", "gh")
    await page.fill("#spec", "octo/tick")
    await page.dispatch_event("#spec", "input")
    assert await page.is_visible("#ref")
    assert await page.inner_text("#resolved-spec") == "gh/octo/tick/HEAD"


async def test_a_shared_v2_link_builds_and_says_whether_it_launches(alice, hub):
    page = alice.page
    await page.goto(hub.service_url + "v2/gh/octo/tick/dev?labpath=notebooks%2Fa.ipynb")
    await page.wait_for_url("**/v2/gh/octo/tick/dev**")
    await wait_phase(page, "ready", timeout=60_000)
    assert await page.inner_text("#repo-name") == "octo/tick"
    assert await page.inner_text("#ref") == "dev"
    # Launching is off on this service: the page says so instead of a Launch button.
    assert await page.locator("#launch").count() == 0
    assert "builds images only" in await page.inner_text("#launch-note")
    # A bad path in a link is the link's fault, said at once.
    response = await page.goto(hub.service_url + "v2/gh/octo/tick/dev?urlpath=..%2F..%2Fhub")
    assert response.status == 400
    assert "may not contain '..'" in await page.inner_text("#error-message")
    alice.errors[:] = [e for e in alice.errors if "400" not in e]


async def test_an_unknown_build_is_a_404_page(alice, hub):
    page = alice.page
    response = await page.goto(hub.service_url + "builds/nosuchbuild")
    assert response.status == 404
    assert "No build with id nosuchbuild" in await page.inner_text("#error-message")
    alice.errors[:] = [e for e in alice.errors if "404" not in e]


async def test_a_user_who_may_not_build_is_told_why(browser, hub):
    s = await login(browser, hub, "bob")
    try:
        page = s.page
        assert await page.inner_text("#may-build") == "may not"
        await page.fill("#spec", "https://github.com/octo/quick")
        await page.click("#build-button")
        await page.wait_for_function("document.getElementById('status').textContent.length > 20")
        assert "build" in (await page.inner_text("#status")).lower()
        assert await page.get_attribute("#status", "class") == "status-line error"
        assert "/builds/" not in page.url and await page.is_enabled("#build-button")
    finally:
        await s.context.close()
    assert [e for e in s.errors if "403" not in e] == []


async def test_keyboard_only_use_of_the_form(alice):
    page = alice.page
    await page.focus("body")
    # Tab from the top: the skip link first, which jumps to the content.
    await page.keyboard.press("Tab")
    assert await page.evaluate("document.activeElement.className") == "skip-link"
    # It moves the focus to the content, on this page (not to <base href>'s home page).
    url = page.url
    await page.keyboard.press("Enter")
    assert await page.evaluate("document.activeElement.id") == "main" and page.url == url
    for _ in range(15):
        await page.keyboard.press("Tab")
        if await page.evaluate("document.activeElement.id") == "spec":
            break
    else:
        pytest.fail("Tab never reached the repository field")
    # The field before it is the provider picker, reachable backwards too.
    await page.keyboard.press("Shift+Tab")
    assert await page.evaluate("document.activeElement.id") == "provider"
    await page.keyboard.press("Tab")
    await page.keyboard.type("https://github.com/octo/key/tree/dev")
    assert await page.inner_text("#resolved-spec") == "gh/octo/key/dev"
    # Every control shows where the focus is.
    outline = await page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert outline != "none"
    await page.keyboard.press("Enter")
    await page.wait_for_url("**/builds/*")
    await wait_phase(page, "ready")


# ------------------------------------------------------------------ a build, live
async def test_build_live_with_reload_and_a_dropped_connection(alice, hub, shots):
    page = alice.page
    build_id = await build_from_form(page, "https://github.com/octo/tick")
    assert page.url == hub.service_url + f"builds/{build_id}"
    await wait_phase(page, "building")
    assert await page.inner_text("#repo-name") == "octo/tick"
    assert await page.inner_text("#ref") == "HEAD"
    assert (await page.inner_text("#commit")) == fake_sha("tick")[:12]
    # Launching is off on this service (tests/test_launch.py launches): the page says so.
    assert "builds images only" in await page.inner_text("#launch-note")
    await page.wait_for_function("document.getElementById('log').textContent.includes('line-04')")
    # The terminal renders the log (ANSI colours as colours, not as escape codes).
    rows = await page.inner_text("#terminal .xterm-rows")
    assert "Step 1/24" in rows and "\x1b" not in rows and "[32m" not in rows
    await page.screenshot(path=os.path.join(shots, "build-running.png"), full_page=True)

    # Reload mid-build: the log starts over from the records and goes on live.
    await page.reload()
    await page.wait_for_function("document.getElementById('log').textContent.includes('line-10')")
    # Drop the connection for a while: EventSource comes back with Last-Event-ID.
    await alice.context.set_offline(True)
    await page.wait_for_timeout(1500)
    await alice.context.set_offline(False)
    await wait_phase(page, "ready", timeout=30_000)

    text = await plain_log(page)
    counts = line_counts(text)
    for i in range(1, 25):
        assert counts.get(f"Step {i}/24 : RUN echo line-{i:02d}") == 1, (i, text)
    # "\r" progress ends as its last state, once.
    assert counts.get("Downloading 100%") == 1 and "Downloading 55%" not in text
    steps = await page.eval_on_selector_all("#phases li", "els => els.map(e => e.className)")
    assert steps == ["done"] * 5
    assert (await page.text_content("#status")).startswith("ready")
    assert await page.inner_text("#state") == "ready"
    assert (await page.inner_text("#image-name")).startswith("r2d-pages-gh-octo-tick-")
    assert await page.is_hidden("#cancel") and await page.is_hidden("#failure")
    # The plain-text view shows the same log.
    await page.click("#toggle-log")
    assert await page.is_visible("#log") and await page.is_hidden("#terminal")
    await page.click("#toggle-log")
    await page.screenshot(path=os.path.join(shots, "build-ready.png"), full_page=True)


async def test_failure_reason_is_highlighted(alice, shots):
    page = alice.page
    await build_from_form(page, "octo/fail")
    await wait_phase(page, "failed")
    assert "nosuchpackage" in await page.inner_text("#failure")
    assert await page.get_attribute("#failure", "role") == "alert"
    assert await page.inner_text("#state") == "failed"
    steps = await page.eval_on_selector_all("#phases li", "els => els.map(e => e.className)")
    assert steps == ["done", "done", "bad", "", ""]
    await page.screenshot(path=os.path.join(shots, "build-failed.png"), full_page=True)


async def test_queue_position_and_cancel(alice, shots):
    page = alice.page
    first = await build_from_form(page, "octo/slow")
    await wait_phase(page, "building")
    await page.goto(page.url.rsplit("/builds/", 1)[0] + "/")
    await page.wait_for_selector("#build-form[data-ready]")
    await build_from_form(page, "octo/slow2")
    await wait_phase(page, "waiting")
    assert await page.inner_text("#queue") == "Position 1 of 1 in the queue."
    assert await page.inner_text("#state") == "queued"
    await page.screenshot(path=os.path.join(shots, "build-queued.png"), full_page=True)
    await page.click("#cancel")
    await wait_phase(page, "failed")
    assert "cancelled" in (await page.inner_text("#failure")).lower()
    assert await page.inner_text("#state") == "cancelled"
    # The running one, from its page.
    await page.goto(page.url.rsplit("/", 1)[0] + "/" + first)
    await wait_phase(page, "building")
    await page.click("#cancel")
    await wait_phase(page, "failed")
    assert await page.inner_text("#state") == "cancelled"


# ------------------------------------------------------------------ history
async def test_my_builds_filters_and_pages(alice, shots):
    page = alice.page
    await page.click("nav >> text=My builds")
    await page.wait_for_selector("#history table")
    rows = await page.eval_on_selector_all("#history tbody tr", "els => els.length")
    assert rows >= 4
    headers = await page.eval_on_selector_all("#history th", "els => els.map(e => e.textContent)")
    assert headers == ["State", "Repository", "Ref", "Started", "Duration", "Requested by"]
    await page.screenshot(path=os.path.join(shots, "builds.png"), full_page=True)
    # Filters, reflected in the URL.
    await page.select_option("#f-state", "failed")
    await page.click("#filters button[type=submit]")
    await page.wait_for_function("location.search.includes('state=failed')")
    await page.wait_for_function(
        "[...document.querySelectorAll('#history tbody tr .state')].every(s => s.textContent === 'failed')"
    )
    assert "octo/fail" in await page.inner_text("#history")
    # Pages: two at a time, then older ones.
    await page.goto(page.url.split("?")[0] + "?limit=2")
    await page.wait_for_selector("#history table")
    assert await page.eval_on_selector_all("#history tbody tr", "els => els.length") == 2
    await page.click("#more")
    await page.wait_for_function("document.querySelectorAll('#history tbody tr').length === 4")
    ids = await page.eval_on_selector_all(
        "#history tbody tr", "els => els.map(e => e.dataset.buildId)"
    )
    assert len(set(ids)) == 4
    # Any past build's log, from the list.
    await page.click("#history tbody tr >> nth=0 >> a")
    await page.wait_for_url("**/builds/*")
    await page.wait_for_function("document.getElementById('log').textContent.length > 0")


async def test_a_past_build_after_a_service_restart(alice, hub_and_service):
    hub, service = hub_and_service
    page = alice.page
    build_id = await build_from_form(page, "octo/tick2")
    await wait_phase(page, "ready", timeout=30_000)
    before = await plain_log(page)
    service.stop()
    service.start()
    await page.goto(hub.service_url + f"builds/{build_id}")
    await wait_phase(page, "ready")
    assert await plain_log(page) == before
    assert await page.inner_text("#state") == "ready"


async def test_a_dropped_stream_resumes_across_a_service_crash(alice, hub_and_service):
    """The service dies mid-build: the page says so, reconnects by itself when it is back
    (from the last event it saw), and shows how the build ended (a crashed service's
    unfinished build is recorded failed after its last stored event)."""
    hub, service = hub_and_service
    page = alice.page
    await build_from_form(page, "octo/slow3")
    await wait_phase(page, "building")
    service.proc.kill()
    service.proc.wait()
    service._log.close()
    await page.wait_for_selector("#connection:not([hidden])", timeout=10_000)
    assert "Connection lost" in await page.inner_text("#connection")
    service.start()
    await wait_phase(page, "failed", timeout=30_000)
    assert await page.is_hidden("#connection")
    # What the records kept of the log, and how it ended, each line once (a crash may
    # lose the last moments' lines: that is the records' business, not the page's).
    counts = line_counts(await plain_log(page))
    assert counts.get("Build starting...") == 1 and set(counts.values()) == {1}, counts
    assert "service stopped" in await page.inner_text("#failure")
    # The browser logs the failed requests of the outage; nothing else went wrong.
    alice.errors[:] = [e for e in alice.errors if "Failed to load resource" not in e]


# ------------------------------------------------------------------ admins
async def test_admin_sees_everyone_and_cancels(alice, admin, shots):
    await build_from_form(alice.page, "octo/slow4")
    await wait_phase(alice.page, "building")
    page = admin.page
    assert await page.inner_text("#is-admin")
    await page.click("nav >> text=All builds")
    await page.wait_for_selector("#active table")
    active = await page.inner_text("#active")
    assert "octo/slow4" in active and "alice" in active
    await page.wait_for_selector("#history table")
    assert "alice" in await page.inner_text("#history")
    await page.screenshot(path=os.path.join(shots, "builds-admin.png"), full_page=True)
    await page.click("#active button:has-text('Cancel')")
    # Alice's page sees her build cancelled by an administrator.
    await wait_phase(alice.page, "failed")
    assert "administrator" in await alice.page.inner_text("#failure")
    await page.wait_for_function(
        "document.getElementById('active').textContent.includes('Nothing is running')"
    )


# ------------------------------------------------------------------ accessibility, looks
async def axe_violations(page) -> list:
    await page.add_script_tag(path=AXE)
    result = await page.evaluate(
        "axe.run(document, {runOnly: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'best-practice']})"
    )
    return [
        (v["id"], v["impact"], [n["target"] for n in v["nodes"]][:3])
        for v in result["violations"]
        if v["impact"] in ("serious", "critical")
    ]


@pytest.mark.parametrize("scheme", ["light", "dark"])
async def test_accessibility_of_every_page(alice, hub, scheme, shots):
    page = alice.page
    await page.emulate_media(color_scheme=scheme)
    await page.fill("#spec", "https://github.com/octo/tick")
    assert await axe_violations(page) == []
    if scheme == "dark":
        await page.screenshot(path=os.path.join(shots, "home-dark.png"), full_page=True)
    await build_from_form(page, "octo/fail")
    await wait_phase(page, "failed")
    assert await axe_violations(page) == []
    await page.goto(hub.service_url + "builds")
    await page.wait_for_selector("#history table")
    assert await axe_violations(page) == []


async def test_phone_width(browser, hub, shots):
    s = await login(browser, hub, "alice")
    try:
        page = s.page
        await page.set_viewport_size({"width": 390, "height": 844})
        await page.fill("#spec", "https://github.com/octo/quick")
        wide = "document.documentElement.scrollWidth > document.documentElement.clientWidth"
        assert not await page.evaluate(wide)
        await page.screenshot(path=os.path.join(shots, "phone-home.png"), full_page=True)
        await build_from_form(page, "https://github.com/octo/quick")
        await wait_phase(page, "ready")
        assert not await page.evaluate(wide)
        await page.screenshot(path=os.path.join(shots, "phone-build.png"))
        await page.goto(hub.service_url + "builds")
        await page.wait_for_selector("#history table")
        assert not await page.evaluate(wide)
    finally:
        await s.context.close()
    assert not s.errors, s.errors


# ------------------------------------------------------------------ branding
async def test_operators_brand_the_pages(browser, static_files, fakes, tmp_path):
    """template_paths, template_vars and static_paths, as JupyterHub's (no hub needed)."""
    templates = tmp_path / "templates"
    static = tmp_path / "static"
    (static / "css").mkdir(parents=True)
    templates.mkdir()
    (templates / "page.html").write_text(
        textwrap.dedent("""
        {% extends "templates/page.html" %}
        {% block footer %}<p id="operator-footer">Run by the Example University</p>{{ super() }}{% endblock %}
    """)
    )
    (static / "logo.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    (static / "css" / "style.css").write_text("body { background: rgb(1, 2, 3); }")
    config = f"""
        c.R2DService.auth_enabled = False
        c.R2DService.template_paths = [{str(templates)!r}]
        c.R2DService.static_paths = [{str(static)!r}]
        c.R2DService.template_vars = {{
            "title": "Example Builds", "logo": "/static/logo.png",
            "banner": "<strong id='banner-text'>Maintenance on Friday</strong>",
            "about": "<p id='about-text'>Ask the helpdesk.</p>",
        }}
    """
    svc = start_service(tmp_path, fakes, textwrap.dedent(config))
    try:
        page = await browser.new_page()
        await page.goto(svc.url)
        assert await page.title() == "Example Builds"
        assert (await page.inner_text(".brand")).strip() == "Example Builds"
        assert await page.get_attribute(".brand img", "src") == "/static/logo.png"
        assert await page.inner_text("#banner-text") == "Maintenance on Friday"
        assert await page.inner_text("#about-text") == "Ask the helpdesk."
        assert await page.inner_text("#operator-footer") == "Run by the Example University"
        # The operator's style.css wins over the built-in one; other files are still served.
        assert (
            await page.evaluate("getComputedStyle(document.body).backgroundColor") == "rgb(1, 2, 3)"
        )
        with urllib.request.urlopen(svc.url + "static/js/home.js") as r:
            assert r.headers["Content-Type"].startswith("text/javascript")
        with urllib.request.urlopen(svc.url + "static/logo.png") as r:
            assert r.read().startswith(b"\x89PNG")
        for path in ("static/../r2dservice_config.py", "static/%2e%2e/r2dservice_config.py"):
            try:
                urllib.request.urlopen(svc.url + path)
                pytest.fail(f"{path} was served")
            except urllib.error.HTTPError as e:
                assert e.code in (403, 404)
        await page.close()
    finally:
        svc.stop()
