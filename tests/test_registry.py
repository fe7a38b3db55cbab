"""Does an image exist? Against the real registry (open and with htpasswd auth), a
stand-in for the Bearer token flow, and the real local Docker engine."""
from __future__ import annotations

import base64
import json
import uuid

import pytest
from aiohttp import web

from r2dservice.registry import (
    LocalImageChecker,
    RegistryError,
    RegistryImageChecker,
    credentials_for,
    parse_www_authenticate,
)
from tests.support.registry import AuthRegistry, push_minimal_image
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
    await push_minimal_image(f"http://{auth_registry.host}", "team/app", "t1", ("alice", "s3cret-pw"))
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
                headers={"WWW-Authenticate": f'Bearer realm="http://{host}/token",service="test-registry",scope="repository:{request.match_info["name"]}:pull"'},
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
