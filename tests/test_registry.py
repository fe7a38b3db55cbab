"""Does an image exist? Against the real registry (open and with htpasswd auth), a
stand-in for the Bearer token flow, and the real local Docker engine."""

from __future__ import annotations

import base64
import json
import uuid

import pytest
from aiohttp import web

from r2dservice.registry import (
    DOCKER_HUB_AUTH_KEY,
    LocalImageChecker,
    RegistryError,
    RegistryImageChecker,
    auth_key,
    convert_to_hostname,
    credentials_for,
    parse_www_authenticate,
    registry_endpoint,
)
from tests.fakes.gitserver import BlackHole
from tests.support.registry import AuthRegistry, credential_helper, push_minimal_image
from tests.support.service import free_port


def docker_config(tmp_path, auths: dict) -> str:
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"auths": auths}))
    return str(path)


def basic_entry(user, password):
    return {"auth": base64.b64encode(f"{user}:{password}".encode()).decode()}


# --- pure parts ---------------------------------------------------------------


def test_parse_www_authenticate():
    scheme, params = parse_www_authenticate(
        'Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull"'
    )
    assert scheme == "bearer"
    assert params == {
        "realm": "https://auth.example/token",
        "service": "registry.example",
        "scope": "repository:a/b:pull",
    }
    assert parse_www_authenticate('Basic realm="x"') == ("basic", {"realm": "x"})


def test_credentials_for_forms():
    cfg = {
        "auths": {
            "reg.example:5000": basic_entry("u", "p:with:colons"),
            "https://other.example": {"username": "x", "password": "y"},
            "https://index.docker.io/v1/": basic_entry("hub", "pw"),
        }
    }
    assert credentials_for(cfg, "reg.example:5000") == ("u", "p:with:colons")
    assert credentials_for(cfg, "other.example") == ("x", "y")
    assert credentials_for(cfg, "registry-1.docker.io") == ("hub", "pw")
    assert credentials_for(cfg, "nope.example") is None
    assert credentials_for({}, "x") is None


# --- Docker Hub: names, keys, endpoint ------------------------------------------------


@pytest.mark.parametrize("host", ["", "docker.io", "index.docker.io", "registry-1.docker.io"])
def test_docker_hub_names(host):
    assert registry_endpoint(host) == "registry-1.docker.io"
    assert auth_key(host) == DOCKER_HUB_AUTH_KEY == "https://index.docker.io/v1/"


def test_other_registries_keep_their_names():
    assert registry_endpoint("ghcr.io") == "ghcr.io"
    assert auth_key("reg.example:5000") == "reg.example:5000"
    assert convert_to_hostname("https://reg.example:5000/v2/") == "reg.example:5000"
    assert convert_to_hostname("reg.example:5000") == "reg.example:5000"


@pytest.mark.parametrize(
    "key",
    [
        "https://index.docker.io/v1/",  # what docker login and buildx write
        "index.docker.io",
        "docker.io",
        "https://docker.io",
        "registry-1.docker.io",
        "https://registry-1.docker.io/v2/",
    ],
)
@pytest.mark.parametrize("host", ["", "docker.io", "index.docker.io", "registry-1.docker.io"])
def test_docker_hub_credentials_under_any_key(key, host):
    cfg = {"auths": {"ghcr.io": basic_entry("other", "x"), key: basic_entry("hub", "pw")}}
    assert credentials_for(cfg, host) == ("hub", "pw")


def test_the_exact_key_wins_over_older_forms():
    cfg = {
        "auths": {
            "docker.io": basic_entry("old", "x"),
            "https://index.docker.io/v1/": basic_entry("new", "y"),
            "https://reg.example:5000": basic_entry("legacy", "z"),
            "reg.example:5000": basic_entry("exact", "w"),
        }
    }
    assert credentials_for(cfg, "docker.io") == ("new", "y")
    assert credentials_for(cfg, "reg.example:5000") == ("exact", "w")
    assert credentials_for(cfg, "reg.example") is None  # another port is another registry


class RecordingChecker(RegistryImageChecker):
    """Answers HEAD like a registry wanting basic auth, and records what was asked."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.asked = []

    async def _head(self, url, headers):
        self.asked.append((url, headers.get("Authorization")))
        if "Authorization" not in headers:
            return 401, 'Basic realm="hub"'
        return 200, ""


@pytest.mark.parametrize(
    "image, url",
    [
        ("docker.io/org/img:t1", "https://registry-1.docker.io/v2/org/img/manifests/t1"),
        ("org/img:t1", "https://registry-1.docker.io/v2/org/img/manifests/t1"),
        ("docker.io/python:3", "https://registry-1.docker.io/v2/library/python/manifests/3"),
        ("index.docker.io/org/img", "https://registry-1.docker.io/v2/org/img/manifests/latest"),
    ],
)
async def test_docker_hub_images_are_checked_at_registry_1_with_the_push_login(
    tmp_path, image, url
):
    cfg = docker_config(tmp_path, {"https://index.docker.io/v1/": basic_entry("hub", "pw")})
    checker = RecordingChecker(docker_config_path=cfg)
    assert await checker.exists(image) is True
    assert checker.asked == [(url, None), (url, "Basic " + base64.b64encode(b"hub:pw").decode())]


# --- a config.json docker could not use either ------------------------------------------------


@pytest.mark.parametrize(
    "config, problem",
    [
        ([], "top level"),
        ({"auths": ["127.0.0.1:1"]}, '"auths"'),
        ({"auths": {"127.0.0.1:1": "dXNlcjpwdw=="}}, "must be a JSON object"),
        ({"auths": {"127.0.0.1:1": {"auth": "not base64!"}}}, "not base64"),
        ({"auths": {"127.0.0.1:1": {"auth": "bm9jb2xvbg=="}}}, "no colon"),  # "nocolon"
        ({"auths": {"127.0.0.1:1": {"auth": "/w=="}}}, "not base64"),  # not UTF-8
        ({"auths": {"127.0.0.1:1": {"auth": 42}}}, "must be a string"),
        ({"auths": {"127.0.0.1:1": {"username": 1, "password": "x"}}}, "must be strings"),
        ({"auths": {"127.0.0.1:1": {"username": "u", "password": ["x"]}}}, "must be strings"),
        ({"credHelpers": "nope"}, '"credHelpers"'),
        ({"credsStore": "../evil"}, "credential helper name"),
    ],
)
async def test_malformed_docker_config_is_a_registry_error(tmp_path, config, problem):
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    checker = RegistryImageChecker(docker_config_path=str(path))
    with pytest.raises(RegistryError) as e:
        await checker.exists("127.0.0.1:1/org/img:t")
    assert problem in str(e.value) and str(path) in str(e.value)


# --- the real registry, no auth ---------------------------------------------------


async def test_open_registry(infra):
    name = f"r2dtest-registry-{uuid.uuid4().hex[:8]}"
    await push_minimal_image(f"http://{infra['registry']}", name, "v1")
    checker = RegistryImageChecker(docker_config_path="/nonexistent/config.json")
    try:
        assert await checker.exists(f"{infra['registry']}/{name}:v1") is True
        assert await checker.exists(f"{infra['registry']}/{name}:v2") is False
        assert await checker.exists(f"{infra['registry']}/never-pushed-{name}:v1") is False
    finally:
        await checker.close()


# --- the real registry, htpasswd auth ------------------------------------------------


@pytest.fixture(scope="module")
def auth_registry(tmp_path_factory):
    reg = AuthRegistry(str(tmp_path_factory.mktemp("authreg")), {"alice": "s3cret-pw"})
    yield reg
    reg.stop()


async def test_basic_auth_with_the_push_credentials(auth_registry, tmp_path):
    await push_minimal_image(
        f"http://{auth_registry.host}", "team/app", "t1", ("alice", "s3cret-pw")
    )
    cfg = docker_config(tmp_path, {auth_registry.host: basic_entry("alice", "s3cret-pw")})
    checker = RegistryImageChecker(docker_config_path=cfg)
    try:
        assert await checker.exists(f"{auth_registry.host}/team/app:t1") is True
        assert await checker.exists(f"{auth_registry.host}/team/app:t2") is False
    finally:
        await checker.close()


@pytest.mark.parametrize("auths", [{}, "wrong"])
async def test_missing_or_wrong_credentials_are_reported(auth_registry, tmp_path, auths):
    if auths == "wrong":
        auths = {auth_registry.host: basic_entry("alice", "not-the-password")}
    checker = RegistryImageChecker(docker_config_path=docker_config(tmp_path, auths))
    try:
        with pytest.raises(RegistryError) as e:
            await checker.exists(f"{auth_registry.host}/team/app:t1")
    finally:
        await checker.close()
    assert "credentials" in str(e.value) and auth_registry.host in str(e.value)
    assert "not-the-password" not in str(e.value)


# --- the Bearer token flow --------------------------------------------------------------


@pytest.fixture
async def token_registry():
    """A registry that answers like Docker Hub / GHCR: 401 + Bearer challenge, a token
    service that wants basic credentials, manifests only with a valid token."""
    state = {"token_requests": 0, "heads": 0, "status": None}
    port = free_port()
    host = f"127.0.0.1:{port}"

    async def token(request):
        state["token_requests"] += 1
        if "token_body" in state:  # what a broken token service answers
            body, content_type = state["token_body"]
            return web.Response(text=body, content_type=content_type)
        auth = request.headers.get("Authorization", "")
        if auth != "Basic " + base64.b64encode(b"bob:tok-pass").decode():
            return web.json_response({"errors": [{"code": "UNAUTHORIZED"}]}, status=401)
        assert request.query["service"] == "test-registry"
        state["scope"] = request.query["scope"]
        return web.json_response({"token": "good-token", "expires_in": 300})

    async def manifest(request):
        state["heads"] += 1
        if state["status"]:
            return web.Response(status=state["status"])
        if request.headers.get("Authorization") != "Bearer good-token":
            return web.Response(
                status=401,
                headers={
                    "WWW-Authenticate": f'Bearer realm="http://{host}/token",service="test-registry",scope="repository:{request.match_info["name"]}:pull"'
                },
            )
        assert "application/vnd.oci.image.index.v1+json" in request.headers["Accept"]
        return web.Response(status=200 if request.match_info["tag"] == "present" else 404)

    app = web.Application()
    app.router.add_get("/token", token)
    app.router.add_route("HEAD", "/v2/{name:.+}/manifests/{tag}", manifest)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    yield host, state
    await runner.cleanup()


async def test_bearer_token_flow_and_token_reuse(token_registry, tmp_path):
    host, state = token_registry
    cfg = docker_config(tmp_path, {host: basic_entry("bob", "tok-pass")})
    checker = RegistryImageChecker(docker_config_path=cfg)
    try:
        assert await checker.exists(f"{host}/org/img:present") is True
        assert await checker.exists(f"{host}/org/img:absent") is False
    finally:
        await checker.close()
    assert state["scope"] == "repository:org/img:pull"
    assert state["token_requests"] == 1  # the token is reused until it expires


async def test_token_service_refusal_is_reported(token_registry, tmp_path):
    host, _ = token_registry
    cfg = docker_config(tmp_path, {host: basic_entry("bob", "wrong")})
    checker = RegistryImageChecker(docker_config_path=cfg)
    try:
        with pytest.raises(RegistryError, match="token service"):
            await checker.exists(f"{host}/org/img:present")
    finally:
        await checker.close()


@pytest.mark.parametrize(
    "body, content_type",
    [
        ('["good-token"]', "application/json"),
        ('"good-token"', "application/json"),
        ("<html><body>Sign in</body></html>", "text/html"),
        ('{"errors": []}', "application/json"),
        ('{"token": 42}', "application/json"),
        ('{"token": null, "access_token": ""}', "application/json"),
        ("", "application/json"),
    ],
)
async def test_token_answers_that_are_not_a_token_are_reported(
    token_registry, tmp_path, body, content_type
):
    host, state = token_registry
    state["token_body"] = (body, content_type)
    cfg = docker_config(tmp_path, {host: basic_entry("bob", "tok-pass")})
    checker = RegistryImageChecker(docker_config_path=cfg)
    try:
        with pytest.raises(RegistryError) as e:
            await checker.exists(f"{host}/org/img:present")
    finally:
        await checker.close()
    assert "token service" in str(e.value) and host in str(e.value)


async def test_odd_token_lifetimes_do_not_break_the_check(token_registry, tmp_path):
    host, state = token_registry
    state["token_body"] = ('{"token": "good-token", "expires_in": "soon"}', "application/json")
    cfg = docker_config(tmp_path, {host: basic_entry("bob", "tok-pass")})
    checker = RegistryImageChecker(docker_config_path=cfg)
    try:
        assert await checker.exists(f"{host}/org/img:present") is True
    finally:
        await checker.close()


async def test_a_registry_that_does_not_answer_is_a_timeout(tmp_path):
    """aiohttp raises asyncio.TimeoutError, which is not the builtin TimeoutError
    before Python 3.11: both must become a RegistryError."""
    with BlackHole() as hole:
        checker = RegistryImageChecker(docker_config_path=docker_config(tmp_path, {}), timeout=0.5)
        try:
            with pytest.raises(RegistryError, match="did not answer in 0.5s"):
                await checker.exists(f"127.0.0.1:{hole.port}/org/img:t")
        finally:
            await checker.close()


async def test_registry_errors_are_not_not_found(token_registry, tmp_path):
    host, state = token_registry
    state["status"] = 500
    checker = RegistryImageChecker(docker_config_path=docker_config(tmp_path, {}))
    try:
        with pytest.raises(RegistryError, match="HTTP 500"):
            await checker.exists(f"{host}/org/img:present")
        with pytest.raises(RegistryError, match="unreachable"):
            await checker.exists(f"127.0.0.1:{free_port()}/org/img:x")
    finally:
        await checker.close()


async def test_unreadable_docker_config_is_reported(tmp_path):
    bad = tmp_path / "config.json"
    bad.write_text("{not json")
    checker = RegistryImageChecker(docker_config_path=str(bad))
    with pytest.raises(RegistryError, match="config.json"):
        await checker.exists("127.0.0.1:1/x:y")


# --- credential helpers (credHelpers / credsStore), as docker runs them ----------------------


async def test_cred_helpers_serve_check_as_they_serve_push(auth_registry, tmp_path, monkeypatch):
    await push_minimal_image(
        f"http://{auth_registry.host}", "team/app", "t1", ("alice", "s3cret-pw")
    )
    log = credential_helper(
        tmp_path, monkeypatch, "stub", {auth_registry.host: ("alice", "s3cret-pw")}
    )
    path = tmp_path / "config.json"
    path.write_text(
        json.dumps(
            {
                # a helper for this registry wins over "auths" and over credsStore
                "auths": {auth_registry.host: basic_entry("alice", "wrong")},
                "credHelpers": {auth_registry.host: "stub"},
                "credsStore": "absent",
            }
        )
    )
    checker = RegistryImageChecker(docker_config_path=str(path))
    try:
        assert await checker.exists(f"{auth_registry.host}/team/app:t1") is True
    finally:
        await checker.close()
    assert log.read_text().split() == ["get", auth_registry.host]


async def test_creds_store_is_asked_with_dockers_server_address(tmp_path, monkeypatch):
    log = credential_helper(
        tmp_path, monkeypatch, "store", {"https://index.docker.io/v1/": ("hub", "pw")}
    )
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"credsStore": "store"}))
    checker = RecordingChecker(docker_config_path=str(path))
    assert await checker.exists("docker.io/org/img:t") is True
    assert checker.asked[-1][1] == "Basic " + base64.b64encode(b"hub:pw").decode()
    assert log.read_text().split() == ["get", "https://index.docker.io/v1/"]
    # a registry the store has nothing for: no credentials, as docker has none
    with pytest.raises(RegistryError, match="has none for 'reg.example'"):
        await RecordingChecker(docker_config_path=str(path)).exists("reg.example/org/img:t")


@pytest.mark.parametrize(
    "helper, problem",
    [
        ("missing", "cannot run the credential helper docker-credential-missing"),
        ("garbage", "without the JSON"),
        ("broken", "exit 3"),
        ("identity", "identity token"),
    ],
)
async def test_credential_helper_failures_are_reported(tmp_path, monkeypatch, helper, problem):
    credential_helper(tmp_path, monkeypatch, "garbage", {}, script='echo "not json"')
    credential_helper(
        tmp_path, monkeypatch, "broken", {}, script='echo "keychain locked" >&2; exit 3'
    )
    credential_helper(tmp_path, monkeypatch, "identity", {"h.example": ("<token>", "refresh")})
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"credHelpers": {"h.example": helper}}))
    checker = RecordingChecker(docker_config_path=str(path))
    with pytest.raises(RegistryError) as e:
        await checker.exists("h.example/org/img:t")
    assert problem in str(e.value) and str(path) in str(e.value)
    assert "refresh" not in str(e.value)


# --- the local Docker engine ------------------------------------------------------------


async def test_local_engine(infra):
    checker = LocalImageChecker()
    try:
        assert await checker.exists(infra["base_image"]) is True
        assert await checker.exists(f"r2dtest-absent-{uuid.uuid4().hex[:8]}:x") is False
    finally:
        await checker.close()


async def test_local_engine_unreachable(tmp_path):
    checker = LocalImageChecker(docker_host=f"unix://{tmp_path}/no.sock")
    try:
        with pytest.raises(RegistryError, match="unreachable"):
            await checker.exists("x:y")
    finally:
        await checker.close()


# --- through the service: what callers are told, what the operator's log says -----------------


async def test_a_refused_check_tells_callers_no_server_path(tmp_path, git_server, http):
    from urllib.parse import quote

    from tests.fakes.gitserver import make_repo
    from tests.support.service import ServiceProcess

    (tmp_path / "registry").mkdir()
    registry = AuthRegistry(str(tmp_path / "registry"), {"pusher": "push-s3cret"})
    config = tmp_path / "secret-folder-7f3a" / "config.json"
    config.parent.mkdir()
    config.write_text(json.dumps({"auths": {registry.host: basic_entry("pusher", "wrong")}}))
    make_repo(git_server.root / "checked", {"Dockerfile": "FROM scratch\n"})
    svc = ServiceProcess(
        str(tmp_path),
        f"""
        c.R2DService.auth_enabled = False
        c.R2DService.image_prefix = "{registry.host}/r2dtest-"
        c.RegistryImageChecker.docker_config_path = {str(config)!r}
        c.GitRepoProvider.allow_loopback = True
        """,
    ).start()
    try:
        spec = f"git/{quote(git_server.url('checked'), safe='')}/main"
        async with http.post(svc.url + "api/builds", json={"spec": spec}) as r:
            status, body = r.status, await r.json()
        assert status == 503, body
        assert "refused the credentials" in body["message"]
        assert "the service's Docker config.json" in body["message"]
        async with http.get(svc.url + "health") as r:
            images = next(c for c in (await r.json())["checks"] if c["service"] == "images")
        assert images["ok"] is False and "refused the credentials" in images["message"]
        assert "secret-folder-7f3a" not in json.dumps([body, images])
    finally:
        svc.stop()
        registry.stop()
    # The operator reads where the credentials are looked for.
    assert (
        f"refused the credentials (HTTP 401); check the credentials for {registry.host!r} in {config}"
        in svc.log()
    )
