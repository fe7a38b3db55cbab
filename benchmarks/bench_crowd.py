"""A crowd on one service process (local builder, real Docker and registry): 2,000 viewers
arriving over 2 s, spread over 20 new builds of repositories that sleep, then 2,000
viewers of one new build (issue 12's load figures).

Reported: builds started (exactly one per image), viewers reaching `ready`, the time
from a viewer's request to its first event (p50, p99, max), the service's peak RSS and
CPU seconds (and how long it waited for a CPU), the load generator's CPU seconds, and
the kernel's listen-queue overflows during the run (a viewer whose SYN was dropped
waits a second or more before its retry).

    bash benchmarks/run.sh crowd                # both scenarios
    bash benchmarks/run.sh crowd --busy         # builds whose step keeps two CPUs busy
    python -m benchmarks.bench_crowd --viewers 500 --builds 5

`--compare REV` runs the same scenarios on a checkout of REV first, side by side.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

from benchmarks.bench_local import Bench, checkout, pct, peak_rss_mb
from tests.support.sse import read_events

REPO_SLEEP = "FROM {base}\nRUN echo {marker} && sleep 8\n"
# --busy: the build step keeps two CPUs busy for 8 s instead of sleeping.
REPO_BUSY = (
    "FROM {base}\nRUN echo {marker} && "
    "(timeout 8 sh -c 'while :; do :; done' & timeout 8 sh -c 'while :; do :; done'; wait)"
    " || true\n"
)


def listen_overflows() -> int:
    """TcpExtListenOverflows: SYNs dropped because an accept queue was full."""
    with open("/proc/net/netstat") as f:
        lines = f.read().splitlines()
    for head, values in zip(lines[::2], lines[1::2], strict=False):
        if head.startswith("TcpExt:"):
            fields = dict(zip(head.split()[1:], values.split()[1:], strict=False))
            return int(fields.get("ListenOverflows", 0))
    return 0


def cpu_wait_seconds(pid: int) -> float:
    """Time the service's main thread (its event loop) spent runnable but waiting for a
    CPU: on a machine shared with the builds and the load generator, the part of the
    latency that is not the service's own work."""
    with open(f"/proc/{pid}/schedstat") as f:
        return int(f.read().split()[1]) / 1e9


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def crowd(b: Bench, viewers: int, builds: int, spread: float, repo: str) -> dict:
    # A repository per build and per scenario: a ref another scenario resolved may still
    # be cached, and its image would be found instead of building the new commit.
    specs = [b.commit(f"crowd-{b.run}-{builds}-{i}", repo)[1] for i in range(builds)]
    pid = b.service.proc.pid
    overflows0, cpu0, wait0 = listen_overflows(), cpu_seconds(pid), cpu_wait_seconds(pid)
    mine0 = time.process_time()
    connector = aiohttp.TCPConnector(limit=0, force_close=True)
    timeout = aiohttp.ClientTimeout(total=900)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http:

        async def viewer(k: int):
            await asyncio.sleep(spread * k / viewers)
            t0 = time.monotonic()
            try:
                got = await read_events(http, b.url(specs[k % builds]), timeout=900)
            except (aiohttp.ClientError, asyncio.TimeoutError) as e:  # noqa: UP041
                return None, float("nan"), repr(e)
            first = got.events[0]["_t"] - t0 if got.events else float("nan")
            return got, first, ""

        t0 = time.monotonic()
        results = await asyncio.gather(*(viewer(k) for k in range(viewers)))
        took = time.monotonic() - t0
        mine = time.process_time() - mine0
        async with http.get(b.service.url + "api/builds?limit=200") as r:
            listed = (await r.json())["builds"]
    images = {got.last.get("imageName") for got, _, _ in results if got and got.last}
    started = [x for x in listed if x["image_name"] in images and x["state"] != "cancelled"]
    firsts = [f for _, f, _ in results if f == f]
    errors = [e for _, _, e in results if e]
    return {
        "viewers": viewers,
        "builds": builds,
        "started": len(started),
        "ready": sum(1 for got, _, _ in results if got and got.last.get("phase") == "ready"),
        "first_p50": statistics.median(firsts) if firsts else float("nan"),
        "first_p99": pct(firsts, 99) if firsts else float("nan"),
        "first_max": max(firsts) if firsts else float("nan"),
        "rss": peak_rss_mb(b.service.proc.pid),
        "cpu": cpu_seconds(pid) - cpu0,
        "cpu_wait": cpu_wait_seconds(pid) - wait0,
        "load_cpu": mine,
        "overflows": listen_overflows() - overflows0,
        "errors": errors[:3],
        "took": took,
    }


def report(name: str, r: dict) -> None:
    print(
        f"  {name:8} {r['viewers']} viewers / {r['builds']} builds: started {r['started']}, "
        f"ready {r['ready']}/{r['viewers']}, first event p50 {r['first_p50'] * 1000:.0f} ms "
        f"p99 {r['first_p99'] * 1000:.0f} ms max {r['first_max'] * 1000:.0f} ms, "
        f"peak RSS {r['rss']:.0f} MB, service CPU {r['cpu']:.1f} s "
        f"(waited {r['cpu_wait']:.1f} s for one), load generator CPU {r['load_cpu']:.1f} s, "
        f"listen overflows {r['overflows']}, wall {r['took']:.0f} s"
        + (f", errors {r['errors']}" if r["errors"] else "")
    )


async def main(args) -> int:
    with tempfile.TemporaryDirectory(prefix="r2d-bench-crowd-") as tmp:
        sides = {}
        if args.compare:
            sides[args.compare[:10]] = checkout(args.compare, Path(tmp) / "base")
        sides["this"] = None
        results: dict[str, list[dict]] = {name: [] for name in sides}
        for name, source in sides.items():
            work = Path(tmp) / f"work-{name}"
            work.mkdir()
            b = Bench(work, source=source)
            try:
                repo = REPO_BUSY if args.busy else REPO_SLEEP
                results[name].append(await crowd(b, args.viewers, args.builds, args.spread, repo))
                results[name].append(await crowd(b, args.viewers, 1, args.spread, repo))
            finally:
                b.close()
    kind = "builds that keep two CPUs busy" if args.busy else "builds that sleep"
    print(f"\ncrowds arriving over {args.spread:g} s (one service process, local builder, {kind})")
    for name, rs in results.items():
        for r in rs:
            report(name, r)
    this = results["this"][0]
    ok = (
        this["started"] == args.builds
        and this["ready"] == args.viewers
        and this["first_p50"] <= 0.150
        and this["rss"] <= 250
    )
    print(
        f"targets (exact builds, all ready, first p50 <= 150 ms, RSS <= 250 MB): "
        f"{'met' if ok else 'NOT met'}"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--viewers", type=int, default=2000)
    p.add_argument("--builds", type=int, default=20)
    p.add_argument("--spread", type=float, default=2.0, help="seconds over which viewers arrive")
    p.add_argument(
        "--busy", action="store_true", help="builds whose step keeps two CPUs busy, not asleep"
    )
    p.add_argument("--compare", help="a git revision to run first, side by side")
    sys.exit(asyncio.run(main(p.parse_args())))
