"""Connection hygiene, against the real service process over real sockets: slow and
oversized requests, event streams per user, idle streams, and /health's cache."""

from __future__ import annotations

import asyncio
import socket
import time

import aiohttp
import pytest

from tests.support.sse import read_events
from tests.support.standins import fakes, start_service  # noqa: F401 (a fixture)

ALICE = {"Authorization": "Bearer alice-token"}
BOB = {"Authorization": "Bearer bob-token"}

HYGIENE = """
c.R2DService.header_timeout = 1.5
c.R2DService.body_timeout = 1.5
c.R2DService.max_header_size = 4096
c.R2DService.max_body_size = 2000
c.R2DService.max_streams_per_user = 2
c.R2DService.health_cache_seconds = 30
c.BuildManager.concurrent_build_limit = 2
"""


@pytest.fixture(scope="module")
def service(tmp_path_factory, fakes):  # noqa: F811
    svc = start_service(
        tmp_path_factory.mktemp("hygiene"),
        fakes,
        'c.R2DService.base_url = "/"\nc.HubOAuth.cache_max_age = 0\n' + HYGIENE,
        env={
            "JUPYTERHUB_SERVICE_NAME": "binder",
            "JUPYTERHUB_API_TOKEN": "service-secret",
            "JUPYTERHUB_API_URL": fakes.hub_api_url,
        },
    )
    yield svc
    svc.stop()


def connect(svc) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", svc.port), timeout=10)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def closed_within(sock: socket.socket, seconds: float, trickle: bytes = b"") -> float | None:
    """Seconds until the server closes `sock` while we send `trickle` a byte every 0.2 s
    (None if still open after `seconds`). Whatever the server sent is dropped."""
    started = time.monotonic()
    sock.settimeout(0.2)
    i = 0
    while time.monotonic() - started < seconds:
        try:
            if not sock.recv(65536):
                return time.monotonic() - started
        except TimeoutError:
            pass
        except ConnectionError:
            return time.monotonic() - started
        if trickle:
            try:
                sock.sendall(trickle[i % len(trickle) : i % len(trickle) + 1])
            except ConnectionError:
                return time.monotonic() - started
            i += 1
    return None


def versions_answers(svc) -> bool:
    with connect(svc) as s:
        s.sendall(b"GET /versions HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        return s.recv(100).startswith(b"HTTP/1.1 200")


def test_a_slowloris_is_cut_off_however_steadily_it_trickles(service):
    """Headers sent one byte every 0.2 s never end; header_timeout (1.5 s) counts the
    whole, not the gap between bytes. Others are served meanwhile."""
    with connect(service) as s:
        s.sendall(b"GET /versions HTTP/1.1\r\nHost: x\r\n")
        assert versions_answers(service)
        took = closed_within(s, 10, trickle=b"X-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n")
    assert took is not None and took < 4, took


def test_an_idle_connection_is_closed(service):
    with connect(service) as s:
        took = closed_within(s, 10)
    assert took is not None and took < 4, took


def test_a_slow_body_is_cut_off(service):
    with connect(service) as s:
        s.sendall(
            b"POST /api/builds HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer alice-token\r\n"
            b"Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"
        )
        took = closed_within(s, 10, trickle=b" ")
    assert took is not None and took < 4, took


def test_oversized_headers_and_bodies_are_refused(service):
    with connect(service) as s:
        s.sendall(b"GET /versions HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 8000 + b"\r\n\r\n")
        answer = s.recv(100)
    assert not answer.startswith(b"HTTP/1.1 200"), answer
    body = b'{"spec": "gh/octo/quick/main", "pad": "' + b"a" * 5000 + b'"}'
    with connect(service) as s:
        s.sendall(
            b"POST /api/builds HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer alice-token\r\n"
            b"Content-Type: application/json\r\n"
            + f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        answer = s.recv(100)
    assert not answer.startswith((b"HTTP/1.1 200", b"HTTP/1.1 201")), answer
    assert versions_answers(service)


@pytest.mark.asyncio
async def test_event_streams_per_user(service):
    """Alice may hold two streams; a third is a 429 `failed` event and requests no
    build. Bob is not affected; a closed stream frees its place."""
    url = f"{service.url}build/gh/octo/slow/main?build_only=true"
    async with aiohttp.ClientSession() as http:
        headers = {"Accept": "text/event-stream", **ALICE}
        first = await http.get(url, headers=headers)
        second = await http.get(url, headers=headers)
        await first.content.readline()
        await second.content.readline()
        third = await read_events(http, url.replace("slow", "slow2"), headers=ALICE, timeout=10)
        assert third.phases == ["failed"] and third.last["status"] == 429
        assert "event streams open" in third.last["message"]
        async with http.get(f"{service.url}api/builds", headers=ALICE) as r:
            builds = {b["spec"]: b["id"] for b in (await r.json())["builds"]}
        assert "octo/slow2/main" not in builds  # refused before any build was asked for
        build_id = builds["octo/slow/main"]
        async with http.get(f"{service.url}api/builds/{build_id}/events", headers=ALICE) as r:
            assert r.status == 429
        bob = await read_events(http, f"{service.url}build/gh/octo/built/main", headers=BOB)
        assert bob.phases == ["ready"]
        first.close()
        for _ in range(50):
            again = await http.get(url, headers=headers)
            if again.status == 200 and b"failed" not in await again.content.readline():
                break
            again.close()
            await asyncio.sleep(0.1)
        else:
            raise AssertionError("a closed stream did not free its place")
        again.close()
        second.close()
        async with http.post(f"{service.url}api/builds/{build_id}/cancel", headers=ALICE):
            pass


@pytest.mark.asyncio
async def test_health_asks_the_registry_once_per_cache_period(service, fakes):  # noqa: F811
    async with aiohttp.ClientSession() as http:
        before = len([p for p in fakes.engine_paths if "health-check" in p])
        answers = await asyncio.gather(*(http.get(f"{service.url}health") for _ in range(20)))
        for _ in range(5):
            async with http.get(f"{service.url}health") as r:
                assert r.status == 200
        assert all(a.status == 200 for a in answers)
    asked = len([p for p in fakes.engine_paths if "health-check" in p]) - before
    assert asked <= 1, asked


@pytest.mark.asyncio
async def test_an_idle_stream_ends_and_its_build_goes_on(tmp_path, fakes):  # noqa: F811
    svc = start_service(
        tmp_path,
        fakes,
        "c.R2DService.auth_enabled = False\nc.R2DService.stream_idle_timeout = 1\n",
    )
    try:
        async with aiohttp.ClientSession() as http:
            started = time.monotonic()
            got = await read_events(
                http, f"{svc.url}build/gh/octo/slow3/main?build_only=true", timeout=20
            )
            assert time.monotonic() - started < 5
            assert got.phases[-1] not in ("ready", "failed")  # it ended without an outcome
            async with http.get(f"{svc.url}api/builds") as r:
                [build] = [b for b in (await r.json())["builds"] if b["spec"] == "octo/slow3/main"]
            assert build["state"] == "running"
    finally:
        svc.stop()


def test_stream_limits_count_per_user():
    from r2dservice.handlers.limits import StreamLimits, TooManyStreams

    limits = StreamLimits(per_user=1)
    with limits.stream("alice"):
        with pytest.raises(TooManyStreams):
            with limits.stream("alice"):
                pass
        with limits.stream("bob"), limits.stream(""), limits.stream(""):
            pass  # others, and the anonymous caller of a service without auth
    assert not limits.open
    with limits.stream("alice"):
        pass


@pytest.mark.asyncio
async def test_shared_check_is_reused_and_shared_but_failures_are_not_kept():
    from r2dservice.sharedcheck import Shared

    now = [0.0]
    calls = []

    async def check():
        calls.append(now[0])
        await asyncio.sleep(0.01)
        if len(calls) == 2:
            raise RuntimeError("registry down")
        return {"ok": True}

    shared = Shared(check, ttl=5, clock=lambda: now[0])
    assert await asyncio.gather(*(shared() for _ in range(10))) == [{"ok": True}] * 10
    assert len(calls) == 1
    now[0] = 4.9
    await shared()
    assert len(calls) == 1
    now[0] = 5.0
    with pytest.raises(RuntimeError):
        await shared()
    assert await shared() == {"ok": True} and len(calls) == 3
