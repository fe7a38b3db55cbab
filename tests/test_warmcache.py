"""Warm rebuilds, without Docker: which image a build takes its cache from, and the
repo2docker arguments that carry it (the real builds are in benchmarks/bench_warm.py)."""

from __future__ import annotations

import pytest

from r2dservice.builders.base import make_build_request
from r2dservice.builders.local import LocalBuilder
from r2dservice.builders.objects import repo2docker_args as pod_args
from r2dservice.builders.repo2docker import repo2docker_args
from r2dservice.warmcache import PreviousImages

REPO = "127.0.0.1:5000/r2d-git-demo-1234abcd"


def request(tag="new", push=True):
    return make_build_request(
        image_name=f"{REPO}:{tag}",
        repo_url="https://git.example.org/demo.git",
        ref="a" * 40,
        provider="git",
        spec="x/main",
        push=push,
    )


def test_args_carry_cache_from_and_inline_cache():
    from dataclasses import replace

    req = replace(request(), cache_from=(f"{REPO}:old",))
    args = repo2docker_args(req, user_id=1000, user_name="jovyan", inline_cache=True)
    assert f"--cache-from={REPO}:old" in args
    assert "--build-arg=BUILDKIT_INLINE_CACHE=1" in args
    assert args[-1] == req.repo_url  # the repository stays last
    # cache metadata is for pushed images only
    args = repo2docker_args(request(push=False), user_id=1000, user_name="j", inline_cache=True)
    assert not any("BUILDKIT_INLINE_CACHE" in a or "cache-from" in a for a in args)


def test_build_pods_get_the_same_arguments():
    from dataclasses import replace

    from r2dservice.builders.kubernetes import build_pod_config

    req = replace(request(), cache_from=(f"{REPO}:old",))
    args = pod_args(req, build_pod_config())
    assert f"--cache-from={REPO}:old" in args and "--build-arg=BUILDKIT_INLINE_CACHE=1" in args
    args = pod_args(req, build_pod_config(warm_rebuilds=False))
    assert "--build-arg=BUILDKIT_INLINE_CACHE=1" not in args


class History:
    def __init__(self, images):
        self.images = images
        self.asked = []

    async def ready_images(self, repository, limit=5):
        self.asked.append(repository)
        return [i for i in self.images if i.rpartition(":")[0] == repository][:limit]


class Registry:
    def __init__(self, present):
        self.present = set(present)

    async def exists(self, image):
        return image in self.present


@pytest.mark.asyncio
async def test_previous_image_is_the_newest_that_still_exists():
    history = History([f"{REPO}:new", f"{REPO}:gone", f"{REPO}:older", "r2d-other:x"])
    finder = PreviousImages(history, Registry({f"{REPO}:older", f"{REPO}:new"}))
    assert await finder.find(request("new")) == [f"{REPO}:older"]  # never itself
    assert history.asked == [REPO]
    assert await PreviousImages(History([]), Registry(())).find(request()) == []
    # several, newest first (an image built warm may not pass on every layer it reused)
    history = History([f"{REPO}:{t}" for t in ("c", "b", "a", "z")])
    finder = PreviousImages(history, Registry(history.images), candidates=2)
    assert await finder.find(request("new")) == [f"{REPO}:c", f"{REPO}:b"]


@pytest.mark.asyncio
async def test_builder_asks_only_with_a_registry_and_never_fails_a_build():
    builder = LocalBuilder()
    builder.previous_images = PreviousImages(
        History([f"{REPO}:old"]), Registry({f"{REPO}:old"})
    ).find
    assert (await builder.with_cache(request())).cache_from == (f"{REPO}:old",)
    assert (await builder.with_cache(request(push=False))).cache_from == ()
    builder.warm_rebuilds = False
    assert (await builder.with_cache(request())).cache_from == ()

    async def broken(_):
        raise RuntimeError("records are down")

    builder = LocalBuilder()
    builder.previous_images = broken
    assert (await builder.with_cache(request())).cache_from == ()
