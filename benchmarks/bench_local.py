"""Benchmarks of the service with the local builder, measured side by side in one run.

(a) overhead: a build through the service / the same repo2docker command run directly,
    alternating on fresh commits of one repository (target <= 1.03);
(b) latency from request to `ready` for an image already in the registry, against a git
    daemon on loopback (target p50 <= 10 ms);
(c) 200 concurrent viewers of one new build: builds started, viewers reaching `ready`,
    first-event p50, the service's peak RSS (target 1, 200, <= 100 ms, <= 150 MB).

Run with `bash benchmarks/run.sh local` (it starts Docker and the registry first).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from urllib.parse import quote

import aiohttp

from tests.fakes.gitserver import GitDaemon, make_repo
from tests.support.service import ServiceProcess
from tests.support.sse import read_events

REGISTRY = os.environ.get("R2D_TEST_REGISTRY", "127.0.0.1:5000")
BASE = os.environ.get("R2D_TEST_BASE_IMAGE", "r2dservice-base:bookworm")
R2D_CONFIG = os.environ.get("R2D_TEST_REPO2DOCKER_CONFIG", "dev/repo2docker_config.py")


def pct(values, p):
    values = sorted(values)
    k = max(0, min(len(values) - 1, round(p / 100 * (len(values) - 1))))
    return values[k]


class Bench:
    """A git daemon and a service; `source`: run the service from that checkout instead."""

    def __init__(self, workdir: Path, source: str | None = None, extra_config: str = ""):
        self.run = uuid.uuid4().hex[:6]
        self.prefix = f"{REGISTRY}/r2dbench-{self.run}-"
        self.before_build: list[float] = []  # request -> first event, in (a)
        self.git = GitDaemon(workdir / "git").start()
        self.git.root = workdir / "git"
        self.service = ServiceProcess(
            str(workdir),
            f"""
            c.R2DService.auth_enabled = False
            c.R2DService.image_prefix = "{self.prefix}"
            c.LocalBuilder.repo2docker_extra_args = ["--config", "{os.path.abspath(R2D_CONFIG)}"]
            c.GitRepoProvider.allow_loopback = True  # the git daemon is on 127.0.0.1
            c.BuildManager.concurrent_build_limit = 4
            c.Application.log_level = "WARN"
            {extra_config}
            """,
            env={"PYTHONPATH": source} if source else None,
        ).start()

    def close(self):
        self.service.stop()
        self.git.stop()

    def commit(self, name: str, dockerfile: str) -> tuple[str, str]:
        """A new commit whose build cannot come from the layer cache."""
        marker = uuid.uuid4().hex
        sha = make_repo(
            self.git.root / name, {"Dockerfile": dockerfile.format(base=BASE, marker=marker)}
        )
        return sha, f"git/{quote(self.git.url(name), safe='')}/main"

    def url(self, spec):
        return f"{self.service.url}build/{spec}?build_only=true"


# A small but honest build: a fresh layer (the marker defeats the cache), some log
# output to relay, a few seconds of work, and a push.
DOCKERFILE = (
    "FROM {base}\n"
    "RUN echo {marker} > /marker && for i in $(seq 1 200); do echo line $i; done && sleep 4\n"
)


async def bench_overhead(b: Bench, http, pairs: int):
    """(a) alternate: direct repo2docker, then through the service, on fresh commits."""
    direct, service = [], []
    for i in range(pairs):
        for mode in ("direct", "service") if i % 2 == 0 else ("service", "direct"):
            name = f"overhead-{i}-{mode}"  # a repository each: no cached resolution
            sha, spec = b.commit(name, DOCKERFILE)
            if mode == "direct":
                image = f"{b.prefix}direct:{sha}"
                cmd = [
                    sys.executable,
                    "-m",
                    "repo2docker",
                    "--json-logs",
                    "--no-run",
                    "--user-id",
                    "1000",
                    "--user-name",
                    "jovyan",
                    "--image-name",
                    image,
                    "--ref",
                    sha,
                    "--push",
                    "--config",
                    os.path.abspath(R2D_CONFIG),
                    b.git.url(name),
                ]
                t0 = time.monotonic()
                proc = await asyncio.create_subprocess_exec(
                    *cmd, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL
                )
                assert await proc.wait() == 0, "direct repo2docker build failed"
                direct.append(time.monotonic() - t0)
            else:
                t0 = time.monotonic()
                got = await read_events(http, b.url(spec))
                assert got.last.get("phase") == "ready", got.last
                service.append(time.monotonic() - t0)
                b.before_build.append(got.events[0]["_t"] - t0)
    return direct, service


async def bench_cached(b: Bench, http, n: int):
    """(b) request -> ready for an image that exists."""
    _sha, spec = b.commit("cached", DOCKERFILE)
    got = await read_events(http, b.url(spec))
    assert got.last.get("phase") == "ready"
    times = []
    for _ in range(n):
        t0 = time.monotonic()
        got = await read_events(http, b.url(spec))
        times.append(time.monotonic() - t0)
        assert got.phases == ["ready"]
    return times


def peak_rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


async def bench_viewers(b: Bench, viewers: int):
    """(c) many viewers of one new build."""
    _sha, spec = b.commit(
        "crowd",
        "FROM {base}\nRUN echo {marker} && for i in $(seq 1 50); do echo line $i; sleep 0.05; done\n",
    )
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as http:
        starts = []

        async def viewer():
            t0 = time.monotonic()
            starts.append(t0)
            got = await read_events(http, b.url(spec))
            first = got.events[0]["_t"] - t0 if got.events else float("nan")
            return got, first

        results = await asyncio.gather(*(viewer() for _ in range(viewers)))
        image = results[0][0].last.get("imageName")
        async with http.get(b.service.url + "api/builds") as r:
            builds = [x for x in (await r.json())["builds"] if x["image_name"] == image]
    ready = sum(1 for got, _ in results if got.last.get("phase") == "ready")
    firsts = [f for _, f in results]
    return len(builds), ready, firsts, peak_rss_mb(b.service.proc.pid)


def checkout(rev: str, into: Path) -> str:
    """The tree of `rev` of this repository, unpacked into `into` (for --compare)."""
    into.mkdir()
    archive = subprocess.run(["git", "archive", rev], check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return str(into)


async def compare_cached(benches: list[Bench], n: int) -> list[list[float]]:
    """(b) for several services, alternating request by request (noise hits all alike)."""
    specs = []
    async with aiohttp.ClientSession() as http:
        for b in benches:
            _sha, spec = b.commit("cached", DOCKERFILE)
            assert (await read_events(http, b.url(spec))).last.get("phase") == "ready"
            specs.append(spec)
        times: list[list[float]] = [[] for _ in benches]
        for i in range(n):
            order = range(len(benches)) if i % 2 == 0 else reversed(range(len(benches)))
            for k in order:
                t0 = time.monotonic()
                got = await read_events(http, benches[k].url(specs[k]))
                times[k].append(time.monotonic() - t0)
                assert got.phases == ["ready"]
    return times


async def main(args):
    if args.compare:
        return await main_compare(args)
    with tempfile.TemporaryDirectory() as tmp:
        b = Bench(Path(tmp))
        try:
            async with aiohttp.ClientSession() as http:
                direct, service = await bench_overhead(b, http, args.pairs)
                cached = await bench_cached(b, http, args.requests)
            builds, ready, firsts, rss = await bench_viewers(b, args.viewers)
        finally:
            b.close()
    ms = lambda s: f"{1000 * s:.1f} ms"  # noqa: E731
    print()
    print("r2dservice local-builder benchmarks (one run, side by side)")
    print("-" * 72)
    ratio = statistics.median(service) / statistics.median(direct)
    print(f"(a) build via service / direct repo2docker, {args.pairs} alternating pairs")
    print(
        f"    direct  median {statistics.median(direct):.2f} s  ({', '.join(f'{x:.2f}' for x in direct)})"
    )
    print(
        f"    service median {statistics.median(service):.2f} s  ({', '.join(f'{x:.2f}' for x in service)})"
    )
    print(
        f"    ratio of medians {ratio:.3f}   (target <= 1.03); request -> first event "
        f"median {ms(statistics.median(b.before_build))} (resolve + registry check)"
    )
    print(f"(b) request -> ready, image in registry, {args.requests} sequential requests")
    print(
        f"    p50 {ms(pct(cached, 50))}  p99 {ms(pct(cached, 99))}  max {ms(max(cached))}   (target p50 <= 10 ms)"
    )
    print(f"(c) {args.viewers} concurrent viewers of one new build")
    print(f"    builds started {builds}   viewers ready {ready}/{args.viewers}")
    print(f"    first event p50 {ms(pct(firsts, 50))}  p99 {ms(pct(firsts, 99))}")
    print(
        f"    service peak RSS {rss:.1f} MB   (target 1 build, all ready, p50 <= 100 ms, <= 150 MB)"
    )


async def main_compare(args):
    """(b) and (c) for this checkout and for `--compare REV` (or, with `--compare
    records-off`, this checkout without build records), in one run."""
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "now").mkdir()
        (Path(tmp) / "base").mkdir()
        now = Bench(Path(tmp) / "now")
        if args.compare == "records-off":
            base = Bench(Path(tmp) / "base", extra_config='c.R2DService.db_url = ""')
        else:
            base_src = checkout(args.compare, Path(tmp) / "base-src")
            base = Bench(Path(tmp) / "base", source=base_src)
        try:
            cached_now, cached_base = await compare_cached([now, base], args.requests)
            # (c) one after the other, each with the machine to itself, in ABBA order
            # (twice with --rounds 2) so that drift on a noisy machine hits both alike.
            runs = {"now": [], "base": []}
            for r in range(args.rounds):
                order = (
                    (("base", base), ("now", now)) if r % 2 == 0 else (("now", now), ("base", base))
                )
                for name, bench in order:
                    runs[name].append(await bench_viewers(bench, args.viewers))
        finally:
            now.close()
            base.close()
    ms = lambda s: f"{1000 * s:.1f} ms"  # noqa: E731
    print()
    print(f"r2dservice local-builder benchmarks: this checkout against {args.compare}, one run")
    print("-" * 72)
    print(f"(b) request -> ready, image in registry, {args.requests} requests each, alternating")
    for name, times in (("now ", cached_now), ("base", cached_base)):
        print(
            f"    {name} p50 {ms(pct(times, 50))}  p99 {ms(pct(times, 99))}  max {ms(max(times))}"
        )
    print(f"    ratio of p50s (now / base) {pct(cached_now, 50) / pct(cached_base, 50):.3f}")
    print(f"(c) {args.viewers} concurrent viewers of one new build, {args.rounds} round(s) each")
    p50s = {}
    for name in ("now", "base"):
        for builds, ready, firsts, rss in runs[name]:
            print(
                f"    {name:4} builds {builds}  ready {ready}/{args.viewers}  first event p50 "
                f"{ms(pct(firsts, 50))} p99 {ms(pct(firsts, 99))}  peak RSS {rss:.1f} MB"
            )
        p50s[name] = statistics.median(pct(firsts, 50) for _, _, firsts, _ in runs[name])
    print(f"    ratio of median first-event p50s (now / base) {p50s['now'] / p50s['base']:.3f}")


if __name__ == "__main__":
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--pairs", type=int, default=5, help="alternating build pairs for (a)")
    p.add_argument("--requests", type=int, default=500, help="cached requests for (b)")
    p.add_argument("--viewers", type=int, default=200, help="concurrent viewers for (c)")
    p.add_argument("--rounds", type=int, default=2, help="rounds of (c) per side with --compare")
    p.add_argument(
        "--compare",
        metavar="REV",
        help="run (b) and (c) for this checkout and for git revision REV side by side; "
        "'records-off': against this checkout without build records",
    )
    asyncio.run(main(p.parse_args()))
