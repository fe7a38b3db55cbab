"""Warm rebuilds (issue 12): a new commit of a repository already built, on a builder
whose local build cache is empty, with the registry's previous image as cache and without.

A Dockerfile repository with a slow layer (`RUN sleep`, standing in for a slow apt.txt
install, which needs no network here) and a later file: each measured build changes only
the later file. Before each measured build the local engine forgets everything it built
(`docker buildx prune -af`, and the images of the repository are removed), as on a fresh
node. "warm" builds through a service with c.Repo2DockerBuilder.warm_rebuilds on (it takes
the layers of the repository's previous image from the registry); "cold" through one with
it off. The ratio warm / cold is the figure (target <= 0.3).

Run with `bash benchmarks/run.sh warm` (it starts Docker and the registry first).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import tempfile
import time
import uuid
from pathlib import Path
from urllib.parse import quote

import aiohttp

from benchmarks.bench_local import BASE, R2D_CONFIG, REGISTRY
from tests.fakes.gitserver import GitDaemon, make_repo
from tests.support.service import ServiceProcess
from tests.support.sse import read_events

DOCKERFILE = "FROM {base}\nRUN sleep {slow} && echo slow layer > /slow.txt\nCOPY later.txt /\n"


def service(workdir: Path, prefix: str, warm: bool) -> ServiceProcess:
    workdir.mkdir()
    return ServiceProcess(
        str(workdir),
        f"""
        import os
        c.R2DService.auth_enabled = False
        c.R2DService.image_prefix = "{prefix}"
        c.LocalBuilder.repo2docker_extra_args = ["--config", "{Path(R2D_CONFIG).resolve()}"]
        c.GitRepoProvider.allow_loopback = True  # the git daemon is on 127.0.0.1
        c.Repo2DockerBuilder.warm_rebuilds = {warm}
        c.Application.log_level = "WARN"
        """,
    ).start()


def forget_local_builds(prefix: str) -> None:
    """The local engine as on a fresh node: no build cache, no image of this run."""
    subprocess.run(["docker", "buildx", "prune", "-af"], check=True, capture_output=True)
    images = subprocess.run(
        ["docker", "images", "--format", "{{.Repository}}:{{.Tag}}"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    mine = [i for i in images if i.startswith(prefix)]
    if mine:
        subprocess.run(["docker", "image", "rm", "-f", *mine], check=True, capture_output=True)


async def build(http, svc: ServiceProcess, spec: str) -> float:
    t0 = time.monotonic()
    got = await read_events(http, f"{svc.url}build/{spec}?build_only=true", timeout=900)
    elapsed = time.monotonic() - t0
    assert got.last.get("phase") == "ready", "".join(e["message"] for e in got.events[-15:])
    return elapsed


async def main(args) -> None:
    run = uuid.uuid4().hex[:6]
    prefix = f"{REGISTRY}/r2dbench-warm-{run}-"
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        git = GitDaemon(tmp / "git").start()
        git.root = tmp / "git"
        dockerfile = DOCKERFILE.format(base=BASE, slow=args.slow)

        def commit() -> str:
            sha = make_repo(
                git.root / "warm",
                {"Dockerfile": dockerfile, "later.txt": uuid.uuid4().hex + "\n"},
            )
            return f"git/{quote(git.url('warm'), safe='')}/{sha}"

        warm_svc = service(tmp / "warm", prefix, True)
        cold_svc = service(tmp / "cold", prefix, False)
        times: dict[str, list[float]] = {"warm": [], "cold": []}
        try:
            async with aiohttp.ClientSession() as http:
                seed = await build(http, warm_svc, commit())  # the repository's first image
                for i in range(args.rounds):
                    order = ("cold", "warm") if i % 2 == 0 else ("warm", "cold")
                    for mode in order:
                        forget_local_builds(prefix)
                        svc = warm_svc if mode == "warm" else cold_svc
                        times[mode].append(await build(http, svc, commit()))
        finally:
            warm_svc.stop()
            cold_svc.stop()
            git.stop()
            forget_local_builds(prefix)
    warm, cold = statistics.median(times["warm"]), statistics.median(times["cold"])
    print()
    print("r2dservice warm rebuild benchmark (one run, side by side)")
    print("-" * 72)
    print(f"slow layer: RUN sleep {args.slow}; a later file changes; local build cache emptied")
    print(f"first build of the repository (seeds the registry)   {seed:6.1f} s")
    print(f"cold (no registry cache)   {' '.join(f'{t:6.1f}' for t in times['cold'])} s")
    print(f"warm (previous image as --cache-from) {' '.join(f'{t:6.1f}' for t in times['warm'])} s")
    print(f"ratio of medians warm / cold   {warm / cold:.3f}   (target <= 0.3)")


if __name__ == "__main__":
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--slow", type=int, default=20, help="seconds of the slow layer")
    p.add_argument("--rounds", type=int, default=2, help="cold/warm pairs, alternating")
    asyncio.run(main(p.parse_args()))
