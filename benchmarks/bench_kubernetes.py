"""Benchmark: many concurrent Kubernetes builds, many viewers each, against the stand-in API.

    python benchmarks/bench_kubernetes.py [--builds 200] [--watchers 5] [--lines 100]

The service side (this process) is the real thing: BuildManager + KubernetesBuilder,
with N builds requested W times each (W viewers following every build's event log,
as the SSE handler does). The cluster side runs in a child process, so its costs do not
count as ours: the stand-in API server (tests/fakes/kubeapi.py) and a simulated kubelet
that schedules each pod, starts it, writes `--lines` repo2docker JSON lines to its log
over a few seconds and ends it with exit code 0.

It prints the API connections the service used per endpoint (target: one watch, plus one
log stream per running build, whatever the number of viewers), the service's peak RSS
and CPU seconds, and the events delivered to viewers.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import random
import resource
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

NAMESPACE = "bench"


# --- the cluster (child process) ------------------------------------------------------------


async def _kubelet(api, lines: int, interval: float) -> None:
    """Pods go Pending -> scheduled -> Running -> log lines -> Succeeded."""
    queue = api.listen()

    async def run(name: str) -> None:
        await asyncio.sleep(random.uniform(0.05, 0.3))
        api.schedule(name, f"node-{random.randrange(8)}", namespace=NAMESPACE)
        await asyncio.sleep(random.uniform(0.05, 0.2))
        api.start_container(name, namespace=NAMESPACE)
        api.log(
            name, json.dumps({"message": "Picked Git content provider.\n"}), namespace=NAMESPACE
        )
        for i in range(lines):
            await asyncio.sleep(interval)
            if api.get_pod(name, NAMESPACE) is None:
                return
            api.log(
                name,
                json.dumps({"message": f"Step {i}/{lines}\n", "phase": "building"}),
                namespace=NAMESPACE,
            )
        api.finish(name, 0, namespace=NAMESPACE)

    while True:
        type_, pod = await queue.get()
        if type_ == "ADDED":
            asyncio.create_task(run(pod["metadata"]["name"]))


def serve_cluster(conn, lines: int, interval: float) -> None:
    from tests.fakes.kubeapi import FakeKubeAPI

    async def main():
        api = FakeKubeAPI(bookmark_interval=5.0, validate=True)
        api.keep_request_log = False
        url = await api.start()
        kubelet = asyncio.create_task(_kubelet(api, lines, interval))
        conn.send(url)
        # Wait for "stop" without blocking the loop.
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, conn.recv)
        kubelet.cancel()
        await api.stop()

    asyncio.run(main())


# --- the service (this process) ---------------------------------------------------------------


class Resolver:
    """Resolves every spec at once, without a network (the providers are not measured here)."""

    async def resolve(self, provider, spec):
        from r2dservice.providers.base import ResolvedRepo

        repo, _, ref = spec.rpartition("/")
        return ResolvedRepo(
            provider=provider,
            spec=spec,
            repo=repo,
            repo_url=f"https://github.com/{repo}",
            ref=ref,
            resolved_ref=f"{abs(hash(spec)):040d}"[:40],
            ref_url="",
        )


class Registry:
    pushes = True

    async def exists(self, image):
        return False


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def current_rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


async def run_service(url: str, builds: int, watchers: int) -> dict:
    from r2dservice.builders.kubernetes import KubernetesBuilder
    from r2dservice.builds import BuildManager

    builder = KubernetesBuilder(
        k8s_api_url=url,
        namespace=NAMESPACE,
        build_image="quay.io/jupyterhub/repo2docker:bench",
        push_secret="push-creds",
        reap_interval=3600,
    )
    manager = BuildManager(
        builder=builder,
        resolver=Resolver(),
        registry=Registry(),
        image_prefix="registry.example.org/bench-",
        concurrent_build_limit=0,
        max_queue_length=0,
    )
    await manager.start()
    rss_before = current_rss_mb()
    cpu0, t0 = time.process_time(), time.monotonic()
    peak_running = 0
    delivered = 0
    outcomes: dict[str, int] = {}

    async def viewer(i: int) -> None:
        nonlocal delivered
        build = await manager.request("gh", f"bench/repo{i}/main", user=f"viewer-{i}")
        async for _id, event in build.follow():
            delivered += 1
            if event.terminal:
                outcomes[event.phase] = outcomes.get(event.phase, 0) + 1

    async def sample() -> None:
        nonlocal peak_running
        while True:
            peak_running = max(peak_running, manager.running_count)
            await asyncio.sleep(0.05)

    sampler = asyncio.create_task(sample())
    await asyncio.gather(*(viewer(i) for i in range(builds) for _ in range(watchers)))
    elapsed = time.monotonic() - t0
    cpu = time.process_time() - cpu0
    sampler.cancel()
    await manager.stop()
    return {
        "elapsed": elapsed,
        "cpu": cpu,
        "rss_before": rss_before,
        "rss_peak": peak_rss_mb(),
        "delivered": delivered,
        "outcomes": outcomes,
        "peak_running": peak_running,
        "events_per_build": sum(len(b.events) for b in manager.builds())
        / max(1, len(manager.builds())),
    }


async def fetch_stats(url: str) -> dict:
    import aiohttp

    async with aiohttp.ClientSession() as s, s.get(f"{url}/fake/stats") as r:
        return await r.json()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--builds", type=int, default=200)
    p.add_argument("--watchers", type=int, default=5, help="viewers per build")
    p.add_argument("--lines", type=int, default=100, help="log lines per build")
    p.add_argument("--interval", type=float, default=0.05, help="seconds between log lines")
    args = p.parse_args(argv)

    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe()
    cluster = ctx.Process(
        target=serve_cluster, args=(child, args.lines, args.interval), daemon=True
    )
    cluster.start()
    url = parent.recv()
    try:
        result = asyncio.run(run_service(url, args.builds, args.watchers))
        stats = asyncio.run(fetch_stats(url))
    finally:
        parent.send("stop")
        cluster.join(10)

    eps = stats["endpoints"]
    print(
        f"\n{args.builds} builds x {args.watchers} viewers, {args.lines} log lines each "
        f"(peak {result['peak_running']} builds running at once)\n"
    )
    print(f"{'API endpoint':<14}{'requests':>10}{'peak open':>11}   target")
    targets = {
        "list": "1 (start)",
        "watch": "1 shared watch (+ reconnects)",
        "log": f"1 per build = {args.builds}",
        "create": f"1 per build = {args.builds}",
        "delete": f"1 per build = {args.builds}",
    }
    for name in ("list", "watch", "log", "create", "delete", "get"):
        e = eps.get(name, {"requests": 0, "peak_open": 0})
        print(f"{name:<14}{e['requests']:>10}{e['peak_open']:>11}   {targets.get(name, '0')}")
    print(f"{'TCP conns':<14}{stats['tcp_connections']:>10}{stats['tcp_peak_open']:>11}")
    viewers = args.builds * args.watchers
    print()
    print(f"{'service':<28}{'value':>12}")
    rows = [
        ("wall time (s)", f"{result['elapsed']:.1f}"),
        ("CPU time (s)", f"{result['cpu']:.2f}"),
        ("RSS before builds (MiB)", f"{result['rss_before']:.0f}"),
        ("peak RSS (MiB)", f"{result['rss_peak']:.0f}"),
        ("events per build", f"{result['events_per_build']:.0f}"),
        ("events to viewers", f"{result['delivered']}"),
        ("viewers ready / all", f"{result['outcomes'].get('ready', 0)} / {viewers}"),
    ]
    for k, v in rows:
        print(f"{k:<28}{v:>12}")
    ok = (
        eps.get("watch", {}).get("peak_open", 0) == 1
        and eps.get("log", {}).get("requests", 0) <= args.builds * 1.05
        and result["outcomes"].get("ready", 0) == viewers
    )
    print("\nresult:", "OK (one watch, one log stream per build)" if ok else "NOT MET")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
