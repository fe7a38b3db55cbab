"""Abuse benchmark (issue 12): one user opens 500 streams and queues 100 builds while
another user builds. Measured side by side in one run:

(A) nobody abuses: the other user's new build, request -> "Build starting"; request ->
    `ready` for an image that exists (p50, p99);
(B) the abuser, with the default per-user limits (2 running, 10 waiting per user): how
    many of their builds were queued and refused, the same two figures for the other
    user, the service's CPU and peak RSS;
(C) the abuser, with per-user limits off: the fair-share queue order alone.

Targets: the other user's build starts within its fair share (at once while slots are
free under the limits; at the next free slot without them), and the cached `ready`
p50 stays within noise of (A).

The service is the real process with authentication on (a stand-in of JupyterHub's
user API: alice abuses, carol builds) and a stand-in builder whose builds sleep
BUILD_SECONDS, so that the figures are the service's and not Docker's. The stand-ins
(forge, hub API, image endpoint) run in a child process, apart from the load.

Run with `bash benchmarks/run.sh abuse` (or python -m benchmarks.bench_abuse).
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import tempfile
import textwrap
import time
from pathlib import Path
from types import SimpleNamespace

import aiohttp

from benchmarks.bench_local import pct, peak_rss_mb
from tests.support.sse import read_events
from tests.support.standins import start_service

BUILD_SECONDS = 3.0
ABUSER = {"Authorization": "Bearer alice-token"}
OTHER = {"Authorization": "Bearer carol-token"}
ADMIN = {"Authorization": "Bearer root-token"}

SLEEPY_BUILDER = f'''
"""A stand-in builder: every build sleeps, then succeeds. No Docker."""
import asyncio

from r2dservice.builders.base import Builder
from r2dservice.events import Event


class SleepyBuilder(Builder):
    async def build(self, request, emit):
        emit(Event("building", "Sleeping instead of building\\n"))
        await asyncio.sleep({BUILD_SECONDS})
'''


def serve_fakes(names: list[str], urls, stop) -> None:
    """The stand-ins in a child process (so the load's client does not slow them)."""
    from tests.fakes.forge import fake_sha
    from tests.support.standins import FakeServers

    servers = FakeServers()
    servers.forge.rate_limit = servers.forge.rate_remaining = 10_000_000
    servers.start()
    for name in names:
        asyncio.run_coroutine_threadsafe(_add(servers, name, fake_sha(name)), servers.loop).result(
            10
        )
    urls.put((servers.engine_url, servers.forge.url, servers.hub_api_url))
    stop.wait()
    servers.stop()


async def _add(servers, name, sha):
    servers.forge.add_github_repo(f"octo/{name}", {"main": sha})


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Service:
    def __init__(self, workdir: Path, fakes, limits: str):
        workdir.mkdir()
        (workdir / "sleepy_builder.py").write_text(SLEEPY_BUILDER)
        self.svc = start_service(
            workdir,
            fakes,
            textwrap.dedent(
                """
                c.R2DService.builder_class = "sleepy_builder.SleepyBuilder"
                c.R2DService.base_url = "/"
                c.R2DService.db_url = ""
                c.R2DService.keepalive_interval = 15
                c.BuildManager.concurrent_build_limit = 4
                c.BuildManager.max_queue_length = 500
                c.Application.log_level = "WARN"
                """
            )
            + limits,
            env={
                "JUPYTERHUB_SERVICE_NAME": "binder",
                "JUPYTERHUB_API_TOKEN": "service-secret",
                "JUPYTERHUB_API_URL": fakes.hub_api_url,
            },
        )
        self.url = self.svc.url

    def stream(self, spec: str) -> str:
        return f"{self.url}build/gh/{spec}?build_only=true"


async def cached_latencies(http, service: Service, n: int) -> list[float]:
    times = []
    for _ in range(n):
        t0 = time.monotonic()
        got = await read_events(http, service.stream("octo/built/main"), headers=OTHER)
        times.append(time.monotonic() - t0)
        assert got.phases == ["ready"], got.events
    return times


async def other_users_build(http, service: Service, name: str) -> tuple[float, float]:
    """(request -> "Build starting", request -> ready) of the other user's new build."""
    t0 = time.monotonic()
    got = await read_events(http, service.stream(f"octo/{name}/main"), headers=OTHER)
    assert got.last.get("phase") == "ready", got.events
    started = next(e["_t"] for e in got.events if e.get("position") == 0)
    return started - t0, got.last["_t"] - t0


async def abuse(http, service: Service, run: str, builds: int, streams: int):
    """The abuser's 100 build requests at once, then 500 streams of the builds they got."""
    statuses: dict[int, int] = {}
    ids = []

    async def post(i):
        async with http.post(
            service.url + "api/builds",
            json={"spec": f"gh/octo/{run}-abuse-{i}/main"},
            headers=ABUSER,
        ) as r:
            statuses[r.status] = statuses.get(r.status, 0) + 1
            if r.status in (200, 201):
                ids.append((await r.json())["id"])

    await asyncio.gather(*(post(i) for i in range(builds)))
    watchers = [
        asyncio.create_task(
            read_events(http, f"{service.url}api/builds/{ids[k % len(ids)]}/events", ABUSER)
        )
        for k in range(streams)
    ]
    return statuses, watchers


async def phase(service: Service, run: str, args, abuser: bool) -> dict:
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as http:
        pid = service.svc.proc.pid
        cpu0, t0 = cpu_seconds(pid), time.monotonic()
        statuses, watchers = {}, []
        if abuser:
            statuses, watchers = await abuse(http, service, run, args.builds, args.streams)
            await asyncio.sleep(0.5)  # the streams are open, the queue is full
        open_streams = sum(not w.done() for w in watchers)
        # The other user's build and the cached answers, while the abuse goes on.
        (starting, ready), cached = await asyncio.gather(
            other_users_build(http, service, f"{run}-other"),
            cached_latencies(http, service, args.requests),
        )
        cpu = (cpu_seconds(pid) - cpu0) / (time.monotonic() - t0)
        for w in watchers:
            w.cancel()
        await asyncio.gather(*watchers, return_exceptions=True)
        async with http.get(
            service.url + "api/builds?state=queued&state=running&limit=200", headers=ADMIN
        ) as r:
            for b in (await r.json())["builds"]:
                async with http.post(f"{service.url}api/builds/{b['id']}/cancel", headers=ADMIN):
                    pass
    return {
        "statuses": statuses,
        "open_streams": open_streams,
        "starting": starting,
        "ready": ready,
        "cached": cached,
        "cpu": cpu,
        "rss": peak_rss_mb(pid),
    }


async def main(args):
    names = ["built"] + [
        f"{run}-{what}"
        for run in ("warm", "a", "b", "c")
        for what in ["other", *(f"abuse-{i}" for i in range(args.builds))]
    ]
    ctx = multiprocessing.get_context("spawn")
    urls, stop = ctx.Queue(), ctx.Event()
    child = ctx.Process(target=serve_fakes, args=(names, urls, stop), daemon=True)
    child.start()
    engine_url, forge_url, hub_api_url = urls.get(timeout=60)
    fakes = SimpleNamespace(
        engine_url=engine_url, forge=SimpleNamespace(url=forge_url), hub_api_url=hub_api_url
    )
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        limited = Service(Path(tmp) / "limited", fakes, "")
        unlimited = Service(
            Path(tmp) / "unlimited",
            fakes,
            "c.BuildManager.per_user_build_limit = 0\nc.BuildManager.per_user_queue_limit = 0",
        )
        try:
            # warm up: resolve and check once, as a running service has
            await phase(
                limited, "warm", argparse.Namespace(**{**vars(args), "requests": 20}), False
            )
            results["A"] = await phase(limited, "a", args, abuser=False)
            results["B"] = await phase(limited, "b", args, abuser=True)
            results["C"] = await phase(unlimited, "c", args, abuser=True)
        finally:
            limited.svc.stop()
            unlimited.svc.stop()
            stop.set()
            child.join(10)
    report(args, results)


def report(args, results):
    ms = lambda s: f"{1000 * s:.1f} ms"  # noqa: E731
    print()
    print(
        f"r2dservice abuse benchmark: one user queues {args.builds} builds and opens "
        f"{args.streams} streams while another builds (builds sleep {BUILD_SECONDS:.0f} s, "
        "4 slots)"
    )
    print("-" * 72)
    labels = {
        "A": "(A) no abuser",
        "B": "(B) abuser, default per-user limits (2 running, 10 waiting)",
        "C": "(C) abuser, per-user limits off (fair-share order only)",
    }
    for key, r in results.items():
        print(labels[key])
        if r["statuses"]:
            got = ", ".join(f"{n} x {s}" for s, n in sorted(r["statuses"].items()))
            print(
                f"    abuser's build requests: {got}; streams open as the other user asks {r['open_streams']}/{args.streams}"
            )
        print(
            f"    other user's new build: starts after {ms(r['starting'])}, "
            f"ready after {ms(r['ready'])}"
        )
        c = r["cached"]
        print(
            f"    cached ready ({args.requests} sequential): p50 {ms(pct(c, 50))}  "
            f"p99 {ms(pct(c, 99))}   service CPU {100 * r['cpu']:.0f}%  peak RSS {r['rss']:.0f} MB"
        )
    a50 = pct(results["A"]["cached"], 50)
    print(
        f"cached p50 ratio with abuser / without: B {pct(results['B']['cached'], 50) / a50:.2f}  "
        f"C {pct(results['C']['cached'], 50) / a50:.2f}   (target: within noise of 1)"
    )
    fifo = (args.builds - 4) / 4 * BUILD_SECONDS
    print(
        "fair share: the other user's build starts at once while slots are free (B), "
        f"and by the next free slot, <= {BUILD_SECONDS:.0f} s, without per-user limits (C; "
        f"first come, first served would be ~{fifo:.0f} s)"
    )


if __name__ == "__main__":
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--builds", type=int, default=100, help="builds the abuser queues")
    p.add_argument("--streams", type=int, default=500, help="streams the abuser opens")
    p.add_argument("--requests", type=int, default=300, help="cached requests per phase")
    asyncio.run(main(p.parse_args()))
