"""The Resolver: spec -> ResolvedRepo through the configured providers.

Successful resolutions are cached for `cache_ttl` seconds, and a resolution in flight
is shared: a link posted to a class of 200 asks GitHub once, not 200 times.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict

from traitlets import Callable, Dict, Float, Integer, TraitError, validate
from traitlets.config import LoggingConfigurable
from traitlets.utils.importstring import import_item

from ..spec import RepoSpec, SpecError
from .base import RepoProvider, ResolvedRepo, ResolveError
from .ckan import CKANRepoProvider
from .data import DataRepoProvider
from .dataverse import DataverseRepoProvider
from .doi import DOIRepoProvider
from .figshare import FigshareRepoProvider
from .gist import GistRepoProvider
from .git import GitRepoProvider
from .gitea import GiteaRepoProvider
from .github import GitHubAPIProvider, GitHubRepoProvider
from .gitlab import GitLabRepoProvider
from .http import HTTPRepoProvider
from .hydroshare import HydroShareRepoProvider
from .swhid import SwhidRepoProvider
from .zenodo import ZenodoRepoProvider

# BinderHub's providers, then the ones it lacks
DEFAULT_PROVIDERS = {
    "gh": GitHubRepoProvider,
    "gl": GitLabRepoProvider,
    "git": GitRepoProvider,
    "gist": GistRepoProvider,
    "zenodo": ZenodoRepoProvider,
    "figshare": FigshareRepoProvider,
    "hydroshare": HydroShareRepoProvider,
    "dataverse": DataverseRepoProvider,
    "ckan": CKANRepoProvider,
    "doi": DOIRepoProvider,
    "swhid": SwhidRepoProvider,
    "gitea": GiteaRepoProvider,
}


class Resolver(LoggingConfigurable):
    providers = Dict(
        default_value=DEFAULT_PROVIDERS,
        help="""The repository providers, by spec prefix: {"gh": GitHubRepoProvider, ...}.

        Values are RepoProvider subclasses or their import strings
        ("mypackage.MyProvider"); a provider's `name` must equal its prefix. Drop an
        entry to turn a provider off; the order is the order of describe().
        """,
    ).tag(config=True)
    cache_ttl = Float(
        60.0,
        help="""Seconds a resolved ref is reused before asking the provider again; 0 turns
        the cache off. A new commit on a branch is built at most this much later.""",
    ).tag(config=True)
    cache_size = Integer(
        4096,
        help="At most this many resolutions are cached (least recently used go first).",
    ).tag(config=True)
    clock = Callable(time.monotonic, help="The clock for cache expiry (tests inject a fake one).")

    @validate("providers")
    def _validate_providers(self, proposal):
        providers = {}
        for prefix, cls in proposal["value"].items():
            if isinstance(cls, str):
                try:
                    cls = import_item(cls)
                except Exception as e:
                    raise TraitError(
                        f"c.Resolver.providers[{prefix!r}]: cannot import {cls!r}: {e}"
                    ) from None
            if not (isinstance(cls, type) and issubclass(cls, RepoProvider)):
                raise TraitError(
                    f"c.Resolver.providers[{prefix!r}] is {cls!r}; "
                    "it must be a RepoProvider subclass"
                )
            if cls.name != prefix:
                raise TraitError(
                    f"c.Resolver.providers[{prefix!r}] is {cls.__name__}, whose prefix is "
                    f"{cls.name!r}: register it as {cls.name!r}, "
                    f"or subclass it with name = {prefix!r}"
                )
            providers[prefix] = cls
        return providers

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._instances: dict[str, RepoProvider] = {}
        self._cache: OrderedDict[RepoSpec, tuple[float, ResolvedRepo]] = OrderedDict()
        self._inflight: dict[RepoSpec, asyncio.Future] = {}

    def provider(self, prefix: str) -> RepoProvider:
        """The provider for a prefix; SpecError (400) for one that is not configured
        or is turned off (c.<Provider>.enabled = False)."""
        instance = self._instance(prefix) if prefix in self.providers else None
        if instance is None or not instance.enabled:
            known = ", ".join(self.enabled()) or "none"
            what = "unknown provider" if instance is None else "the provider"
            why = "" if instance is None else " is turned off on this service"
            raise SpecError(f"{what} {prefix!r}{why}: this service builds from {known}")
        return instance

    def _instance(self, prefix: str) -> RepoProvider:
        if prefix not in self._instances:
            self._instances[prefix] = self.providers[prefix](parent=self)
        return self._instances[prefix]

    def enabled(self) -> list[str]:
        """The prefixes of the providers that are on, in the configured order."""
        return [prefix for prefix in self.providers if self._instance(prefix).enabled]

    def check_policy(self, provider: str, spec: str) -> None:
        """ResolveError (403) when the provider's banned_specs/allowed_specs refuse it."""
        refusal = self.provider(provider).refusal(spec)
        if refusal:
            raise ResolveError(refusal, status=403)

    def has_higher_quota(self, provider: str, spec: str) -> bool:
        """Whether "<provider>/<spec>" gets the higher per-repository launch quota
        (its provider's high_quota_specs); False for a provider that is not on."""
        try:
            return self.provider(provider).has_higher_quota(spec)
        except SpecError:
            return False

    def parse(self, provider: str, spec: str) -> RepoSpec:
        return self.provider(provider).parse(spec)

    async def resolve(self, provider: str, spec: str) -> ResolvedRepo:
        """Resolve "<provider>/<spec>"; raises SpecError (bad input) or ResolveError."""
        repo_spec = self.parse(provider, spec)
        # Before any request upstream: a banned spec costs no resolution.
        self.check_policy(provider, repo_spec.spec)
        resolved = await self._resolve_cached(provider, repo_spec)
        if resolved.provider != provider:  # doi/ resolves to another provider's record
            self.check_policy(resolved.provider, resolved.spec)
        return resolved

    async def _resolve_cached(self, provider: str, repo_spec: RepoSpec) -> ResolvedRepo:
        cached = self._cached(repo_spec)
        if cached is not None:
            return cached
        task = self._inflight.get(repo_spec)
        if task is None:
            task = asyncio.ensure_future(self._resolve(self.provider(provider), repo_spec))
            self._inflight[repo_spec] = task
            task.add_done_callback(lambda t: self._finished(repo_spec, t))
        # shield: one impatient caller leaving must not cancel it for the others
        return await asyncio.shield(task)

    async def _resolve(self, provider: RepoProvider, repo_spec: RepoSpec) -> ResolvedRepo:
        try:
            return await provider.resolve(repo_spec)
        except (ResolveError, SpecError):
            raise
        except Exception:
            self.log.exception("Resolving %s failed", repo_spec)
            raise ResolveError(
                f"resolving {repo_spec} failed with an internal error; tell the "
                "administrator (the service log has the details)",
                status=500,
            ) from None

    def _finished(self, repo_spec: RepoSpec, task: asyncio.Future) -> None:
        if self._inflight.get(repo_spec) is task:
            del self._inflight[repo_spec]
        if task.cancelled():
            return
        if task.exception() is not None:  # also marks it retrieved if nobody waited
            return
        if self.cache_ttl > 0 and self.cache_size > 0:
            self._cache[repo_spec] = (self.clock() + self.cache_ttl, task.result())
            self._cache.move_to_end(repo_spec)
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)

    def _cached(self, repo_spec: RepoSpec) -> ResolvedRepo | None:
        entry = self._cache.get(repo_spec)
        if entry is None:
            return None
        expires, resolved = entry
        if self.clock() >= expires:
            del self._cache[repo_spec]
            return None
        self._cache.move_to_end(repo_spec)
        return resolved

    def forget(self) -> None:
        """Drop every cached resolution (the next requests ask the providers again)."""
        self._cache.clear()

    def describe(self) -> list[dict]:
        """The repo providers API: one entry per provider, as BinderHub's /api/repoproviders."""
        return [self.provider(prefix).describe() for prefix in self.enabled()]

    async def close(self) -> None:
        for provider in self._instances.values():
            await provider.close()


def provider_classes() -> list[type]:
    """The configurable provider classes, shared bases first, for --generate-config."""
    return [
        RepoProvider,  # c.RepoProvider.banned_specs etc. apply to every provider
        HTTPRepoProvider,
        GitHubAPIProvider,
        GitHubRepoProvider,
        GistRepoProvider,
        GitLabRepoProvider,
        GitRepoProvider,
        GiteaRepoProvider,
        DataRepoProvider,
        *(cls for cls in DEFAULT_PROVIDERS.values() if issubclass(cls, DataRepoProvider)),
    ]
