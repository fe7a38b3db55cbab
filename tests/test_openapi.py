"""r2dservice/openapi.yaml: a valid OpenAPI document that says what the service does.

- the document validates (openapi-spec-validator) and its examples fit its schemas;
- every JSON route of the app is documented with the methods it implements, and
  every documented path is a route;
- a real service process (auth off; stand-ins for GitHub, the Docker engine and the
  builder, so nothing leaves 127.0.0.1 and no Docker is needed) answers every request
  below with a status the document lists for that operation, a documented content
  type, and a body that validates against the documented schema; event streams are
  checked frame by frame against the SSE contract and `BuildEvent`.
"""

from __future__ import annotations

import asyncio
import copy
import json
import os
import time

import aiohttp
import pytest
import yaml

from tests.fakes.forge import fake_sha
from tests.support.service import REPO
from tests.support.standins import fakes, start_service  # noqa: F401 (a fixture)

try:
    import jsonschema
    import referencing
    import referencing.jsonschema
    from openapi_spec_validator import validate as validate_openapi
except ImportError as e:  # pragma: no cover - a clear failure, not a skip
    raise ImportError(
        f"{e}: install the test extra (pip install -e '.[test]'), which brings "
        "openapi-spec-validator and jsonschema"
    ) from None

OPENAPI_FILE = os.path.join(REPO, "r2dservice", "openapi.yaml")
SPEC_URI = "urn:r2dservice:openapi"
METHODS = ("get", "put", "post", "delete", "options", "head", "patch")


def load_doc() -> dict:
    with open(OPENAPI_FILE, encoding="utf-8") as f:
        return yaml.safe_load(f)


DOC = load_doc()
_REGISTRY = referencing.Registry().with_resource(
    SPEC_URI,
    referencing.Resource.from_contents(
        DOC, default_specification=referencing.jsonschema.DRAFT202012
    ),
)


def _absolute_refs(node):
    if isinstance(node, dict):
        return {
            k: SPEC_URI + v
            if k == "$ref" and isinstance(v, str) and v.startswith("#")
            else _absolute_refs(v)
            for k, v in node.items()
        }
    if isinstance(node, list):
        return [_absolute_refs(v) for v in node]
    return node


def schema_validator(schema: dict) -> jsonschema.Draft202012Validator:
    """A validator for a schema of the document; its "#/..." refs resolve in the document."""
    return jsonschema.Draft202012Validator(_absolute_refs(schema), registry=_REGISTRY)


def component(name: str) -> jsonschema.Draft202012Validator:
    return schema_validator({"$ref": f"#/components/schemas/{name}"})


def deref(obj: dict) -> dict:
    while "$ref" in obj:
        node = DOC
        for part in obj["$ref"].lstrip("#/").split("/"):
            node = node[part]
        obj = node
    return obj


def assert_valid(validator: jsonschema.Draft202012Validator, instance, what: str) -> None:
    errors = sorted(validator.iter_errors(instance), key=lambda e: list(e.absolute_path))
    assert not errors, (
        f"{what} does not match the document:\n"
        + "\n".join(
            f"  at {'/'.join(map(str, e.absolute_path)) or '(root)'}: {e.message}" for e in errors
        )
        + f"\n  instance: {json.dumps(instance)[:2000]}"
    )


# --- the document itself ----------------------------------------------------------


def test_document_is_valid_openapi():
    validate_openapi(DOC)
    assert DOC["openapi"].startswith("3.1")


def test_schema_examples_fit_their_schemas():
    checked = 0
    for name, schema in DOC["components"]["schemas"].items():
        for example in schema.get("examples", []):
            assert_valid(component(name), example, f"example of {name}")
            checked += 1
    for path, item in DOC["paths"].items():
        for method in METHODS:
            body = item.get(method, {}).get("requestBody")
            if not body:
                continue
            for media in deref(body)["content"].values():
                for ex in media.get("examples", {}).values():
                    assert_valid(
                        schema_validator(media["schema"]), ex["value"], f"{method} {path} example"
                    )
                    checked += 1
    assert checked >= 5


def test_no_registry_host_but_the_test_one():
    """Examples use 127.0.0.1:5000, the development registry, and no other host:port."""
    import re

    text = open(OPENAPI_FILE, encoding="utf-8").read()
    hosts = set(re.findall(r"\b[\w.-]+:\d{2,5}/", text))
    assert hosts <= {"127.0.0.1:5000/"}, hosts


def app_routes() -> dict[str, set[str]]:
    """The app's routes that answer JSON or event streams (pages excluded), as
    OpenAPI path templates -> the methods their handler implements."""
    from tornado.web import RequestHandler

    from r2dservice.app import R2DService
    from r2dservice.handlers import base

    app = R2DService(auth_enabled=False, base_url="/")
    page_handler = getattr(base, "PageHandler", None)
    out = {}
    for pattern, handler, *_ in app.routes():
        if page_handler is not None and issubclass(handler, page_handler):
            continue
        if handler.__name__ == "NotFoundHandler":  # the JSON 404 for other api/ paths
            continue
        template = pattern
        for name in ("provider", "spec", "build_id", "fmt"):
            template = template.replace(f"(?P<{name}>[^/]+)", f"{{{name}}}")
            template = template.replace(f"(?P<{name}>.+)", f"{{{name}}}")
            template = template.replace(f"(?P<{name}>.*)", f"{{{name}}}")
        if "(?P<fmt>yaml|json)" in template:
            template = template.replace("(?P<fmt>yaml|json)", "yaml")
        template = template.replace("\\.", ".")
        assert "(" not in template, f"route {pattern!r}: teach app_routes() its parameters"
        out[template] = {
            m for m in METHODS if getattr(handler, m) is not getattr(RequestHandler, m)
        }
    return out


def test_every_route_is_documented_with_its_methods():
    routes = app_routes()
    documented = {p: {m for m in METHODS if m in item} for p, item in DOC["paths"].items()}
    undocumented = {p: m for p, m in routes.items() if p not in documented}
    assert not undocumented, f"routes missing from r2dservice/openapi.yaml: {undocumented}"
    not_routes = set(documented) - set(routes)
    assert not not_routes, f"documented paths the app does not serve: {not_routes}"
    for path, methods in routes.items():
        assert methods == documented[path], (
            f"{path}: handler has {methods}, document {documented[path]}"
        )


def test_every_operation_documents_its_responses():
    for path, item in DOC["paths"].items():
        for method in METHODS:
            op = item.get(method)
            if op is None:
                continue
            assert op.get("operationId") and op.get("summary"), f"{method} {path}"
            for status, response in op["responses"].items():
                response = deref(response)
                assert response.get("description"), f"{method} {path} {status}"
                for media, content in response.get("content", {}).items():
                    if media == "application/json":
                        assert "schema" in content, f"{method} {path} {status}"


def test_package_data_installs_the_document():
    """setup.py's package_data ships r2dservice/openapi.yaml in the wheel."""
    import ast

    tree = ast.parse(open(os.path.join(REPO, "setup.py")).read())
    for node in ast.walk(tree):
        if isinstance(node, ast.keyword) and node.arg == "package_data":
            patterns = ast.literal_eval(node.value)["r2dservice"]
            break
    else:
        pytest.fail("setup.py has no package_data")
    import fnmatch

    assert any(fnmatch.fnmatch("openapi.yaml", p) for p in patterns), patterns


def paths_without_security() -> dict:
    paths = copy.deepcopy(DOC["paths"])
    for item in paths.values():
        for operation in item.values():
            if isinstance(operation, dict):
                operation.pop("security", None)
    return paths


def test_openapi_handler_serves_the_document_with_its_prefix():
    """The handler the lead wires at <prefix>api/openapi.yaml, through tornado."""
    from tornado.testing import AsyncHTTPTestCase  # noqa: F401  (tornado is installed)
    from tornado.web import Application

    from r2dservice.handlers.openapi import OpenAPIHandler

    async def fetch_both():
        from tornado.httpclient import AsyncHTTPClient
        from tornado.httpserver import HTTPServer
        from tornado.netutil import bind_sockets

        app = Application(
            [(r"/services/r2d/api/openapi\.(?P<fmt>yaml|json)", OpenAPIHandler)],
            base_url="/services/r2d/",
            authenticator=None,
        )
        sockets = bind_sockets(0, "127.0.0.1")
        server = HTTPServer(app)
        server.add_sockets(sockets)
        port = sockets[0].getsockname()[1]
        client = AsyncHTTPClient()
        try:
            y = await client.fetch(f"http://127.0.0.1:{port}/services/r2d/api/openapi.yaml")
            j = await client.fetch(f"http://127.0.0.1:{port}/services/r2d/api/openapi.json")
        finally:
            server.stop()
        return y, j

    y, j = asyncio.run(fetch_both())
    assert y.headers["Content-Type"].startswith("application/yaml")
    assert j.headers["Content-Type"].startswith("application/json")
    served_yaml = yaml.safe_load(y.body)
    served_json = json.loads(j.body)
    assert served_yaml == served_json
    assert served_yaml["servers"] == [{"url": "/services/r2d", "description": "this service"}]
    # with auth off, nothing says credentials are needed
    assert "security" not in served_yaml and "securitySchemes" not in served_yaml["components"]
    assert served_yaml["paths"] == paths_without_security()
    validate_openapi(served_yaml)


# --- the live service ---------------------------------------------------------------

# The stand-ins live in tests/support/standins.py.


@pytest.fixture(scope="module")
def service(tmp_path_factory, fakes):
    svc = start_service(
        tmp_path_factory.mktemp("openapi-service"), fakes, "c.R2DService.auth_enabled = False\n"
    )
    yield svc
    svc.stop()


@pytest.fixture(scope="module")
def auth_service(tmp_path_factory, fakes):
    """Authentication on, against a stand-in of the hub's API (tokens in FakeServers.HUB_USERS)."""
    svc = start_service(
        tmp_path_factory.mktemp("openapi-auth-service"),
        fakes,
        'c.R2DService.base_url = "/"\nc.HubOAuth.cache_max_age = 0\n',
        env={
            "JUPYTERHUB_SERVICE_NAME": "binder",
            "JUPYTERHUB_API_TOKEN": "service-secret",
            "JUPYTERHUB_API_URL": fakes.hub_api_url,
        },
    )
    yield svc
    svc.stop()


def operation(path: str, method: str) -> dict:
    assert path in DOC["paths"], f"{path} is not documented"
    op = DOC["paths"][path].get(method.lower())
    assert op is not None, f"{method} {path} is not documented"
    return op


def check_response(path: str, method: str, status: int, content_type: str, body: bytes):
    """The status is listed for the operation, the content type is documented for it,
    and a JSON body validates against the documented schema. Returns the parsed body."""
    responses = operation(path, method)["responses"]
    assert str(status) in responses, (
        f"{method} {path} answered {status}, which the document does not list "
        f"({sorted(responses)}): {body[:500]!r}"
    )
    response = deref(responses[str(status)])
    content = response.get("content")
    if not content:
        return body
    media = content_type.split(";")[0].strip()
    assert media in content, (
        f"{method} {path} {status}: content type {media}, document {list(content)}"
    )
    if media == "application/json":
        data = json.loads(body)
        assert_valid(schema_validator(content[media]["schema"]), data, f"{method} {path} {status}")
        return data
    return body.decode()


class Client:
    def __init__(self, session: aiohttp.ClientSession, base: str):
        self.session = session
        self.base = base

    async def call(self, method: str, template: str, path: str | None = None, **kw):
        url = self.base + (path or template).lstrip("/")
        async with self.session.request(method, url, **kw) as r:
            body = await r.read()
            data = check_response(
                template, method, r.status, r.headers.get("Content-Type", ""), body
            )
            return r.status, data, r.headers

    async def error(self, method, template, path, status, **kw):
        got, data, _ = await self.call(method, template, path, **kw)
        assert got == status, (got, data)
        assert data["status"] == status, data
        assert data["message"] and "Traceback" not in data["message"]
        return data

    async def stream(self, template: str, path: str, headers=None, until_events=None, seconds=30):
        """Read an event stream to its end (or `until_events` events); check every
        frame against the SSE contract and every event against BuildEvent."""
        frames, buf = [], b""
        url = self.base + path.lstrip("/")
        async with self.session.get(
            url,
            headers={"Accept": "text/event-stream", **(headers or {})},
            timeout=aiohttp.ClientTimeout(total=seconds),
        ) as r:
            status, ctype = r.status, r.headers.get("Content-Type", "")
            if not ctype.startswith("text/event-stream"):
                return status, check_response(template, "GET", status, ctype, await r.read()), []
            check_response(template, "GET", status, ctype, b"")
            media = deref(operation(template, "GET")["responses"][str(status)])["content"][
                "text/event-stream"
            ]
            stream_event = schema_validator(media["schema"])
            assert r.headers.get("Cache-Control") == "no-cache"
            async for chunk in r.content.iter_any():
                buf += chunk
                while b"\n\n" in buf:
                    frame, buf = buf.split(b"\n\n", 1)
                    frames.append(frame.decode())
                events = [f for f in frames if not f.startswith(":")]
                if until_events and len(events) >= until_events:
                    break
        events = parse_frames(frames)
        for event in events:
            assert_valid(stream_event, event["_sse"], f"GET {template} {status} event")
        return status, events, frames


BUILD_EVENT = component("BuildEvent")


def parse_frames(frames: list[str]) -> list[dict]:
    """Each frame is `:keepalive`, or `id: <n>` + one `data:` line of a BuildEvent
    (`_id` None when the id line is missing; assert_whole_log() requires ids)."""
    events = []
    for frame in frames:
        if frame.startswith(":"):
            assert frame == ":keepalive", frame
            continue
        lines = frame.split("\n")
        event_id = int(lines.pop(0)[len("id: ") :]) if lines[0].startswith("id: ") else None
        assert len(lines) == 1 and lines[0].startswith("data: "), frame
        data = lines[0][len("data: ") :]
        event = json.loads(data)
        assert_valid(BUILD_EVENT, event, "event")
        event["_id"] = event_id
        # as an SSE client delivers it (StreamEvent)
        event["_sse"] = {"event": "message", "data": data}
        if event_id is not None:
            event["_sse"]["id"] = str(event_id)
        events.append(event)
    return events


def assert_whole_log(events: list[dict], first_id: int = 1) -> None:
    assert [e["_id"] for e in events] == list(range(first_id, first_id + len(events)))
    assert events[-1]["phase"] in ("ready", "failed")
    assert all(e["phase"] not in ("ready", "failed") for e in events[:-1])


@pytest.fixture
async def client(service):
    async with aiohttp.ClientSession() as session:
        yield Client(session, service.url)


async def test_service_routes(client):
    status, versions, _ = await client.call("GET", "/versions")
    assert versions["builder"]["class"] == "ScriptedBuilder"
    status, health, _ = await client.call("GET", "/health")
    assert status == 200 and health["ok"], health
    status, _, _ = await client.call("HEAD", "/health")
    assert status == 200
    status, metrics, headers = await client.call("GET", "/metrics")
    assert "r2dservice_builds_running" in metrics
    status, providers, _ = await client.call("GET", "/api/repoproviders")
    assert [p["id"] for p in providers][:4] == ["gh", "gl", "git", "gist"]
    assert {"zenodo", "figshare", "hydroshare", "dataverse", "ckan"} <= {p["id"] for p in providers}
    status, listing, _ = await client.call("GET", "/api/builds")
    assert status == 200


@pytest.mark.parametrize(
    "body, why",
    [
        (b"{not json", "not valid JSON"),
        (b"[1, 2]", "JSON object"),
        (b"", "spec"),
        (b"{}", "spec"),
        (b'{"spec": ""}', "spec"),
        (b'{"spec": 5}', "spec"),
        (b'{"spec": "nope"}', "<provider>/<spec>"),
        (b'{"spec": "zz/a/b/main"}', "unknown provider"),
        (b'{"spec": "gh/only-owner"}', "gh"),
        (b'{"provider": "gh", "spec": "octo"}', "gh"),
        (b'{"spec": "git/file%3A%2F%2F%2Fetc/main"}', "file"),
    ],
)
async def test_create_build_bad_bodies(client, body, why):
    data = await client.error(
        "POST", "/api/builds", None, 400, data=body, headers={"Content-Type": "application/json"}
    )
    assert why.lower() in data["message"].lower(), data


async def test_unknown_things_are_404(client):
    await client.error("POST", "/api/builds", None, 404, json={"spec": "gh/octo/missing/main"})
    await client.error("GET", "/api/builds/{build_id}", "/api/builds/nope", 404)
    await client.error("POST", "/api/builds/{build_id}/cancel", "/api/builds/nope/cancel", 404)
    await client.error("GET", "/api/builds/{build_id}/log", "/api/builds/nope/log", 404)
    status, data, _ = await client.stream(
        "/api/builds/{build_id}/events", "/api/builds/nope/events"
    )
    assert status == 404 and data["status"] == 404


async def test_image_lookup(client):
    t = "/api/images/{provider}/{spec}"
    await client.error("GET", t, "/api/images/zz/a/b/main", 400)
    await client.error("GET", t, "/api/images/gh/octo", 400)
    await client.error("GET", t, "/api/images/gh/octo/missing/main", 404)
    await client.error("GET", t, "/api/images/gh/octo/broken/main", 503)
    _, image, _ = await client.call("GET", t, "/api/images/gh/octo/quick/main")
    assert image["exists"] is False and image["resolved_ref"] == fake_sha("quick")
    assert image["image_name"].startswith("r2d-openapi-gh-octo-quick")
    _, image, _ = await client.call("GET", t, "/api/images/gh/octo/built/HEAD")
    assert image["exists"] is True and image["build_id"] is None


async def test_a_build_from_post_to_ready(client):
    status, build, _ = await client.call(
        "POST", "/api/builds", json={"provider": "gh", "spec": "octo/quick/main"}
    )
    assert status in (200, 201) and build["provider"] == "gh" and build["spec"] == "octo/quick/main"
    status, events, frames = await client.stream(
        "/api/builds/{build_id}/events", build["links"]["events"]
    )
    assert status == 200
    assert_whole_log(events)
    ready = events[-1]
    assert ready["phase"] == "ready" and ready["imageName"] == build["image_name"]
    for field in (
        "image",
        "repo_url",
        "binder_ref_url",
        "binder_request",
        "binder_persistent_request",
    ):
        assert field in ready, field
    assert {"fetching", "unknown", "building", "pushing", "built"} <= {e["phase"] for e in events}
    _, done, _ = await client.call("GET", "/api/builds/{build_id}", build["links"]["self"])
    assert done["state"] == "ready" and done["finished"] >= done["started"] >= done["created"]
    assert done["last_event_id"] == len(events)
    _, log, _ = await client.call("GET", "/api/builds/{build_id}/log", build["links"]["log"])
    assert log == "".join(e["message"] for e in events)
    await client.error("POST", "/api/builds/{build_id}/cancel", build["links"]["cancel"], 409)
    # Resume after an id: only the events after it.
    for kw in (
        {"headers": {"Last-Event-ID": "3"}},
        {"path": build["links"]["events"] + "?last_event_id=3"},
    ):
        path = kw.get("path", build["links"]["events"])
        _, rest, _ = await client.stream(
            "/api/builds/{build_id}/events", path, headers=kw.get("headers")
        )
        assert [e["_id"] for e in rest] == list(range(4, len(events) + 1))
    _, listing, _ = await client.call("GET", "/api/builds", "/api/builds?state=ready")
    assert build["id"] in [b["id"] for b in listing["builds"]]
    assert all(b["state"] == "ready" for b in listing["builds"])


async def test_a_failed_build(client):
    status, build, _ = await client.call("POST", "/api/builds", json={"spec": "gh/octo/fail/main"})
    _, events, _ = await client.stream("/api/builds/{build_id}/events", build["links"]["events"])
    assert_whole_log(events)
    assert events[-1]["phase"] == "failed" and "nothing to build" in events[-1]["message"]
    _, done, _ = await client.call("GET", "/api/builds/{build_id}", build["links"]["self"])
    assert done["state"] == "failed"


async def test_queue_join_keepalive_cancel(client):
    status, slow, _ = await client.call("POST", "/api/builds", json={"spec": "gh/octo/slow/main"})
    assert status == 201 and slow["state"] == "running"
    status, joined, _ = await client.call("POST", "/api/builds", json={"spec": "gh/octo/slow/main"})
    assert status == 200 and joined["id"] == slow["id"]
    status, queued, _ = await client.call(
        "POST", "/api/builds", json={"spec": "gh/octo/slow2/main"}
    )
    assert status == 201 and queued["state"] == "queued"
    _, events, _ = await client.stream(
        "/api/builds/{build_id}/events", queued["links"]["events"], until_events=1
    )
    assert (
        events[0]["phase"] == "waiting"
        and events[0]["position"] == 1
        and events[0]["queue_length"] >= 1
    )
    _, listing, _ = await client.call(
        "GET", "/api/builds", "/api/builds?state=queued&state=running"
    )
    assert {slow["id"], queued["id"]} <= {b["id"] for b in listing["builds"]}
    _, image, _ = await client.call(
        "GET", "/api/images/{provider}/{spec}", "/api/images/gh/octo/slow/main"
    )
    assert image["build_id"] == slow["id"]
    # The running build idles: keepalives until the stream is left.
    _, events, frames = await client.stream(
        "/api/builds/{build_id}/events", slow["links"]["events"], until_events=3
    )
    t0 = time.monotonic()
    async with client.session.get(
        client.base + slow["links"]["events"].lstrip("/"),
        headers={"Last-Event-ID": str(len(events))},
    ) as r:
        first = await asyncio.wait_for(r.content.readuntil(b"\n\n"), 10)
    assert first == b":keepalive\n\n" and time.monotonic() - t0 < 5
    # Cancel both: the queued one at once, the running one moments later.
    status, cancelled, _ = await client.call(
        "POST", "/api/builds/{build_id}/cancel", queued["links"]["cancel"]
    )
    assert status == 200 and cancelled["state"] == "cancelled"
    status, cancelling, _ = await client.call(
        "POST", "/api/builds/{build_id}/cancel", slow["links"]["cancel"]
    )
    assert status == 202
    for b in (queued, slow):
        _, events, _ = await client.stream("/api/builds/{build_id}/events", b["links"]["events"])
        assert_whole_log(events)
        assert events[-1]["phase"] == "failed" and events[-1]["cancelled"] is True
        _, done, _ = await client.call("GET", "/api/builds/{build_id}", b["links"]["self"])
        assert done["state"] == "cancelled"


async def test_binderhub_stream(client):
    t = "/build/{provider}/{spec}"
    status, events, _ = await client.stream(t, "/build/gh/octo/quick/main?build_only=true")
    assert status == 200
    assert events[-1]["phase"] == "ready" and events[-1]["imageName"].startswith("r2d-openapi-")
    status, events, _ = await client.stream(t, "/build/gh/octo/built/main?build_only=true")
    assert status == 200 and [e["phase"] for e in events] == ["ready"]
    assert events[0]["binder_persistent_request"] == f"v2/gh/octo/built/{fake_sha('built')}"
    for path, code in (
        ("/build/zz/a/b/main", 400),
        ("/build/gh/octo/missing/main", 404),
        ("/build/gh/octo/broken/main", 503),
    ):
        status, events, _ = await client.stream(t, path)
        assert status == 200 and len(events) == 1, (path, events)
        assert events[0]["phase"] == "failed" and events[0]["status"] == code, (path, events)


async def test_already_built_answer(client):
    status, build, _ = await client.call("POST", "/api/builds", json={"spec": "gh/octo/built/main"})
    assert status == 200 and build["state"] == "ready" and build["last_event_id"] == 1


async def test_already_built_answer_has_no_dead_links(client):
    """No build ran for an image found in the registry, but the answer is a resource."""
    _, build, _ = await client.call("POST", "/api/builds", json={"spec": "gh/octo/built/main"})
    _, again, _ = await client.call("GET", "/api/builds/{build_id}", build["links"]["self"])
    assert again["id"] == build["id"] and again["state"] == "ready"
    _, events, _ = await client.stream("/api/builds/{build_id}/events", build["links"]["events"])
    assert [e["phase"] for e in events] == ["ready"] and events[0]["imageName"] == build[
        "image_name"
    ]
    _, text, _ = await client.call("GET", "/api/builds/{build_id}/log", build["links"]["log"])
    assert text == "Done! Found built image\n"
    _, listing, _ = await client.call("GET", "/api/builds")
    assert build["id"] in [b["id"] for b in listing["builds"]]
    await client.error("POST", "/api/builds/{build_id}/cancel", build["links"]["cancel"], 409)


@pytest.fixture
async def auth_client(auth_service):
    async with aiohttp.ClientSession() as session:
        yield Client(session, auth_service.url)


# Every operation that needs credentials, with a path to call it on.
AUTHENTICATED = [
    ("GET", "/api/builds", None),
    ("POST", "/api/builds", None),
    ("GET", "/api/builds/{build_id}", "/api/builds/nope"),
    ("POST", "/api/builds/{build_id}/cancel", "/api/builds/nope/cancel"),
    ("POST", "/api/builds/{build_id}/launch", "/api/builds/nope/launch"),
    ("GET", "/api/builds/{build_id}/log", "/api/builds/nope/log"),
    ("GET", "/api/builds/{build_id}/events", "/api/builds/nope/events"),
    ("GET", "/api/images/{provider}/{spec}", "/api/images/gh/octo/quick/main"),
]


def test_document_marks_what_needs_credentials():
    open_paths = {"/health", "/versions", "/metrics", "/api/openapi.yaml", "/api/repoproviders"}
    for path, item in DOC["paths"].items():
        for method in METHODS:
            if method not in item:
                continue
            security = item[method].get("security", DOC["security"])
            needs = bool(security) and {} not in security
            assert needs == (path not in open_paths), (method, path)
    assert {(m, t) for m, t, _ in AUTHENTICATED} | {("GET", "/build/{provider}/{spec}")} == {
        (m.upper(), p)
        for p, item in DOC["paths"].items()
        for m in METHODS
        if m in item and p not in open_paths
    }


@pytest.mark.parametrize(
    "headers, status, words",
    [
        ({}, 403, "Authentication required"),
        ({"Authorization": "Bearer nobody-knows-it"}, 403, "does not accept this token"),
        ({"Authorization": "token mallory-token"}, 403, "may not use this service"),
        ({"Authorization": "Bearer broken-token"}, 503, "JupyterHub"),
    ],
)
async def test_refusals_are_documented_errors(auth_client, headers, status, words):
    for method, template, path in AUTHENTICATED:
        data = await auth_client.error(method, template, path, status, headers=headers)
        assert words in data["message"], (method, template, data)
    got, events, _ = await auth_client.stream(
        "/build/{provider}/{spec}", "/build/gh/octo/quick/main", headers
    )
    assert got == status and [e["phase"] for e in events] == ["failed"], events
    assert words in events[0]["message"]
    # No login needed for these.
    for template in ("/versions", "/health", "/metrics"):
        got, _, _ = await auth_client.call("GET", template, headers=headers)
        assert got in (200, 503)


async def test_refusal_events_have_ids(auth_client):
    """Id 0: outside any build's log, so resuming after it starts a log from the top."""
    _, events, _ = await auth_client.stream("/build/{provider}/{spec}", "/build/gh/octo/quick/main")
    assert events[0]["_id"] == 0


async def test_scopes_decide_builds_and_visibility(auth_client):
    alice = {"Authorization": "Bearer alice-token"}
    bob = {"Authorization": "token bob-token"}
    # bob may use the service but not start builds: lookups yes, new builds no.
    _, image, _ = await auth_client.call(
        "GET", "/api/images/{provider}/{spec}", "/api/images/gh/octo/quick/main", headers=bob
    )
    assert image["exists"] is False
    data = await auth_client.error(
        "POST", "/api/builds", None, 403, json={"spec": "gh/octo/quick/main"}, headers=bob
    )
    assert "may not start builds" in data["message"]
    got, events, _ = await auth_client.stream(
        "/build/{provider}/{spec}", "/build/gh/octo/quick/main", bob
    )
    assert got == 200 and events[-1]["phase"] == "failed" and events[-1]["status"] == 403
    # ...but gets images that exist.
    got, events, _ = await auth_client.stream(
        "/build/{provider}/{spec}", "/build/gh/octo/built/main", bob
    )
    assert [e["phase"] for e in events] == ["ready"]
    # alice builds; her build is hers.
    status, build, _ = await auth_client.call(
        "POST", "/api/builds", json={"spec": "gh/octo/quick/main"}, headers=alice
    )
    assert status in (200, 201) and build["user"] == "alice"
    _, events, _ = await auth_client.stream(
        "/api/builds/{build_id}/events", build["links"]["events"], alice
    )
    assert events[-1]["phase"] == "ready"
    await auth_client.error(
        "GET", "/api/builds/{build_id}", build["links"]["self"], 404, headers=bob
    )
    await auth_client.error(
        "GET", "/api/builds/{build_id}/log", build["links"]["log"], 404, headers=bob
    )
    _, listing, _ = await auth_client.call("GET", "/api/builds", headers=bob)
    assert build["id"] not in [b["id"] for b in listing["builds"]]
    _, listing, _ = await auth_client.call("GET", "/api/builds", headers=alice)
    assert build["id"] in [b["id"] for b in listing["builds"]]


async def test_a_build_belongs_to_everyone_who_asked(auth_client):
    alice = {"Authorization": "Bearer alice-token"}
    carol = {"Authorization": "Bearer carol-token"}
    bob = {"Authorization": "Bearer bob-token"}
    root = {"Authorization": "Bearer root-token"}
    spec = {"spec": "gh/octo/slow/main"}
    status, first, _ = await auth_client.call("POST", "/api/builds", json=spec, headers=alice)
    assert status == 201 and first["requested_by"] == ["alice"]
    status, joined, _ = await auth_client.call("POST", "/api/builds", json=spec, headers=carol)
    assert status == 200 and joined["id"] == first["id"]
    # carol sees it as hers, and only herself in it; every link works for her.
    assert (
        joined["user"] == "carol"
        and joined["requested_by"] == ["carol"]
        and joined["wanted_by"] == 2
    )
    assert "alice" not in json.dumps(joined)
    for link in ("self", "log"):
        template = {"self": "/api/builds/{build_id}", "log": "/api/builds/{build_id}/log"}[link]
        got, _, _ = await auth_client.call("GET", template, joined["links"][link], headers=carol)
        assert got == 200
    _, listing, _ = await auth_client.call("GET", "/api/builds", headers=carol)
    assert first["id"] in [b["id"] for b in listing["builds"]]
    # bob asked for nothing: it does not exist for him.
    await auth_client.error(
        "GET", "/api/builds/{build_id}", first["links"]["self"], 404, headers=bob
    )
    await auth_client.error(
        "POST", "/api/builds/{build_id}/cancel", first["links"]["cancel"], 404, headers=bob
    )
    # An admin sees both requesters.
    _, seen, _ = await auth_client.call(
        "GET", "/api/builds/{build_id}", first["links"]["self"], headers=root
    )
    assert seen["requested_by"] == ["alice", "carol"]
    # carol's cancel withdraws only her request: alice's build goes on.
    status, after, _ = await auth_client.call(
        "POST", "/api/builds/{build_id}/cancel", first["links"]["cancel"], headers=carol
    )
    assert (
        status == 200
        and after["withdrawn"] is True
        and after["state"] == "running"
        and after["wanted_by"] == 1
    )
    # alice's cancel is the last one: the build stops, for both.
    status, after, _ = await auth_client.call(
        "POST", "/api/builds/{build_id}/cancel", first["links"]["cancel"], headers=alice
    )
    assert status == 202
    for who in (alice, carol):
        _, events, _ = await auth_client.stream(
            "/api/builds/{build_id}/events", first["links"]["events"], who
        )
        assert events[-1]["phase"] == "failed" and events[-1]["cancelled"] is True
        assert "alice" not in events[-1]["message"] and "carol" not in events[-1]["message"]


async def test_an_admins_cancel_stops_a_shared_build(auth_client):
    alice = {"Authorization": "Bearer alice-token"}
    carol = {"Authorization": "Bearer carol-token"}
    root = {"Authorization": "Bearer root-token"}
    spec = {"spec": "gh/octo/slow2/main"}
    _, build, _ = await auth_client.call("POST", "/api/builds", json=spec, headers=alice)
    await auth_client.call("POST", "/api/builds", json=spec, headers=carol)
    status, _, _ = await auth_client.call(
        "POST", "/api/builds/{build_id}/cancel", build["links"]["cancel"], headers=root
    )
    assert status in (200, 202)
    _, events, _ = await auth_client.stream(
        "/api/builds/{build_id}/events", build["links"]["events"], carol
    )
    assert events[-1]["message"] == "Build cancelled by an administrator.\n"
    _, seen, _ = await auth_client.call(
        "GET", "/api/builds/{build_id}", build["links"]["self"], headers=root
    )
    assert seen["state"] == "cancelled" and seen["cancelled_by"] == "root"
    _, theirs, _ = await auth_client.call(
        "GET", "/api/builds/{build_id}", build["links"]["self"], headers=carol
    )
    assert theirs["cancelled_by"] is None


async def test_simultaneous_posts_make_one_201(client):
    spec = {"spec": "gh/octo/slow3/main"}
    answers = await asyncio.gather(
        *(client.call("POST", "/api/builds", json=spec) for _ in range(5))
    )
    assert sorted(status for status, _, _ in answers) == [200, 200, 200, 200, 201]
    assert len({build["id"] for _, build, _ in answers}) == 1
    await client.call("POST", "/api/builds/{build_id}/cancel", answers[0][1]["links"]["cancel"])


async def test_a_reconnect_after_a_failure_resumes_that_build(client):
    t = "/build/{provider}/{spec}"
    _, events, _ = await client.stream(t, "/build/gh/octo/fail2/main?build_only=true")
    assert events[-1]["phase"] == "failed"
    seen = events[1]["_id"]
    _, rest, _ = await client.stream(
        t, "/build/gh/octo/fail2/main?build_only=true", {"Last-Event-ID": str(seen)}
    )
    assert [e["_id"] for e in rest] == [e["_id"] for e in events[2:]]
    assert rest[-1] == events[-1]
    # Without Last-Event-ID, a new request builds again.
    _, again, _ = await client.stream(t, "/build/gh/octo/fail2/main?build_only=true")
    assert again[0]["_id"] == 1 and again[-1]["phase"] == "failed"
    _, listing, _ = await client.call("GET", "/api/builds")
    assert len([b for b in listing["builds"] if b["spec"] == "octo/fail2/main"]) == 2


async def test_served_document(client):
    async with client.session.get(client.base + "api/openapi.yaml") as r:
        assert r.status == 200
        served = yaml.safe_load(await r.read())
    assert served["paths"] == paths_without_security()  # this service runs without auth


def test_every_operation_was_exercised():
    """The live tests above touch every documented operation (keeps them honest)."""
    import inspect
    import re

    source = inspect.getsource(inspect.getmodule(test_every_operation_was_exercised))
    for path in DOC["paths"]:
        if path == "/api/openapi.yaml":
            continue
        assert re.search(f'"{re.escape(path)}"', source), f"{path} is never exercised"
